//! Property: whatever the calls, a month's cost is the sum of the totals of exactly the
//! calls whose first event falls in it, and each split of it adds up to it.
//!
//! Each case posts random calls of a fresh tenant to one server over HTTP, with first
//! events in October 2026 and a few days either side, then reads every call and the month.

use crate::helpers::{spawn_app, TestApp, NOW_MS};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use voicemon_core::pricing::{Costing, PriceBook};
use voicemon_core::validate::parse_event;
use voicemon_core::window::{format_time, parse_time};

/// Posting over HTTP makes each case slow-ish; 16 random months are plenty.
const CASES: u32 = 16;
const MINUTE_MS: i64 = 60_000;

fn ms(time: &str) -> i64 {
    parse_time(time).unwrap_or_else(|err| panic!("{time}: {err:?}"))
}

/// One usage line, with models the shipped book prices and a few it does not.
#[derive(Debug, Clone)]
enum Usage {
    Stt { provider: &'static str, model: Option<&'static str>, audio_ms: u32 },
    Llm { model: &'static str, input: u64, cached: u64, output: u64 },
    Tts { provider: &'static str, model: &'static str, characters: u64 },
}

#[derive(Debug, Clone)]
struct Call {
    /// When the call begins, in unix ms.
    start_ms: i64,
    /// Whether a `call.started` is sent at `start_ms`.
    announced: bool,
    /// Usage lines, each at an offset from `start_ms` in seconds (some before it).
    lines: Vec<(i64, Usage)>,
    /// Sends `call.ended` with this duration, `duration_s` after `start_ms`.
    duration_s: Option<u32>,
}

fn usage() -> impl Strategy<Value = Usage> {
    let stt = (
        prop::sample::select(vec![
            ("deepgram", Some("nova-3")),
            ("deepgram", Some("nova-2")),
            ("deepgram", Some("base")), // unpriced
            ("assemblyai", None),
        ]),
        0u32..600_000,
    )
        .prop_map(|((provider, model), audio_ms)| Usage::Stt { provider, model, audio_ms });
    let llm = (
        prop::sample::select(vec!["gpt-4o", "gpt-4o-mini-2024-07-18", "gpt-9"]),
        0u64..200_000,
        0.0f64..=1.0,
        0u64..5_000,
    )
        .prop_map(|(model, input, cached_share, output)| Usage::Llm {
            model,
            input,
            cached: (input as f64 * cached_share) as u64,
            output,
        });
    let tts = (
        prop::sample::select(vec![
            ("cartesia", "sonic-2"),
            ("elevenlabs", "eleven_flash_v2_5"),
            ("elevenlabs", "eleven_multilingual_v2"),
            ("playht", "play3"), // unpriced
        ]),
        0u64..5_000,
    )
        .prop_map(|((provider, model), characters)| Usage::Tts { provider, model, characters });
    prop_oneof![stt, llm, tts]
}

/// A start anywhere from 2026-09-28 to 2026-11-03, or within three hours of the month's
/// first or last instant, where attribution is easiest to get wrong.
fn start_ms() -> impl Strategy<Value = i64> {
    let from = ms("2026-09-28T00:00:00Z");
    let to = ms("2026-11-03T00:00:00Z");
    let edges = [ms("2026-10-01T00:00:00Z"), ms("2026-11-01T00:00:00Z")];
    prop_oneof![
        (from..to),
        (prop::sample::select(edges.to_vec()), -3 * 60 * MINUTE_MS..3 * 60 * MINUTE_MS)
            .prop_map(|(edge, offset)| edge + offset),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    (
        start_ms(),
        any::<bool>(),
        prop::collection::vec((-600i64..7_200, usage()), 0..5),
        prop::option::of(1u32..3_600),
    )
        .prop_map(|(start_ms, announced, lines, duration_s)| Call {
            start_ms,
            announced,
            lines,
            duration_s,
        })
}

/// The wire events of `call`, in the order they are sent.
fn events(tenant: &str, call_id: &str, call: &Call) -> Vec<Value> {
    let envelope = |kind: &str, n: usize, at_ms: i64| {
        json!({"id": format!("{call_id}-{n}"), "type": kind, "timestamp": format_time(at_ms),
               "tenant_id": tenant, "call_id": call_id})
    };
    let mut events = Vec::new();
    if call.announced {
        events.push(envelope("call.started", 0, call.start_ms));
    }
    for (n, (offset_s, usage)) in call.lines.iter().enumerate() {
        let at_ms = call.start_ms + offset_s * 1_000;
        let (kind, fields) = match usage {
            Usage::Stt { provider, model, audio_ms } => (
                "stt.usage",
                json!({"provider": provider, "model": model, "audio_seconds": *audio_ms as f64 / 1_000.0}),
            ),
            Usage::Llm { model, input, cached, output } => (
                "llm.usage",
                json!({"provider": "openai", "model": model, "input_tokens": input,
                       "cached_input_tokens": cached, "output_tokens": output}),
            ),
            Usage::Tts { provider, model, characters } => {
                ("tts.usage", json!({"provider": provider, "model": model, "characters": characters}))
            }
        };
        let mut event = envelope(kind, n + 1, at_ms);
        for (name, value) in fields.as_object().expect("an object") {
            if !value.is_null() {
                event[name] = value.clone();
            }
        }
        events.push(event);
    }
    if let Some(duration_s) = call.duration_s {
        let mut ended = envelope("call.ended", 99, call.start_ms + i64::from(duration_s) * 1_000);
        ended["status"] = json!("completed");
        ended["duration_s"] = json!(duration_s);
        events.push(ended);
    }
    events
}

/// What one call should come to, worked out from its events with the core's price book.
#[derive(Debug, Default)]
struct Expected {
    first_ms: i64,
    total: i64,
    lines: u64,
    unpriced: u64,
    by_component: BTreeMap<String, i64>,
    by_provider: BTreeMap<String, i64>,
}

fn expected(book: &PriceBook, events: &[Value]) -> Expected {
    let mut expected = Expected { first_ms: i64::MAX, ..Expected::default() };
    for wire in events {
        let event = parse_event(&wire.to_string(), NOW_MS).unwrap_or_else(|err| panic!("{wire}: {err}"));
        expected.first_ms = expected.first_ms.min(event.envelope.timestamp_ms);
        let cost = match book.cost(&event) {
            Costing::NotUsage => continue,
            Costing::Priced(line) => line.cost.0,
            Costing::Unpriced { .. } => {
                expected.unpriced += 1;
                0
            }
        };
        expected.lines += 1;
        expected.total += cost;
        let component = wire["type"].as_str().and_then(|t| t.strip_suffix(".usage")).expect("a usage type");
        *expected.by_component.entry(component.to_owned()).or_default() += cost;
        let provider = wire["provider"].as_str().expect("a provider");
        *expected.by_provider.entry(provider.to_owned()).or_default() += cost;
    }
    expected
}

fn split(answer: &Value, name: &str) -> BTreeMap<String, i64> {
    answer[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} in {answer}"))
        .iter()
        .map(|group| {
            (
                group["key"].as_str().expect("a key").to_owned(),
                group["cost"]["nano_usd"].as_i64().expect("a cost"),
            )
        })
        .collect()
}

async fn get(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get_json(&format!("/metrics/cost?{query}"), None).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

async fn check_month(app: &TestApp, book: &PriceBook, tenant: &str, calls: &[Call]) {
    let (october_from, october_to) = (ms("2026-10-01T00:00:00Z"), ms("2026-11-01T00:00:00Z"));
    let mut everything = Vec::new();
    let mut in_october = Vec::new();
    for (n, call) in calls.iter().enumerate() {
        let call_id = format!("call-{n}");
        let sent = events(tenant, &call_id, call);
        if sent.is_empty() {
            continue;
        }
        let expected = expected(book, &sent);
        everything.extend(sent);
        if (october_from..october_to).contains(&expected.first_ms) {
            in_october.push((call_id, expected));
        }
    }
    if !everything.is_empty() {
        app.ingest_ok(&everything).await;
    }

    let mut sum_of_calls = 0;
    let (mut lines, mut unpriced) = (0, 0);
    let (mut by_component, mut by_provider) = (BTreeMap::new(), BTreeMap::new());
    for (call_id, expected) in &in_october {
        let answer = get(app, &format!("tenant_id={tenant}&call_id={call_id}")).await;
        let total = answer["total"]["nano_usd"].as_i64().unwrap_or_else(|| panic!("a total: {answer}"));
        assert_eq!(total, expected.total, "{call_id}: {answer}");
        assert_eq!(answer["unpriced_lines"], expected.unpriced, "{call_id}: {answer}");
        sum_of_calls += total;
        lines += expected.lines;
        unpriced += expected.unpriced;
        for (key, cost) in &expected.by_component {
            *by_component.entry(key.clone()).or_insert(0) += cost;
        }
        for (key, cost) in &expected.by_provider {
            *by_provider.entry(key.clone()).or_insert(0) += cost;
        }
    }

    let month = get(app, &format!("tenant_id={tenant}&month=2026-10")).await;
    assert_eq!(month["total"]["nano_usd"], sum_of_calls, "{month}");
    assert_eq!(month["calls"], in_october.len(), "{month}");
    assert_eq!(month["usage_lines"], lines, "{month}");
    assert_eq!(month["unpriced_lines"], unpriced, "{month}");
    let (components, providers) = (split(&month, "by_component"), split(&month, "by_provider"));
    assert_eq!(components.values().sum::<i64>(), sum_of_calls, "by_component adds up: {month}");
    assert_eq!(providers.values().sum::<i64>(), sum_of_calls, "by_provider adds up: {month}");
    assert_eq!(components, by_component, "{month}");
    assert_eq!(providers, by_provider, "{month}");
}

#[test]
fn a_month_total_is_the_sum_of_the_calls_that_began_in_it_and_every_split_adds_up_to_it() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let app = runtime.block_on(spawn_app());
    let book = PriceBook::with_overrides(&[], "shipped").expect("the shipped book loads");
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let case = AtomicUsize::new(0);
    let outcome = runner.run(&prop::collection::vec(call(), 1..8), |calls| {
        // A fresh tenant per case (shrinking included): no case sees another's calls.
        let tenant = format!("tenant-{}", case.fetch_add(1, Ordering::SeqCst));
        runtime.block_on(check_month(&app, &book, &tenant, &calls));
        Ok(())
    });
    runtime.block_on(app.shutdown());
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
