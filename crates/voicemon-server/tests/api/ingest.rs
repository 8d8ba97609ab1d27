//! `POST /v1/events` over HTTP: framings and content types, status codes, body limits,
//! partial acceptance and the shape of the rejection report, whole-body errors,
//! idempotency. Each validation rule of one event is tested once, in
//! `voicemon-core/tests/validation.rs`; here a few rejected events show how the answer
//! reports them.

use crate::helpers::{assert_error, event, spawn_app, spawn_app_with, status_and_json, turn};
use serde_json::{json, Value};

/// One event of each of the nine types of contract v1, all for tenant `acme`.
fn one_of_each_type() -> Vec<Value> {
    let call = json!({"call_id": "call-1", "agent_id": "receptionist", "objective": "book"});
    let with_call = |fields: Value| {
        let mut merged = call.clone();
        merged.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        merged
    };
    vec![
        event("call.started", "e1", "acme", -120_000, with_call(json!({"channel": "phone"}))),
        event(
            "turn.completed",
            "e2",
            "acme",
            -110_000,
            with_call(json!({"turn_index": 0, "e2e_ms": 905.0, "stt_ms": 212.5, "eou_ms": 320.0,
                             "llm_ttft_ms": 410.2, "tts_ttfb_ms": 148.7, "interrupted": false,
                             "tool_calls": 0})),
        ),
        event(
            "stt.usage",
            "e3",
            "acme",
            -109_000,
            with_call(json!({"provider": "deepgram", "model": "nova-3", "audio_seconds": 3.84,
                             "latency_ms": 205.0})),
        ),
        event(
            "llm.usage",
            "e4",
            "acme",
            -108_000,
            with_call(json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 1850,
                             "output_tokens": 42, "cached_input_tokens": 1536, "ttft_ms": 410.2})),
        ),
        event(
            "tts.usage",
            "e5",
            "acme",
            -107_000,
            with_call(json!({"provider": "cartesia", "model": "sonic-2", "voice": "v1",
                             "characters": 168, "audio_seconds": 9.6, "ttfb_ms": 148.7})),
        ),
        event(
            "provider.request",
            "e6",
            "acme",
            -106_000,
            json!({"provider": "openai", "component": "llm", "ok": false, "latency_ms": 212.0,
                   "error": "http_429"}),
        ),
        event(
            "circuit_breaker.changed",
            "e7",
            "acme",
            -105_000,
            json!({"breaker": "openai", "state": "open"}),
        ),
        event(
            "worker.heartbeat",
            "e8",
            "acme",
            -104_000,
            json!({"worker_id": "worker-eu-7", "memory_used_bytes": 1_288_490_188u64,
                   "memory_limit_bytes": 4_294_967_296u64, "cpu_percent": 137.5,
                   "active_calls": 12}),
        ),
        event(
            "call.ended",
            "e9",
            "acme",
            -60_000,
            with_call(json!({"duration_s": 60.0, "status": "completed", "ended_reason": "goal_reached",
                             "ended_by": "user"})),
        ),
    ]
}

/// The whole answer to a request none of whose events was refused.
fn clean_report(accepted: u64, duplicates: u64) -> Value {
    json!({"accepted": accepted, "duplicates": duplicates,
           "rejected": [], "rejected_count": 0, "rejected_by_reason": {}})
}

fn good_turn(id: &str) -> Value {
    turn(id, "acme", "call-1", -30_000, 640.0)
}

#[tokio::test]
async fn a_turn_is_accepted_and_answered_in_latency() {
    let app = spawn_app().await;
    let response = app.post_ndjson(&[turn("t1", "acme", "c1", -30_000, 640.0)], None).await;
    assert_eq!(response.status().as_u16(), 202);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["accepted"], 1);
    let (status, body) = app.get_json("/metrics/latency?tenant_id=acme", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["overall"]["count"], 1);
    let p50 = body["overall"]["p50"].as_f64().unwrap();
    assert!((p50 - 640.0).abs() <= 6.4, "p50 {p50}");
    app.shutdown().await;
}

