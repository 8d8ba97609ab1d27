//! `GET /metrics/cost`: itemised calls, month summaries, splits, tenant prices and scope.
//!
//! Every expected amount is worked out here by hand from the unit prices, in the comment
//! beside it, in nano-USD (1 USD = 1 000 000 000 nano-USD).

use crate::helpers::{
    assert_error, at, create_key, event, spawn_app, spawn_app_in, spawn_app_with, TestApp, TestKey,
};
use serde_json::{json, Value};
use voicemon_core::access::Role;
use voicemon_core::money::Nanos;
use voicemon_core::pricing::PriceBook;
use voicemon_server::config::FileConfig;

// ---------------------------------------------------------------------------- helpers

/// An event of `kind` at the RFC 3339 `time`, with `fields` merged over the envelope.
fn event_at(kind: &str, id: &str, tenant: &str, time: &str, fields: Value) -> Value {
    let mut event = json!({"id": id, "type": kind, "timestamp": time, "tenant_id": tenant});
    let object = event.as_object_mut().expect("an object");
    for (name, value) in fields.as_object().expect("fields are an object") {
        object.insert(name.clone(), value.clone());
    }
    event
}

fn started_at(tenant: &str, call: &str, time: &str) -> Value {
    event_at("call.started", &format!("{call}-start"), tenant, time, json!({"call_id": call}))
}

fn ended_at(tenant: &str, call: &str, time: &str, duration_s: f64) -> Value {
    event_at(
        "call.ended",
        &format!("{call}-end"),
        tenant,
        time,
        json!({"call_id": call, "status": "completed", "duration_s": duration_s}),
    )
}

fn stt_at(tenant: &str, call: &str, id: &str, time: &str, model: &str, audio_seconds: f64) -> Value {
    let fields =
        json!({"call_id": call, "provider": "deepgram", "model": model, "audio_seconds": audio_seconds});
    event_at("stt.usage", id, tenant, time, fields)
}

fn llm_at(tenant: &str, call: &str, id: &str, time: &str, model: &str, input: u64, output: u64) -> Value {
    let fields = json!({"call_id": call, "provider": "openai", "model": model,
                        "input_tokens": input, "output_tokens": output});
    event_at("llm.usage", id, tenant, time, fields)
}

fn tts_at(tenant: &str, call: &str, id: &str, time: &str, provider: &str, model: &str, chars: u64) -> Value {
    let fields = json!({"call_id": call, "provider": provider, "model": model, "characters": chars});
    event_at("tts.usage", id, tenant, time, fields)
}

/// An amount as every answer carries it: exact decimal text and integer nano-USD.
fn amount(nanos: i64) -> Value {
    json!({"usd": Nanos(nanos).usd(), "nano_usd": nanos})
}

/// Status and answer of a cost query made with `key`.
async fn cost_as(app: &TestApp, key: &TestKey, query: &str) -> (u16, Value) {
    app.get_json(&format!("/metrics/cost?{query}"), key.secret()).await
}

async fn cost(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get_json(&format!("/metrics/cost?{query}"), None).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// A group of a split as expected: `(key, nano_usd, usage_lines)`.
type Group<'a> = (&'a str, i64, u64);

/// `(key, nano_usd, usage_lines)` of each group of a split.
fn groups(split: &Value) -> Vec<(String, i64, u64)> {
    split
        .as_array()
        .unwrap_or_else(|| panic!("a split: {split}"))
        .iter()
        .map(|group| {
            (
                group["key"].as_str().expect("a key").to_owned(),
                group["cost"]["nano_usd"].as_i64().expect("a cost"),
                group["usage_lines"].as_u64().expect("a line count"),
            )
        })
        .collect()
}

fn owned(expected: &[Group]) -> Vec<(String, i64, u64)> {
    expected.iter().map(|&(key, nanos, lines)| (key.to_owned(), nanos, lines)).collect()
}

fn split_sum(split: &Value) -> i64 {
    groups(split).iter().map(|(_, nanos, _)| nanos).sum()
}

// ---------------------------------------------------------------------------- one call

/// Call `call-1` of acme (trace `trace-1`) ten minutes ago: two STT lines, an LLM line
/// with cached tokens and a TTS line under the shipped prices, ended after 90 s.
fn mixed_call() -> Vec<Value> {
    let usage = |kind: &str, id: &str, offset_ms: i64, fields: Value| {
        let mut fields = fields;
        fields["call_id"] = json!("call-1");
        event(kind, id, "acme", offset_ms, fields)
    };
    let start = -10 * 60_000;
    vec![
        event(
            "call.started",
            "s",
            "acme",
            start,
            json!({"call_id": "call-1", "trace_id": "trace-1", "channel": "phone"}),
        ),
        usage(
            "stt.usage",
            "u1",
            start + 5_000,
            json!({"provider": "deepgram", "model": "nova-3", "audio_seconds": 3.0}),
        ),
        usage(
            "llm.usage",
            "u2",
            start + 8_000,
            json!({"provider": "openai", "model": "gpt-4o-2024-08-06",
                   "input_tokens": 1_200, "cached_input_tokens": 1_000, "output_tokens": 150}),
        ),
        usage(
            "tts.usage",
            "u3",
            start + 10_000,
            json!({"provider": "cartesia", "model": "sonic-2", "voice": "alloy", "characters": 321}),
        ),
        usage(
            "stt.usage",
            "u4",
            start + 60_000,
            json!({"provider": "Deepgram", "model": "nova-3", "audio_seconds": 46.2}),
        ),
        event(
            "call.ended",
            "e",
            "acme",
            start + 90_000,
            json!({"call_id": "call-1", "status": "completed", "duration_s": 90.0}),
        ),
    ]
}

