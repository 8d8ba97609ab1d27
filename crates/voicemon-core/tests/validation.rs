//! Validation of one event: data-driven `check(json, expected)` cases.
//!
//! Each event is built from the minimal valid example of its type, changed as the case
//! needs, and checked against what validation must answer: accepted as that type, or
//! rejected naming the field with a message that says what is wrong.

use serde_json::{json, Map, Value};
use voicemon_core::event::{Body, BreakerState, CallStatus, EventKind, PipelineComponent};
use voicemon_core::validate::{
    parse_event, EventError, Reason, MAX_ECHOED_FIELD, MAX_ECHOED_MESSAGE, NOT_JSON,
};
use EventKind::*;

/// voicemon's clock in every case: 2026-11-27T12:00:00Z.
const NOW_MS: i64 = 1_795_780_800_000;
/// One minute before NOW_MS, when the minimal examples happen.
const ONE_MINUTE_AGO: &str = "2026-11-27T11:59:00Z";

#[derive(Debug)]
enum Expected {
    Accepted(EventKind),
    /// Rejected naming `field`, with a message containing `mentioning` (case-insensitive).
    Rejected {
        field: &'static str,
        mentioning: &'static str,
    },
    /// Rejected as a whole (no field), with a message containing `mentioning`.
    RejectedWhole {
        mentioning: &'static str,
    },
}
use Expected::*;

fn check(json: &str, expected: Expected) {
    let outcome = parse_event(json, NOW_MS);
    match (&expected, &outcome) {
        (Accepted(kind), Ok(event)) => {
            assert_eq!(event.kind(), *kind, "{json}");
        }
        (Rejected { field, mentioning }, Err(error)) => {
            assert_eq!(error.field.as_deref(), Some(*field), "{json}\n{error:?}");
            assert_message_mentions(error, mentioning, json);
        }
        (RejectedWhole { mentioning }, Err(error)) => {
            assert_eq!(error.field, None, "{json}\n{error:?}");
            assert_message_mentions(error, mentioning, json);
        }
        _ => panic!("{json}\nexpected {expected:?}\n     got {outcome:?}"),
    }
}

fn assert_message_mentions(error: &EventError, mentioning: &str, json: &str) {
    assert!(!error.message.trim().is_empty(), "{json}: empty message");
    assert!(
        error.message.to_lowercase().contains(&mentioning.to_lowercase()),
        "{json}: message `{}` does not mention `{mentioning}`",
        error.message
    );
}

// ---------------------------------------------------------------------------------------
// Building events.

/// The smallest valid event of each type. Every field in it is required.
fn minimal(kind: EventKind) -> Value {
    let mut event = json!({
        "id": format!("evt-{}", kind.wire_name()),
        "type": kind.wire_name(),
        "timestamp": ONE_MINUTE_AGO,
        "tenant_id": "acme",
    });
    if kind.is_call_scoped() {
        event["call_id"] = json!("call-1");
    }
    let fields = match kind {
        EventKind::CallStarted => json!({}),
        EventKind::CallEnded => json!({"duration_s": 184.5, "status": "completed"}),
        EventKind::TurnCompleted => json!({"turn_index": 0, "e2e_ms": 850.0}),
        EventKind::SttUsage => json!({"provider": "deepgram", "audio_seconds": 3.2}),
        EventKind::LlmUsage => json!({
            "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 1200, "output_tokens": 80,
        }),
        EventKind::TtsUsage => json!({"provider": "cartesia", "characters": 140}),
        EventKind::ProviderRequest => json!({"provider": "openai", "component": "llm", "ok": true}),
        EventKind::CircuitBreakerChanged => json!({"breaker": "openai-llm", "state": "open"}),
        EventKind::WorkerHeartbeat => json!({
            "worker_id": "worker-7",
            "memory_used_bytes": 1_500_000_000u64,
            "memory_limit_bytes": 4_000_000_000u64,
            "cpu_percent": 85.0,
            "active_calls": 3,
        }),
    };
    merge(&mut event, fields);
    event
}

