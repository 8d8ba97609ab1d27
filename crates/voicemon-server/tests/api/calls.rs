//! `GET /metrics/calls`: outcomes, success rate, failure reasons and exact durations.

use crate::helpers::{assert_error, at, event, exact_quantile, spawn_app, TestApp, HOUR_MS, MINUTE_MS};
use serde_json::{json, Value};

/// One call as the test knows it.
struct Call {
    id: &'static str,
    status: &'static str,
    reason: Option<&'static str>,
    duration_s: f64,
    objective: Option<&'static str>,
}

const fn call(
    id: &'static str,
    status: &'static str,
    reason: Option<&'static str>,
    duration_s: f64,
    objective: Option<&'static str>,
) -> Call {
    Call { id, status, reason, duration_s, objective }
}

/// Ten calls of tenant acme that ended within the last few hours.
const ENDED: [Call; 10] = [
    call("c1", "completed", Some("goal_reached"), 30.0, Some("book")),
    call("c2", "completed", None, 45.5, Some("book")),
    call("c3", "completed", Some("goal_reached"), 60.0, Some("cancel")),
    call("c4", "completed", None, 120.0, None),
    call("c5", "failed", Some("llm_timeout"), 12.0, Some("book")),
    call("c6", "failed", Some("llm_timeout"), 8.5, Some("cancel")),
    call("c7", "failed", Some("stt_error"), 20.0, Some("book")),
    call("c8", "abandoned", Some("user_hangup"), 3.0, None),
    call("c9", "abandoned", None, 1.5, Some("book")),
    call("c10", "transferred", Some("human_requested"), 95.0, Some("cancel")),
];

/// Calls whose `call.ended` is sent before their `call.started`.
const ENDED_FIRST: [&str; 3] = ["c3", "c5", "c10"];

fn started(tenant: &str, call_id: &str, offset_ms: i64, objective: Option<&str>) -> Value {
    let mut fields = json!({"call_id": call_id, "channel": "phone"});
    if let Some(objective) = objective {
        fields["objective"] = json!(objective);
    }
    event("call.started", &format!("{call_id}-start"), tenant, offset_ms, fields)
}

fn ended(
    tenant: &str,
    call_id: &str,
    offset_ms: i64,
    status: &str,
    reason: Option<&str>,
    duration_s: f64,
) -> Value {
    let mut fields = json!({"call_id": call_id, "status": status, "duration_s": duration_s});
    if let Some(reason) = reason {
        fields["ended_reason"] = json!(reason);
    }
    event("call.ended", &format!("{call_id}-end"), tenant, offset_ms, fields)
}

/// Sends the ten ended calls (objective on `call.started` only, some ended first), two
/// calls still in progress, one call that ended 30 hours ago, and one call of globex
/// reusing a call id of acme.
async fn send_calls(app: &TestApp) {
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut early_ends = Vec::new();
    for (k, call) in ENDED.iter().enumerate() {
        let start = -4 * HOUR_MS + k as i64 * 10 * MINUTE_MS;
        let end = start + (call.duration_s * 1000.0) as i64;
        starts.push(started("acme", call.id, start, call.objective));
        let line = ended("acme", call.id, end, call.status, call.reason, call.duration_s);
        if ENDED_FIRST.contains(&call.id) {
            early_ends.push(line);
        } else {
            ends.push(line);
        }
    }
    app.ingest_ok(&early_ends).await;
    app.ingest_ok(&starts).await;
    app.ingest_ok(&ends).await;
    app.ingest_ok(&[
        started("acme", "c11", -20 * MINUTE_MS, Some("book")),
        started("acme", "c12", -5 * MINUTE_MS, None),
        started("acme", "old", -30 * HOUR_MS, Some("book")),
        ended("acme", "old", -30 * HOUR_MS + 60_000, "failed", Some("llm_timeout"), 60.0),
        started("globex", "c1", -HOUR_MS, None),
        ended("globex", "c1", -HOUR_MS + 30_000, "failed", Some("provider_down"), 30.0),
    ])
    .await;
}

