//! `GET /metrics/latency`: percentiles merged from minute sketches, checked against exact
//! quantiles computed here from the values sent.

use crate::helpers::{
    assert_error, at, event, exact_quantile, spawn_app, turn, TestApp, HOUR_MS, MINUTE_MS, NOW_MS,
};
use serde_json::{json, Value};

/// A turn as the test knows it: who, when (offset from now) and its end-to-end latency.
#[derive(Debug, Clone)]
struct Sent {
    tenant: &'static str,
    offset_ms: i64,
    e2e_ms: f64,
}

/// A small deterministic generator, so every run sends the same values.
struct Values(u64);

impl Values {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A latency in `low..high` milliseconds, to a tenth of a millisecond.
    fn between(&mut self, low: f64, high: f64) -> f64 {
        ((low + self.next() * (high - low)) * 10.0).round() / 10.0
    }
}

/// Turns of two tenants spread over the last 55 minutes, with a long tail for acme.
fn two_tenants_of_turns() -> Vec<Sent> {
    let mut values = Values(7);
    let mut sent = Vec::new();
    for i in 0..240i64 {
        let minute = 1 + i % 54;
        let offset_ms = -minute * MINUTE_MS + (i * 1_373) % 59_000;
        let e2e_ms =
            if i % 10 == 0 { values.between(2_000.0, 6_000.0) } else { values.between(350.0, 1_400.0) };
        sent.push(Sent { tenant: "acme", offset_ms, e2e_ms });
    }
    for i in 0..90i64 {
        let minute = 2 + (i * 7) % 50;
        let offset_ms = -minute * MINUTE_MS + (i * 4_111) % 59_000;
        sent.push(Sent { tenant: "globex", offset_ms, e2e_ms: values.between(1_800.0, 4_800.0) });
    }
    sent
}

fn as_turn(index: usize, sent: &Sent) -> Value {
    turn(&format!("turn-{index}"), sent.tenant, &format!("call-{}", index % 17), sent.offset_ms, sent.e2e_ms)
}

/// Sends the turns newest minute first in several requests, then every seventh turn
/// last of all ("late"), after the clock has moved on, into minutes that already hold a
/// rollup.
async fn send_out_of_order_and_late(app: &TestApp, sent: &[Sent]) {
    let mut indexed: Vec<(usize, &Sent)> = sent.iter().enumerate().collect();
    indexed.sort_by_key(|(_, s)| std::cmp::Reverse(s.offset_ms));
    let (late, on_time): (Vec<_>, Vec<_>) = indexed.into_iter().partition(|(i, _)| i % 7 == 3);
    for chunk in on_time.chunks(37) {
        let lines: Vec<Value> = chunk.iter().map(|(i, s)| as_turn(*i, s)).collect();
        app.ingest_ok(&lines).await;
    }
    app.clock.advance(3 * MINUTE_MS);
    for chunk in late.chunks(11).rev() {
        let lines: Vec<Value> = chunk.iter().rev().map(|(i, s)| as_turn(*i, s)).collect();
        app.ingest_ok(&lines).await;
    }
}

/// The API rounds to 0.01 ms; the sketch promises 1 % of the exact value.
fn assert_within_one_percent(answer: &Value, exact: f64, what: &str) {
    let got = answer.as_f64().unwrap_or_else(|| panic!("{what}: no number in {answer}"));
    let allowed = 0.01 * exact + 0.005 + 1e-9;
    assert!((got - exact).abs() <= allowed, "{what}: got {got}, exact {exact} (allowed ±{allowed:.3})");
}

/// Checks count and P50/P95/P99 of one answer (overall or step) against `values`.
fn assert_percentiles(answer: &Value, values: &[f64], what: &str) {
    assert_eq!(answer["count"], values.len(), "{what}: count in {answer}");
    if values.is_empty() {
        for q in ["p50", "p95", "p99"] {
            assert_eq!(answer[q], Value::Null, "{what}: {q} of nothing in {answer}");
        }
        return;
    }
    for (q, name) in [(0.50, "p50"), (0.95, "p95"), (0.99, "p99")] {
        assert_within_one_percent(&answer[name], exact_quantile(values, q), &format!("{what} {name}"));
    }
}

async fn latency(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get_json(&format!("/metrics/latency?{query}"), None).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn e2e_of<'a>(sent: impl IntoIterator<Item = &'a Sent>) -> Vec<f64> {
    sent.into_iter().map(|s| s.e2e_ms).collect()
}