fn merge(event: &mut Value, changes: Value) {
    let Value::Object(changes) = changes else { panic!("changes must be an object") };
    let object: &mut Map<String, Value> = event.as_object_mut().unwrap();
    object.extend(changes);
}

/// The minimal event of `kind` with `changes` set on it.
fn event(kind: EventKind, changes: Value) -> String {
    let mut event = minimal(kind);
    merge(&mut event, changes);
    event.to_string()
}

/// The minimal event of `kind` without `field`.
fn without(kind: EventKind, field: &str) -> String {
    let mut event = minimal(kind);
    event.as_object_mut().unwrap().remove(field).expect("field is in the minimal example");
    event.to_string()
}

fn at(timestamp: &str) -> Value {
    json!({ "timestamp": timestamp })
}

// ---------------------------------------------------------------------------------------
// Accepted.

#[test]
fn every_event_type_is_accepted_with_its_minimal_fields() {
    for kind in EventKind::ALL {
        check(&minimal(kind).to_string(), Accepted(kind));
    }
}

#[test]
fn removing_any_field_of_a_minimal_event_is_rejected_naming_that_field() {
    for kind in EventKind::ALL {
        let fields: Vec<String> = minimal(kind).as_object().unwrap().keys().cloned().collect();
        for field in fields {
            let outcome = parse_event(&without(kind, &field), NOW_MS);
            let error = outcome.expect_err(&format!("{} without {field}", kind.wire_name()));
            assert_eq!(error.field.as_deref(), Some(field.as_str()), "{} without {field}", kind.wire_name());
            assert!(error.message.contains("required"), "{error:?}");
        }
    }
}

#[test]
fn an_accepted_turn_carries_its_values_and_time_in_unix_milliseconds() {
    let json = event(
        TurnCompleted,
        json!({"timestamp": "2026-11-27T11:59:30.250Z", "e2e_ms": 912.5, "stt_ms": 120.0, "interrupted": true}),
    );
    let parsed = parse_event(&json, NOW_MS).unwrap();
    assert_eq!(parsed.envelope.timestamp_ms, NOW_MS - 29_750);
    assert_eq!(parsed.envelope.tenant_id, "acme");
    assert_eq!(parsed.envelope.call_id.as_deref(), Some("call-1"));
    let Body::TurnCompleted(turn) = parsed.body else { panic!("{:?}", parsed.body) };
    assert_eq!(turn.e2e_ms, 912.5);
    assert_eq!(turn.stt_ms, Some(120.0));
    assert_eq!(turn.eou_ms, None);
    assert_eq!(turn.interrupted, Some(true));
}

#[test]
fn a_timestamp_with_an_offset_is_the_same_instant_in_utc() {
    let parsed = parse_event(&event(CallStarted, at("2026-11-27T12:59:00+01:00")), NOW_MS).unwrap();
    assert_eq!(parsed.envelope.timestamp_ms, NOW_MS - 60_000);
}

#[test]
fn typed_enums_are_read_from_their_wire_names() {
    let ended = parse_event(&minimal(CallEnded).to_string(), NOW_MS).unwrap();
    assert!(matches!(ended.body, Body::CallEnded(ref c) if c.status == CallStatus::Completed));
    let breaker = parse_event(&event(CircuitBreakerChanged, json!({"state": "half_open"})), NOW_MS).unwrap();
    assert!(matches!(breaker.body, Body::CircuitBreakerChanged(ref b) if b.state == BreakerState::HalfOpen));
    let request = parse_event(&minimal(ProviderRequest).to_string(), NOW_MS).unwrap();
    assert!(
        matches!(request.body, Body::ProviderRequest(ref r) if r.component == PipelineComponent::Llm && r.ok)
    );
}

#[test]
fn text_is_trimmed_and_channels_are_lower_cased() {
    let parsed =
        parse_event(&event(CallStarted, json!({"tenant_id": "  acme ", "channel": "PHONE"})), NOW_MS)
            .unwrap();
    assert_eq!(parsed.envelope.tenant_id, "acme");
    assert!(matches!(parsed.body, Body::CallStarted(ref c) if c.channel.as_deref() == Some("phone")));
}

