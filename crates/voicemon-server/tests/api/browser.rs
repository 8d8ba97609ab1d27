//! Requests a web page may make: in open mode (no API keys) only voicemon's own loopback
//! names and its own (or an allowed) origin are answered; every answer says `nosniff`;
//! the answers hyper writes itself (414, 431) carry the JSON error too.

use crate::helpers::{
    assert_error, create_key, spawn_app, spawn_app_in, spawn_app_with, status_and_json, turn,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use voicemon_core::access::Role;
use voicemon_server::origin::AllowedOrigins;

/// A POST of one good event, with these extra headers.
async fn post_event_with(app: &crate::helpers::TestApp, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/v1/events"))
        .header("content-type", "application/json")
        .body(turn("t1", "acme", "call-1", -30_000, 640.0).to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    status_and_json(request.send().await.expect("the request is sent")).await
}

#[tokio::test]
async fn open_mode_refuses_a_post_from_a_page_of_another_origin_and_stores_nothing() {
    let app = spawn_app().await;
    let (status, body) = post_event_with(&app, &[("origin", "https://evil.example")]).await;
    assert_error(status, &body, 403, "forbidden");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("https://evil.example") && message.contains("allowed_origins"), "{message}");
    let (status, body) = post_event_with(&app, &[("sec-fetch-site", "cross-site")]).await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn open_mode_refuses_a_foreign_host_as_a_rebound_dns_name_would_send() {
    let app = spawn_app().await;
    for host in ["evil.example", "evil.example:3001", "10.1.2.3:3001"] {
        let (status, body) = post_event_with(&app, &[("host", host)]).await;
        assert_error(status, &body, 403, "forbidden");
        let response =
            app.client.get(app.url("/metrics/cost")).header("host", host).send().await.expect("sent");
        assert_eq!(response.status(), 403, "a read under {host} is refused too");
    }
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn open_mode_answers_its_loopback_names_with_any_port_and_its_own_origin() {
    let app = spawn_app().await;
    let own_origin = app.address.clone();
    for headers in [
        vec![("host", "localhost:9999")],
        vec![("host", "127.0.0.1")],
        vec![("host", "[::1]:3001")],
        vec![("origin", own_origin.as_str())],
        vec![("sec-fetch-site", "same-origin")],
    ] {
        let (status, body) = post_event_with(&app, &headers).await;
        assert_eq!(status, 202, "{headers:?}: {body}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn open_mode_answers_an_allowed_origin_and_its_host() {
    let app = spawn_app_with(|config| {
        config.allowed_origins = AllowedOrigins::parse(["https://mon.example.com"]).expect("an origin");
    })
    .await;
    let (status, body) = post_event_with(&app, &[("origin", "https://mon.example.com")]).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = post_event_with(&app, &[("host", "mon.example.com")]).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = post_event_with(&app, &[("origin", "https://other.example.com")]).await;
    assert_error(status, &body, 403, "forbidden");
    app.shutdown().await;
}

#[tokio::test]
async fn with_keys_the_key_protects_and_foreign_hosts_are_served() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let ingest = create_key(data_dir.path(), Role::Ingest, Some("acme")).await;
    let app = spawn_app_in(data_dir, |_| {}).await;
    let response = app
        .client
        .post(app.url("/v1/events"))
        .header("content-type", "application/json")
        .header("host", "mon.example.com")
        .bearer_auth(ingest.secret().expect("a secret"))
        .body(turn("t1", "acme", "call-1", -30_000, 640.0).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    app.shutdown().await;
}

#[tokio::test]
async fn every_answer_tells_browsers_not_to_sniff_its_type() {
    let app = spawn_app().await;
    let answers = [
        app.get("/", None).await,
        app.get("/healthz", None).await,
        app.get("/metrics/latency", None).await,
        app.get("/no/such/route", None).await,
        app.get("/metrics/cost?from=soon", None).await,
        app.post_body("{}", Some("text/plain"), None).await,
        app.post_body("1\n", Some("application/x-ndjson"), None).await,
    ];
    for response in answers {
        let nosniff =
            response.headers().get("x-content-type-options").map(|v| v.to_str().unwrap_or_default());
        assert_eq!(nosniff, Some("nosniff"), "{} {}", response.url(), response.status());
    }
    app.shutdown().await;
}

/// Sends raw bytes on a new connection and reads the whole answer (the server closes it).
async fn raw_exchange(app: &crate::helpers::TestApp, request: Vec<u8>) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connects");
    stream.write_all(&request).await.expect("the request is written");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("the answer is read");
    String::from_utf8(answer).expect("a text answer")
}

/// The status and the JSON body of a raw answer.
fn status_and_body(answer: &str) -> (u16, Value) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    (status, serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {body}")))
}

#[tokio::test]
async fn a_url_too_long_for_the_http_parser_is_answered_414_with_the_json_error() {
    let app = spawn_app().await;
    let path = format!("/metrics/latency?agent_id={}", "a".repeat(70_000));
    let request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    let (status, body) = status_and_body(&raw_exchange(&app, request.into_bytes()).await);
    assert_error(status, &body, 414, "uri_too_long");
    app.shutdown().await;
}

#[tokio::test]
async fn headers_too_large_for_the_http_parser_are_answered_431_with_the_json_error() {
    let app = spawn_app().await;
    for headers in [format!("x-big: {}\r\n", "b".repeat(500_000)), "x-many: 1\r\n".repeat(150)] {
        let request = format!("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n{headers}\r\n");
        let (status, body) = status_and_body(&raw_exchange(&app, request.into_bytes()).await);
        assert_error(status, &body, 431, "headers_too_large");
    }
    app.shutdown().await;
}
