//! A stand-in voicemon for tests: a tiny HTTP/1.1 server that answers like the real one
//! and validates every line it receives with the real contract code.

use super::SimulateOptions;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use voicemon_core::clock::{Clock, SystemClock};
use voicemon_core::validate::parse_event;

/// What the stand-in saw and how it should answer POSTs.
#[derive(Default)]
pub(super) struct StandIn {
    /// Status codes for the first POSTs, in order; 202 after that.
    script: Vec<u16>,
    pub(super) posts: usize,
    /// Lines of the POSTs answered 202, and how many of them validated.
    pub(super) lines: usize,
    pub(super) valid: usize,
    pub(super) call_started: usize,
    pub(super) content_types: HashSet<String>,
    pub(super) authorizations: HashSet<String>,
}

/// A tiny HTTP/1.1 server: answers `GET` with 200 and `POST /v1/events` like voicemon,
/// validating each NDJSON line with the real contract code.
pub(super) async fn start_stand_in(script: Vec<u16>) -> (String, Arc<Mutex<StandIn>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let state = Arc::new(Mutex::new(StandIn { script, ..StandIn::default() }));
    let shared = Arc::clone(&state);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move { serve_one(stream, &shared).await });
        }
    });
    (url, state)
}

async fn serve_one(stream: TcpStream, state: &Mutex<StandIn>) {
    let Some((head, body)) = read_request(&stream).await else {
        return;
    };
    let response = if head.starts_with("POST /v1/events ") {
        answer_post(&head, &body, &mut state.lock().expect("stand-in state"))
    } else {
        http_response(200, "", "ok")
    };
    write_all(&stream, response.as_bytes()).await;
}

fn answer_post(head: &str, body: &[u8], state: &mut StandIn) -> String {
    state.posts += 1;
    if let Some(content_type) = header(head, "content-type") {
        state.content_types.insert(content_type);
    }
    if let Some(authorization) = header(head, "authorization") {
        state.authorizations.insert(authorization);
    }
    let status = state.script.get(state.posts - 1).copied().unwrap_or(202);
    match status {
        202 => {}
        401 => {
            return http_response(401, "", r#"{"error":{"code":"unauthorized","message":"unknown api key"}}"#)
        }
        503 => {
            return http_response(
                503,
                "Retry-After: 1\r\n",
                r#"{"error":{"code":"unavailable","message":"storage is unavailable"}}"#,
            )
        }
        other => return http_response(other, "", "{}"),
    }
    let now_ms = SystemClock.now_ms();
    let text = String::from_utf8_lossy(body);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut rejected = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        state.lines += 1;
        state.call_started += usize::from(line.contains(r#""type":"call.started""#));
        match parse_event(line, now_ms) {
            Ok(_) => state.valid += 1,
            Err(err) => rejected.push(json!({ "index": index, "field": err.field, "error": err.message })),
        }
    }
    let accepted = lines.len() - rejected.len();
    let answer = json!({ "accepted": accepted, "duplicates": 0, "rejected": rejected });
    http_response(202, "", &answer.to_string())
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
    })
}

fn http_response(status: u16, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

/// Reads one request (head and `Content-Length` body) without tokio's io-util.
async fn read_request(stream: &TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return Some((head, buffer[end + 4..end + 4 + length].to_vec()));
            }
        }
        stream.readable().await.ok()?;
        let mut chunk = [0u8; 64 * 1024];
        match stream.try_read(&mut chunk) {
            Ok(0) => return None,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        if stream.writable().await.is_err() {
            return;
        }
        match stream.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
    }
}

/// Three minutes of backfill, then one second live, sent to the stand-in at `url`.
pub(super) fn options_for(url: &str) -> SimulateOptions {
    SimulateOptions {
        base_url: url.to_owned(),
        api_key: Some("vm_test_key".to_owned()),
        duration: Some(Duration::from_secs(1)),
        backfill: Some(Duration::from_secs(3 * 60)),
        seed: Some(42),
        batch_max_events: 200,
        ..SimulateOptions::default()
    }
}