#[test]
fn optional_fields_of_each_type_are_accepted() {
    let cases = [
        event(
            CallStarted,
            json!({"channel": "sip", "agent_id": "support-bot", "trace_id": "t1", "objective": "booking"}),
        ),
        event(CallEnded, json!({"ended_reason": "user hung up", "ended_by": "user"})),
        event(
            TurnCompleted,
            json!({"stt_ms": 140.0, "eou_ms": 200.0, "llm_ttft_ms": 310.0, "tts_ttfb_ms": 95.0, "interrupted": false, "tool_calls": 2}),
        ),
        event(SttUsage, json!({"model": "nova-3", "latency_ms": 140.0})),
        event(
            LlmUsage,
            json!({"cached_input_tokens": 1000, "audio_input_tokens": 200, "audio_output_tokens": 80, "ttft_ms": 310.0}),
        ),
        event(TtsUsage, json!({"model": "sonic-2", "voice": "katie", "audio_seconds": 4.0, "ttfb_ms": 95.0})),
        event(
            ProviderRequest,
            json!({"ok": false, "error": "http_429", "latency_ms": 30.0, "call_id": "call-1"}),
        ),
        event(WorkerHeartbeat, json!({"attributes": {"region": "eu-west-1"}})),
    ];
    let kinds = [
        CallStarted,
        CallEnded,
        TurnCompleted,
        SttUsage,
        LlmUsage,
        TtsUsage,
        ProviderRequest,
        WorkerHeartbeat,
    ];
    for (json, kind) in cases.iter().zip(kinds) {
        check(json, Accepted(kind));
    }
}

// ---------------------------------------------------------------------------------------
// Required fields.

#[test]
fn turn_without_e2e_ms_is_rejected_naming_the_field() {
    check(&without(TurnCompleted, "e2e_ms"), Rejected { field: "e2e_ms", mentioning: "required" });
}

#[test]
fn e2e_ms_given_as_null_is_rejected_as_missing() {
    check(
        &event(TurnCompleted, json!({"e2e_ms": null})),
        Rejected { field: "e2e_ms", mentioning: "required" },
    );
}

#[test]
fn blank_text_counts_as_missing() {
    check(
        &event(CallStarted, json!({"tenant_id": "   "})),
        Rejected { field: "tenant_id", mentioning: "required" },
    );
    check(&event(SttUsage, json!({"provider": ""})), Rejected { field: "provider", mentioning: "required" });
}

#[test]
fn call_scoped_types_without_call_id_are_rejected_naming_call_id() {
    for kind in EventKind::ALL.into_iter().filter(|k| k.is_call_scoped()) {
        check(&without(kind, "call_id"), Rejected { field: "call_id", mentioning: "required" });
        check(&event(kind, json!({"call_id": " "})), Rejected { field: "call_id", mentioning: "required" });
    }
}

#[test]
fn types_that_are_not_call_scoped_need_no_call_id() {
    for kind in [ProviderRequest, CircuitBreakerChanged, WorkerHeartbeat] {
        assert!(!kind.is_call_scoped());
        assert!(minimal(kind).get("call_id").is_none());
        check(&minimal(kind).to_string(), Accepted(kind));
    }
}

// ---------------------------------------------------------------------------------------
// Latencies.

#[test]
fn negative_latencies_are_rejected_naming_the_field() {
    let cases = [
        (event(TurnCompleted, json!({"e2e_ms": -1.0})), "e2e_ms"),
        (event(TurnCompleted, json!({"stt_ms": -0.5})), "stt_ms"),
        (event(TurnCompleted, json!({"eou_ms": -3})), "eou_ms"),
        (event(TurnCompleted, json!({"llm_ttft_ms": -10})), "llm_ttft_ms"),
        (event(TurnCompleted, json!({"tts_ttfb_ms": -10})), "tts_ttfb_ms"),
        (event(SttUsage, json!({"latency_ms": -1})), "latency_ms"),
        (event(LlmUsage, json!({"ttft_ms": -1})), "ttft_ms"),
        (event(TtsUsage, json!({"ttfb_ms": -1})), "ttfb_ms"),
        (event(ProviderRequest, json!({"latency_ms": -1})), "latency_ms"),
    ];
    for (json, field) in cases {
        check(&json, Rejected { field, mentioning: "negative" });
    }
}

