//! Rate limits: a bucket per key for ingest (events) and queries (requests), 429 with
//! `Retry-After` over it, counted in `/metrics`. The test clock stands still until a test
//! moves it, so buckets refill exactly when told.

use crate::helpers::{
    assert_error, create_key, spawn_app_in, spawn_app_with, status_and_json, turn, TestApp, TestKey,
};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};
use voicemon_core::access::Role;
use voicemon_server::limits::LimitsConfig;

/// Queries: 1 a second, 3 at once. Ingest: 1 event a second, 5 at once.
fn small_limits() -> LimitsConfig {
    let n = |n: u32| NonZeroU32::new(n).expect("above 0");
    LimitsConfig {
        ingest_events_per_second: n(1),
        ingest_burst: n(5),
        query_requests_per_second: n(1),
        query_burst: n(3),
        // The test clock stands still, so every wait is a whole second: held refusals
        // would only slow these tests (one below holds on purpose).
        refusal_hold: Duration::ZERO,
    }
}

struct TwoKeys {
    app: TestApp,
    first: TestKey,
    second: TestKey,
    admin: TestKey,
}

/// A server with small limits and two keys of `role` for tenant acme (and an admin key to
/// read `/metrics`).
async fn spawn_with_two_keys(role: Role) -> TwoKeys {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let first = create_key(data_dir.path(), role, Some("acme")).await;
    let second = create_key(data_dir.path(), role, Some("acme")).await;
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app = spawn_app_in(data_dir, |config| config.limits = small_limits()).await;
    TwoKeys { app, first, second, admin }
}

/// Asserts a 429 with the JSON error and a `Retry-After` of `seconds`.
async fn assert_limited(response: reqwest::Response, seconds: &str) {
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_owned());
    let (status, body) = status_and_json(response).await;
    assert_error(status, &body, 429, "rate_limited");
    assert_eq!(retry_after.as_deref(), Some(seconds), "Retry-After of {body}");
}

async fn rate_limited_total(app: &TestApp, kind: &str, admin: &TestKey) -> f64 {
    let text = app.get("/metrics", admin.secret()).await.text().await.expect("metrics text");
    let series = format!("voicemon_api_rate_limited_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series).and_then(|value| value.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{series} in {text}"))
}

const LATENCY: &str = "/metrics/latency?tenant_id=acme";

