//! What every route shares: request ids, and query parameters that say which one is wrong.

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_caller_s_own_id_is_echoed() {
    let app = spawn_app().await;
    let generated = app.get("/healthz", None).await;
    let id = generated.headers().get("x-request-id").expect("a request id").to_str().expect("text");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let second = app.get("/healthz", None).await;
    assert_ne!(second.headers().get("x-request-id").expect("a request id").to_str().expect("text"), id);

    let own = app
        .client
        .get(app.url("/metrics/latency?component=nope"))
        .header("x-request-id", "trace-7f3a")
        .send()
        .await
        .expect("the request is sent");
    assert_eq!(own.status(), 400);
    assert_eq!(own.headers().get("x-request-id").expect("echoed"), "trace-7f3a");
    app.shutdown().await;
}

#[tokio::test]
async fn a_bad_query_parameter_is_named_in_the_error() {
    let app = spawn_app().await;
    let cases = [
        ("/metrics/latency?component=nope", "query parameter `component`: unknown component `nope`"),
        ("/metrics/latency?step=fortnight", "query parameter `step`:"),
        ("/metrics/calls?by=agent", "query parameter `by`: cannot group calls by `agent`"),
        ("/metrics/cost?month=2026-13", "query parameter `month`: `2026-13` is not a month"),
        ("/metrics/cost?group_by=colour", "query parameter `group_by`: cannot group cost by `colour`"),
        ("/alerts/history?limit=0", "query parameter `limit`: `0` is not a number between 1 and 1000"),
    ];
    for (path, message) in cases {
        let (status, body) = app.get_json(path, None).await;
        assert_error(status, &body, 400, "bad_request");
        let got = body["error"]["message"].as_str().expect("a message");
        assert!(got.starts_with(message), "{path}: {got}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn an_empty_parameter_counts_as_absent() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/metrics/latency?component=&step=&agent_id=", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["component"], "turn_e2e");
    assert_eq!(body["agent_id"], serde_json::Value::Null);
    app.shutdown().await;
}