#[test]
fn latencies_over_ten_minutes_are_rejected_as_probably_the_wrong_unit() {
    let cases = [
        (event(TurnCompleted, json!({"e2e_ms": 600_000.5})), "e2e_ms"),
        (event(TurnCompleted, json!({"e2e_ms": 850_000_000.0})), "e2e_ms"),
        (event(TurnCompleted, json!({"llm_ttft_ms": 3_600_000})), "llm_ttft_ms"),
        (event(LlmUsage, json!({"ttft_ms": 700_000})), "ttft_ms"),
        (event(ProviderRequest, json!({"latency_ms": 1e9})), "latency_ms"),
    ];
    for (json, field) in cases {
        check(&json, Rejected { field, mentioning: "10 minutes" });
    }
}

#[test]
fn latencies_of_zero_and_of_exactly_ten_minutes_are_accepted() {
    check(&event(TurnCompleted, json!({"e2e_ms": 0})), Accepted(TurnCompleted));
    check(&event(TurnCompleted, json!({"e2e_ms": 600_000})), Accepted(TurnCompleted));
}

#[test]
fn durations_that_are_negative_or_over_a_day_are_rejected() {
    check(
        &event(CallEnded, json!({"duration_s": -1})),
        Rejected { field: "duration_s", mentioning: "negative" },
    );
    check(
        &event(CallEnded, json!({"duration_s": 90_000})),
        Rejected { field: "duration_s", mentioning: "24 hours" },
    );
    check(
        &event(SttUsage, json!({"audio_seconds": -2})),
        Rejected { field: "audio_seconds", mentioning: "negative" },
    );
    check(
        &event(TtsUsage, json!({"audio_seconds": 1e7})),
        Rejected { field: "audio_seconds", mentioning: "24 hours" },
    );
}

// ---------------------------------------------------------------------------------------
// Timestamps.

#[test]
fn timestamps_more_than_five_minutes_in_the_future_are_rejected() {
    check(
        &event(TurnCompleted, at("2026-11-27T12:05:01Z")),
        Rejected { field: "timestamp", mentioning: "5 minutes" },
    );
    check(
        &event(TurnCompleted, at("2026-11-27T12:05:00.001Z")),
        Rejected { field: "timestamp", mentioning: "5 minutes" },
    );
    check(
        &event(TurnCompleted, at("2026-11-28T12:00:00Z")),
        Rejected { field: "timestamp", mentioning: "clock" },
    );
}

#[test]
fn timestamps_up_to_five_minutes_ahead_are_accepted_for_clock_drift() {
    check(&event(TurnCompleted, at("2026-11-27T12:05:00Z")), Accepted(TurnCompleted));
    check(&event(TurnCompleted, at("2026-11-27T12:03:00Z")), Accepted(TurnCompleted));
}

#[test]
fn timestamps_before_2020_are_rejected() {
    check(
        &event(CallStarted, at("2019-12-31T23:59:59Z")),
        Rejected { field: "timestamp", mentioning: "2020" },
    );
    check(
        &event(CallStarted, at("1970-01-01T00:00:00Z")),
        Rejected { field: "timestamp", mentioning: "2020" },
    );
}

#[test]
fn timestamps_that_are_not_rfc3339_are_rejected_quoting_them() {
    for text in ["1795780740", "2026-11-27 11:59:00", "yesterday", "2026-11-27T11:59:00", "27/11/2026 11:59"]
    {
        check(&event(CallStarted, at(text)), Rejected { field: "timestamp", mentioning: "RFC 3339" });
        let error = parse_event(&event(CallStarted, at(text)), NOW_MS).unwrap_err();
        assert!(error.message.contains(text), "{error:?}");
    }
}

#[test]
fn a_timestamp_given_as_a_number_is_rejected_naming_the_field() {
    check(
        &event(CallStarted, json!({"timestamp": 1_795_780_740})),
        Rejected { field: "timestamp", mentioning: "invalid type" },
    );
}

// ---------------------------------------------------------------------------------------
// Types and fields.

