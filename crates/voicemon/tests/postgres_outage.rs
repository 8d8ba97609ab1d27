//! PostgreSQL goes away while events arrive: voicemon answers 503 with `Retry-After`
//! (never a 2xx for an event it did not store) saying the database is unreachable,
//! `/readyz` fails, `/metrics/health` names the cause, `/metrics` counts the failed
//! commits by cause, every acknowledged event is kept, and service resumes by itself when
//! the database is back.
//!
//! The outage is real: a TCP proxy between voicemon and PostgreSQL drops every open
//! connection and refuses new ones, as a database restart or a network cut does.

use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

mod common;

use common::proxy::{split_address, Proxy};
use common::{metric, postgres_url, time_from_now, with_search_path, Server, TestSchema};

/// One request of ten turns of ten new calls; returns the status, whether a 503 carried
/// `Retry-After`, and the error message of a refusal.
async fn send_batch(client: &reqwest::Client, server: &Server, batch: usize) -> (u16, bool, String) {
    let body: String = (0..10)
        .map(|i| {
            let event = json!({
                "id": format!("outage-{batch}-{i}"), "type": "turn.completed", "timestamp": time_from_now(-1_000),
                "tenant_id": "outage", "call_id": format!("call-{batch}-{i}"), "turn_index": 0, "e2e_ms": 700.0
            });
            format!("{event}\n")
        })
        .collect();
    let request = client.post(server.url("/v1/events")).header("content-type", "application/x-ndjson");
    let response = match request.body(body).send().await {
        Ok(response) => response,
        Err(err) => panic!("voicemon must answer during an outage, not drop the request: {err}"),
    };
    let (status, retry_after) = (response.status().as_u16(), response.headers().contains_key("retry-after"));
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    (status, retry_after, answer["error"]["message"].as_str().unwrap_or_default().to_owned())
}

/// The reasons of `/metrics/health`, as text.
async fn health_reasons(client: &reqwest::Client, server: &Server) -> String {
    let response = client.get(server.url("/metrics/health")).send().await.expect("health answers");
    let report: serde_json::Value = response.json().await.expect("health answers JSON");
    report["reasons"].to_string()
}

const UNREACHABLE_503: &str = "storage is unavailable: the database is unreachable; retry later";
const UNREACHABLE_REASON: &str =
    "voicemon's database (postgres) is not answering: the database is unreachable";

async fn ready(client: &reqwest::Client, server: &Server) -> u16 {
    client.get(server.url("/readyz")).send().await.expect("an answer").status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_answers_503_loses_nothing_acknowledged_and_recovers_without_restart() {
    let Some(admin_url) = postgres_url("the PostgreSQL outage test") else { return };
    let schema = TestSchema::create(&admin_url);
    let (target, url_via) = split_address(&admin_url);
    let proxy = Proxy::start(target).await;
    let proxied = url_via(proxy.addr);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("voicemon.toml");
    std::fs::write(&config, "[postgres]\nconnect_timeout = \"1s\"\n[ingest]\nflush_interval = \"50ms\"\n")
        .expect("config written");
    let database_url = with_search_path(&proxied, &schema.name);
    let server = Server::start_with_env(
        &dir.path().join("data"),
        Some(&config),
        &[],
        &[("DATABASE_URL", &database_url)],
    );
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");

    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    let mut batch = 0;
    let mut send =
        |status: u16, retry_after: bool, batch: usize, acknowledged: &mut BTreeSet<usize>| match status {
            202 => {
                acknowledged.insert(batch);
            }
            503 => {
                assert!(retry_after, "a 503 says when to retry");
                refused += 1;
            }
            other => panic!("ingest answered {other} during an outage; only 202 or 503 are right"),
        };
    // Healthy: everything is acknowledged.
    for _ in 0..20 {
        let (status, retry_after, _) = send_batch(&client, &server, batch).await;
        assert_eq!(status, 202);
        send(status, retry_after, batch, &mut acknowledged);
        batch += 1;
    }
    assert_eq!(ready(&client, &server).await, 200);

    // The database goes away for fifteen seconds while events keep coming.
    proxy.cut();
    let outage = Instant::now();
    let mut readyz_failed = false;
    let mut messages = BTreeSet::new();
    while outage.elapsed() < Duration::from_secs(15) {
        let (status, retry_after, message) = send_batch(&client, &server, batch).await;
        send(status, retry_after, batch, &mut acknowledged);
        messages.insert(message);
        batch += 1;
        readyz_failed |= ready(&client, &server).await == 503;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(readyz_failed, "/readyz fails while the database is unreachable");
    assert!(messages.contains(UNREACHABLE_503), "a 503 names the cause: {messages:?}");
    let reasons = health_reasons(&client, &server).await;
    assert!(reasons.contains(UNREACHABLE_REASON), "/metrics/health names the cause: {reasons}");
    let counted = metric(&client, &server, "voicemon_store_write_errors_total{cause=\"unreachable\"}").await;
    assert!(counted >= 1.0, "failed commits are counted by cause: {counted}");
    proxy.restore();

    // Back: voicemon resumes by itself, without a restart.
    let back = Instant::now();
    let mut in_a_row = 0;
    while in_a_row < 10 {
        assert!(back.elapsed() < Duration::from_secs(60), "ingest did not recover within a minute");
        let (status, retry_after, _) = send_batch(&client, &server, batch).await;
        send(status, retry_after, batch, &mut acknowledged);
        in_a_row = if status == 202 { in_a_row + 1 } else { 0 };
        batch += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready(&client, &server).await, 200);
    assert!(refused > 0, "the outage was noticed");
    let reasons = health_reasons(&client, &server).await;
    assert!(!reasons.contains("database"), "the cause is gone once the database is back: {reasons}");

    let stored: BTreeSet<String> =
        schema.query("SELECT call_id FROM calls").iter().map(|row| row.get::<_, String>(0)).collect();
    for batch in &acknowledged {
        for i in 0..10 {
            assert!(stored.contains(&format!("call-{batch}-{i}")), "acknowledged batch {batch} was lost");
        }
    }
    let turns: i64 = schema.query("SELECT count(*) FROM turns")[0].get(0);
    assert!(turns >= acknowledged.len() as i64 * 10 && turns <= batch as i64 * 10, "{turns} turns stored");
}
