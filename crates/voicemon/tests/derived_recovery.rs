//! Derived data (rollups, provider minutes, call totals, workers) is merged after the
//! commit that acknowledged its events. Killing voicemon (SIGKILL) after the commits and
//! before any flush, then starting it again, must give every answer a clean run gives on
//! the same events: latency on every component, calls, cost, provider and worker health.

use serde_json::Value;
use std::path::Path;
use voicemon_core::window::{format_time, minute_of, MINUTE_MS};
use voicemon_simulate::{ModelConfig, TrafficModel};

mod common;

use common::{now_ms, post_ndjson, postgres_url, Server, TestSchema};

/// Thirty minutes of the simulator's traffic (3 tenants), ending two minutes ago.
fn traffic() -> (Vec<Value>, i64, i64) {
    let end_ms = minute_of(now_ms()) - 2 * MINUTE_MS;
    let start_ms = end_ms - 30 * MINUTE_MS;
    let mut model = TrafficModel::new(ModelConfig {
        tenants: 3,
        calls_per_minute: 12.0,
        ..ModelConfig::new(7, start_ms)
    });
    let events = model.events_until(end_ms);
    assert!(events.iter().any(|e| e["type"] == "worker.heartbeat"), "the traffic has heartbeats");
    assert!(events.iter().any(|e| e["type"] == "provider.request"), "and provider requests");
    (events, start_ms, end_ms)
}

async fn post_all(client: &reqwest::Client, server: &Server, events: &[Value]) {
    for chunk in events.chunks(1_000) {
        let answer = post_ndjson(client, server, chunk).await;
        assert_eq!(answer["accepted"].as_u64(), Some(chunk.len() as u64), "{answer}");
    }
}