#[test]
fn an_unknown_type_is_rejected_listing_the_known_ones() {
    let json = event(CallStarted, json!({"type": "call.paused"}));
    check(&json, Rejected { field: "type", mentioning: "call.paused" });
    check(&json, Rejected { field: "type", mentioning: "turn.completed" });
    check(&json, Rejected { field: "type", mentioning: "worker.heartbeat" });
}

#[test]
fn type_names_are_case_sensitive() {
    check(
        &event(CallStarted, json!({"type": "Call.Started"})),
        Rejected { field: "type", mentioning: "unknown type" },
    );
}

#[test]
fn an_unknown_field_is_rejected_naming_it_and_pointing_to_attributes() {
    check(
        &event(TurnCompleted, json!({"latency": 850})),
        Rejected { field: "latency", mentioning: "attributes" },
    );
    check(
        &event(CallStarted, json!({"customer_tier": "gold"})),
        Rejected { field: "customer_tier", mentioning: "unknown field" },
    );
}

#[test]
fn an_unknown_field_is_named_even_when_the_type_is_missing() {
    let json = r#"{"id":"e1","tenant_id":"acme","e2e":850}"#;
    check(json, Rejected { field: "e2e", mentioning: "unknown field" });
}

#[test]
fn a_field_of_another_type_is_rejected_naming_it_and_the_type() {
    let cases = [
        (event(TurnCompleted, json!({"characters": 140})), "characters", "turn.completed"),
        (event(TurnCompleted, json!({"provider": "openai"})), "provider", "turn.completed"),
        (event(CallStarted, json!({"e2e_ms": 850})), "e2e_ms", "call.started"),
        (event(SttUsage, json!({"input_tokens": 10})), "input_tokens", "stt.usage"),
        (event(TtsUsage, json!({"latency_ms": 10})), "latency_ms", "tts.usage"),
        (event(WorkerHeartbeat, json!({"provider": "openai"})), "provider", "worker.heartbeat"),
        (event(CircuitBreakerChanged, json!({"status": "completed"})), "status", "circuit_breaker.changed"),
    ];
    for (json, field, kind) in cases {
        check(&json, Rejected { field, mentioning: kind });
    }
}

#[test]
fn enum_fields_with_unknown_values_are_rejected_listing_the_known_ones() {
    check(
        &event(CallEnded, json!({"status": "done"})),
        Rejected { field: "status", mentioning: "completed" },
    );
    check(
        &event(CallEnded, json!({"ended_by": "caller"})),
        Rejected { field: "ended_by", mentioning: "user" },
    );
    check(
        &event(ProviderRequest, json!({"component": "vad"})),
        Rejected { field: "component", mentioning: "stt" },
    );
    check(
        &event(CircuitBreakerChanged, json!({"state": "half-open"})),
        Rejected { field: "state", mentioning: "half_open" },
    );
}

// ---------------------------------------------------------------------------------------
// Contradictions.

#[test]
fn cached_input_tokens_above_input_tokens_are_rejected() {
    check(
        &event(LlmUsage, json!({"input_tokens": 100, "cached_input_tokens": 101})),
        Rejected { field: "cached_input_tokens", mentioning: "input_tokens" },
    );
}

#[test]
fn parts_of_token_counts_may_equal_the_whole() {
    check(
        &event(LlmUsage, json!({"input_tokens": 100, "cached_input_tokens": 100, "audio_input_tokens": 100})),
        Accepted(LlmUsage),
    );
}

#[test]
fn audio_tokens_above_their_whole_are_rejected() {
    check(
        &event(LlmUsage, json!({"input_tokens": 10, "audio_input_tokens": 11})),
        Rejected { field: "audio_input_tokens", mentioning: "input_tokens" },
    );
    check(
        &event(LlmUsage, json!({"output_tokens": 10, "audio_output_tokens": 11})),
        Rejected { field: "audio_output_tokens", mentioning: "output_tokens" },
    );
}

#[test]
fn a_successful_request_with_an_error_is_rejected() {
    check(
        &event(ProviderRequest, json!({"ok": true, "error": "timeout"})),
        Rejected { field: "error", mentioning: "ok" },
    );
}