#[tokio::test]
async fn every_one_of_the_nine_event_types_is_accepted() {
    let app = spawn_app().await;
    let (status, report) = app.ingest(&one_of_each_type(), None).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report, clean_report(9, 0));
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 1);
    let (_, calls) = app.get_json("/metrics/calls?tenant_id=acme", None).await;
    assert_eq!(calls["started"], 1, "{calls}");
    assert_eq!(calls["completed"], 1, "{calls}");
    app.shutdown().await;
}

#[tokio::test]
async fn each_event_type_is_accepted_on_its_own() {
    let app = spawn_app().await;
    for one in one_of_each_type() {
        let (status, report) = app.ingest(std::slice::from_ref(&one), None).await;
        assert_eq!(status, 202, "{one} → {report}");
        assert_eq!(report["accepted"], 1, "{one} → {report}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn one_event_object_is_accepted_as_a_json_body() {
    let app = spawn_app().await;
    let body = good_turn("t1").to_string();
    let response = app.post_body(body, Some("application/json"), None).await;
    let (status, report) = status_and_json(response).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report, clean_report(1, 0));
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_json_array_of_events_is_accepted_whole() {
    let app = spawn_app().await;
    let body = json!([good_turn("t1"), good_turn("t2"), good_turn("t3")]).to_string();
    let response = app.post_body(body, Some("application/json"), None).await;
    let (status, report) = status_and_json(response).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["accepted"], 3, "{report}");
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 3);
    app.shutdown().await;
}

#[tokio::test]
async fn ndjson_is_read_one_event_per_line_skipping_blank_lines() {
    let app = spawn_app().await;
    let body = format!("{}\n\n{}\r\n  \n{}", good_turn("t1"), good_turn("t2"), good_turn("t3"));
    let response = app.post_body(body, Some("application/x-ndjson"), None).await;
    let (status, report) = status_and_json(response).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["accepted"], 3, "{report}");
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 3);
    app.shutdown().await;
}

#[tokio::test]
async fn objects_one_per_line_without_the_ndjson_content_type_are_read_as_lines() {
    let app = spawn_app().await;
    let body = format!("{}\n{}\n", good_turn("t1"), good_turn("t2"));
    let response = app.post_body(body, Some("application/json"), None).await;
    let (status, report) = status_and_json(response).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_negative_latency_is_rejected_but_the_rest_of_the_batch_is_kept() {
    let app = spawn_app().await;
    let bad = turn("bad", "acme", "call-1", -30_000, -1.0);
    let (status, report) = app.ingest(&[good_turn("good-1"), bad, good_turn("good-2")], None).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    let rejected = report["rejected"].as_array().expect("a rejected list");
    assert_eq!(rejected.len(), 1, "{report}");
    assert_eq!(rejected[0]["index"], 1, "{report}");
    assert_eq!(rejected[0]["field"], "e2e_ms", "{report}");
    assert!(!rejected[0]["error"].as_str().unwrap_or_default().is_empty(), "{report}");
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 2);
    app.shutdown().await;
}

#[tokio::test]
async fn an_ndjson_line_that_is_not_json_is_rejected_alone() {
    let app = spawn_app().await;
    let body = format!("{}\n{{\"id\": \"broken\n{}\n", good_turn("t1"), good_turn("t2"));
    let response = app.post_body(body, Some("application/x-ndjson"), None).await;
    let (status, report) = status_and_json(response).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["rejected"][0]["index"], 1, "{report}");
    assert_eq!(report["rejected"][0]["field"], Value::Null, "{report}");
    assert_eq!(report["rejected"].as_array().unwrap().len(), 1, "{report}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_array_item_that_is_not_an_object_is_rejected_alone() {
    let app = spawn_app().await;
    let body = json!([good_turn("t1"), 42, good_turn("t2")]).to_string();
    let response = app.post_body(body, Some("application/json"), None).await;
    let (status, report) = status_and_json(response).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["rejected"][0]["index"], 1, "{report}");
    assert_eq!(report["rejected"][0]["field"], Value::Null, "{report}");
    app.shutdown().await;
}