#[tokio::test]
async fn percentiles_of_out_of_order_and_late_turns_are_within_one_percent_overall_and_per_step() {
    let app = spawn_app().await;
    let sent = two_tenants_of_turns();
    send_out_of_order_and_late(&app, &sent).await;
    let range = format!("from={}&to={}&step=5m", at(-HOUR_MS), at(0));
    for tenant in ["acme", "globex"] {
        let body = latency(&app, &format!("tenant_id={tenant}&{range}")).await;
        assert_eq!(body["tenant_id"], tenant, "{body}");
        let own: Vec<&Sent> = sent.iter().filter(|s| s.tenant == tenant).collect();
        assert_percentiles(&body["overall"], &e2e_of(own.iter().copied()), &format!("{tenant} overall"));
        let steps = body["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 12, "{body}");
        for (k, step) in steps.iter().enumerate() {
            let start = -HOUR_MS + k as i64 * 5 * MINUTE_MS;
            assert_eq!(step["start"], at(start), "{body}");
            let inside =
                own.iter().copied().filter(|s| s.offset_ms >= start && s.offset_ms < start + 5 * MINUTE_MS);
            assert_percentiles(step, &e2e_of(inside), &format!("{tenant} step {k}"));
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn without_a_tenant_filter_every_tenant_is_merged() {
    let app = spawn_app().await;
    let sent = two_tenants_of_turns();
    send_out_of_order_and_late(&app, &sent).await;
    let body = latency(&app, &format!("from={}&to={}", at(-HOUR_MS), at(0))).await;
    assert_eq!(body["tenant_id"], Value::Null, "{body}");
    assert_percentiles(&body["overall"], &e2e_of(&sent), "all tenants");
    app.shutdown().await;
}

#[tokio::test]
async fn the_tenant_filter_isolates_tenants() {
    let app = spawn_app().await;
    app.ingest_ok(&[
        turn("a1", "acme", "c1", -60_000, 500.0),
        turn("a2", "acme", "c1", -50_000, 520.0),
        turn("g1", "globex", "c9", -40_000, 3_000.0),
    ])
    .await;
    let acme = latency(&app, "tenant_id=acme").await;
    assert_percentiles(&acme["overall"], &[500.0, 520.0], "acme");
    let globex = latency(&app, "tenant_id=globex").await;
    assert_percentiles(&globex["overall"], &[3_000.0], "globex");
    let nobody = latency(&app, "tenant_id=initech").await;
    assert_percentiles(&nobody["overall"], &[], "a tenant that sent nothing");
    app.shutdown().await;
}

#[tokio::test]
async fn the_answer_names_its_estimator_and_its_relative_error() {
    let app = spawn_app().await;
    app.ingest_ok(&[turn("t1", "acme", "c1", -60_000, 700.0)]).await;
    let body = latency(&app, "tenant_id=acme").await;
    assert_eq!(body["estimator"], json!({"name": "ddsketch", "relative_error": 0.01}), "{body}");
    assert_eq!(body["unit"], "ms", "{body}");
    assert_eq!(body["component"], "turn_e2e", "{body}");
    assert_eq!(body["source"], "turn", "{body}");
    app.shutdown().await;
}

/// A turn.completed carrying every component latency, some without tts.
fn turn_with_components(i: usize, values: &mut Values) -> (Value, [Option<f64>; 4]) {
    let stt = values.between(100.0, 300.0);
    let eou = values.between(200.0, 600.0);
    let llm = values.between(300.0, 1_200.0);
    let tts = (!i.is_multiple_of(4)).then(|| values.between(80.0, 250.0));
    let mut fields = json!({"call_id": format!("c{}", i % 5), "turn_index": i, "e2e_ms": 2_000.0,
                            "stt_ms": stt, "eou_ms": eou, "llm_ttft_ms": llm});
    if let Some(tts) = tts {
        fields["tts_ttfb_ms"] = json!(tts);
    }
    let offset = -((i as i64 % 40) + 1) * MINUTE_MS;
    (
        event("turn.completed", &format!("t{i}"), "acme", offset, fields),
        [Some(stt), Some(eou), Some(llm), tts],
    )
}

#[tokio::test]
async fn each_component_of_turn_completed_is_answered_from_the_turns() {
    let app = spawn_app().await;
    let mut values = Values(11);
    let (lines, measured): (Vec<Value>, Vec<[Option<f64>; 4]>) =
        (0..80).map(|i| turn_with_components(i, &mut values)).unzip();
    app.ingest_ok(&lines).await;
    for (slot, component) in ["stt", "eou", "llm_ttft", "tts_ttfb"].into_iter().enumerate() {
        let body = latency(&app, &format!("tenant_id=acme&component={component}")).await;
        assert_eq!(body["component"], component, "{body}");
        assert_eq!(body["source"], "turn", "{body}");
        let expected: Vec<f64> = measured.iter().filter_map(|m| m[slot]).collect();
        assert_percentiles(&body["overall"], &expected, component);
    }
    assert_eq!(app.latency_count("tenant_id=acme&component=tts_ttfb", None).await, 60);
    app.shutdown().await;
}

fn llm_usage(id: &str, provider: &str, model: &str, offset_ms: i64, ttft_ms: Option<f64>) -> Value {
    let mut fields = json!({"call_id": "c1", "provider": provider, "model": model,
                            "input_tokens": 1_000, "output_tokens": 40});
    if let Some(ttft_ms) = ttft_ms {
        fields["ttft_ms"] = json!(ttft_ms);
    }
    event("llm.usage", id, "acme", offset_ms, fields)
}

#[tokio::test]
async fn a_provider_filter_reads_the_usage_events_of_that_provider() {
    let app = spawn_app().await;
    let mut values = Values(23);
    let mut lines = Vec::new();
    let (mut openai, mut anthropic, mut mini) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..60i64 {
        let offset = -(i % 30 + 1) * MINUTE_MS;
        let id = format!("u{i}");
        if i % 3 == 0 {
            let ttft = values.between(800.0, 1_500.0);
            anthropic.push(ttft);
            lines.push(llm_usage(&id, "anthropic", "claude-sonnet", offset, Some(ttft)));
        } else {
            let ttft = values.between(250.0, 700.0);
            let model = if i % 3 == 1 { "gpt-4o" } else { "gpt-4o-mini" };
            if model == "gpt-4o-mini" {
                mini.push(ttft);
            }
            openai.push(ttft);
            lines.push(llm_usage(&id, "openai", model, offset, Some(ttft)));
        }
    }
    lines.push(llm_usage("no-ttft", "openai", "gpt-4o", -MINUTE_MS, None));
    // Turns report llm_ttft too; a provider filter must not read them.
    lines.push(event(
        "turn.completed",
        "turn-1",
        "acme",
        -MINUTE_MS,
        json!({"call_id": "c1", "turn_index": 0, "e2e_ms": 900.0, "llm_ttft_ms": 9_000.0}),
    ));
    app.ingest_ok(&lines).await;

    let body = latency(&app, "tenant_id=acme&component=llm_ttft&provider=openai").await;
    assert_eq!(body["source"], "usage", "{body}");
    assert_eq!(body["provider"], "openai", "{body}");
    assert_percentiles(&body["overall"], &openai, "openai");
    let body = latency(&app, "tenant_id=acme&component=llm_ttft&provider=anthropic").await;
    assert_percentiles(&body["overall"], &anthropic, "anthropic");
    let body = latency(&app, "tenant_id=acme&component=llm_ttft&provider=openai&model=gpt-4o-mini").await;
    assert_percentiles(&body["overall"], &mini, "openai gpt-4o-mini");

    let body = latency(&app, "tenant_id=acme&component=llm_ttft").await;
    assert_eq!(body["source"], "turn", "without a provider the turns answer: {body}");
    assert_percentiles(&body["overall"], &[9_000.0], "llm_ttft of turns");
    app.shutdown().await;
}

#[tokio::test]
async fn a_component_reported_only_per_provider_falls_back_to_usage_events() {
    let app = spawn_app().await;
    let tts = |id: &str, ttfb: f64| {
        event(
            "tts.usage",
            id,
            "acme",
            -MINUTE_MS,
            json!({"call_id": "c1", "provider": "cartesia", "characters": 100, "ttfb_ms": ttfb}),
        )
    };
    app.ingest_ok(&[tts("s1", 140.0), tts("s2", 160.0), tts("s3", 210.0)]).await;
    let body = latency(&app, "tenant_id=acme&component=tts_ttfb").await;
    assert_eq!(body["source"], "usage", "{body}");
    assert_percentiles(&body["overall"], &[140.0, 160.0, 210.0], "tts from usage");
    app.shutdown().await;
}

#[tokio::test]
async fn a_provider_filter_on_a_per_turn_component_is_a_bad_request() {
    let app = spawn_app().await;
    for query in ["provider=openai", "component=eou&provider=openai", "component=turn_e2e&model=gpt-4o"] {
        let (status, body) = app.get_json(&format!("/metrics/latency?{query}"), None).await;
        assert_error(status, &body, 400, "bad_request");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_agent_filter_reads_only_that_agents_turns() {
    let app = spawn_app().await;
    let with_agent = |id: &str, agent: &str, e2e: f64| {
        event(
            "turn.completed",
            id,
            "acme",
            -2 * MINUTE_MS,
            json!({"call_id": "c1", "turn_index": 0, "e2e_ms": e2e, "agent_id": agent}),
        )
    };
    app.ingest_ok(&[
        with_agent("t1", "receptionist", 600.0),
        with_agent("t2", "receptionist", 640.0),
        with_agent("t3", "sales", 1_900.0),
        turn("t4", "acme", "c1", -2 * MINUTE_MS, 5_000.0),
    ])
    .await;
    let body = latency(&app, "tenant_id=acme&agent_id=receptionist").await;
    assert_eq!(body["agent_id"], "receptionist", "{body}");
    assert_percentiles(&body["overall"], &[600.0, 640.0], "receptionist");
    let body = latency(&app, "tenant_id=acme&agent_id=sales").await;
    assert_percentiles(&body["overall"], &[1_900.0], "sales");
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 4);
    app.shutdown().await;
}

#[tokio::test]
async fn a_five_minute_step_over_an_hour_gives_twelve_steps() {
    let app = spawn_app().await;
    app.ingest_ok(&[
        turn("t1", "acme", "c1", -5 * MINUTE_MS, 800.0),
        turn("t2", "acme", "c1", -5 * MINUTE_MS - 1, 900.0),
    ])
    .await;
    let body = latency(&app, &format!("from={}&to={}&step=5m", at(-HOUR_MS), at(0))).await;
    assert_eq!(body["step_seconds"], 300, "{body}");
    assert_eq!(body["from"], at(-HOUR_MS), "{body}");
    assert_eq!(body["to"], at(0), "{body}");
    let steps = body["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 12, "{body}");
    let counts: Vec<u64> = steps.iter().map(|s| s["count"].as_u64().unwrap()).collect();
    let mut expected = vec![0; 12];
    expected[10] = 1; // -10 min .. -5 min: the turn one millisecond before -5 min
    expected[11] = 1; // -5 min .. now: the turn at -5 min exactly
    assert_eq!(counts, expected, "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_default_step_gives_about_sixty_points() {
    let app = spawn_app().await;
    let body = latency(&app, "").await;
    assert_eq!(body["step_seconds"], 60, "{body}");
    assert_eq!(body["steps"].as_array().expect("steps").len(), 60, "{body}");
    assert_percentiles(&body["overall"], &[], "nothing sent");
    app.shutdown().await;
}

#[tokio::test]
async fn a_bad_step_is_a_bad_request() {
    let app = spawn_app().await;
    for step in ["5x", "90s", "0m", "-5m", "soon"] {
        let (status, body) = app.get_json(&format!("/metrics/latency?step={step}"), None).await;
        assert_error(status, &body, 400, "bad_request");
    }
    let too_many = format!("/metrics/latency?from={}&to={}&step=1m", at(-30 * 24 * HOUR_MS), at(0));
    let (status, body) = app.get_json(&too_many, None).await;
    assert_error(status, &body, 400, "bad_request");
    app.shutdown().await;
}

#[tokio::test]
async fn from_after_to_is_a_bad_request() {
    let app = spawn_app().await;
    for (from, to) in [(at(0), at(-HOUR_MS)), (at(-HOUR_MS), at(-HOUR_MS))] {
        let (status, body) = app.get_json(&format!("/metrics/latency?from={from}&to={to}"), None).await;
        assert_error(status, &body, 400, "bad_request");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_time_that_is_neither_rfc_3339_nor_unix_seconds_is_a_bad_request() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/metrics/latency?from=yesterday", None).await;
    assert_error(status, &body, 400, "bad_request");
    app.shutdown().await;
}

#[tokio::test]
async fn unix_seconds_are_accepted_as_times() {
    let app = spawn_app().await;
    app.ingest_ok(&[turn("t1", "acme", "c1", -2 * HOUR_MS, 800.0)]).await;
    let from = (NOW_MS - 3 * HOUR_MS) / 1000;
    let to = (NOW_MS - HOUR_MS) / 1000;
    assert_eq!(app.latency_count(&format!("from={from}&to={to}"), None).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_component_is_a_bad_request() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/metrics/latency?component=vad", None).await;
    assert_error(status, &body, 400, "bad_request");
    app.shutdown().await;
}

#[tokio::test]
async fn the_default_range_is_the_last_hour() {
    let app = spawn_app().await;
    app.ingest_ok(&[
        turn("old", "acme", "c1", -HOUR_MS - MINUTE_MS, 800.0),
        turn("recent", "acme", "c1", -HOUR_MS + MINUTE_MS, 810.0),
        turn("now", "acme", "c1", -1, 820.0),
    ])
    .await;
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 2);
    let from = at(-2 * HOUR_MS);
    assert_eq!(app.latency_count(&format!("tenant_id=acme&from={from}"), None).await, 3);
    app.clock.advance(HOUR_MS);
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 0, "an hour later");
    app.shutdown().await;
}