#[test]
fn a_failed_request_with_or_without_an_error_is_accepted() {
    check(&event(ProviderRequest, json!({"ok": false, "error": "timeout"})), Accepted(ProviderRequest));
    check(&event(ProviderRequest, json!({"ok": false})), Accepted(ProviderRequest));
}

#[test]
fn heartbeats_with_impossible_resources_are_rejected() {
    check(
        &event(WorkerHeartbeat, json!({"memory_limit_bytes": 0})),
        Rejected { field: "memory_limit_bytes", mentioning: "above 0" },
    );
    check(
        &event(WorkerHeartbeat, json!({"cpu_percent": -1.0})),
        Rejected { field: "cpu_percent", mentioning: "percent" },
    );
    check(
        &event(WorkerHeartbeat, json!({"cpu_percent": 6400.5})),
        Rejected { field: "cpu_percent", mentioning: "6400" },
    );
}

// ---------------------------------------------------------------------------------------
// Wrong JSON.

#[test]
fn a_number_given_as_a_string_is_rejected_naming_the_field() {
    check(
        &event(TurnCompleted, json!({"e2e_ms": "850"})),
        Rejected { field: "e2e_ms", mentioning: "invalid type" },
    );
    check(
        &event(LlmUsage, json!({"input_tokens": "1200"})),
        Rejected { field: "input_tokens", mentioning: "invalid type" },
    );
}

#[test]
fn counts_that_are_negative_or_fractional_are_rejected_naming_the_field() {
    check(
        &event(LlmUsage, json!({"output_tokens": -1})),
        Rejected { field: "output_tokens", mentioning: "-1" },
    );
    check(
        &event(TurnCompleted, json!({"turn_index": 1.5})),
        Rejected { field: "turn_index", mentioning: "1.5" },
    );
    check(
        &event(TurnCompleted, json!({"turn_index": -1})),
        Rejected { field: "turn_index", mentioning: "-1" },
    );
    check(
        &event(TtsUsage, json!({"characters": true})),
        Rejected { field: "characters", mentioning: "invalid type" },
    );
}

#[test]
fn a_boolean_given_as_a_string_is_rejected_naming_the_field() {
    check(
        &event(ProviderRequest, json!({"ok": "true"})),
        Rejected { field: "ok", mentioning: "invalid type" },
    );
}

#[test]
fn a_non_text_attribute_is_rejected_naming_its_key() {
    check(
        &event(CallStarted, json!({"attributes": {"tier": 1}})),
        Rejected { field: "attributes.tier", mentioning: "invalid type" },
    );
}