#[tokio::test]
async fn every_bad_event_of_a_batch_is_reported_at_its_own_index() {
    let app = spawn_app().await;
    let mut unknown_field = good_turn("b5");
    unknown_field["colour"] = json!("blue");
    let mut wrong_type = good_turn("b7");
    wrong_type["interrupted"] = json!("no");
    let batch = vec![
        good_turn("g0"),
        event("turn.completed", "b1", "acme", -30_000, json!({"call_id": "c", "turn_index": 0})),
        turn("b2", "acme", "c", -30_000, -5.0),
        turn("b3", "acme", "c", -30_000, 700_000.0),
        event("call.paused", "b4", "acme", -30_000, json!({"call_id": "c"})),
        unknown_field,
        turn("b6", "acme", "c", 6 * 60_000, 500.0),
        wrong_type,
        good_turn("g8"),
    ];
    let (status, report) = app.ingest(&batch, None).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    let rejected: Vec<(u64, Value)> = report["rejected"]
        .as_array()
        .expect("a rejected list")
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["field"].clone()))
        .collect();
    let expected: Vec<(u64, Value)> = vec![
        (1, json!("e2e_ms")),
        (2, json!("e2e_ms")),
        (3, json!("e2e_ms")),
        (4, json!("type")),
        (5, json!("colour")),
        (6, json!("timestamp")),
        (7, json!("interrupted")),
    ];
    assert_eq!(rejected, expected, "{report}");
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_batch_with_every_event_rejected_is_answered_422_with_the_report() {
    let app = spawn_app().await;
    let batch = [turn("b1", "acme", "c", -30_000, -1.0), turn("b2", "acme", "c", -30_000, -2.0)];
    let (status, report) = app.ingest(&batch, None).await;
    assert_eq!(status, 422, "{report}");
    assert_eq!(report["accepted"], 0, "{report}");
    assert_eq!(report["rejected"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["rejected"][1]["index"], 1, "{report}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_answered_400_with_an_error_object() {
    let app = spawn_app().await;
    for content_type in ["application/json", "application/x-ndjson"] {
        let response = app.post_body("this is not json", Some(content_type), None).await;
        let (status, body) = status_and_json(response).await;
        assert_error(status, &body, 400, "bad_request");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_pretty_printed_object_that_is_not_json_is_answered_400() {
    let app = spawn_app().await;
    let body = "{\n  \"id\": \"t1\",\n  \"type\": \"turn.completed\",\n  oops\n}\n";
    for content_type in ["application/json", "application/x-ndjson"] {
        let response = app.post_body(body, Some(content_type), None).await;
        let (status, answer) = status_and_json(response).await;
        assert_error(status, &answer, 400, "bad_request");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_truncated_json_array_is_answered_400() {
    let app = spawn_app().await;
    let body = format!("[{}, {{\"id\":", good_turn("t1"));
    let response = app.post_body(body, Some("application/json"), None).await;
    let (status, body) = status_and_json(response).await;
    assert_error(status, &body, 400, "bad_request");
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn an_empty_body_is_answered_400() {
    let app = spawn_app().await;
    for body in ["", "  \n\n "] {
        for content_type in ["application/json", "application/x-ndjson"] {
            let response = app.post_body(body, Some(content_type), None).await;
            let (status, answer) = status_and_json(response).await;
            assert_error(status, &answer, 400, "bad_request");
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_413_and_nothing_is_stored() {
    let app = spawn_app_with(|config| config.max_body_bytes = 1024).await;
    let small: Vec<Value> = (0..2).map(|i| good_turn(&format!("s{i}"))).collect();
    let large: Vec<Value> = (0..20).map(|i| good_turn(&format!("l{i}"))).collect();
    let (status, report) = app.ingest(&small, None).await;
    assert_eq!(status, 202, "a body under the limit is accepted: {report}");
    let (status, body) = app.ingest(&large, None).await;
    assert_error(status, &body, 413, "payload_too_large");
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_id_within_one_request_is_stored_once() {
    let app = spawn_app().await;
    let (status, report) =
        app.ingest(&[good_turn("same"), good_turn("same"), good_turn("other")], None).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report, clean_report(2, 1));
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_id_across_requests_is_stored_once() {
    let app = spawn_app().await;
    let (_, first) = app.ingest(&[good_turn("same")], None).await;
    assert_eq!(first, clean_report(1, 0));
    let (status, second) = app.ingest(&[good_turn("same")], None).await;
    assert_eq!(status, 202, "a batch of duplicates is not an error: {second}");
    assert_eq!(second, clean_report(0, 1));
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_keeps_the_first_value_sent() {
    let app = spawn_app().await;
    app.ingest_ok(&[turn("same", "acme", "c", -30_000, 400.0)]).await;
    app.ingest_ok(&[turn("same", "acme", "c", -30_000, 4000.0)]).await;
    let (_, body) = app.get_json("/metrics/latency?tenant_id=acme", None).await;
    let p99 = body["overall"]["p99"].as_f64().unwrap();
    assert!((p99 - 400.0).abs() <= 4.0, "the second value was not stored: p99 {p99}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_same_id_in_two_tenants_is_not_a_duplicate() {
    let app = spawn_app().await;
    let batch = [turn("same", "acme", "c", -30_000, 500.0), turn("same", "globex", "c", -30_000, 500.0)];
    let (status, report) = app.ingest(&batch, None).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report, clean_report(2, 0));
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 1);
    assert_eq!(app.latency_count("tenant_id=globex", None).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_rejected_event_does_not_claim_its_id() {
    let app = spawn_app().await;
    let (_, first) = app.ingest(&[turn("t1", "acme", "c", -30_000, -1.0)], None).await;
    assert_eq!(first["accepted"], 0, "{first}");
    let (_, second) = app.ingest(&[turn("t1", "acme", "c", -30_000, 500.0)], None).await;
    assert_eq!(second, clean_report(1, 0));
    app.shutdown().await;
}

#[tokio::test]
async fn a_body_of_another_content_type_or_none_is_answered_415_naming_the_accepted_types() {
    let app = spawn_app().await;
    let body = good_turn("t1").to_string();
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let response = app.post_body(body.clone(), content_type, None).await;
        let (status, answer) = status_and_json(response).await;
        assert_error(status, &answer, 415, "unsupported_media_type");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("application/json") && message.contains("application/x-ndjson"),
            "{message}"
        );
    }
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_body_of_many_bad_events_lists_the_first_hundred_and_counts_every_one_by_reason() {
    let app = spawn_app().await;
    let mut body = "1\n".repeat(150);
    body.push_str(&format!("{}\n", good_turn("g1")));
    body.push_str(&"{}\n".repeat(50));
    let response = app.post_body(body, Some("application/x-ndjson"), None).await;
    let (status, report) = status_and_json(response).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["accepted"], 1, "{report}");
    let listed = report["rejected"].as_array().expect("a rejected list");
    assert_eq!(listed.len(), 100, "{report}");
    assert_eq!(listed[99]["index"], 99);
    assert_eq!(listed[0]["reason"], "not_an_object");
    assert_eq!(report["rejected_count"], 200, "{report}");
    assert_eq!(report["rejected_by_reason"], json!({"not_an_object": 150, "missing": 50}), "{report}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_field_name_of_a_megabyte_is_echoed_cut() {
    let app = spawn_app().await;
    let mut event = good_turn("t1");
    event["k".repeat(1 << 20)] = json!(1);
    let (status, report) = app.ingest(&[event], None).await;
    assert_eq!(status, 422, "a refused event");
    let field = report["rejected"][0]["field"].as_str().expect("the field is named");
    assert_eq!(field, format!("{}…", "k".repeat(64)));
    assert_eq!(report["rejected"][0]["reason"], "unknown_field");
    assert!(report.to_string().len() < 2_000, "the answer is small: {} bytes", report.to_string().len());
    app.shutdown().await;
}