/// The answers compared between the clean and the recovered run.
/// Waits until `server` has evaluated its alert rules once and stored its first health
/// sample, both at start: each reads derived data, which flushes it, so a test that needs
/// the derived data left in the journal posts only after them.
async fn wait_for_the_first_readers(client: &reqwest::Client, server: &Server) {
    common::wait_for_metric(client, server, "voicemon_alerting_evaluations_total{outcome=\"ok\"}", 1.0).await;
    let from = format_time(now_ms() - 2 * MINUTE_MS);
    let url = server.url(&format!("/metrics/health?from={from}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let report: Value =
            client.get(&url).send().await.expect("voicemon answers").json().await.expect("JSON");
        if report["history"].as_array().is_some_and(|samples| !samples.is_empty()) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no health sample after 30 s: {report}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn answers(
    client: &reqwest::Client,
    server: &Server,
    start_ms: i64,
    end_ms: i64,
) -> Vec<(String, Value)> {
    let window = format!("from={}&to={}", format_time(start_ms), format_time(end_ms));
    let mut paths =
        vec![format!("/metrics/calls?{window}"), format!("/metrics/calls?tenant_id=tenant-01&{window}")];
    for component in ["turn_e2e", "stt", "eou", "llm_ttft", "tts_ttfb"] {
        paths.push(format!("/metrics/latency?component={component}&{window}&step=300"));
        paths.push(format!("/metrics/latency?tenant_id=tenant-02&component={component}&{window}&step=3600"));
    }
    for group in ["provider", "component", "model"] {
        paths.push(format!("/metrics/cost?tenant_id=tenant-01&{window}&group_by={group}"));
    }
    paths.push(format!("/metrics/cost?tenant_id=tenant-03&month={}", &format_time(start_ms)[..7]));
    paths.push("/metrics/health".to_owned());
    let mut out = Vec::new();
    for path in paths {
        let response = client.get(server.url(&path)).send().await.expect("the server answers");
        assert_eq!(response.status(), 200, "{path}");
        let mut answer: Value = response.json().await.expect("a JSON answer");
        if path == "/metrics/health" {
            answer = stable_health(&answer);
        }
        out.push((path, answer));
    }
    out
}

/// A configuration, the same for the clean and the crashing run, under which nothing reads
/// derived data on its own while events are
/// posted: a read would flush first (answers are always fresh), and this test needs the
/// kill to find the derived data still only in the journal. The alert engine's first
/// evaluation and the health sampler's first sample, both at start, are waited for before
/// posting ([`wait_for_the_first_readers`]).
fn quiet_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("quiet.toml");
    std::fs::write(&path, "[alerting]\nevaluation_interval = \"1h\"\n")
        .expect("the configuration is written");
    path
}

/// The parts of a health report that depend on the events, not on the moment it is read.
fn stable_health(report: &Value) -> Value {
    let workers: Vec<Value> = report["workers"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            let mut w = w.clone();
            if let Some(fields) = w.as_object_mut() {
                fields.remove("seconds_since_heartbeat");
                fields.remove("status");
            }
            w
        })
        .collect();
    serde_json::json!({ "providers": report["providers"], "workers": workers })
}

fn assert_same(clean: &[(String, Value)], recovered: &[(String, Value)]) {
    assert_eq!(clean.len(), recovered.len());
    for ((path, a), (_, b)) in clean.iter().zip(recovered) {
        assert_eq!(a, b, "the recovered run answers {path} differently from the clean run");
    }
    let latency = &clean.iter().find(|(p, _)| p.contains("component=turn_e2e")).expect("a latency answer").1;
    assert!(latency["overall"]["count"].as_u64() > Some(500), "the answers count real data: {latency}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_derived_data_lost_to_sigkill_is_rebuilt_and_every_answer_equals_a_clean_runs() {
    let (events, start_ms, end_ms) = traffic();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let client = reqwest::Client::new();

    let quiet = quiet_config(dir.path());
    let clean = Server::start(&dir.path().join("clean"), Some(&quiet), &[]);
    post_all(&client, &clean, &events).await;
    let expected = answers(&client, &clean, start_ms, end_ms).await;

    let data = dir.path().join("crash");
    let crashing = Server::start(&data, Some(&quiet), &["--derived-flush-interval", "1h"]);
    wait_for_the_first_readers(&client, &crashing).await;
    post_all(&client, &crashing, &events).await;
    crashing.kill();
    let (journal, rollups) = sqlite_counts(&data);
    assert!(journal > 0, "the kill came between the commits and a flush: the journal holds them");
    assert_eq!(rollups, 0, "no rollup was written before the kill");

    let restarted = Server::start(&data, None, &[]);
    assert!(
        restarted.log().contains("folded derived data"),
        "the restart says what it recovered: {}",
        restarted.log()
    );
    let recovered = answers(&client, &restarted, start_ms, end_ms).await;
    assert_same(&expected, &recovered);
    assert_eq!(sqlite_counts(&data).0, 0, "the journal is empty once folded");
}

/// Journal rows and minute rollups in a stopped voicemon's SQLite file.
fn sqlite_counts(data: &Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(data.join("voicemon.sqlite3")).expect("the store file opens");
    let count = |table: &str| conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0));
    (count("derived_journal").expect("counted"), count("latency_minute").expect("counted"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_derived_data_of_a_killed_instance_is_folded_and_every_answer_equals_a_clean_runs() {
    let Some(admin_url) = postgres_url("the PostgreSQL derived-data recovery test") else { return };
    let (events, start_ms, end_ms) = traffic();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let client = reqwest::Client::new();

    let clean_schema = TestSchema::create(&admin_url);
    let quiet = quiet_config(dir.path());
    let clean = Server::start_with_env(
        &dir.path().join("clean"),
        Some(&quiet),
        &[],
        &[("DATABASE_URL", &clean_schema.url())],
    );
    post_all(&client, &clean, &events).await;
    let expected = answers(&client, &clean, start_ms, end_ms).await;

    let schema = TestSchema::create(&admin_url);
    let url = schema.url();
    let crashing = Server::start_with_env(
        &dir.path().join("crash"),
        Some(&quiet),
        &["--derived-flush-interval", "1h"],
        &[("DATABASE_URL", &url)],
    );
    wait_for_the_first_readers(&client, &crashing).await;
    post_all(&client, &crashing, &events).await;
    crashing.kill();
    let count = |table: &str| schema.query(&format!("SELECT count(*) FROM {table}"))[0].get::<_, i64>(0);
    assert!(count("derived_journal") > 0, "the kill came between the commits and a flush");
    assert_eq!(count("latency_minute"), 0, "no rollup was written before the kill");

    let restarted = Server::start_with_env(&dir.path().join("restart"), None, &[], &[("DATABASE_URL", &url)]);
    let recovered = answers(&client, &restarted, start_ms, end_ms).await;
    assert_same(&expected, &recovered);
    assert_eq!(count("derived_journal"), 0, "the killed instance's journal rows were folded");
}
