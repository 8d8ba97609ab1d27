//! `GET /metrics/health`: workers, breakers, providers, voicemon's own database and the
//! stored per-minute history, driven by events and the manual clock (never by sleeping
//! for time to pass). The platform's Redis is tested in `health/redis.rs`.

mod redis;

use crate::helpers::{
    assert_error, at, create_key, event, exact_quantile, spawn_app, spawn_app_in, spawn_app_with, TestApp,
    MINUTE_MS,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use voicemon_core::access::Role;
use voicemon_store::sqlite::DB_FILE;

const SECOND_MS: i64 = 1_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const MB: u64 = 1_000_000;

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// A fresh event id: every event these tests send is distinct.
fn next_id(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT_ID.fetch_add(1, Ordering::SeqCst))
}

/// A heartbeat of a worker using 200 MB of its 1 000 MB.
fn heartbeat(tenant: &str, worker: &str, offset_ms: i64, active_calls: u32) -> Value {
    heartbeat_using(tenant, worker, offset_ms, active_calls, 200 * MB)
}

/// A heartbeat of a worker using `used_bytes` of a 1 000 MB limit.
fn heartbeat_using(tenant: &str, worker: &str, offset_ms: i64, active_calls: u32, used_bytes: u64) -> Value {
    event(
        "worker.heartbeat",
        &next_id("beat"),
        tenant,
        offset_ms,
        json!({
            "worker_id": worker,
            "memory_used_bytes": used_bytes,
            "memory_limit_bytes": 1_000 * MB,
            "cpu_percent": 12.5,
            "active_calls": active_calls,
        }),
    )
}

fn breaker(tenant: &str, name: &str, offset_ms: i64, state: &str) -> Value {
    event(
        "circuit_breaker.changed",
        &next_id("breaker"),
        tenant,
        offset_ms,
        json!({"breaker": name, "state": state}),
    )
}

/// A `provider.request`: `error` `None` is a success.
fn request(tenant: &str, provider: &str, offset_ms: i64, error: Option<&str>, latency_ms: f64) -> Value {
    let mut fields =
        json!({"provider": provider, "component": "stt", "ok": error.is_none(), "latency_ms": latency_ms});
    if let Some(error) = error {
        fields["error"] = json!(error);
    }
    event("provider.request", &next_id("request"), tenant, offset_ms, fields)
}

/// `count` requests spread over the minute `minutes_ago` minutes before now, the first
/// `failing` of them failing with `error`.
fn requests_in_minute(
    tenant: &str,
    provider: &str,
    minutes_ago: i64,
    count: usize,
    failing: &[&str],
    latency_ms: impl Fn(usize) -> f64,
) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let offset_ms = -minutes_ago * MINUTE_MS + 1_000 + i as i64 * 500;
            request(tenant, provider, offset_ms, failing.get(i).copied(), latency_ms(i))
        })
        .collect()
}

/// The live answer, which must be a 200.
async fn health(app: &TestApp, key: Option<&str>) -> Value {
    health_at(app, "/metrics/health", key).await
}

async fn health_at(app: &TestApp, path_and_query: &str, key: Option<&str>) -> Value {
    let (status, body) = app.get_json(path_and_query, key).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Asks `path_and_query` again (every 50 ms, at most `attempts` times) until `done`
/// holds; returns the last answer, which the caller asserts on.
async fn health_until(
    app: &TestApp,
    path_and_query: &str,
    key: Option<&str>,
    attempts: usize,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut body = Value::Null;
    for _ in 0..attempts {
        body = health_at(app, path_and_query, key).await;
        if done(&body) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    body
}

fn reason_messages(body: &Value) -> Vec<String> {
    body["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("reasons in {body}"))
        .iter()
        .map(|reason| reason["message"].as_str().expect("a message").to_owned())
        .collect()
}

/// The element of `list` whose `field` is `name`.
fn named<'a>(list: &'a Value, field: &str, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|item| item[field] == name))
        .unwrap_or_else(|| panic!("no {field} = {name} in {list}"))
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|item| item[field].as_str().expect("a name").to_owned())
        .collect()
}

fn worker_counts(body: &Value) -> (u64, u64, u64, u64) {
    let workers = &body["workers"];
    let count = |field: &str| workers[field].as_u64().unwrap_or_else(|| panic!("{field} in {workers}"));
    (count("total"), count("up"), count("stale"), count("down"))
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("a number, not {value}"))
}

// ---------------------------------------------------------------------------------------
// Workers.

