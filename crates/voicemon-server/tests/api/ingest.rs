use crate::helpers::{at, spawn_app};
use serde_json::json;

fn turn(id: &str, tenant: &str, call: &str, offset_ms: i64, e2e_ms: f64) -> serde_json::Value {
    json!({"id": id, "type": "turn.completed", "timestamp": at(offset_ms), "tenant_id": tenant,
           "call_id": call, "turn_index": 0, "e2e_ms": e2e_ms})
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
