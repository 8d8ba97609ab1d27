//! `GET /calls` and `GET /calls/{call_id}`: the call explorer, from the slow calls of a
//! window to one call whole.

use crate::helpers::{assert_error, create_key, event, spawn_app, spawn_app_in};
use serde_json::{json, Value};
use voicemon_core::access::Role;

const MINUTE: i64 = 60_000;

/// A call of `tenant` that began `start_min` minutes ago, with one turn per
/// `(e2e, llm_ttft)` a few seconds apart, an LLM usage line, and its end.
fn call(
    tenant: &str,
    call: &str,
    start_min: i64,
    turns: &[(f64, f64)],
    provider: &str,
    tokens: u64,
) -> Vec<Value> {
    let start = -start_min * MINUTE;
    let mut events = vec![event(
        "call.started",
        &format!("{call}-s"),
        tenant,
        start,
        json!({"call_id": call, "agent_id": "support-bot", "objective": "booking"}),
    )];
    for (index, (e2e, llm)) in turns.iter().enumerate() {
        events.push(event(
            "turn.completed",
            &format!("{call}-t{index}"),
            tenant,
            start + 5_000 * (index as i64 + 1),
            json!({"call_id": call, "agent_id": "support-bot", "turn_index": index, "e2e_ms": e2e,
                   "stt_ms": 200.0, "llm_ttft_ms": llm, "tts_ttfb_ms": 150.0}),
        ));
    }
    events.push(event("llm.usage", &format!("{call}-u"), tenant, start + 1_000,
        json!({"call_id": call, "provider": provider, "model": "gpt-4o-mini", "input_tokens": tokens, "output_tokens": 10})));
    events.push(event(
        "call.ended",
        &format!("{call}-e"),
        tenant,
        start + 60_000,
        json!({"call_id": call, "status": "completed", "duration_s": 60.0 + start_min as f64}),
    ));
    events
}

fn ids(answer: &Value) -> Vec<&str> {
    answer["calls"].as_array().unwrap().iter().map(|c| c["call_id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_slow_calls_of_a_window_come_first_with_their_worst_turn_and_page_by_cursor() {
    let app = spawn_app().await;
    let mut events = Vec::new();
    events.extend(call("acme", "fast", 50, &[(600.0, 250.0), (650.0, 300.0)], "openai", 100));
    events.extend(call("acme", "slow-llm", 40, &[(700.0, 300.0), (2600.0, 2100.0)], "openai", 5_000));
    events.extend(call("acme", "mid", 30, &[(1200.0, 800.0)], "anthropic", 200));
    events.extend(call("acme", "old", 120, &[(9000.0, 8000.0)], "openai", 100));
    events.extend(call("globex", "theirs", 20, &[(9000.0, 8000.0)], "openai", 100));
    app.ingest_ok(&events).await;

    let (status, answer) = app.get_json("/calls?tenant_id=acme", None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ids(&answer), ["slow-llm", "mid", "fast"], "the last hour, worst turn first: {answer}");
    let slow = &answer["calls"][0];
    assert_eq!(
        slow["worst_turn"],
        json!({"turn_index": 1, "e2e_ms": 2600.0, "slowest_component": "llm_ttft", "slowest_component_ms": 2100.0})
    );
    assert_eq!(
        (slow["turns"].as_u64(), slow["status"].as_str(), slow["agent_id"].as_str()),
        (Some(2), Some("completed"), Some("support-bot"))
    );
    assert!(slow["cost"]["nano_usd"].as_i64().unwrap() > 0, "{slow}");
    assert_eq!(answer["matching"], 3);

    let sorted = |sort: &str| format!("/calls?tenant_id=acme&sort={sort}");
    let (_, by_cost) = app.get_json(&sorted("cost"), None).await;
    assert_eq!(ids(&by_cost)[0], "slow-llm");
    let (_, by_duration) = app.get_json(&sorted("duration"), None).await;
    assert_eq!(ids(&by_duration), ["fast", "slow-llm", "mid"]);
    let (_, filtered) = app.get_json("/calls?tenant_id=acme&provider=anthropic", None).await;
    assert_eq!(ids(&filtered), ["mid"]);
    let (_, slow_only) = app.get_json("/calls?tenant_id=acme&min_e2e_ms=1000", None).await;
    assert_eq!(ids(&slow_only), ["slow-llm", "mid"]);
    let (_, wider) = app
        .get_json(&format!("/calls?tenant_id=acme&from={}", crate::helpers::at(-3 * 60 * MINUTE)), None)
        .await;
    assert_eq!(ids(&wider), ["old", "slow-llm", "mid", "fast"]);

    // Pages of one, joined by the cursor, give the whole list once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("/calls?tenant_id=acme&limit=1&cursor={cursor}"),
            None => "/calls?tenant_id=acme&limit=1".to_owned(),
        };
        let (status, page) = app.get_json(&query, None).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page).iter().map(|id| id.to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["slow-llm", "mid", "fast"]);

    let (status, body) = app.get_json("/calls?tenant_id=acme&sort=loudest", None).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = app.get_json("/calls?tenant_id=acme&cursor=zz", None).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = app.get_json("/calls", None).await;
    assert_error(status, &body, 400, "bad_request");
}

