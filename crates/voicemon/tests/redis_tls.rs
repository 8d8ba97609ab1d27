//! `rediss://` with the real binary against a real Redis speaking TLS: a `redis-server`
//! started by the test on a TLS-only port, with a certificate of the test's own CA.
//! Runs when `VOICEMON_TEST_REDIS_URL` is set (Redis is installed); says it skipped otherwise.

mod common;

use common::tls::TestCa;
use common::Server;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` listening with TLS only, killed when dropped.
struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start(ca: &TestCa) -> TlsRedis {
        let dir = tempfile::tempdir().expect("a directory for redis");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--tls-cert-file")
            .arg(&ca.cert_file)
            .arg("--tls-key-file")
            .arg(&ca.key_file)
            .arg("--tls-ca-cert-file")
            .arg(&ca.ca_file)
            .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (VOICEMON_TEST_REDIS_URL is set, so Redis is installed)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server with TLS listens on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsRedis { child, port, _dir: dir }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("a bound address").port()
}

fn redis_installed(test: &str) -> bool {
    let set = std::env::var("VOICEMON_TEST_REDIS_URL").is_ok_and(|url| !url.trim().is_empty());
    if !set {
        eprintln!("skipping {test}: it starts a TLS redis-server; set VOICEMON_TEST_REDIS_URL=redis://127.0.0.1:6379 to run it");
    }
    set
}

/// voicemon watching `redis_url`, with `SSL_CERT_FILE` when given.
fn serve(dir: &Path, redis_url: &str, ca_file: Option<&Path>) -> Server {
    let mut env = vec![("REDIS_URL", redis_url.to_owned())];
    if let Some(ca) = ca_file {
        env.push(("SSL_CERT_FILE", ca.to_str().expect("a UTF-8 path").to_owned()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with_env(&dir.join("data"), None, &[], &env)
}

/// Polls `/metrics/health` until its `redis` part has been polled at least once.
async fn polled_redis(server: &Server) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health: Value = reqwest::get(server.url("/metrics/health"))
            .await
            .expect("voicemon answers")
            .json()
            .await
            .expect("health is JSON");
        if !health["redis"]["reachable"].is_null() {
            return health["redis"].clone();
        }
        assert!(Instant::now() < deadline, "redis was never polled: {health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_rediss_url_is_polled_over_tls_when_its_ca_is_trusted() {
    if !redis_installed("a_rediss_url_is_polled_over_tls_when_its_ca_is_trusted") {
        return;
    }
    let ca = TestCa::shared();
    let redis = TlsRedis::start(ca);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = serve(dir.path(), &format!("rediss://localhost:{}", redis.port), Some(&ca.ca_file));

    let health = polled_redis(&server).await;
    assert_eq!(health["reachable"], true, "{health}");
    assert!(health["used_memory_bytes"].as_u64().is_some_and(|bytes| bytes > 0), "INFO was read: {health}");
    assert!(health["last_error"].is_null(), "{health}");
}

#[tokio::test]
async fn an_untrusted_redis_certificate_is_reported_with_its_reason() {
    if !redis_installed("an_untrusted_redis_certificate_is_reported_with_its_reason") {
        return;
    }
    let redis = TlsRedis::start(TestCa::shared());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = serve(dir.path(), &format!("rediss://localhost:{}", redis.port), None);

    let health = polled_redis(&server).await;
    assert_eq!(health["reachable"], false, "{health}");
    let error = health["last_error"].as_str().unwrap_or_default();
    assert!(error.starts_with(&format!("TLS handshake with localhost:{} failed", redis.port)), "{error}");
    assert!(error.contains("invalid peer certificate: UnknownIssuer"), "{error}");
    assert!(server.log().contains("UnknownIssuer"), "the reason is logged: {}", server.log());
}

#[tokio::test]
async fn rediss_to_a_plain_text_redis_is_a_handshake_error_not_a_crash() {
    let Ok(plain) = std::env::var("VOICEMON_TEST_REDIS_URL") else {
        eprintln!("skipping rediss_to_a_plain_text_redis_is_a_handshake_error_not_a_crash: set VOICEMON_TEST_REDIS_URL=redis://127.0.0.1:6379 to run it");
        return;
    };
    let tls_url = plain.replacen("redis://", "rediss://", 1);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = serve(dir.path(), &tls_url, None);

    let health = polled_redis(&server).await;
    assert_eq!(health["reachable"], false, "{health}");
    let error = health["last_error"].as_str().unwrap_or_default();
    // A plain-text Redis reads the ClientHello as the start of a command and waits for
    // its end, so the handshake never completes: the poll gives up and says where.
    assert!(error.contains("(a rediss:// URL needs a port that speaks TLS)"), "{error}");
    let answer = reqwest::get(server.url("/healthz")).await.expect("voicemon still answers");
    assert!(answer.status().is_success());
}
