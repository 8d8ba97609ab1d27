//! A local HTTPS server standing in for a Slack incoming webhook, a JSON webhook or an
//! Alertmanager: TLS with a certificate of the test's own CA ([`TestCa`]), as the real
//! ones speak TLS, so voicemon must trust that CA (`SSL_CERT_FILE`) to reach it. One thread
//! per connection; it records each request's path and JSON body and answers from a script
//! of statuses and headers.

use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::tls::TestCa;

/// One scripted answer: a status and extra headers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: Vec::new() }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A request a stand-in received, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Value,
    pub at: Instant,
    pub status: u16,
}

impl Received {
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug)]
struct Ledger {
    script: VecDeque<Reply>,
    /// The answer once the script is spent.
    then: Reply,
    received: Vec<Received>,
    /// TLS handshakes that failed (the client refused the certificate, say).
    failed_handshakes: usize,
}

/// A local HTTPS server standing in for Slack, a webhook or Alertmanager.
pub struct StandIn {
    /// `https://127.0.0.1:<port>`
    pub base: String,
    ledger: Arc<Mutex<Ledger>>,
}

impl StandIn {
    /// Answers with `script` in order, then with `then` for ever, over TLS with a
    /// certificate of [`TestCa::shared`].
    pub fn answering(script: Vec<Reply>, then: Reply) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let base = format!("https://{}", listener.local_addr().expect("a bound address"));
        let ledger = Arc::new(Mutex::new(Ledger {
            script: script.into(),
            then,
            received: Vec::new(),
            failed_handshakes: 0,
        }));
        let shared = Arc::clone(&ledger);
        let tls = TestCa::shared().server_config();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let ledger = Arc::clone(&shared);
                let tls = Arc::clone(&tls);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let connection = rustls::ServerConnection::new(tls).expect("a TLS server connection");
                    let mut stream = rustls::StreamOwned::new(connection, stream);
                    while stream.conn.is_handshaking() {
                        if stream.conn.complete_io(&mut stream.sock).is_err() {
                            ledger.lock().expect("the ledger").failed_handshakes += 1;
                            return;
                        }
                    }
                    answer_one(stream, &ledger);
                });
            }
        });
        StandIn { base, ledger }
    }

    /// Accepts everything with 200 "ok", as Slack and Alertmanager do.
    pub fn accepting() -> StandIn {
        StandIn::answering(Vec::new(), Reply::status(200))
    }

    /// A Slack-looking incoming-webhook URL on this stand-in.
    pub fn webhook_url(&self) -> String {
        format!("{}/services/T0000/B0000/not-a-secret", self.base)
    }

    pub fn received(&self) -> Vec<Received> {
        self.ledger.lock().expect("the ledger").received.clone()
    }

    pub fn failed_handshakes(&self) -> usize {
        self.ledger.lock().expect("the ledger").failed_handshakes
    }

    /// Answers `reply` from now on, once any script left is spent.
    pub fn answer_from_now_on(&self, reply: Reply) {
        self.ledger.lock().expect("the ledger").then = reply;
    }
}

/// Reads one request from `stream`, records it, and answers with the next scripted reply
/// (`Connection: close`, so a client never reuses a connection the stand-in dropped).
fn answer_one(stream: impl Read + Write, ledger: &Mutex<Ledger>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let reply = {
        let mut ledger = ledger.lock().expect("the ledger");
        let reply = ledger.script.pop_front().unwrap_or_else(|| ledger.then.clone());
        ledger.received.push(Received { path, body, at: Instant::now(), status: reply.status });
        reply
    };
    let text = if (200..300).contains(&reply.status) { "ok" } else { "the stand-in refuses" };
    let mut response = format!(
        "HTTP/1.1 {} Scripted\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        text.len()
    );
    for (name, value) in &reply.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(text);
    let writer = reader.get_mut();
    let _ = writer.write_all(response.as_bytes());
    let _ = writer.flush();
}
