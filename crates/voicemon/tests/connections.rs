//! Connections that do nothing cannot hold the server: idle, half-sent and kept-alive
//! sockets are closed after their timeouts, and under an open-file limit of 1024 a
//! thousand idle sockets do not stop real requests (the real binary, its own limits).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::{time_from_now, Server};

/// Generous: a socket not closed by then is taken as never closed.
const CLOSED_WITHIN: Duration = Duration::from_secs(60);

/// A configuration with short timeouts, so the test does not wait the defaults out.
fn short_timeouts(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("voicemon.toml");
    std::fs::write(&path, "[server]\nheader_read_timeout = \"2s\"\nidle_timeout = \"1s\"\n")
        .expect("config written");
    path
}

fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the socket; returns what it sent before.
async fn read_until_closed(socket: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    match tokio::time::timeout(CLOSED_WITHIN, socket.read_to_end(&mut received)).await {
        Ok(Ok(_)) => received,
        // A reset is the server closing too (it closed with bytes of ours unread).
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionReset => received,
        Ok(Err(err)) => panic!("reading the socket failed: {err}"),
        Err(_) => panic!("the server kept the socket open for {CLOSED_WITHIN:?}"),
    }
}

#[tokio::test]
async fn a_silent_socket_is_closed_by_the_server_after_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"), Some(&short_timeouts(dir.path())), &[]);
    let mut socket = TcpStream::connect(address(&server)).await.expect("connected");

    let received = read_until_closed(&mut socket).await;

    assert!(received.is_empty(), "nothing was asked, nothing is answered: {received:?}");
}

#[tokio::test]
async fn a_socket_that_sends_half_a_request_head_is_closed_by_the_server_after_the_header_timeout() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"), Some(&short_timeouts(dir.path())), &[]);
    let mut socket = TcpStream::connect(address(&server)).await.expect("connected");
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .expect("half a head sent");

    let received = read_until_closed(&mut socket).await;

    assert!(!String::from_utf8_lossy(&received).contains("200 OK"), "a half request is never answered");
}

#[tokio::test]
async fn a_kept_alive_socket_is_answered_then_closed_by_the_server_once_idle() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"), Some(&short_timeouts(dir.path())), &[]);
    let mut socket = TcpStream::connect(address(&server)).await.expect("connected");
    // HTTP/1.1 keeps the connection alive unless someone closes it.
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("request sent");

    let received = String::from_utf8_lossy(&read_until_closed(&mut socket).await).into_owned();

    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
    assert!(!received.to_ascii_lowercase().contains("connection: close"), "kept alive: {received}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_idle_sockets_under_an_open_file_limit_of_1024_do_not_stop_real_requests() {
    // This process opens the thousand sockets: it needs more than 1024 files itself.
    rlimit::increase_nofile_limit(4096).expect("this test may open 4096 files");
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Idle sockets are closed after 5 s: long enough for all of them to be open at once
    // however slow this machine is, short enough for the real requests to get a turn.
    let config = dir.path().join("voicemon.toml");
    std::fs::write(&config, "[server]\nheader_read_timeout = \"5s\"\nidle_timeout = \"5s\"\n")
        .expect("config");
    let server = Server::start_with_open_files(1024, &dir.path().join("data"), Some(&config));
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(TcpStream::connect(address(&server)).await.expect("an idle socket connects"));
    }
    // The log line is read from voicemon's stderr by another thread: wait for it.
    let reached = "connection limit reached: 768 connections are open";
    let deadline = std::time::Instant::now() + CLOSED_WITHIN;
    while !server.log().contains(reached) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = reqwest::Client::builder().timeout(CLOSED_WITHIN).build().expect("a client");

    let health = client.get(server.url("/healthz")).send().await.expect("a real request is served");
    let event = serde_json::json!({
        "id": "fd-1", "type": "turn.completed", "timestamp": time_from_now(-1_000),
        "tenant_id": "files", "call_id": "call-1", "turn_index": 0, "e2e_ms": 700.0
    });
    let ingest = client
        .post(server.url("/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(format!("{event}\n"))
        .send()
        .await
        .expect("an ingest request is served");

    assert_eq!(health.status(), 200);
    assert_eq!(ingest.status(), 202, "{}", ingest.text().await.unwrap_or_default());
    let log = server.log();
    assert!(log.contains("open-file limit is 1024"), "the limit it runs with is logged:\n{log}");
    assert!(log.contains("lowered from 10000 to 768"), "the cap fits the limit:\n{log}");
    assert!(log.contains(reached), "{log}");
    assert!(!log.contains("Too many open files"), "voicemon never ran out of files:\n{log}");
    drop(idle);
}
