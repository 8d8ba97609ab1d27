//! The same events sent to a voicemon on SQLite and to one on PostgreSQL give the same
//! API answers: latency on every component and resolution, calls, cost in every grouping.

use serde_json::Value;
use voicemon_core::window::{format_time, minute_of, HOUR_MS, MINUTE_MS};
use voicemon_simulate::{ModelConfig, TrafficModel};

mod common;

use common::{now_ms, postgres_url, Server, TestSchema};

const CHUNK: usize = 2_000;

async fn post_chunk(client: reqwest::Client, url: String, chunk: Vec<Value>) {
    let body: String = chunk.iter().map(|event| format!("{event}\n")).collect();
    let response = client
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let answer: Value = response.json().await.expect("a JSON answer");
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["rejected"].as_array().map(Vec::len), Some(0), "{answer}");
}

/// Posts `events` in chunks, `parallel` requests at a time (so several group commits
/// may be in flight on a store that takes them).
async fn post_all(client: &reqwest::Client, server: &Server, events: &[Value], parallel: usize) {
    for round in events.chunks(CHUNK * parallel) {
        let requests = round
            .chunks(CHUNK)
            .map(|chunk| tokio::spawn(post_chunk(client.clone(), server.url("/v1/events"), chunk.to_vec())));
        for request in requests.collect::<Vec<_>>() {
            request.await.expect("the request task");
        }
    }
}

async fn get(client: &reqwest::Client, server: &Server, path: &str) -> Value {
    let response = client.get(server.url(path)).send().await.expect("the server answers");
    let status = response.status();
    let answer: Value = response.json().await.expect("a JSON answer");
    assert_eq!(status, 200, "{} {path}: {answer}", server.base);
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_answers_every_query_as_sqlite_does_for_the_same_events() {
    let Some(admin_url) = postgres_url("the PostgreSQL parity test") else { return };
    let schema = TestSchema::create(&admin_url);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = Server::start(&dir.path().join("sqlite"), None, &[]);
    let postgres =
        Server::start_with_env(&dir.path().join("pg"), None, &[], &[("DATABASE_URL", &schema.url())]);

    // Three hours of traffic ending two minutes ago, from the simulator's seeded model.
    let end_ms = minute_of(now_ms()) - 2 * MINUTE_MS;
    let start_ms = end_ms - 3 * HOUR_MS;
    let mut model = TrafficModel::new(ModelConfig {
        tenants: 3,
        calls_per_minute: 8.0,
        ..ModelConfig::new(42, start_ms)
    });
    let events = model.events_until(end_ms);
    assert!(events.len() > 10_000, "the model made {} events", events.len());
    let client = reqwest::Client::new();
    post_all(&client, &sqlite, &events, 1).await;
    // Concurrent group commits on PostgreSQL, one request at a time on SQLite.
    post_all(&client, &postgres, &events, 4).await;
    // Some events again, concurrently: all duplicates.
    post_all(&client, &postgres, &events[..CHUNK * 2], 2).await;

    let (from, to) = (format_time(start_ms), format_time(end_ms));
    let window = format!("from={from}&to={to}");
    let tenant = "tenant-01";
    let call_id = events
        .iter()
        .find(|e| e["type"] == "call.ended" && e["tenant_id"] == tenant)
        .and_then(|e| e["call_id"].as_str())
        .expect("a call ended")
        .to_owned();
    let provider = events
        .iter()
        .find(|e| e["type"] == "llm.usage")
        .and_then(|e| e["provider"].as_str())
        .expect("llm usage")
        .to_owned();
    let mut paths = vec![
        format!("/metrics/calls?{window}"),
        format!("/metrics/calls?tenant_id={tenant}&{window}&by=objective"),
        format!("/metrics/cost?call_id={call_id}"),
        format!("/metrics/cost?tenant_id={tenant}&month={}", &from[..7]),
        format!("/metrics/latency?tenant_id={tenant}&component=llm_ttft&provider={provider}&{window}"),
    ];
    for component in ["turn_e2e", "stt", "eou", "llm_ttft", "tts_ttfb"] {
        for step in [60, 3600, 600] {
            paths.push(format!("/metrics/latency?component={component}&{window}&step={step}"));
        }
        paths.push(format!("/metrics/latency?tenant_id={tenant}&component={component}&{window}"));
    }
    for group in ["provider", "component", "model", "day"] {
        paths.push(format!("/metrics/cost?tenant_id={tenant}&{window}&group_by={group}"));
    }
    for path in &paths {
        let (on_sqlite, on_postgres) =
            (get(&client, &sqlite, path).await, get(&client, &postgres, path).await);
        assert_eq!(on_sqlite, on_postgres, "SQLite and PostgreSQL disagree on {path}");
    }
    let latency = get(&client, &postgres, &format!("/metrics/latency?{window}")).await;
    assert!(latency["overall"]["count"].as_u64() > Some(1_000), "{latency}");
    let calls = get(&client, &postgres, &format!("/metrics/calls?{window}")).await;
    assert!(calls["failed"].as_u64() > Some(0), "the model's incidents fail some calls: {calls}");
    let stored = schema.query("SELECT count(*) FROM turns");
    assert!(stored[0].get::<_, i64>(0) > 1_000);
}