#[tokio::test]
async fn a_key_over_its_query_limit_gets_429_with_retry_after_while_another_key_is_still_served() {
    let TwoKeys { app, first, second, admin } = spawn_with_two_keys(Role::Read).await;
    for n in 1..=3 {
        let (status, body) = app.get_json(LATENCY, first.secret()).await;
        assert_eq!(status, 200, "query {n} of the burst of 3: {body}");
    }
    assert_limited(app.get(LATENCY, first.secret()).await, "1").await;
    let (status, body) = app.get_json(LATENCY, second.secret()).await;
    assert_eq!(status, 200, "the other key has its own bucket: {body}");
    assert_eq!(rate_limited_total(&app, "query", &admin).await, 1.0);
    assert_eq!(rate_limited_total(&app, "ingest", &admin).await, 0.0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_key_over_its_ingest_limit_gets_429_stores_nothing_and_another_key_is_still_served() {
    let TwoKeys { app, first, second, admin } = spawn_with_two_keys(Role::Ingest).await;
    let five: Vec<_> = (0..5).map(|i| turn(&format!("a{i}"), "acme", "c1", -10_000, 500.0)).collect();
    let (status, report) = app.ingest(&five, first.secret()).await;
    assert_eq!(status, 202, "five events are the burst: {report}");
    let one_more = [turn("a5", "acme", "c1", -10_000, 500.0)];
    assert_limited(app.post_ndjson(&one_more, first.secret()).await, "1").await;
    let (status, report) = app.ingest(&[turn("b0", "acme", "c2", -10_000, 500.0)], second.secret()).await;
    assert_eq!(status, 202, "the other key has its own bucket: {report}");
    assert_eq!(
        app.latency_count("tenant_id=acme", admin.secret()).await,
        6,
        "the refused event is not stored"
    );
    assert_eq!(rate_limited_total(&app, "ingest", &admin).await, 1.0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_refusal_is_held_while_another_key_is_served_at_once() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let flood = create_key(data_dir.path(), Role::Read, Some("acme")).await;
    let quiet = create_key(data_dir.path(), Role::Read, Some("acme")).await;
    let hold = Duration::from_secs(2);
    let app = spawn_app_in(data_dir, |config| {
        config.limits = LimitsConfig { refusal_hold: hold, ..small_limits() }
    })
    .await;
    for _ in 1..=3 {
        assert_eq!(app.get(LATENCY, flood.secret()).await.status(), 200);
    }
    let started = Instant::now();
    let (refused, served) = tokio::join!(
        async {
            let response = app.get(LATENCY, flood.secret()).await;
            (response, started.elapsed())
        },
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let status = app.get(LATENCY, quiet.secret()).await.status();
            (status, started.elapsed())
        },
    );
    let (response, refused_after) = refused;
    assert_limited(response, "1").await;
    // The bucket refills one query a second (the test clock stands still, so that is its
    // wait), under the 2 s hold: the 429 is held that second.
    let wait = Duration::from_secs(1);
    assert!(refused_after >= wait, "the 429 came after {refused_after:?}, before the bucket's {wait:?}");
    let (status, served_after) = served;
    assert_eq!(status, 200);
    assert!(served_after < refused_after, "the other key waited for the held refusal ({served_after:?})");
    app.shutdown().await;
}

#[tokio::test]
async fn the_limit_resets_once_the_retry_after_has_passed() {
    let TwoKeys { app, first, .. } = spawn_with_two_keys(Role::Read).await;
    for _ in 1..=3 {
        assert_eq!(app.get(LATENCY, first.secret()).await.status(), 200);
    }
    assert_limited(app.get(LATENCY, first.secret()).await, "1").await;
    app.clock.advance(999);
    assert_limited(app.get(LATENCY, first.secret()).await, "1").await;
    app.clock.advance(1);
    assert_eq!(app.get(LATENCY, first.secret()).await.status(), 200, "one second brings one query back");
    assert_limited(app.get(LATENCY, first.secret()).await, "1").await;
    app.clock.advance(3_000);
    for n in 1..=3 {
        assert_eq!(app.get(LATENCY, first.secret()).await.status(), 200, "query {n}: the burst is back");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_body_with_more_events_than_the_burst_is_refused_413_as_no_retry_can_pass() {
    let TwoKeys { app, first, .. } = spawn_with_two_keys(Role::Ingest).await;
    let six: Vec<_> = (0..6).map(|i| turn(&format!("a{i}"), "acme", "c1", -10_000, 500.0)).collect();
    let response = app.post_ndjson(&six, first.secret()).await;
    assert!(response.headers().get("retry-after").is_none(), "no retry can pass");
    let (status, body) = status_and_json(response).await;
    assert_error(status, &body, 413, "payload_too_large");
    let (status, report) = app.ingest(&six[..4], first.secret()).await;
    assert_eq!(status, 202, "the refused body took one event (the one taken before reading it): {report}");
    assert_limited(app.post_ndjson(&six[4..5], first.secret()).await, "1").await;
    app.shutdown().await;
}

#[tokio::test]
async fn on_an_open_server_every_local_client_shares_one_bucket() {
    let app = spawn_app_with(|config| config.limits = small_limits()).await;
    let other_client = reqwest::Client::new();
    for n in 1..=3 {
        assert_eq!(app.get("/metrics/calls", None).await.status(), 200, "query {n} of the burst");
    }
    let response = other_client.get(app.url("/metrics/calls")).send().await.expect("sent");
    assert_limited(response, "1").await;
    assert_eq!(app.metric("voicemon_api_rate_limited_total{kind=\"query\"}").await, 1.0);
    app.shutdown().await;
}

#[tokio::test]
async fn probes_and_the_prometheus_exposition_draw_from_no_bucket() {
    let app = spawn_app_with(|config| config.limits = small_limits()).await;
    for _ in 0..10 {
        assert_eq!(app.get("/healthz", None).await.status(), 200);
        assert_eq!(app.get("/metrics", None).await.status(), 200);
    }
    assert_eq!(app.get("/metrics/calls", None).await.status(), 200, "the query bucket is untouched");
    app.shutdown().await;
}