#[tokio::test]
async fn a_call_is_itemised_with_each_line_s_unit_price_and_exact_cost() {
    let app = spawn_app().await;
    app.ingest_ok(&mixed_call()).await;

    let body = cost(&app, "call_id=call-1").await;
    assert_eq!(body["tenant_id"], "acme", "{body}");
    assert_eq!(body["call_id"], "call-1", "{body}");
    assert_eq!(body["trace_id"], "trace-1", "{body}");
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["duration_s"], 90.0, "{body}");
    assert_eq!(body["unpriced_lines"], 0, "{body}");
    let lines = body["lines"].as_array().unwrap_or_else(|| panic!("lines in {body}"));
    assert_eq!(lines.len(), 4, "{body}");

    // 3 s × $0.0077/60 s = $0.000385
    assert_eq!(lines[0]["time"], at(-10 * 60_000 + 5_000));
    assert_eq!(lines[0]["component"], "stt");
    assert_eq!(lines[0]["provider"], "deepgram");
    assert_eq!(lines[0]["model"], "nova-3");
    assert_eq!(lines[0]["quantity"], json!({"audio_seconds": 3.0}));
    assert_eq!(lines[0]["unit_price"], "$0.0077/audio min, 1 s blocks");
    assert_eq!(lines[0]["price_ref"], "stt/deepgram/nova-3@2025-01-01");
    assert_eq!(lines[0]["cost"], json!({"usd": "0.000385", "nano_usd": 385_000}));
    assert_eq!(lines[0]["unpriced"], false);

    // gpt-4o-2024-08-06 is priced as gpt-4o; input_tokens includes the cached ones:
    //   (1 200 − 1 000) × $2.50/M = $0.0005
    //           1 000  × $1.25/M = $0.00125
    //             150  × $10/M   = $0.0015
    //                     total    $0.00325
    assert_eq!(lines[1]["component"], "llm");
    assert_eq!(lines[1]["model"], "gpt-4o-2024-08-06");
    assert_eq!(
        lines[1]["quantity"],
        json!({"input_tokens": 1_200, "cached_input_tokens": 1_000, "output_tokens": 150})
    );
    assert_eq!(lines[1]["unit_price"], "in $2.50/M, cached $1.25/M, out $10.00/M tokens");
    assert_eq!(lines[1]["price_ref"], "llm/openai/gpt-4o@2024-10-01");
    assert_eq!(lines[1]["cost"], json!({"usd": "0.00325", "nano_usd": 3_250_000}));

    // 321 characters × $37.375/M = $0.011997375
    assert_eq!(lines[2]["component"], "tts");
    assert_eq!(lines[2]["model"], "sonic-2");
    assert_eq!(lines[2]["voice"], "alloy");
    assert_eq!(lines[2]["quantity"], json!({"characters": 321}));
    assert_eq!(lines[2]["unit_price"], "$37.375/M characters");
    assert_eq!(lines[2]["price_ref"], "tts/cartesia/sonic*@2025-01-01");
    assert_eq!(lines[2]["cost"], json!({"usd": "0.011997375", "nano_usd": 11_997_375}));

    // "Deepgram" is stored and priced as deepgram (provider names are lower-cased).
    // 46.2 s is billed as 47 s (1 s blocks):
    // 47 s × $0.0077/60 s = $0.00603166666… → $0.006031667 (half up)
    assert_eq!(lines[3]["provider"], "deepgram");
    assert_eq!(lines[3]["quantity"], json!({"audio_seconds": 46.2}));
    assert_eq!(lines[3]["price_ref"], "stt/deepgram/nova-3@2025-01-01");
    assert_eq!(lines[3]["cost"], json!({"usd": "0.006031667", "nano_usd": 6_031_667}));

    // total: 385 000 + 3 250 000 + 11 997 375 + 6 031 667 = 21 664 042
    assert_eq!(body["total"], json!({"usd": "0.021664042", "nano_usd": 21_664_042}));
    // per minute: 21 664 042 × 60 s / 90 s = 14 442 694.67 → 14 442 695
    assert_eq!(body["cost_per_minute"], json!({"usd": "0.014442695", "nano_usd": 14_442_695}));
    app.shutdown().await;
}