#[tokio::test]
async fn one_call_whole_with_its_turns_cost_requests_and_what_happened_meanwhile() {
    let app = spawn_app().await;
    let mut events = call("acme", "slow-llm", 40, &[(700.0, 300.0), (2600.0, 2100.0)], "openai", 5_000);
    events.push(event("provider.request", "r1", "acme", -40 * MINUTE + 9_000,
        json!({"call_id": "slow-llm", "provider": "openai", "component": "llm", "ok": false, "latency_ms": 2100.0, "error": "rate_limited"})));
    events.push(event(
        "circuit_breaker.changed",
        "b1",
        "acme",
        -40 * MINUTE + 10_000,
        json!({"breaker": "openai-llm", "state": "open"}),
    ));
    app.ingest_ok(&events).await;

    let (status, call) = app.get_json("/calls/slow-llm?tenant_id=acme", None).await;
    assert_eq!(status, 200, "{call}");
    assert_eq!((call["status"].as_str(), call["objective"].as_str()), (Some("completed"), Some("booking")));
    let turns = call["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(
        (turns[1]["e2e_ms"].as_f64(), turns[1]["slowest_component"].as_str()),
        (Some(2600.0), Some("llm_ttft"))
    );
    assert_eq!(call["cost"]["lines"].as_array().unwrap().len(), 1, "{call}");
    assert_eq!(call["requests"][0]["error"], "rate_limited");
    assert_eq!(call["breakers"][0]["state"], "open", "{call}");

    let (status, body) = app.get_json("/calls/nope?tenant_id=acme", None).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn a_key_reads_the_calls_of_its_own_tenant_only() {
    let data_dir = tempfile::tempdir().unwrap();
    let acme = create_key(data_dir.path(), Role::Read, Some("acme")).await;
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app = spawn_app_in(data_dir, |_| {}).await;
    let mut events = call("acme", "ours", 10, &[(900.0, 400.0)], "openai", 100);
    events.extend(call("globex", "theirs", 10, &[(900.0, 400.0)], "openai", 100));
    let (status, report) = app.ingest(&events, admin.secret()).await;
    assert_eq!(status, 202, "{report}");

    let (_, own) = app.get_json("/calls", acme.secret()).await;
    assert_eq!(ids(&own), ["ours"], "a tenant key's own tenant by default");
    let (status, body) = app.get_json("/calls?tenant_id=globex", acme.secret()).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = app.get_json("/calls/theirs?tenant_id=globex", acme.secret()).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = app.get_json("/calls/theirs", acme.secret()).await;
    assert_error(status, &body, 404, "not_found");
    let (status, theirs) = app.get_json("/calls/theirs?tenant_id=globex", admin.secret()).await;
    assert_eq!(status, 200, "{theirs}");
}