#[tokio::test]
async fn a_worker_is_up_after_a_heartbeat_stale_after_31_s_of_silence_and_down_after_121_s() {
    let app = spawn_app().await;
    app.ingest_ok(&[heartbeat("acme", "w1", 0, 3)]).await;

    let body = health(&app, None).await;
    assert_eq!((body["status"].clone(), body["reasons"].clone()), (json!("ok"), json!([])), "{body}");
    assert_eq!(worker_counts(&body), (1, 1, 0, 0), "{body}");
    let worker = named(&body["workers"]["list"], "worker_id", "w1");
    assert_eq!(worker["status"], "up", "{body}");
    assert_eq!(worker["tenant_id"], "acme", "{body}");
    assert_eq!(worker["last_seen"], at(0), "{body}");
    assert_eq!(number(&worker["seconds_since_heartbeat"]), 0.0);
    assert_eq!(worker["active_calls"], 3, "{body}");

    app.clock.advance(31 * SECOND_MS);
    let body = health(&app, None).await;
    assert_eq!(worker_counts(&body), (1, 0, 1, 0), "{body}");
    assert_eq!(body["workers"]["list"][0]["status"], "stale", "{body}");
    assert_eq!(number(&body["workers"]["list"][0]["seconds_since_heartbeat"]), 31.0);
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(
        body["reasons"],
        json!([{"severity": "degraded", "message": "worker w1 is stale: silent for 31 s"}]),
        "{body}"
    );

    app.clock.advance(90 * SECOND_MS);
    let body = health(&app, None).await;
    assert_eq!(worker_counts(&body), (1, 0, 0, 1), "{body}");
    assert_eq!(body["workers"]["list"][0]["status"], "down", "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(
        body["reasons"],
        json!([{"severity": "degraded", "message": "worker w1 is down: silent for 121 s"}]),
        "{body}"
    );

    app.ingest_ok(&[heartbeat("acme", "w1", 121 * SECOND_MS, 1)]).await;
    let body = health(&app, None).await;
    assert_eq!(worker_counts(&body), (1, 1, 0, 0), "a new heartbeat brings it back: {body}");
    assert_eq!(body["status"], "ok", "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_latest_heartbeat_wins_whatever_order_heartbeats_arrive_in() {
    let app = spawn_app().await;
    app.ingest_ok(&[heartbeat("acme", "w1", -2 * SECOND_MS, 3)]).await;
    app.ingest_ok(&[heartbeat("acme", "w1", -50 * SECOND_MS, 9)]).await;
    let body = health(&app, None).await;
    let worker = named(&body["workers"]["list"], "worker_id", "w1");
    assert_eq!(worker["status"], "up", "{body}");
    assert_eq!(worker["last_seen"], at(-2 * SECOND_MS), "{body}");
    assert_eq!(worker["active_calls"], 3, "{body}");
    assert_eq!(worker_counts(&body), (1, 1, 0, 0), "one worker, not one per heartbeat: {body}");
    app.shutdown().await;
}

#[tokio::test]
async fn active_calls_overall_and_per_tenant_count_only_workers_that_are_not_down() {
    let app = spawn_app().await;
    app.ingest_ok(&[
        heartbeat("acme", "w-fresh", 0, 3),
        heartbeat("acme", "w-quiet", -60 * SECOND_MS, 2),
        heartbeat("globex", "w-busy", -5 * SECOND_MS, 4),
        heartbeat("globex", "w-gone", -200 * SECOND_MS, 7),
    ])
    .await;

    let body = health(&app, None).await;
    assert_eq!(worker_counts(&body), (4, 2, 1, 1), "{body}");
    assert_eq!(body["workers"]["active_calls"], 3 + 2 + 4, "{body}");
    assert_eq!(body["workers"]["active_calls_by_tenant"], json!({"acme": 5, "globex": 4}), "{body}");
    assert_eq!(names(&body["workers"]["list"], "worker_id"), ["w-fresh", "w-quiet", "w-busy", "w-gone"]);

    // w-quiet (160 s) goes down; w-fresh (100 s) and w-busy (105 s) are stale but count.
    app.clock.advance(100 * SECOND_MS);
    let body = health(&app, None).await;
    assert_eq!(worker_counts(&body), (4, 0, 2, 2), "{body}");
    assert_eq!(body["workers"]["active_calls"], 3 + 4, "{body}");
    assert_eq!(body["workers"]["active_calls_by_tenant"], json!({"acme": 3, "globex": 4}), "{body}");

    app.clock.advance(100 * SECOND_MS);
    let body = health(&app, None).await;
    assert_eq!(worker_counts(&body), (4, 0, 0, 4), "{body}");
    assert_eq!(body["workers"]["active_calls"], 0, "{body}");
    assert_eq!(body["workers"]["active_calls_by_tenant"], json!({}), "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_worker_at_or_above_80_percent_memory_degrades_the_status_with_a_reason() {
    let app = spawn_app().await;
    app.ingest_ok(&[
        heartbeat_using("acme", "w-cool", 0, 1, 799 * MB),
        heartbeat_using("acme", "w-edge", 0, 1, 800 * MB),
        heartbeat_using("acme", "w-hot", 0, 1, 850 * MB),
        // Down: its memory no longer says anything.
        heartbeat_using("acme", "w-gone", -200 * SECOND_MS, 1, 950 * MB),
    ])
    .await;
    let body = health(&app, None).await;
    let list = &body["workers"]["list"];
    for (worker, percent) in [("w-cool", 79.9), ("w-edge", 80.0), ("w-hot", 85.0), ("w-gone", 95.0)] {
        assert_eq!(number(&named(list, "worker_id", worker)["memory_percent"]), percent, "{worker}: {body}");
    }
    let hot = named(list, "worker_id", "w-hot");
    assert_eq!(
        (hot["memory_used_bytes"].clone(), hot["memory_limit_bytes"].clone()),
        (json!(850 * MB), json!(1_000 * MB))
    );
    assert_eq!(body["status"], "degraded", "{body}");
    let mut reasons = reason_messages(&body);
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "worker w-edge uses 80 % of its memory",
            "worker w-gone is down: silent for 200 s",
            "worker w-hot uses 85 % of its memory",
        ],
        "{body}"
    );
    assert!(
        body["reasons"].as_array().expect("reasons").iter().all(|r| r["severity"] == "degraded"),
        "{body}"
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Breakers.

#[tokio::test]
async fn breaker_changes_give_the_state_since_and_exact_open_time_and_transitions_over_24_h() {
    let app = spawn_app().await;
    let mut changes = vec![
        // closed → open → half_open → open → closed, all inside the day: 10 + 45 min open.
        breaker("acme", "deepgram", -20 * HOUR_MS, "closed"),
        breaker("acme", "deepgram", -6 * HOUR_MS, "open"),
        breaker("acme", "deepgram", -6 * HOUR_MS + 10 * MINUTE_MS, "half_open"),
        breaker("acme", "deepgram", -6 * HOUR_MS + 15 * MINUTE_MS, "open"),
        breaker("acme", "deepgram", -5 * HOUR_MS, "closed"),
        // Open when the day began: it counts from the start of the day, −24 h → −23 h.
        breaker("acme", "openai", -30 * HOUR_MS, "open"),
        breaker("acme", "openai", -23 * HOUR_MS, "half_open"),
        breaker("acme", "openai", -22 * HOUR_MS, "closed"),
    ];
    changes.reverse();
    app.ingest_ok(&changes).await;

    let body = health(&app, None).await;
    assert_eq!(names(&body["breakers"], "breaker"), ["deepgram", "openai"], "{body}");
    let deepgram = named(&body["breakers"], "breaker", "deepgram");
    assert_eq!(deepgram["tenant_id"], "acme");
    assert_eq!(deepgram["state"], "closed", "{body}");
    assert_eq!(deepgram["since"], at(-5 * HOUR_MS), "{body}");
    assert_eq!(number(&deepgram["for_seconds"]), 5.0 * 3_600.0);
    assert_eq!(number(&deepgram["open_seconds_24h"]), 55.0 * 60.0, "{body}");
    assert_eq!(deepgram["transitions_24h"], 5, "{body}");

    let openai = named(&body["breakers"], "breaker", "openai");
    assert_eq!(openai["state"], "closed", "{body}");
    assert_eq!(openai["since"], at(-22 * HOUR_MS), "{body}");
    assert_eq!(number(&openai["for_seconds"]), 22.0 * 3_600.0);
    assert_eq!(number(&openai["open_seconds_24h"]), 3_600.0, "{body}");
    assert_eq!(openai["transitions_24h"], 2, "the open at −30 h is before the day: {body}");

    assert_eq!((body["status"].clone(), body["reasons"].clone()), (json!("ok"), json!([])), "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_open_breaker_makes_the_status_critical_until_it_half_opens_and_closes() {
    let app = spawn_app().await;
    app.ingest_ok(&[
        breaker("acme", "elevenlabs", -HOUR_MS, "closed"),
        breaker("acme", "elevenlabs", -90 * SECOND_MS, "open"),
    ])
    .await;
    let body = health(&app, None).await;
    let summary = named(&body["breakers"], "breaker", "elevenlabs");
    assert_eq!(summary["state"], "open", "{body}");
    assert_eq!(summary["since"], at(-90 * SECOND_MS), "{body}");
    assert_eq!(number(&summary["for_seconds"]), 90.0);
    assert_eq!(number(&summary["open_seconds_24h"]), 90.0);
    assert_eq!(summary["transitions_24h"], 2);
    assert_eq!(body["status"], "critical", "{body}");
    assert_eq!(
        body["reasons"],
        json!([{"severity": "critical", "message": "breaker elevenlabs (acme) is open for 90 s"}]),
        "{body}"
    );

    app.clock.advance(30 * SECOND_MS);
    let body = health(&app, None).await;
    let summary = named(&body["breakers"], "breaker", "elevenlabs");
    assert_eq!(number(&summary["for_seconds"]), 120.0, "{body}");
    assert_eq!(number(&summary["open_seconds_24h"]), 120.0, "{body}");

    app.ingest_ok(&[breaker("acme", "elevenlabs", 30 * SECOND_MS, "half_open")]).await;
    let body = health(&app, None).await;
    let summary = named(&body["breakers"], "breaker", "elevenlabs");
    assert_eq!(summary["state"], "half_open", "{body}");
    assert_eq!(number(&summary["for_seconds"]), 0.0, "{body}");
    assert_eq!(number(&summary["open_seconds_24h"]), 120.0, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(reason_messages(&body), ["breaker elevenlabs (acme) is half open"], "{body}");

    app.clock.advance(10 * SECOND_MS);
    app.ingest_ok(&[breaker("acme", "elevenlabs", 40 * SECOND_MS, "closed")]).await;
    let body = health(&app, None).await;
    let summary = named(&body["breakers"], "breaker", "elevenlabs");
    assert_eq!((summary["state"].clone(), summary["transitions_24h"].clone()), (json!("closed"), json!(4)));
    assert_eq!((body["status"].clone(), body["reasons"].clone()), (json!("ok"), json!([])), "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_breaker_open_since_before_the_day_with_a_repeated_open_is_open_since_its_first_open() {
    let app = spawn_app().await;
    app.ingest_ok(&[
        breaker("acme", "deepgram", -40 * HOUR_MS, "closed"),
        breaker("acme", "deepgram", -30 * HOUR_MS, "open"),
        // A worker restarting announces the state again.
        breaker("acme", "deepgram", -26 * HOUR_MS, "open"),
    ])
    .await;
    let body = health(&app, None).await;
    let summary = named(&body["breakers"], "breaker", "deepgram");
    assert_eq!(summary["state"], "open", "{body}");
    assert_eq!(number(&summary["open_seconds_24h"]), 24.0 * 3_600.0, "{body}");
    assert_eq!(summary["transitions_24h"], 0, "{body}");
    // As voicemon_core::health::breaker_summary says of the same changes: since the first
    // open of the run, 30 h ago.
    assert_eq!(summary["since"], at(-30 * HOUR_MS), "{body}");
    assert_eq!(number(&summary["for_seconds"]), 30.0 * 3_600.0, "{body}");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Providers.

/// Latencies between 150 and 650 ms, the same every run.
fn spread_latency(i: usize) -> f64 {
    150.0 + ((i * 7_919) % 1_000) as f64 / 2.0
}

#[tokio::test]
async fn provider_outcomes_give_status_uptime_errors_and_latency_as_the_rules_say() {
    let app = spawn_app().await;
    let mut events = Vec::new();
    let mut recent_latencies = Vec::new();
    // deepgram: nine good minutes (11:50–11:58), then 11:59 with 6 of 10 failing.
    for minutes_ago in 2..=10 {
        let latency = |i: usize| spread_latency(minutes_ago as usize * 10 + i);
        recent_latencies.extend((0..10).map(latency));
        events.extend(requests_in_minute("acme", "deepgram", minutes_ago, 10, &[], latency));
    }
    let failing = ["timeout", "timeout", "http_503", "timeout", "http_503", "timeout"];
    recent_latencies.extend((0..10).map(spread_latency));
    events.extend(requests_in_minute("acme", "deepgram", 1, 10, &failing, spread_latency));
    // Three hours ago: five minutes entirely failing (slow, and outside the latency hour).
    for minutes_ago in 181..=185 {
        events.extend(requests_in_minute(
            "acme",
            "deepgram",
            minutes_ago,
            10,
            &["connection_reset"; 10],
            |_| 5_000.0,
        ));
    }
    // Three days ago: five good minutes. Eight days ago: five failing ones, past the week.
    for minutes_ago in (3 * 24 * 60)..(3 * 24 * 60 + 5) {
        events.extend(requests_in_minute("acme", "deepgram", minutes_ago, 10, &[], |_| 9_000.0));
    }
    for minutes_ago in (8 * 24 * 60)..(8 * 24 * 60 + 5) {
        events.extend(requests_in_minute("acme", "deepgram", minutes_ago, 10, &["dns"; 10], |_| 9_000.0));
    }
    // openai: 2 of 20 failing, 10 %. cartesia: 4 requests all failing, too few to judge.
    events.extend(requests_in_minute("acme", "openai", 1, 20, &["http_429", "http_429"], |_| 300.0));
    events.extend(requests_in_minute("acme", "cartesia", 1, 4, &["timeout"; 4], |_| 300.0));
    app.ingest_ok(&events).await;

    let body = health(&app, None).await;
    assert_eq!(names(&body["providers"], "provider"), ["cartesia", "deepgram", "openai"], "{body}");

    let deepgram = named(&body["providers"], "provider", "deepgram");
    assert_eq!(deepgram["status"], "down", "{deepgram}");
    assert_eq!(deepgram["down_since"], at(-MINUTE_MS), "{deepgram}");
    assert_eq!(
        (deepgram["requests_last_minute"].clone(), deepgram["errors_last_minute"].clone()),
        (json!(10), json!(6))
    );
    // 1 h: 9 of 10 minutes up. 24 h: plus 5 down minutes, 9 of 15. 7 d: plus 5 up, 14 of 20.
    assert_eq!(deepgram["uptime_percent"], json!({"1h": 90.0, "24h": 60.0, "7d": 70.0}), "{deepgram}");
    assert_eq!(
        deepgram["errors_24h"],
        json!([
            {"error": "connection_reset", "count": 50},
            {"error": "timeout", "count": 4},
            {"error": "http_503", "count": 2},
        ]),
        "{deepgram}"
    );
    let latency = &deepgram["latency_1h"];
    assert_eq!(latency["count"], 100, "{latency}");
    for (field, q) in [("p50_ms", 0.5), ("p95_ms", 0.95)] {
        let exact = exact_quantile(&recent_latencies, q);
        let answered = number(&latency[field]);
        assert!(
            (answered - exact).abs() <= exact * 0.01 + 0.005,
            "{field}: {answered} is not within 1 % of the exact {exact}"
        );
    }

    let openai = named(&body["providers"], "provider", "openai");
    assert_eq!(openai["status"], "degraded", "{openai}");
    assert_eq!(openai["down_since"], Value::Null, "{openai}");
    assert_eq!(openai["uptime_percent"], json!({"1h": 100.0, "24h": 100.0, "7d": 100.0}), "{openai}");
    assert_eq!(openai["errors_24h"], json!([{"error": "http_429", "count": 2}]), "{openai}");

    let cartesia = named(&body["providers"], "provider", "cartesia");
    assert_eq!(cartesia["status"], "up", "below min_requests: {cartesia}");
    assert_eq!(cartesia["uptime_percent"], json!({"1h": null, "24h": null, "7d": null}), "{cartesia}");
    assert_eq!(
        (cartesia["requests_last_minute"].clone(), cartesia["errors_last_minute"].clone()),
        (json!(4), json!(4))
    );

    assert_eq!(body["status"], "critical", "{body}");
    assert_eq!(
        body["reasons"],
        json!([
            {"severity": "critical", "message": "provider deepgram is down since 2026-11-27T11:59:00.000Z"},
            {"severity": "degraded", "message": "provider openai is degraded"},
        ]),
        "{body}"
    );

    // Two minutes on, the bad minute has left the last minute: everything is up again.
    app.clock.advance(2 * MINUTE_MS);
    let body = health(&app, None).await;
    let deepgram = named(&body["providers"], "provider", "deepgram");
    assert_eq!((deepgram["status"].clone(), deepgram["down_since"].clone()), (json!("up"), Value::Null));
    assert_eq!(deepgram["requests_last_minute"], 0, "{deepgram}");
    assert_eq!(deepgram["uptime_percent"]["1h"], 90.0, "{deepgram}");
    assert_eq!((body["status"].clone(), body["reasons"].clone()), (json!("ok"), json!([])), "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_open_breaker_named_after_a_provider_makes_it_down_without_any_error() {
    let app = spawn_app().await;
    let mut events = requests_in_minute("acme", "deepgram", 1, 10, &[], |_| 200.0);
    events.push(breaker("acme", "Deepgram", -30 * SECOND_MS, "open"));
    app.ingest_ok(&events).await;
    let body = health(&app, None).await;
    let deepgram = named(&body["providers"], "provider", "deepgram");
    assert_eq!(deepgram["status"], "down", "{body}");
    assert_eq!(deepgram["errors_last_minute"], 0, "{body}");
    assert_eq!(deepgram["down_since"], Value::Null, "no minute was down: {body}");
    assert_eq!(deepgram["uptime_percent"]["1h"], 100.0, "{body}");
    assert!(
        reason_messages(&body).contains(&"provider deepgram is down (its breaker is open)".to_owned()),
        "{body}"
    );
    assert_eq!(body["status"], "critical", "{body}");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Tenants.

#[tokio::test]
async fn a_tenant_read_key_sees_only_its_own_workers_breakers_and_providers() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let read_acme = create_key(data_dir.path(), Role::Read, Some("acme")).await;
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app = spawn_app_in(data_dir, |_| {}).await;
    let mut events = vec![
        heartbeat("acme", "w-a", 0, 2),
        breaker("acme", "deepgram", -60 * SECOND_MS, "closed"),
        heartbeat("globex", "w-g", -45 * SECOND_MS, 5),
        breaker("globex", "openai", -60 * SECOND_MS, "open"),
    ];
    events.extend(requests_in_minute("acme", "deepgram", 1, 10, &[], |_| 200.0));
    events.extend(requests_in_minute("globex", "openai", 1, 10, &["timeout"; 10], |_| 200.0));
    let (status, report) = app.ingest(&events, admin.secret()).await;
    assert_eq!(status, 202, "{report}");

    let acme = health(&app, read_acme.secret()).await;
    assert_eq!(acme["tenant_id"], "acme", "{acme}");
    assert_eq!(names(&acme["workers"]["list"], "worker_id"), ["w-a"], "{acme}");
    assert_eq!(worker_counts(&acme), (1, 1, 0, 0), "{acme}");
    assert_eq!(acme["workers"]["active_calls"], 2, "{acme}");
    assert_eq!(acme["workers"]["active_calls_by_tenant"], json!({"acme": 2}), "{acme}");
    assert_eq!(names(&acme["breakers"], "breaker"), ["deepgram"], "{acme}");
    assert_eq!(names(&acme["providers"], "provider"), ["deepgram"], "{acme}");
    assert_eq!((acme["status"].clone(), acme["reasons"].clone()), (json!("ok"), json!([])), "{acme}");
    let text = acme.to_string();
    for other in ["globex", "w-g", "openai"] {
        assert!(!text.contains(other), "{other} leaks into acme's answer: {acme}");
    }

    let (status, body) = app.get_json("/metrics/health?tenant_id=globex", read_acme.secret()).await;
    assert_error(status, &body, 403, "forbidden");

    let everyone = health(&app, admin.secret()).await;
    assert_eq!(everyone["tenant_id"], Value::Null, "{everyone}");
    assert_eq!(worker_counts(&everyone), (2, 1, 1, 0), "{everyone}");
    assert_eq!(names(&everyone["breakers"], "breaker"), ["deepgram", "openai"], "{everyone}");
    assert_eq!(everyone["status"], "critical", "{everyone}");

    let globex = health_at(&app, "/metrics/health?tenant_id=globex", admin.secret()).await;
    assert_eq!(names(&globex["workers"]["list"], "worker_id"), ["w-g"], "{globex}");
    assert_eq!(names(&globex["breakers"], "breaker"), ["openai"], "{globex}");
    assert_eq!(names(&globex["providers"], "provider"), ["openai"], "{globex}");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// voicemon's own database.

#[tokio::test]
async fn the_database_is_reported_reachable_with_its_pool() {
    let app = spawn_app().await;
    let body = health(&app, None).await;
    let database = &body["database"];
    assert_eq!(database["reachable"], true, "{database}");
    assert_eq!(database["error"], Value::Null, "{database}");
    assert!(number(&database["round_trip_ms"]) >= 0.0, "{database}");
    let pool = &database["pool"];
    assert_eq!(pool["backend"], "sqlite", "{pool}");
    let size = pool["size"].as_u64().expect("a size");
    assert!(size >= 1, "the writer connection is always open: {pool}");
    assert_eq!(
        pool["in_use"].as_u64().expect("in_use") + pool["idle"].as_u64().expect("idle"),
        size,
        "{pool}"
    );
    assert!(pool["waiting"].is_u64(), "{pool}");
    assert_eq!(pool["last_error"], Value::Null, "{pool}");
    assert_eq!(body["redis"]["configured"], false, "no REDIS_URL given: {body}");
    assert_eq!(body["redis"]["reachable"], Value::Null, "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_fails_while_the_store_file_is_moved_away_and_recovers_when_it_is_back() {
    let app = spawn_app().await;
    let file = app.data_dir.path().join(DB_FILE);
    let away = app.data_dir.path().join(format!("{DB_FILE}.moved-away"));
    let (status, body) = app.get_json("/readyz", None).await;
    assert_eq!(status, 200, "{body}");

    std::fs::rename(&file, &away).expect("the database file is moved away");
    let (status, body) = app.get_json("/readyz", None).await;
    assert_error(status, &body, 503, "unavailable");
    let body = health(&app, None).await;
    assert_eq!(body["database"]["reachable"], false, "{body}");
    assert!(!body["database"]["error"].as_str().unwrap_or_default().is_empty(), "{body}");
    assert_eq!(body["database"]["round_trip_ms"], Value::Null, "{body}");
    assert_eq!(body["status"], "critical", "{body}");
    assert!(
        body["reasons"].as_array().expect("reasons").contains(
            &json!({"severity": "critical", "message": "voicemon's database (sqlite) is not answering: the database is unreachable"})
        ),
        "{body}"
    );

    std::fs::rename(&away, &file).expect("the database file is moved back");
    let (status, body) = app.get_json("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    let body = health(&app, None).await;
    assert_eq!(body["database"]["reachable"], true, "{body}");
    assert_eq!((body["status"].clone(), body["reasons"].clone()), (json!("ok"), json!([])), "{body}");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// History.

fn history_query(from_offset_ms: i64, to_offset_ms: i64) -> String {
    format!("/metrics/health?from={}&to={}", at(from_offset_ms), at(to_offset_ms))
}

fn history(body: &Value) -> &Vec<Value> {
    body["history"].as_array().unwrap_or_else(|| panic!("a history in {body}"))
}

#[tokio::test]
async fn samples_taken_every_interval_make_the_history_of_a_range() {
    let app = spawn_app_with(|config| config.health.sample_every = Duration::from_millis(200)).await;
    let mut events =
        vec![heartbeat("acme", "w1", 0, 2), breaker("acme", "deepgram", -90 * SECOND_MS, "open")];
    events.extend(requests_in_minute("acme", "deepgram", 1, 10, &["timeout"; 6], |_| 200.0));
    app.ingest_ok(&events).await;

    let range = history_query(-10 * MINUTE_MS, MINUTE_MS);
    let sampled_after_ingest = |body: &Value| {
        body["history"][0]["workers"]["up"] == 1 && body["history"][0]["breakers_open"] != json!([])
    };
    let body = health_until(&app, &range, None, 200, sampled_after_ingest).await;
    assert!(sampled_after_ingest(&body), "no sample of the ingested facts: {body}");
    assert_eq!(history(&body).len(), 1, "samples of one minute replace each other: {body}");
    let point = &history(&body)[0];
    assert_eq!(point["minute"], at(0), "{point}");
    assert_eq!(point["status"], "critical", "{point}");
    assert_eq!(
        point["reasons"],
        json!([
            "breaker deepgram (acme) is open for 90 s",
            "provider deepgram is down since 2026-11-27T11:59:00.000Z",
        ]),
        "{point}"
    );
    assert_eq!(point["workers"], json!({"up": 1, "stale": 0, "down": 0, "active_calls": 2}), "{point}");
    assert_eq!(point["breakers_open"], json!(["deepgram (acme)"]), "{point}");
    assert_eq!(
        point["providers"],
        json!([{"provider": "deepgram", "status": "down", "requests_last_minute": 10, "errors_last_minute": 6}]),
        "{point}"
    );
    assert_eq!(point["database_reachable"], true, "{point}");
    assert!(number(&point["database_round_trip_ms"]) >= 0.0, "{point}");
    assert_eq!(
        (point["redis_reachable"].clone(), point["redis_hit_rate"].clone()),
        (Value::Null, Value::Null)
    );

    // The live answer is there too, and without from/to there is no history at all.
    assert_eq!(body["status"], "critical", "{body}");
    assert!(health(&app, None).await.get("history").is_none());
    let before = health_at(&app, &history_query(-10 * MINUTE_MS, -5 * MINUTE_MS), None).await;
    assert_eq!(history(&before), &Vec::<Value>::new(), "{before}");

    // A minute later the sampler fills the next minute, where the worker is stale.
    app.clock.advance(MINUTE_MS);
    let range = history_query(-10 * MINUTE_MS, 2 * MINUTE_MS);
    let body = health_until(&app, &range, None, 200, |body| history(body).len() == 2).await;
    assert_eq!(history(&body).len(), 2, "{body}");
    let next = &history(&body)[1];
    assert_eq!(next["minute"], at(MINUTE_MS), "{next}");
    assert_eq!(next["workers"], json!({"up": 0, "stale": 1, "down": 0, "active_calls": 2}), "{next}");
    assert_eq!(history(&body)[0], *point, "the earlier minute is kept as it was: {body}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_tenant_key_sees_history_without_worker_totals_or_other_tenants_breakers() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let read_acme = create_key(data_dir.path(), Role::Read, Some("acme")).await;
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app = spawn_app_in(data_dir, |config| config.health.sample_every = Duration::from_millis(200)).await;
    let events = [
        heartbeat("acme", "w-a", 0, 2),
        heartbeat("globex", "w-g", -45 * SECOND_MS, 5),
        breaker("acme", "deepgram", -60 * SECOND_MS, "open"),
        breaker("globex", "openai", -60 * SECOND_MS, "open"),
    ];
    let (status, report) = app.ingest(&events, admin.secret()).await;
    assert_eq!(status, 202, "{report}");

    let range = history_query(-10 * MINUTE_MS, MINUTE_MS);
    let sampled =
        |body: &Value| body["history"][0]["breakers_open"].as_array().is_some_and(|open| open.len() == 2);
    let platform = health_until(&app, &range, admin.secret(), 200, sampled).await;
    assert!(sampled(&platform), "no sample of the ingested facts: {platform}");
    let point = &history(&platform)[0];
    assert_eq!(point["workers"], json!({"up": 1, "stale": 1, "down": 0, "active_calls": 7}), "{point}");
    assert_eq!(point["breakers_open"], json!(["deepgram (acme)", "openai (globex)"]), "{point}");

    let acme = health_at(&app, &range, read_acme.secret()).await;
    assert_eq!(history(&acme).len(), 1, "{acme}");
    let point = &history(&acme)[0];
    assert!(point.get("workers").is_none(), "a tenant key gets no platform worker totals: {point}");
    assert_eq!(point["breakers_open"], json!(["deepgram (acme)"]), "{point}");
    let reasons = point["reasons"].as_array().expect("reasons");
    assert!(
        reasons.iter().all(|r| {
            let text = r.as_str().unwrap_or_default();
            !text.starts_with("worker ") && !text.starts_with("breaker ")
        }),
        "no worker or breaker reasons for a tenant key: {point}"
    );
    assert!(!point.to_string().contains("globex"), "globex leaks into acme's history: {point}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_empty_history_range_is_refused() {
    let app = spawn_app().await;
    let (status, body) = app.get_json(&history_query(0, -MINUTE_MS), None).await;
    assert_error(status, &body, 400, "bad_request");
    app.shutdown().await;
}

#[tokio::test]
async fn provider_minutes_and_samples_past_the_retention_are_pruned_hourly() {
    let app = spawn_app_with(|config| {
        config.health.sample_every = Duration::from_millis(200);
        config.health.retention = Duration::from_secs(90 * 60);
    })
    .await;
    // 10:40, all failing: inside the 90 min the prune at start keeps (10:30 on). 11:45, fine.
    let mut events = requests_in_minute("acme", "deepgram", 80, 10, &["timeout"; 10], |_| 200.0);
    events.extend(requests_in_minute("acme", "deepgram", 15, 10, &[], |_| 200.0));
    app.ingest_ok(&events).await;
    let range = history_query(-2 * HOUR_MS, 3 * HOUR_MS);
    let minutes = |body: &Value| -> Vec<String> {
        history(body).iter().map(|point| point["minute"].as_str().expect("a minute").to_owned()).collect()
    };
    let body = health_until(&app, &range, None, 200, |body| !history(body).is_empty()).await;
    assert_eq!(minutes(&body), [at(0)], "{body}");
    let deepgram = named(&body["providers"], "provider", "deepgram");
    assert_eq!(deepgram["uptime_percent"]["24h"], 50.0, "{deepgram}");
    assert_eq!(deepgram["errors_24h"], json!([{"error": "timeout", "count": 10}]), "{deepgram}");

    // 13:01: the hourly prune keeps 11:31 on, so the failing 10:40 minute goes.
    app.clock.advance(61 * MINUTE_MS);
    // One report reads minutes and errors separately: wait until both show the prune.
    let pruned = |body: &Value| {
        body["providers"][0]["errors_24h"] == json!([])
            && body["providers"][0]["uptime_percent"]["24h"] == 100.0
    };
    let body = health_until(&app, &range, None, 200, pruned).await;
    assert!(pruned(&body), "the 10:40 minute is still there at 13:01: {body}");
    let deepgram = named(&body["providers"], "provider", "deepgram");
    assert_eq!(deepgram["uptime_percent"]["24h"], 100.0, "only 11:45 is left: {deepgram}");
    assert_eq!(
        minutes(&body),
        [at(0), at(61 * MINUTE_MS)],
        "the 12:00 sample is inside the retention: {body}"
    );

    // 14:01: the next prune keeps 12:31 on: the 12:00 sample and the 11:45 minute go.
    app.clock.advance(60 * MINUTE_MS);
    let body = health_until(&app, &range, None, 200, |body| history(body)[0]["minute"] != at(0)).await;
    assert_eq!(minutes(&body), [at(61 * MINUTE_MS), at(121 * MINUTE_MS)], "{body}");
    assert_eq!(body["providers"], json!([]), "{body}");
    app.shutdown().await;
}