async fn calls(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get_json(&format!("/metrics/calls?{query}"), None).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// Checks a summary (the whole answer or one objective) against `calls`, computed here.
fn assert_summary(summary: &Value, calls: &[&Call]) {
    let count = |status: &str| calls.iter().filter(|c| c.status == status).count();
    assert_eq!(summary["total"], calls.len(), "{summary}");
    for status in ["completed", "failed", "abandoned", "transferred"] {
        assert_eq!(summary[status], count(status), "{status} in {summary}");
    }
    let successes = count("completed") + count("transferred");
    let rate = summary["success_rate"].as_f64().expect("a success rate");
    assert!((rate - successes as f64 / calls.len() as f64).abs() < 1e-9, "{summary}");
    let durations: Vec<f64> = calls.iter().map(|c| c.duration_s).collect();
    assert_eq!(summary["duration"]["estimator"], "exact", "{summary}");
    assert_eq!(summary["duration"]["p50_s"], exact_quantile(&durations, 0.50), "{summary}");
    assert_eq!(summary["duration"]["p95_s"], exact_quantile(&durations, 0.95), "{summary}");
}

#[tokio::test]
async fn calls_are_counted_by_outcome_with_the_success_rate_and_exact_durations() {
    let app = spawn_app().await;
    send_calls(&app).await;
    let body = calls(&app, "tenant_id=acme").await;
    assert_eq!(body["tenant_id"], "acme", "{body}");
    assert_summary(&body, &ENDED.iter().collect::<Vec<_>>());
    assert_eq!(body["total"], 10, "{body}");
    assert_eq!(body["success_rate"], 0.5, "{body}");
    assert_eq!(body["duration"]["p50_s"], 20.0, "{body}");
    assert_eq!(body["duration"]["p95_s"], 95.0, "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn failure_reasons_are_counted_most_frequent_first() {
    let app = spawn_app().await;
    send_calls(&app).await;
    let body = calls(&app, "tenant_id=acme").await;
    assert_eq!(
        body["failure_reasons"],
        json!([
            {"reason": "llm_timeout", "count": 2},
            {"reason": "(unspecified)", "count": 1},
            {"reason": "stt_error", "count": 1},
            {"reason": "user_hangup", "count": 1},
        ]),
        "failed and abandoned calls only, ties by name: {body}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn calls_started_in_the_range_and_those_still_in_progress_are_counted() {
    let app = spawn_app().await;
    send_calls(&app).await;
    let body = calls(&app, "tenant_id=acme").await;
    assert_eq!(body["started"], 12, "ten ended, two in progress: {body}");
    assert_eq!(body["in_progress"], 2, "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_call_ended_before_it_started_is_one_call_that_is_not_in_progress() {
    let app = spawn_app().await;
    app.ingest_ok(&[ended("acme", "c1", -MINUTE_MS, "completed", None, 42.0)]).await;
    let body = calls(&app, "tenant_id=acme").await;
    assert_eq!((body["total"].clone(), body["started"].clone()), (json!(1), json!(0)), "{body}");
    app.ingest_ok(&[started("acme", "c1", -MINUTE_MS - 42_000, Some("book"))]).await;
    let body = calls(&app, "tenant_id=acme&by=objective").await;
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(body["started"], 1, "{body}");
    assert_eq!(body["in_progress"], 0, "{body}");
    assert_eq!(body["by_objective"][0]["objective"], "book", "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn calls_are_grouped_by_objective() {
    let app = spawn_app().await;
    send_calls(&app).await;
    let body = calls(&app, "tenant_id=acme&by=objective").await;
    let groups = body["by_objective"].as_array().expect("by_objective");
    let names: Vec<&str> = groups.iter().map(|g| g["objective"].as_str().unwrap()).collect();
    assert_eq!(names, ["(none)", "book", "cancel"], "{body}");
    for group in groups {
        let objective = group["objective"].as_str().unwrap();
        let members: Vec<&Call> =
            ENDED.iter().filter(|c| c.objective.unwrap_or("(none)") == objective).collect();
        assert_summary(group, &members);
    }
    assert_summary(&body, &ENDED.iter().collect::<Vec<_>>());
    app.shutdown().await;
}

#[tokio::test]
async fn without_by_there_is_no_grouping() {
    let app = spawn_app().await;
    send_calls(&app).await;
    let body = calls(&app, "tenant_id=acme").await;
    assert!(body.get("by_objective").is_none(), "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn grouping_by_anything_but_objective_is_a_bad_request() {
    let app = spawn_app().await;
    for by in ["agent", "status", "objectives"] {
        let (status, body) = app.get_json(&format!("/metrics/calls?by={by}"), None).await;
        assert_error(status, &body, 400, "bad_request");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn calls_of_other_tenants_are_not_counted() {
    let app = spawn_app().await;
    send_calls(&app).await;
    let globex = calls(&app, "tenant_id=globex").await;
    assert_eq!(globex["total"], 1, "{globex}");
    assert_eq!(globex["failed"], 1, "{globex}");
    assert_eq!(globex["failure_reasons"], json!([{"reason": "provider_down", "count": 1}]));
    let everyone = calls(&app, "").await;
    assert_eq!(everyone["total"], 11, "{everyone}");
    assert_eq!(everyone["started"], 13, "{everyone}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_default_range_is_the_last_day_and_from_widens_it() {
    let app = spawn_app().await;
    send_calls(&app).await;
    let body = calls(&app, &format!("tenant_id=acme&from={}", at(-31 * HOUR_MS))).await;
    assert_eq!(body["total"], 11, "the call that ended 30 hours ago: {body}");
    assert_eq!(body["failure_reasons"][0], json!({"reason": "llm_timeout", "count": 3}), "{body}");
    let body =
        calls(&app, &format!("tenant_id=acme&from={}&to={}", at(-31 * HOUR_MS), at(-29 * HOUR_MS))).await;
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(body["started"], 1, "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn with_no_calls_the_rates_and_durations_are_null() {
    let app = spawn_app().await;
    let body = calls(&app, "tenant_id=acme").await;
    assert_eq!(body["total"], 0, "{body}");
    assert_eq!(body["success_rate"], Value::Null, "{body}");
    assert_eq!(body["duration"]["p50_s"], Value::Null, "{body}");
    assert_eq!(body["duration"]["p95_s"], Value::Null, "{body}");
    assert_eq!(body["failure_reasons"], json!([]), "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn from_after_to_is_a_bad_request_for_calls_too() {
    let app = spawn_app().await;
    let query = format!("/metrics/calls?from={}&to={}", at(0), at(-HOUR_MS));
    let (status, body) = app.get_json(&query, None).await;
    assert_error(status, &body, 400, "bad_request");
    app.shutdown().await;
}