#[test]
fn too_many_or_too_long_attributes_are_rejected() {
    let many: Map<String, Value> = (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    check(
        &event(CallStarted, json!({"attributes": many})),
        Rejected { field: "attributes", mentioning: "32" },
    );
    let long_value = "x".repeat(257);
    check(
        &event(CallStarted, json!({"attributes": {"note": long_value}})),
        Rejected { field: "attributes.note", mentioning: "256" },
    );
}

#[test]
fn overlong_or_control_character_text_is_rejected() {
    check(&event(CallStarted, json!({"id": "e".repeat(129)})), Rejected { field: "id", mentioning: "128" });
    check(
        &event(CallStarted, json!({"agent_id": "bot\u{0007}"})),
        Rejected { field: "agent_id", mentioning: "control" },
    );
}

#[test]
fn text_that_is_not_json_is_rejected_as_a_whole() {
    check("{\"id\": ", RejectedWhole { mentioning: NOT_JSON });
    check("not json", RejectedWhole { mentioning: NOT_JSON });
}

#[test]
fn a_json_scalar_is_rejected_as_a_whole_for_not_being_an_object() {
    check("42", RejectedWhole { mentioning: "JSON object" });
    check("\"turn.completed\"", RejectedWhole { mentioning: "JSON object" });
    check("null", RejectedWhole { mentioning: "JSON object" });
}

#[test]
fn a_json_array_is_rejected_as_a_whole_for_not_being_an_object() {
    check("[]", RejectedWhole { mentioning: "JSON object" });
    check("[1, 2]", RejectedWhole { mentioning: "JSON object" });
}

#[test]
fn an_array_of_positional_values_is_not_accepted_as_an_event() {
    // serde reads a struct from a sequence too: an array with one value per wire field,
    // in declaration order, must still be refused, as events are objects.
    let mut positional =
        vec![json!("evt-1"), json!("call.started"), json!(ONE_MINUTE_AGO), json!("acme"), json!("call-1")];
    positional.resize(45, Value::Null);
    check(&Value::Array(positional).to_string(), RejectedWhole { mentioning: "JSON object" });
}

#[test]
fn a_duplicate_field_is_rejected_naming_it() {
    check(
        r#"{"id":"e1","id":"e2","type":"call.started","timestamp":"2026-11-27T11:59:00Z","tenant_id":"acme","call_id":"c1"}"#,
        Rejected { field: "id", mentioning: "duplicate" },
    );
}

#[test]
fn error_messages_carry_no_line_and_column() {
    let error = parse_event(&event(TurnCompleted, json!({"e2e_ms": "850"})), NOW_MS).unwrap_err();
    assert!(!error.message.contains(" at line "), "{error:?}");
}

#[test]
fn an_error_displays_as_field_then_message() {
    let error = parse_event(&without(TurnCompleted, "e2e_ms"), NOW_MS).unwrap_err();
    assert_eq!(error.to_string(), "e2e_ms: is required");
}

#[test]
fn an_unknown_field_of_any_length_is_echoed_cut_to_a_bounded_name() {
    let long_name = "k".repeat(1 << 20);
    let error = parse_event(&event(CallStarted, json!({ long_name.as_str(): 1 })), NOW_MS).unwrap_err();
    let field = error.field.expect("the field is named");
    assert_eq!(field, format!("{}…", "k".repeat(MAX_ECHOED_FIELD)));
    assert_eq!(error.reason, Reason::UnknownField);
    assert!(error.message.len() <= MAX_ECHOED_MESSAGE, "{}", error.message.len());
}

#[test]
fn a_long_attribute_key_and_a_long_wrong_value_are_echoed_bounded() {
    let long_key = "é".repeat(1000);
    let error = parse_event(&event(CallStarted, json!({"attributes": { long_key.as_str(): "v" }})), NOW_MS)
        .unwrap_err();
    let field = error.field.expect("the field is named");
    assert!(field.starts_with("attributes.é") && field.ends_with('…'), "{field}");
    assert!(field.len() <= MAX_ECHOED_FIELD + '…'.len_utf8(), "{}", field.len());

    let long_text = "9".repeat(1 << 20);
    let error = parse_event(&event(TurnCompleted, json!({"e2e_ms": long_text})), NOW_MS).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("e2e_ms"));
    assert_eq!(error.reason, Reason::WrongType);
    assert!(error.message.len() <= MAX_ECHOED_MESSAGE + '…'.len_utf8(), "{}", error.message.len());
    assert!(error.message.ends_with('…'), "{}", error.message);
}

#[test]
fn each_refusal_says_its_kind() {
    let cases = [
        ("not json".to_owned(), Reason::NotJson),
        ("42".to_owned(), Reason::NotAnObject),
        (event(CallStarted, json!({"colour": "blue"})), Reason::UnknownField),
        (
            r#"{"id":"e1","id":"e2","type":"call.started","timestamp":"2026-11-27T11:59:00Z","tenant_id":"acme","call_id":"c1"}"#
                .to_owned(),
            Reason::DuplicateField,
        ),
        (event(CallStarted, json!({"e2e_ms": 1})), Reason::NotForType),
        (event(TurnCompleted, json!({"e2e_ms": "850"})), Reason::WrongType),
        (without(TurnCompleted, "e2e_ms"), Reason::Missing),
        (event(TurnCompleted, json!({"e2e_ms": -1})), Reason::Invalid),
    ];
    for (json, reason) in cases {
        let error = parse_event(&json, NOW_MS).unwrap_err();
        assert_eq!(error.reason, reason, "{json}: {error:?}");
    }
}