#[tokio::test]
async fn a_call_is_found_by_its_trace_id_as_by_its_call_id() {
    let app = spawn_app().await;
    app.ingest_ok(&mixed_call()).await;
    let by_trace = cost(&app, "trace_id=trace-1").await;
    let by_call = cost(&app, "call_id=call-1").await;
    assert_eq!(by_trace["call_id"], "call-1", "{by_trace}");
    assert_eq!(by_trace["total"], amount(21_664_042), "{by_trace}");
    assert_eq!(by_trace, by_call);
    app.shutdown().await;
}

#[tokio::test]
async fn a_trace_id_carried_only_by_call_ended_finds_the_call_and_call_id_wins_over_trace_id() {
    let app = spawn_app().await;
    app.ingest_ok(&mixed_call()).await;
    let mut ended = ended_at("acme", "other", "2026-11-27T11:58:00Z", 30.0);
    ended["trace_id"] = json!("trace-2");
    app.ingest_ok(&[stt_at("acme", "other", "o1", "2026-11-27T11:57:30Z", "nova-3", 60.0), ended]).await;
    let by_trace = cost(&app, "trace_id=trace-2").await;
    assert_eq!(by_trace["call_id"], "other", "{by_trace}");
    assert_eq!(by_trace["total"], amount(7_700_000), "{by_trace}");
    let both = cost(&app, "call_id=call-1&trace_id=trace-2").await;
    assert_eq!(both["call_id"], "call-1", "{both}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_call_or_trace_is_answered_404() {
    let app = spawn_app().await;
    app.ingest_ok(&mixed_call()).await;
    let (status, body) = app.get_json("/metrics/cost?call_id=no-such-call", None).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get_json("/metrics/cost?trace_id=no-such-trace", None).await;
    assert_error(status, &body, 404, "not_found");
    app.shutdown().await;
}

#[tokio::test]
async fn a_call_that_has_not_ended_has_a_total_but_no_cost_per_minute() {
    let app = spawn_app().await;
    let mut events = mixed_call();
    events.pop();
    app.ingest_ok(&events).await;
    let body = cost(&app, "call_id=call-1").await;
    assert_eq!(body["total"], amount(21_664_042), "{body}");
    assert_eq!(body["duration_s"], Value::Null, "{body}");
    assert_eq!(body["cost_per_minute"], Value::Null, "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_usage_event_is_not_charged_twice() {
    let app = spawn_app().await;
    app.ingest_ok(&mixed_call()).await;
    let (status, report) = app.ingest(&mixed_call(), None).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["duplicates"], 6, "{report}");
    let body = cost(&app, "call_id=call-1").await;
    assert_eq!(body["lines"].as_array().map(Vec::len), Some(4), "{body}");
    assert_eq!(body["total"], amount(21_664_042), "{body}");
    let month = cost(&app, "tenant_id=acme&month=2026-11").await;
    assert_eq!(month["total"], amount(21_664_042), "{month}");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------- unpriced

#[tokio::test]
async fn an_unpriced_model_is_stored_and_flagged_not_priced_at_zero() {
    let app = spawn_app().await;
    app.ingest_ok(&[
        started_at("acme", "c1", "2026-11-27T11:00:00Z"),
        stt_at("acme", "c1", "u1", "2026-11-27T11:00:05Z", "nova-3", 60.0),
        llm_at("acme", "c1", "u2", "2026-11-27T11:00:08Z", "gpt-9-turbo", 1_000, 100),
    ])
    .await;

    let body = cost(&app, "call_id=c1").await;
    let lines = body["lines"].as_array().unwrap_or_else(|| panic!("lines in {body}"));
    assert_eq!(lines.len(), 2, "the unpriced line is stored: {body}");
    let unpriced = &lines[1];
    assert_eq!(unpriced["model"], "gpt-9-turbo", "{body}");
    assert_eq!(unpriced["unpriced"], true, "{body}");
    assert_eq!(unpriced["unpriced_reason"], "no llm price for openai/gpt-9-turbo on 2026-11-27", "{body}");
    assert_eq!(unpriced["cost"], Value::Null, "{body}");
    assert_eq!(unpriced["unit_price"], Value::Null, "{body}");
    assert_eq!(unpriced["price_ref"], Value::Null, "{body}");
    assert_eq!(unpriced["quantity"], json!({"input_tokens": 1_000, "output_tokens": 100}), "{body}");
    assert_eq!(lines[0]["unpriced"], false, "{body}");
    assert!(lines[0].get("unpriced_reason").is_none(), "{body}");
    assert_eq!(body["unpriced_lines"], 1, "{body}");
    // Only the priced line counts: 60 s × $0.0077/60 s = $0.0077
    assert_eq!(body["total"], amount(7_700_000), "{body}");

    let month = cost(&app, "tenant_id=acme&month=2026-11&group_by=model").await;
    assert_eq!(month["total"], amount(7_700_000), "{month}");
    assert_eq!(month["usage_lines"], 2, "{month}");
    assert_eq!(month["unpriced_lines"], 1, "{month}");
    let unpriced_group = &month["groups"][0];
    assert_eq!(unpriced_group["key"], "gpt-9-turbo", "{month}");
    assert_eq!(unpriced_group["cost"], amount(0), "{month}");
    assert_eq!(unpriced_group["usage_lines"], 1, "{month}");
    assert_eq!(unpriced_group["unpriced_lines"], 1, "{month}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_call_whose_lines_are_all_unpriced_has_a_zero_total_and_says_how_many_lines_are_unpriced() {
    let app = spawn_app().await;
    app.ingest_ok(&[
        llm_at("acme", "c1", "u1", "2026-11-27T11:00:05Z", "gpt-9-turbo", 1_000, 100),
        tts_at("acme", "c1", "u2", "2026-11-27T11:00:06Z", "playht", "play3", 500),
        ended_at("acme", "c1", "2026-11-27T11:01:00Z", 60.0),
    ])
    .await;
    let body = cost(&app, "call_id=c1").await;
    assert_eq!(body["total"], json!({"usd": "0.00", "nano_usd": 0}), "{body}");
    assert_eq!(body["unpriced_lines"], 2, "{body}");
    assert_eq!(body["lines"][1]["unpriced_reason"], "no tts price for playht/play3 on 2026-11-27", "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn lines_without_a_model_are_grouped_under_an_empty_model() {
    let app = spawn_app().await;
    let no_model = event_at(
        "stt.usage",
        "u2",
        "acme",
        "2026-11-27T11:00:06Z",
        json!({"call_id": "c1", "provider": "assemblyai", "audio_seconds": 60.0}),
    );
    app.ingest_ok(&[stt_at("acme", "c1", "u1", "2026-11-27T11:00:05Z", "nova-3", 60.0), no_model]).await;
    let month = cost(&app, "tenant_id=acme&month=2026-11&group_by=model").await;
    // assemblyai prices any model, none included: 60 s × $0.0025/60 s; nova-3: $0.0077
    assert_eq!(groups(&month["groups"]), owned(&[("", 2_500_000, 1), ("nova-3", 7_700_000, 1)]), "{month}");
    assert_eq!(month["total"], amount(10_200_000), "{month}");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------- prices over time

/// gpt-4o at $2.00 in / $8.00 out until 2026-11-15, then $3.00 / $12.00.
const MID_MONTH_BOOK: &str = r#"
version = 1

[[price]]
component = "llm"
provider = "openai"
model = "gpt-4o"
effective_from = "2026-11-01"
input_per_million = "2.00"
output_per_million = "8.00"

[[price]]
component = "llm"
provider = "openai"
model = "gpt-4o"
effective_from = "2026-11-15"
input_per_million = "3.00"
output_per_million = "12.00"
"#;

#[tokio::test]
async fn a_price_change_in_the_middle_of_a_month_prices_each_call_at_its_own_price() {
    let prices = PriceBook::from_toml(MID_MONTH_BOOK, "test").expect("the book loads");
    let app = spawn_app_with(|config| config.prices = prices).await;
    app.ingest_ok(&[
        started_at("acme", "before", "2026-11-10T09:00:00Z"),
        llm_at("acme", "before", "b1", "2026-11-10T09:00:05Z", "gpt-4o", 1_000, 500),
        ended_at("acme", "before", "2026-11-10T09:01:00Z", 60.0),
        started_at("acme", "after", "2026-11-20T09:00:00Z"),
        llm_at("acme", "after", "a1", "2026-11-20T09:00:05Z", "gpt-4o", 1_000, 500),
        ended_at("acme", "after", "2026-11-20T09:01:00Z", 60.0),
    ])
    .await;

    // Before: 1 000 × $2/M + 500 × $8/M = $0.002 + $0.004 = $0.006
    let before = cost(&app, "call_id=before").await;
    assert_eq!(before["total"], amount(6_000_000), "{before}");
    assert_eq!(before["lines"][0]["price_ref"], "llm/openai/gpt-4o@2026-11-01", "{before}");
    assert_eq!(before["lines"][0]["unit_price"], "in $2.00/M, cached $2.00/M, out $8.00/M tokens");
    // After: 1 000 × $3/M + 500 × $12/M = $0.003 + $0.006 = $0.009
    let after = cost(&app, "call_id=after").await;
    assert_eq!(after["total"], amount(9_000_000), "{after}");
    assert_eq!(after["lines"][0]["price_ref"], "llm/openai/gpt-4o@2026-11-15", "{after}");

    // The month: $0.006 + $0.009 = $0.015
    let month = cost(&app, "tenant_id=acme&month=2026-11").await;
    assert_eq!(month["total"], amount(15_000_000), "{month}");
    assert_eq!(month["calls"], 2, "{month}");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------- tenant prices

#[tokio::test]
async fn a_tenant_s_negotiated_price_from_voicemon_toml_applies_to_that_tenant_only() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("voicemon.toml");
    std::fs::write(
        &path,
        r#"
[[pricing.price]]
component = "stt"
provider = "deepgram"
model = "nova-3"
tenant = "acme"
effective_from = "2025-01-01"
per_audio_minute = "0.0050"
source = "acme contract 2025"
"#,
    )
    .expect("the file is written");
    let prices = FileConfig::load(&path).and_then(|c| c.price_book(&path)).expect("the config loads");
    let app = spawn_app_with(|config| config.prices = prices).await;
    app.ingest_ok(&[
        started_at("acme", "a", "2026-11-20T09:00:00Z"),
        stt_at("acme", "a", "a1", "2026-11-20T09:00:05Z", "nova-3", 60.0),
        started_at("globex", "g", "2026-11-20T09:00:00Z"),
        stt_at("globex", "g", "g1", "2026-11-20T09:00:05Z", "nova-3", 60.0),
    ])
    .await;

    // acme: 60 s × $0.0050/60 s = $0.005
    let acme = cost(&app, "call_id=a&tenant_id=acme").await;
    assert_eq!(acme["total"], amount(5_000_000), "{acme}");
    assert_eq!(acme["lines"][0]["price_ref"], "stt/deepgram/nova-3@2025-01-01#acme", "{acme}");
    assert_eq!(acme["lines"][0]["unit_price"], "$0.005/audio min, 1 s blocks", "{acme}");
    // globex: the list price, 60 s × $0.0077/60 s = $0.0077
    let globex = cost(&app, "call_id=g&tenant_id=globex").await;
    assert_eq!(globex["total"], amount(7_700_000), "{globex}");
    assert_eq!(globex["lines"][0]["price_ref"], "stt/deepgram/nova-3@2025-01-01", "{globex}");

    assert_eq!(cost(&app, "tenant_id=acme&month=2026-11").await["total"], amount(5_000_000));
    assert_eq!(cost(&app, "tenant_id=globex&month=2026-11").await["total"], amount(7_700_000));
    app.shutdown().await;
}

#[test]
fn a_bad_price_in_voicemon_toml_is_refused_naming_the_file_and_the_unknown_unit() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("voicemon.toml");
    std::fs::write(
        &path,
        r#"
[[pricing.price]]
component = "stt"
provider = "deepgram"
model = "nova-3"
effective_from = "2025-01-01"
per_audio_hour = "0.46"
"#,
    )
    .expect("the file is written");
    let message = FileConfig::load(&path).expect_err("refused").to_string();
    assert!(message.contains("voicemon.toml"), "{message}");
    assert!(message.contains("per_audio_hour"), "{message}");
}

#[test]
fn a_negative_price_in_voicemon_toml_is_refused_naming_the_entry() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("voicemon.toml");
    std::fs::write(
        &path,
        r#"
[[pricing.price]]
component = "tts"
provider = "cartesia"
model = "sonic*"
effective_from = "2026-01-01"
per_million_characters = "-30"
"#,
    )
    .expect("the file is written");
    let message = FileConfig::load(&path).expect_err("refused").to_string();
    assert!(message.contains("[[pricing.price]]"), "{message}");
    assert!(message.contains("price #1 (tts cartesia sonic*)"), "{message}");
    assert!(message.contains("per_million_characters: `-30` is negative"), "{message}");
}

// ---------------------------------------------------------------------------- month summary

/// Acme's November 2026 under the shipped prices, each call's cost worked out:
///
/// | call | first event | usage                                                  | cost       | ended |
/// |------|-------------|--------------------------------------------------------|------------|-------|
/// | m1   | 11-03       | nova-3 60 s: $0.0077                                   |  7 700 000 | 120 s |
/// |      |             | gpt-4o-mini 10 000 in × $0.15/M + 2 000 out × $0.60/M  |  2 700 000 |       |
/// |      |             | eleven_flash 1 000 chars × $50/M                       | 50 000 000 |       |
/// |      |             |                                                        | 60 400 000 |       |
/// | m2   | 11-10       | nova-2 30 s × $0.0058/60 s                             |  2 900 000 |  60 s |
/// |      |             | gpt-4o-mini as above                                   |  2 700 000 |       |
/// |      |             |                                                        |  5 600 000 |       |
/// | m3   | 11-18       | eleven_flash 200 chars × $50/M                         | 10 000 000 |  30 s |
/// | m4   | 11-25       | nova-3 120 s × $0.0077/60 s                            | 15 400 000 |  no   |
/// | m5   | 11-26       | none                                                   |          0 |  no   |
///
/// Besides: acme's call `oct` began 2026-10-31 23:59 with usage after midnight (it is
/// October's), and globex has a call in November.
async fn send_november(app: &TestApp) {
    let a = "acme";
    app.ingest_ok(&[
        started_at(a, "m1", "2026-11-03T10:00:00Z"),
        stt_at(a, "m1", "m1-1", "2026-11-03T10:00:10Z", "nova-3", 60.0),
        llm_at(a, "m1", "m1-2", "2026-11-03T10:00:20Z", "gpt-4o-mini", 10_000, 2_000),
        tts_at(a, "m1", "m1-3", "2026-11-03T10:00:30Z", "elevenlabs", "eleven_flash_v2_5", 1_000),
        ended_at(a, "m1", "2026-11-03T10:02:00Z", 120.0),
        started_at(a, "m2", "2026-11-10T10:00:00Z"),
        stt_at(a, "m2", "m2-1", "2026-11-10T10:00:10Z", "nova-2", 30.0),
        llm_at(a, "m2", "m2-2", "2026-11-10T10:00:20Z", "gpt-4o-mini", 10_000, 2_000),
        ended_at(a, "m2", "2026-11-10T10:01:00Z", 60.0),
        started_at(a, "m3", "2026-11-18T10:00:00Z"),
        tts_at(a, "m3", "m3-1", "2026-11-18T10:00:10Z", "elevenlabs", "eleven_flash_v2_5", 200),
        ended_at(a, "m3", "2026-11-18T10:00:30Z", 30.0),
        started_at(a, "m4", "2026-11-25T10:00:00Z"),
        stt_at(a, "m4", "m4-1", "2026-11-25T10:00:10Z", "nova-3", 120.0),
        started_at(a, "m5", "2026-11-26T10:00:00Z"),
        started_at(a, "oct", "2026-10-31T23:59:00Z"),
        stt_at(a, "oct", "oct-1", "2026-11-01T00:00:30Z", "nova-3", 60.0),
        ended_at(a, "oct", "2026-11-01T00:01:00Z", 120.0),
        started_at("globex", "g1", "2026-11-05T10:00:00Z"),
        stt_at("globex", "g1", "g1-1", "2026-11-05T10:00:10Z", "nova-3", 60.0),
    ])
    .await;
}

#[tokio::test]
async fn a_month_summary_counts_the_calls_that_began_in_it_with_exact_cost_per_call_and_minute() {
    let app = spawn_app().await;
    send_november(&app).await;
    let month = cost(&app, "tenant_id=acme&month=2026-11").await;

    assert_eq!(month["tenant_id"], "acme", "{month}");
    assert_eq!(month["month"], "2026-11", "{month}");
    assert_eq!(month["from"], "2026-11-01T00:00:00.000Z", "{month}");
    assert_eq!(month["to"], "2026-12-01T00:00:00.000Z", "{month}");
    // 60 400 000 + 5 600 000 + 10 000 000 + 15 400 000 + 0 = 91 400 000
    assert_eq!(month["total"], json!({"usd": "0.0914", "nano_usd": 91_400_000}), "{month}");
    assert_eq!(month["calls"], 5, "{month}");
    assert_eq!(month["usage_lines"], 7, "{month}");
    assert_eq!(month["unpriced_lines"], 0, "{month}");
    // Ended calls: 120 s + 60 s + 30 s = 210 s = 3.5 min
    assert_eq!(month["minutes"], 3.5, "{month}");
    // Mean: 91 400 000 / 5 = 18 280 000
    assert_eq!(month["cost_per_call"]["mean"], amount(18_280_000), "{month}");
    // Sorted [0, 5.6M, 10M, 15.4M, 60.4M]: p50 at rank ⌊0.5 × 4⌋ = 2, p95 at ⌊0.95 × 4⌋ = 3
    assert_eq!(month["cost_per_call"]["p50"], amount(10_000_000), "{month}");
    assert_eq!(month["cost_per_call"]["p95"], amount(15_400_000), "{month}");
    // Ended calls' cost per minute: 76 000 000 × 60 s / 210 s = 21 714 285.71… → 21 714 286
    assert_eq!(month["cost_per_minute"], amount(21_714_286), "{month}");

    // stt: 7.7M + 2.9M + 15.4M; llm: 2.7M × 2; tts: 50M + 10M
    assert_eq!(
        groups(&month["by_component"]),
        owned(&[("llm", 5_400_000, 2), ("stt", 26_000_000, 3), ("tts", 60_000_000, 2)]),
        "{month}"
    );
    assert_eq!(
        groups(&month["by_provider"]),
        owned(&[("deepgram", 26_000_000, 3), ("elevenlabs", 60_000_000, 2), ("openai", 5_400_000, 2)]),
        "{month}"
    );
    assert_eq!(split_sum(&month["by_component"]), 91_400_000);
    assert_eq!(split_sum(&month["by_provider"]), 91_400_000);
    assert!(month.get("groups").is_none(), "no groups unless asked: {month}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_call_s_cost_belongs_to_the_month_of_its_first_event() {
    let app = spawn_app().await;
    send_november(&app).await;
    // `oct` began 2026-10-31T23:59Z; its usage at 00:00:30 on November 1st is October's.
    let october = cost(&app, "tenant_id=acme&month=2026-10").await;
    assert_eq!(october["calls"], 1, "{october}");
    // 60 s × $0.0077/60 s
    assert_eq!(october["total"], amount(7_700_000), "{october}");
    assert_eq!(october["minutes"], 2.0, "{october}");
    let december = cost(&app, "tenant_id=acme&month=2026-12").await;
    assert_eq!(december["calls"], 0, "{december}");
    assert_eq!(december["total"], amount(0), "{december}");
    assert_eq!(december["cost_per_call"]["mean"], Value::Null, "{december}");
    assert_eq!(december["cost_per_minute"], Value::Null, "{december}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_late_event_with_an_earlier_time_moves_the_call_to_the_month_it_now_begins_in() {
    let app = spawn_app().await;
    app.ingest_ok(&[stt_at("acme", "late", "l1", "2026-11-01T00:00:30Z", "nova-3", 60.0)]).await;
    assert_eq!(cost(&app, "tenant_id=acme&month=2026-11").await["calls"], 1);
    // The call.started, sent afterwards, is stamped a minute before midnight.
    app.ingest_ok(&[started_at("acme", "late", "2026-10-31T23:59:30Z")]).await;
    let november = cost(&app, "tenant_id=acme&month=2026-11").await;
    assert_eq!(november["calls"], 0, "{november}");
    assert_eq!(november["total"], amount(0), "{november}");
    let october = cost(&app, "tenant_id=acme&month=2026-10").await;
    assert_eq!(october["calls"], 1, "{october}");
    // 60 s × $0.0077/60 s
    assert_eq!(october["total"], amount(7_700_000), "{october}");
    assert_eq!(groups(&october["by_component"]), owned(&[("stt", 7_700_000, 1)]), "{october}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_month_summary_of_one_tenant_leaves_out_the_others() {
    let app = spawn_app().await;
    send_november(&app).await;
    let globex = cost(&app, "tenant_id=globex&month=2026-11").await;
    assert_eq!(globex["calls"], 1, "{globex}");
    assert_eq!(globex["total"], amount(7_700_000), "{globex}");
    // Without a tenant in open mode: everyone's, 91 400 000 + 7 700 000
    let everyone = cost(&app, "month=2026-11").await;
    assert_eq!(everyone["calls"], 6, "{everyone}");
    assert_eq!(everyone["total"], amount(99_100_000), "{everyone}");
    app.shutdown().await;
}

#[tokio::test]
async fn cost_groups_by_provider_component_model_and_day_and_each_split_adds_up_to_the_total() {
    let app = spawn_app().await;
    send_november(&app).await;
    let cases: [(&str, &[Group]); 4] = [
        ("provider", &[("deepgram", 26_000_000, 3), ("elevenlabs", 60_000_000, 2), ("openai", 5_400_000, 2)]),
        ("component", &[("llm", 5_400_000, 2), ("stt", 26_000_000, 3), ("tts", 60_000_000, 2)]),
        (
            "model",
            &[
                ("eleven_flash_v2_5", 60_000_000, 2),
                ("gpt-4o-mini", 5_400_000, 2),
                ("nova-2", 2_900_000, 1),
                ("nova-3", 23_100_000, 2),
            ],
        ),
        (
            "day",
            &[
                ("2026-11-03", 60_400_000, 3),
                ("2026-11-10", 5_600_000, 2),
                ("2026-11-18", 10_000_000, 1),
                ("2026-11-25", 15_400_000, 1),
            ],
        ),
    ];
    for (group_by, expected) in cases {
        let month = cost(&app, &format!("tenant_id=acme&month=2026-11&group_by={group_by}")).await;
        assert_eq!(month["group_by"], group_by, "{month}");
        assert_eq!(groups(&month["groups"]), owned(expected), "{group_by}: {month}");
        assert_eq!(split_sum(&month["groups"]), 91_400_000, "{group_by}: {month}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn cost_over_a_range_holds_the_calls_that_began_in_it() {
    let app = spawn_app().await;
    send_november(&app).await;
    let range =
        cost(&app, "tenant_id=acme&from=2026-11-01T00:00:00Z&to=2026-11-15T00:00:00Z&group_by=provider")
            .await;
    // m1 + m2: 60 400 000 + 5 600 000
    assert_eq!(range["total"], amount(66_000_000), "{range}");
    assert_eq!(range["calls"], 2, "{range}");
    assert!(range.get("month").is_none(), "{range}");
    // deepgram 7.7M + 2.9M; elevenlabs 50M; openai 2.7M × 2
    assert_eq!(
        groups(&range["groups"]),
        owned(&[("deepgram", 10_600_000, 2), ("elevenlabs", 50_000_000, 1), ("openai", 5_400_000, 2)]),
        "{range}"
    );
    assert_eq!(split_sum(&range["by_component"]), 66_000_000, "{range}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_group_by_is_answered_400() {
    let app = spawn_app().await;
    send_november(&app).await;
    for group_by in ["agent", "Provider", "days"] {
        let query = format!("/metrics/cost?tenant_id=acme&month=2026-11&group_by={group_by}");
        let (status, body) = app.get_json(&query, None).await;
        assert_error(status, &body, 400, "bad_request");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(group_by), "{message}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_month_that_is_not_yyyy_mm_is_answered_400() {
    let app = spawn_app().await;
    for month in ["2026-13", "2026-00", "november", "2026-11-05", "2026/11", "2026-11-"] {
        let (status, body) = app.get_json(&format!("/metrics/cost?tenant_id=acme&month={month}"), None).await;
        assert_error(status, &body, 400, "bad_request");
    }
    let (status, body) = app.get_json("/metrics/cost?tenant_id=acme&from=yesterday", None).await;
    assert_error(status, &body, 400, "bad_request");
    app.shutdown().await;
}

#[tokio::test]
async fn a_month_with_a_two_digit_year_is_answered_400_not_read_as_the_year_26() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/metrics/cost?tenant_id=acme&month=26-11", None).await;
    assert_error(status, &body, 400, "bad_request");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------- keys

#[tokio::test]
async fn a_tenant_s_read_key_never_sees_another_tenant_s_call_or_cost() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let read_acme = create_key(data_dir.path(), Role::Read, Some("acme")).await;
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app = spawn_app_in(data_dir, |_| {}).await;
    let mut globex_only = stt_at("globex", "g-only", "g2", "2026-11-20T09:00:05Z", "nova-3", 30.0);
    globex_only["trace_id"] = json!("globex-trace");
    let (status, report) = app
        .ingest(
            &[
                // The same call id in both tenants, with different usage.
                stt_at("acme", "shared", "a1", "2026-11-20T09:00:05Z", "nova-3", 60.0),
                stt_at("globex", "shared", "g1", "2026-11-20T09:00:05Z", "nova-3", 120.0),
                globex_only,
            ],
            admin.secret(),
        )
        .await;
    assert_eq!(status, 202, "{report}");

    let (status, body) = cost_as(&app, &read_acme, "call_id=g-only").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = cost_as(&app, &read_acme, "trace_id=globex-trace").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = cost_as(&app, &read_acme, "call_id=g-only&tenant_id=globex").await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = cost_as(&app, &read_acme, "month=2026-11&tenant_id=globex").await;
    assert_error(status, &body, 403, "forbidden");

    // acme's own `shared`: 60 s × $0.0077/60 s, not globex's 120 s
    let (status, body) = cost_as(&app, &read_acme, "call_id=shared").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant_id"], "acme", "{body}");
    assert_eq!(body["total"], amount(7_700_000), "{body}");
    let (status, month) = cost_as(&app, &read_acme, "month=2026-11").await;
    assert_eq!(status, 200, "{month}");
    assert_eq!(month["tenant_id"], "acme", "{month}");
    assert_eq!(month["calls"], 1, "{month}");
    assert_eq!(month["total"], amount(7_700_000), "{month}");

    // The admin key reads globex's: 120 s + 30 s at $0.0077/60 s = $0.0154 + $0.00385
    let (status, body) = cost_as(&app, &admin, "call_id=g-only&tenant_id=globex").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], amount(3_850_000), "{body}");
    let (status, month) = cost_as(&app, &admin, "month=2026-11&tenant_id=globex").await;
    assert_eq!(status, 200, "{month}");
    assert_eq!(month["total"], amount(19_250_000), "{month}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_range_of_bare_dates_runs_from_the_first_day_s_midnight_through_the_whole_last_day() {
    let app = spawn_app().await;
    send_november(&app).await;
    // m1 (11-03) and m2 (11-10); m3 began on the 18th, `oct` on October 31st.
    let to_the_17th = cost(&app, "tenant_id=acme&from=2026-11-01&to=2026-11-17&group_by=model").await;
    assert_eq!(to_the_17th["calls"], 2, "{to_the_17th}");
    assert_eq!(to_the_17th["from"], "2026-11-01T00:00:00.000Z", "{to_the_17th}");
    assert_eq!(to_the_17th["to"], "2026-11-18T00:00:00.000Z", "{to_the_17th}");
    let through_the_18th = cost(&app, "tenant_id=acme&from=2026-11-01&to=2026-11-18").await;
    assert_eq!(through_the_18th["calls"], 3, "the call of the 18th is in: {through_the_18th}");
    for path in ["/metrics/calls", "/metrics/latency", "/metrics/health", "/alerts/history"] {
        let (status, body) = app.get_json(&format!("{path}?from=2026-11-01&to=2026-11-15"), None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_call_id_in_two_tenants_asked_without_a_tenant_is_a_409_naming_both() {
    let app = spawn_app().await;
    app.ingest_ok(&[
        started_at("acme", "shared", "2026-11-03T10:00:00Z"),
        started_at("globex", "shared", "2026-11-04T10:00:00Z"),
        stt_at("globex", "shared", "g-1", "2026-11-04T10:00:10Z", "nova-3", 60.0),
    ])
    .await;
    let (status, body) = app.get_json("/metrics/cost?call_id=shared", None).await;
    assert_error(status, &body, 409, "conflict");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("acme, globex") && message.contains("tenant_id"), "{message}");
    let globex = cost(&app, "call_id=shared&tenant_id=globex").await;
    assert_eq!(
        (globex["tenant_id"].as_str(), globex["lines"].as_array().map(Vec::len)),
        (Some("globex"), Some(1))
    );
    let acme = cost(&app, "call_id=shared&tenant_id=acme").await;
    assert_eq!(acme["tenant_id"], "acme", "{acme}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_call_id_in_one_tenant_is_found_without_naming_it() {
    let app = spawn_app().await;
    app.ingest_ok(&[started_at("globex", "only-here", "2026-11-04T10:00:00Z")]).await;
    assert_eq!(cost(&app, "call_id=only-here").await["tenant_id"], "globex");
    app.shutdown().await;
}
