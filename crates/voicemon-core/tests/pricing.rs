//! Money and the price book: exact decimal USD, rounding, model matching, effective
//! dates, tenant prices, token and audio billing, bad books, and the shipped defaults.
//!
//! Every expected cost is worked out by hand from the unit prices, in a comment next to
//! it, in nano-USD (1 USD = 1 000 000 000 nano-USD).

use proptest::prelude::*;
use std::collections::BTreeMap;
use voicemon_core::event::{Body, Envelope, Event, LlmUsage, SttUsage, TtsUsage};
use voicemon_core::money::{prorate, Amount, MoneyError, Nanos};
use voicemon_core::pricing::{
    strip_snapshot_date, Costing, PriceBook, PriceEntryText, PricedLine, PricingError, TokenSplit,
};
use voicemon_core::window::parse_time;

// ---------------------------------------------------------------------------- money

#[test]
fn decimal_usd_amounts_parse_exactly_into_nano_usd() {
    let cases = [
        ("2.50", 2_500_000_000),
        ("0.0043", 4_300_000),
        ("15", 15_000_000_000),
        ("0.0077", 7_700_000),
        ("37.375", 37_375_000_000),
        ("0.000000001", 1),
        ("0.123456789", 123_456_789),
        (".5", 500_000_000),
        ("5.", 5_000_000_000),
        ("  1.25  ", 1_250_000_000),
        ("0", 0),
        ("0.000000000", 0),
        ("9223372036.854775807", i64::MAX),
    ];
    for (text, nanos) in cases {
        assert_eq!(Nanos::parse_usd(text), Ok(Nanos(nanos)), "{text:?}");
    }
}

#[test]
fn negative_too_precise_garbage_and_huge_amounts_are_refused_with_the_reason() {
    let cases = [
        ("-0.01", MoneyError::Negative("-0.01".into())),
        ("-0", MoneyError::Negative("-0".into())),
        ("0.0000000001", MoneyError::TooPrecise("0.0000000001".into())),
        ("1.1234567890", MoneyError::TooPrecise("1.1234567890".into())),
        ("abc", MoneyError::NotDecimal("abc".into())),
        ("", MoneyError::NotDecimal("".into())),
        (".", MoneyError::NotDecimal(".".into())),
        ("1e-3", MoneyError::NotDecimal("1e-3".into())),
        ("1,50", MoneyError::NotDecimal("1,50".into())),
        ("$2.50", MoneyError::NotDecimal("$2.50".into())),
        ("+2.50", MoneyError::NotDecimal("+2.50".into())),
        ("1.2.3", MoneyError::NotDecimal("1.2.3".into())),
        ("9223372036.854775808", MoneyError::TooLarge("9223372036.854775808".into())),
        ("99999999999999999999", MoneyError::TooLarge("99999999999999999999".into())),
    ];
    for (text, error) in cases {
        assert_eq!(Nanos::parse_usd(text), Err(error), "{text:?}");
    }
}

#[test]
fn money_errors_say_what_is_wrong_with_the_text() {
    let message = |text: &str| Nanos::parse_usd(text).expect_err("refused").to_string();
    assert_eq!(message("-1"), "`-1` is negative");
    assert_eq!(message("0.0000000001"), "`0.0000000001` has more than 9 decimal places");
    assert_eq!(message("ten"), "`ten` is not a decimal amount of USD such as 2.50 or 0.0043");
}

#[test]
fn usd_text_has_at_least_two_decimals_and_no_trailing_zeros_beyond_them() {
    let cases = [
        (0, "0.00"),
        (1, "0.000000001"),
        (100_000_000, "0.10"),
        (120_000_000, "0.12"),
        (123_000_000, "0.123"),
        (385_000, "0.000385"),
        (2_500_000_000, "2.50"),
        (15_000_000_000, "15.00"),
        (21_702_542, "0.021702542"),
        (-5, "-0.000000005"),
        (-2_500_000_000, "-2.50"),
        (i64::MAX, "9223372036.854775807"),
    ];
    for (nanos, text) in cases {
        assert_eq!(Nanos(nanos).usd(), text, "{nanos}");
    }
}

#[test]
fn usd_text_reads_back_as_the_same_amount() {
    for nanos in [0, 1, 10, 999_999_999, 1_000_000_000, 1_000_000_001, 7_700_000, 37_375_000_000] {
        assert_eq!(Nanos::parse_usd(&Nanos(nanos).usd()), Ok(Nanos(nanos)), "{nanos}");
    }
}

#[test]
fn an_amount_serialises_as_decimal_text_and_integer_nano_usd() {
    let json = serde_json::to_value(Amount(Nanos(21_702_542))).expect("serialisable");
    assert_eq!(json, serde_json::json!({"usd": "0.021702542", "nano_usd": 21_702_542}));
}

#[test]
fn prorate_rounds_half_up_and_truncates_below_half() {
    let cases = [
        // (quantity, price, per, expected)
        (1, 1, 2, 1),     // 0.5 → 1
        (1, 1, 3, 0),     // 0.333… → 0
        (2, 1, 3, 1),     // 0.666… → 1
        (5, 1, 10, 1),    // 0.5 → 1
        (4, 1, 10, 0),    // 0.4 → 0
        (15, 1, 10, 2),   // 1.5 → 2
        (149, 1, 100, 1), // 1.49 → 1
        (0, 7_700_000, 60_000, 0),
        // 3 s = 3 000 ms × $0.0077 / 60 000 ms = $0.000385
        (3_000, 7_700_000, 60_000, 385_000),
        // 47.3 s × $0.0077 / 60 s = $0.00607016666… → 6 070 167 nano-USD
        (47_300, 7_700_000, 60_000, 6_070_167),
        // 1 token × $0.15/M tokens = 150 nano-USD
        (1, 150_000_000, 1_000_000, 150),
        // 1 token × $0.00015/M tokens = 0.15 nano-USD → 0
        (1, 150_000, 1_000_000, 0),
        // 5 tokens × $0.00015/M tokens = 0.75 nano-USD → 1
        (5, 150_000, 1_000_000, 1),
    ];
    for (quantity, price, per, expected) in cases {
        assert_eq!(prorate(quantity, Nanos(price), per), Nanos(expected), "{quantity} × {price} / {per}");
    }
}

#[test]
fn prorate_does_not_overflow_when_the_product_exceeds_i64() {
    // 10¹² tokens × $1 000/M: the product 10²¹ is beyond i64, the result 10¹⁸ is not.
    let cost = prorate(1_000_000_000_000, Nanos(1_000_000_000_000), 1_000_000);
    assert_eq!(cost, Nanos(1_000_000_000_000_000_000));
}

#[test]
fn prorate_saturates_instead_of_wrapping_when_the_result_exceeds_i64() {
    assert_eq!(prorate(i64::MAX, Nanos(i64::MAX), 1), Nanos(i64::MAX));
}

// ---------------------------------------------------------------------------- helpers

/// 2026-11-27T12:00:00Z, when most usage below happens.
const NOW: &str = "2026-11-27T12:00:00Z";

fn ms(time: &str) -> i64 {
    parse_time(time).unwrap_or_else(|err| panic!("{time}: {err:?}"))
}

fn event(tenant: &str, time: &str, body: Body) -> Event {
    Event {
        envelope: Envelope {
            id: "e1".into(),
            timestamp_ms: ms(time),
            tenant_id: tenant.into(),
            call_id: Some("call-1".into()),
            trace_id: None,
            agent_id: None,
            objective: None,
            attributes: BTreeMap::new(),
        },
        body,
    }
}

fn stt(provider: &str, model: Option<&str>, audio_seconds: f64) -> Body {
    Body::SttUsage(SttUsage {
        provider: provider.into(),
        model: model.map(str::to_owned),
        audio_seconds,
        latency_ms: None,
    })
}

fn llm_usage(provider: &str, model: &str, input_tokens: u64, output_tokens: u64) -> LlmUsage {
    LlmUsage {
        provider: provider.into(),
        model: model.into(),
        input_tokens,
        output_tokens,
        cached_input_tokens: None,
        audio_input_tokens: None,
        audio_output_tokens: None,
        ttft_ms: None,
    }
}

fn llm(provider: &str, model: &str, input_tokens: u64, output_tokens: u64) -> Body {
    Body::LlmUsage(llm_usage(provider, model, input_tokens, output_tokens))
}

fn tts(provider: &str, model: Option<&str>, characters: u64) -> Body {
    Body::TtsUsage(TtsUsage {
        provider: provider.into(),
        model: model.map(str::to_owned),
        voice: None,
        characters,
        audio_seconds: None,
        ttfb_ms: None,
    })
}

fn book(text: &str) -> PriceBook {
    PriceBook::from_toml(text, "test.toml").unwrap_or_else(|err| panic!("the book loads: {err}"))
}

fn shipped() -> PriceBook {
    PriceBook::with_overrides(&[], "none").unwrap_or_else(|err| panic!("the shipped book loads: {err}"))
}

/// The priced line of `body`, at `time`, for tenant `acme`; panics when unpriced.
fn priced_at(book: &PriceBook, time: &str, body: Body) -> PricedLine {
    priced_for(book, "acme", time, body)
}

fn priced_for(book: &PriceBook, tenant: &str, time: &str, body: Body) -> PricedLine {
    match book.cost(&event(tenant, time, body)) {
        Costing::Priced(line) => line,
        other => panic!("expected a priced line, got {other:?}"),
    }
}

/// Why `body` is unpriced; panics when it is priced.
fn unpriced_at(book: &PriceBook, time: &str, body: Body) -> String {
    match book.cost(&event("acme", time, body)) {
        Costing::Unpriced { reason } => reason,
        other => panic!("expected an unpriced line, got {other:?}"),
    }
}

fn cost_at(book: &PriceBook, time: &str, body: Body) -> i64 {
    priced_at(book, time, body).cost.0
}

fn book_error(text: &str) -> PricingError {
    PriceBook::from_toml(text, "test.toml").expect_err("the book is refused")
}

// ---------------------------------------------------------------------------- model matching

/// Several patterns for one provider, each with a distinct price so the winner shows.
const MATCHING_BOOK: &str = r#"
version = 1

[[price]]
component = "llm"
provider = "openai"
model = "gpt-4o"
effective_from = "2025-01-01"
input_per_million = "1"
output_per_million = "0"

[[price]]
component = "llm"
provider = "openai"
model = "gpt-4o-mini"
effective_from = "2025-01-01"
input_per_million = "2"
output_per_million = "0"

[[price]]
component = "llm"
provider = "openai"
model = "gpt*"
effective_from = "2025-01-01"
input_per_million = "3"
output_per_million = "0"

[[price]]
component = "llm"
provider = "openai"
model = "gpt-4*"
effective_from = "2025-01-01"
input_per_million = "4"
output_per_million = "0"

[[price]]
component = "llm"
provider = "openai"
model = "*"
effective_from = "2025-01-01"
input_per_million = "5"
output_per_million = "0"

[[price]]
component = "tts"
provider = "cartesia"
model = "sonic*"
effective_from = "2025-01-01"
per_million_characters = "37.375"
"#;

/// The price per million input tokens that priced `model` in [`MATCHING_BOOK`], in USD.
fn matched_input_price(model: &str) -> i64 {
    // 1 000 000 input tokens at $N/M cost exactly $N.
    cost_at(&book(MATCHING_BOOK), NOW, llm("openai", model, 1_000_000, 0)) / 1_000_000_000
}

#[test]
fn a_model_is_priced_by_the_closest_pattern_exact_then_snapshot_then_longest_prefix_then_any() {
    let cases = [
        ("gpt-4o", 1, "exact"),
        ("gpt-4o-mini", 2, "exact"),
        ("gpt-4o-2024-08-06", 1, "gpt-4o without its dated-snapshot suffix"),
        ("gpt-4o-mini-2024-07-18", 2, "gpt-4o-mini without its suffix, not gpt-4o"),
        ("gpt-4o-20240806", 1, "gpt-4o without an 8-digit date suffix"),
        ("gpt-4-turbo", 4, "the longer prefix gpt-4* over gpt*"),
        ("gpt-4o-audio", 4, "gpt-4* (no snapshot suffix to strip)"),
        ("gpt-3.5-turbo", 3, "prefix gpt*"),
        ("o1-preview", 5, "any model"),
        ("GPT-4O", 1, "exact, ignoring case"),
    ];
    for (model, price, why) in cases {
        assert_eq!(matched_input_price(model), price, "{model}: expected {why}");
    }
}

#[test]
fn the_price_ref_names_the_entry_that_matched() {
    let matching = book(MATCHING_BOOK);
    let line = priced_at(&matching, NOW, llm("openai", "gpt-4o-mini-2024-07-18", 1, 0));
    assert_eq!(line.price_ref, "llm/openai/gpt-4o-mini@2025-01-01");
    let line = priced_at(&matching, NOW, llm("openai", "gpt-4-turbo", 1, 0));
    assert_eq!(line.price_ref, "llm/openai/gpt-4*@2025-01-01");
}

#[test]
fn a_prefix_pattern_prices_every_model_it_begins() {
    let matching = book(MATCHING_BOOK);
    // 1 000 characters × $37.375 / 1M = $0.037375
    for model in ["sonic", "sonic-2", "sonic-turbo", "Sonic-2-2025-03-07"] {
        assert_eq!(cost_at(&matching, NOW, tts("cartesia", Some(model), 1_000)), 37_375_000, "{model}");
    }
    let reason = unpriced_at(&matching, NOW, tts("cartesia", Some("mist"), 1_000));
    assert!(reason.contains("cartesia/mist"), "{reason}");
}

#[test]
fn a_prefix_pattern_does_not_price_a_line_without_a_model_but_any_does() {
    let reason = unpriced_at(&book(MATCHING_BOOK), NOW, tts("cartesia", None, 1_000));
    assert!(reason.contains("(no model)"), "{reason}");
    let any = book(
        r#"
version = 1
[[price]]
component = "stt"
provider = "assemblyai"
model = "*"
effective_from = "2025-01-01"
per_audio_minute = "0.0025"
"#,
    );
    // 60 s × $0.0025 / 60 s = $0.0025
    assert_eq!(cost_at(&any, NOW, stt("assemblyai", None, 60.0)), 2_500_000);
}

#[test]
fn the_provider_matches_whatever_its_case_in_the_event_or_the_book() {
    let mixed_case = book(
        r#"
version = 1
[[price]]
component = "stt"
provider = "DeepGram"
model = "Nova-3"
effective_from = "2025-01-01"
per_audio_minute = "0.0077"
"#,
    );
    // 60 s × $0.0077 / 60 s = $0.0077
    for provider in ["deepgram", "Deepgram", "DEEPGRAM"] {
        assert_eq!(cost_at(&mixed_case, NOW, stt(provider, Some("nova-3"), 60.0)), 7_700_000, "{provider}");
    }
}

#[test]
fn another_provider_s_price_for_the_same_model_name_does_not_apply() {
    let reason = unpriced_at(&book(MATCHING_BOOK), NOW, llm("azure", "gpt-4o", 1, 1));
    assert_eq!(reason, "no llm price for azure/gpt-4o on 2026-11-27");
}

#[test]
fn another_component_s_price_does_not_apply() {
    // gpt-4o has an LLM price, not an STT one.
    let reason = unpriced_at(&book(MATCHING_BOOK), NOW, stt("openai", Some("gpt-4o"), 60.0));
    assert_eq!(reason, "no stt price for openai/gpt-4o on 2026-11-27");
}

#[test]
fn a_dated_snapshot_suffix_is_recognised_in_both_date_forms_only() {
    assert_eq!(strip_snapshot_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(strip_snapshot_date("gpt-4o-mini-2024-07-18"), Some("gpt-4o-mini"));
    assert_eq!(strip_snapshot_date("claude-3-5-sonnet-20241022"), Some("claude-3-5-sonnet"));
    assert_eq!(strip_snapshot_date("gpt-4o"), None);
    assert_eq!(strip_snapshot_date("nova-3"), None);
    assert_eq!(strip_snapshot_date("gpt-4o-2024-08-xx"), None);
    assert_eq!(strip_snapshot_date("model-1234567"), None);
}

// ---------------------------------------------------------------------------- effective dates

/// gpt-4o at $2.00/$8.00 from 2026-11-01, $3.00/$12.00 from 2026-11-15, and a
/// promotional nova-3 price that ends on 2026-06-01 with nothing after it.
const DATED_BOOK: &str = r#"
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

[[price]]
component = "stt"
provider = "deepgram"
model = "nova-3"
effective_from = "2026-01-01"
effective_to = "2026-06-01"
per_audio_minute = "0.0077"
"#;

#[test]
fn a_price_change_in_the_middle_of_a_month_prices_each_side_at_its_own_price() {
    let dated = book(DATED_BOOK);
    let usage = || llm("openai", "gpt-4o", 1_000, 500);
    // Before 2026-11-15: 1 000 × $2/M + 500 × $8/M = $0.002 + $0.004 = $0.006
    assert_eq!(cost_at(&dated, "2026-11-10T09:00:00Z", usage()), 6_000_000);
    assert_eq!(cost_at(&dated, "2026-11-14T23:59:59.999Z", usage()), 6_000_000);
    // From 2026-11-15 00:00 UTC: 1 000 × $3/M + 500 × $12/M = $0.003 + $0.006 = $0.009
    assert_eq!(cost_at(&dated, "2026-11-15T00:00:00Z", usage()), 9_000_000);
    assert_eq!(cost_at(&dated, "2026-11-20T09:00:00Z", usage()), 9_000_000);
    assert_eq!(priced_at(&dated, "2026-11-10T09:00:00Z", usage()).price_ref, "llm/openai/gpt-4o@2026-11-01");
    assert_eq!(priced_at(&dated, "2026-11-20T09:00:00Z", usage()).price_ref, "llm/openai/gpt-4o@2026-11-15");
}

#[test]
fn usage_before_the_first_entry_takes_effect_is_unpriced() {
    let reason = unpriced_at(&book(DATED_BOOK), "2026-10-31T23:59:59Z", llm("openai", "gpt-4o", 1, 1));
    assert_eq!(reason, "no llm price for openai/gpt-4o on 2026-10-31");
}

#[test]
fn an_entry_stops_applying_at_its_effective_to() {
    let dated = book(DATED_BOOK);
    // 60 s × $0.0077 / 60 s = $0.0077
    assert_eq!(cost_at(&dated, "2026-05-31T23:59:59Z", stt("deepgram", Some("nova-3"), 60.0)), 7_700_000);
    let reason = unpriced_at(&dated, "2026-06-01T00:00:00Z", stt("deepgram", Some("nova-3"), 60.0));
    assert_eq!(reason, "no stt price for deepgram/nova-3 on 2026-06-01");
}

#[test]
fn after_an_entry_ends_a_broader_pattern_in_force_prices_the_line() {
    let ended_promotion = book(&format!(
        "{DATED_BOOK}
[[price]]
component = \"stt\"
provider = \"deepgram\"
model = \"*\"
effective_from = \"2025-01-01\"
per_audio_minute = \"0.0100\"
"
    ));
    // During the promotion, the exact model wins: 60 s × $0.0077/60 s = $0.0077.
    assert_eq!(
        cost_at(&ended_promotion, "2026-03-01T00:00:00Z", stt("deepgram", Some("nova-3"), 60.0)),
        7_700_000
    );
    // After it: 60 s × $0.0100/60 s = $0.01.
    assert_eq!(
        cost_at(&ended_promotion, "2026-07-01T00:00:00Z", stt("deepgram", Some("nova-3"), 60.0)),
        10_000_000
    );
}

/// nova-3 at $0.0077 from 2026-01-01, then $0.0040 during June 2026 only.
const TEMPORARY_BOOK: &str = r#"
version = 1
[[price]]
component = "stt"
provider = "deepgram"
model = "nova-3"
effective_from = "2026-01-01"
per_audio_minute = "0.0077"

[[price]]
component = "stt"
provider = "deepgram"
model = "nova-3"
effective_from = "2026-06-01"
effective_to = "2026-07-01"
per_audio_minute = "0.0040"
"#;

#[test]
fn after_a_temporary_price_ends_the_earlier_price_does_not_come_back_and_lines_are_unpriced() {
    let temporary = book(TEMPORARY_BOOK);
    let nova = || stt("deepgram", Some("nova-3"), 60.0);
    // 60 s at $0.0077 until June, then $0.0040 during June
    assert_eq!(cost_at(&temporary, "2026-05-31T12:00:00Z", nova()), 7_700_000);
    assert_eq!(cost_at(&temporary, "2026-06-15T12:00:00Z", nova()), 4_000_000);
    // From July the key has no price: unpriced, never the old price or zero.
    let reason = unpriced_at(&temporary, "2026-07-01T00:00:00Z", nova());
    assert_eq!(reason, "no stt price for deepgram/nova-3 on 2026-07-01");
}

#[test]
fn a_temporary_price_followed_by_an_entry_restating_the_normal_price_goes_back_to_it() {
    let restated = book(&format!(
        "{TEMPORARY_BOOK}
[[price]]
component = \"stt\"
provider = \"deepgram\"
model = \"nova-3\"
effective_from = \"2026-07-01\"
per_audio_minute = \"0.0077\"
"
    ));
    let nova = || stt("deepgram", Some("nova-3"), 60.0);
    // 60 s at $0.0040 on the last day of June, $0.0077 from July 1st
    assert_eq!(cost_at(&restated, "2026-06-30T23:59:59Z", nova()), 4_000_000);
    assert_eq!(cost_at(&restated, "2026-07-01T00:00:00Z", nova()), 7_700_000);
    assert_eq!(
        priced_at(&restated, "2026-07-01T00:00:00Z", nova()).price_ref,
        "stt/deepgram/nova-3@2026-07-01"
    );
}

#[test]
fn a_price_of_zero_is_free_not_unpriced() {
    let free = book(&stt_entry_with("per_audio_minute = \"0\""));
    let line = priced_at(&free, NOW, stt("deepgram", Some("nova-3"), 60.0));
    assert_eq!(line.cost, Nanos(0));
    assert_eq!(line.unit_price, "$0.00/audio min, 1 s blocks");
}

// ---------------------------------------------------------------------------- tenant prices

fn override_entry(tenant: Option<&str>, per_audio_minute: &str) -> PriceEntryText {
    PriceEntryText {
        component: "stt".into(),
        provider: "deepgram".into(),
        model: "nova-3".into(),
        tenant: tenant.map(str::to_owned),
        effective_from: "2025-01-01".into(),
        effective_to: None,
        source: Some("negotiated".into()),
        per_audio_minute: Some(voicemon_core::pricing::PriceText::Text(per_audio_minute.into())),
        billing_increment_seconds: None,
        minimum_billed_seconds: None,
        input_per_million: None,
        cached_input_per_million: None,
        output_per_million: None,
        audio_input_per_million: None,
        audio_output_per_million: None,
        per_million_characters: None,
    }
}

#[test]
fn a_tenant_s_negotiated_price_beats_the_list_price_for_that_tenant_only() {
    let prices = PriceBook::with_overrides(&[override_entry(Some("acme"), "0.0050")], "voicemon.toml")
        .expect("the book loads");
    let nova = || stt("deepgram", Some("nova-3"), 60.0);
    // acme: 60 s × $0.0050/60 s = $0.005
    let acme = priced_for(&prices, "acme", NOW, nova());
    assert_eq!(acme.cost, Nanos(5_000_000));
    assert_eq!(acme.price_ref, "stt/deepgram/nova-3@2025-01-01#acme");
    assert_eq!(acme.unit_price, "$0.005/audio min, 1 s blocks");
    // globex: the list price, 60 s × $0.0077/60 s = $0.0077
    let globex = priced_for(&prices, "globex", NOW, nova());
    assert_eq!(globex.cost, Nanos(7_700_000));
    assert_eq!(globex.price_ref, "stt/deepgram/nova-3@2025-01-01");
}

#[test]
fn a_tenant_price_for_any_model_beats_an_exact_list_price() {
    let prices = book(
        r#"
version = 1
[[price]]
component = "llm"
provider = "openai"
model = "gpt-4o"
effective_from = "2025-01-01"
input_per_million = "2.50"
output_per_million = "10.00"

[[price]]
component = "llm"
provider = "openai"
model = "*"
tenant = "acme"
effective_from = "2025-01-01"
input_per_million = "1.00"
output_per_million = "4.00"
"#,
    );
    // acme: 1M in × $1 + 1M out × $4 = $5
    assert_eq!(
        priced_for(&prices, "acme", NOW, llm("openai", "gpt-4o", 1_000_000, 1_000_000)).cost.0,
        5_000_000_000
    );
    // globex: 1M in × $2.50 + 1M out × $10 = $12.50
    assert_eq!(
        priced_for(&prices, "globex", NOW, llm("openai", "gpt-4o", 1_000_000, 1_000_000)).cost.0,
        12_500_000_000
    );
}

#[test]
fn once_a_tenant_s_price_ends_the_tenant_pays_the_list_price() {
    let mut ending = override_entry(Some("acme"), "0.0050");
    ending.effective_to = Some("2026-07-01".into());
    let prices = PriceBook::with_overrides(&[ending], "voicemon.toml").expect("the book loads");
    let nova = || stt("deepgram", Some("nova-3"), 60.0);
    // 60 s at acme's $0.0050 until July, then the list $0.0077
    assert_eq!(priced_for(&prices, "acme", "2026-06-30T23:59:59Z", nova()).cost, Nanos(5_000_000));
    assert_eq!(priced_for(&prices, "acme", "2026-07-01T00:00:00Z", nova()).cost, Nanos(7_700_000));
}

#[test]
fn an_override_with_the_same_key_and_date_replaces_the_shipped_price() {
    let prices = PriceBook::with_overrides(&[override_entry(None, "0.0080")], "voicemon.toml")
        .expect("the book loads");
    // 60 s × $0.0080/60 s = $0.008, for every tenant
    for tenant in ["acme", "globex"] {
        assert_eq!(priced_for(&prices, tenant, NOW, stt("deepgram", Some("nova-3"), 60.0)).cost.0, 8_000_000);
    }
    let nova_entries = prices.entries().iter().filter(|e| e.model == "nova-3" && e.tenant.is_none()).count();
    assert_eq!(nova_entries, 1, "the shipped entry is replaced, not kept beside the override");
}

// ---------------------------------------------------------------------------- unpriced

#[test]
fn an_unknown_provider_or_model_is_unpriced_with_a_reason_never_zero() {
    let prices = shipped();
    let cases = [
        (stt("whisperco", Some("w-1"), 60.0), "no stt price for whisperco/w-1 on 2026-11-27"),
        (stt("deepgram", Some("enhanced"), 60.0), "no stt price for deepgram/enhanced on 2026-11-27"),
        (stt("deepgram", None, 60.0), "no stt price for deepgram/(no model) on 2026-11-27"),
        (llm("openai", "gpt-9-turbo", 100, 100), "no llm price for openai/gpt-9-turbo on 2026-11-27"),
        (llm("Mistral", "large", 100, 100), "no llm price for mistral/large on 2026-11-27"),
        (tts("playht", Some("play3"), 100), "no tts price for playht/play3 on 2026-11-27"),
        (tts("elevenlabs", Some("eleven_v3"), 100), "no tts price for elevenlabs/eleven_v3 on 2026-11-27"),
    ];
    for (body, reason) in cases {
        let costing = prices.cost(&event("acme", NOW, body));
        assert_eq!(costing, Costing::Unpriced { reason: reason.into() });
    }
}

#[test]
fn an_event_that_is_not_usage_has_no_cost() {
    let started = Body::CallStarted(voicemon_core::event::CallStarted { channel: None });
    assert_eq!(shipped().cost(&event("acme", NOW, started)), Costing::NotUsage);
}

#[test]
fn audio_tokens_on_a_model_without_an_audio_price_are_unpriced_not_billed_as_text() {
    let prices = shipped();
    let mut usage = llm_usage("openai", "gpt-4o", 1_000, 100);
    usage.audio_input_tokens = Some(400);
    let reason = unpriced_at(&prices, NOW, Body::LlmUsage(usage));
    assert_eq!(
        reason,
        "price llm/openai/gpt-4o@2024-10-01 has no audio_input_per_million for the audio tokens"
    );

    let mut usage = llm_usage("openai", "gpt-4o", 1_000, 100);
    usage.audio_output_tokens = Some(50);
    let reason = unpriced_at(&prices, NOW, Body::LlmUsage(usage));
    assert_eq!(
        reason,
        "price llm/openai/gpt-4o@2024-10-01 has no audio_output_per_million for the audio tokens"
    );
}

#[test]
fn zero_audio_tokens_on_a_model_without_an_audio_price_are_priced_as_text() {
    let mut usage = llm_usage("openai", "gpt-4o", 1_000, 100);
    usage.audio_input_tokens = Some(0);
    usage.audio_output_tokens = Some(0);
    // 1 000 × $2.50/M + 100 × $10/M = $0.0025 + $0.001 = $0.0035
    assert_eq!(cost_at(&shipped(), NOW, Body::LlmUsage(usage)), 3_500_000);
}

#[test]
fn a_token_count_too_large_to_cost_is_unpriced_with_a_reason_not_wrapped() {
    let reason = unpriced_at(&shipped(), NOW, llm("openai", "gpt-4o", u64::MAX, 0));
    assert!(reason.contains("too large"), "{reason}");
    let reason = unpriced_at(&shipped(), NOW, tts("cartesia", Some("sonic-2"), u64::MAX));
    assert!(reason.contains("too large"), "{reason}");
}

// ---------------------------------------------------------------------------- tokens

#[test]
fn cached_and_audio_tokens_are_split_out_of_input_tokens_not_added_to_them() {
    let mut usage = llm_usage("openai", "gpt-4o-realtime-preview", 1_000, 500);
    usage.cached_input_tokens = Some(300);
    usage.audio_input_tokens = Some(500);
    usage.audio_output_tokens = Some(400);
    assert_eq!(
        TokenSplit::of(&usage),
        TokenSplit {
            text_input: 200,
            cached_input: 300,
            audio_input: 500,
            text_output: 100,
            audio_output: 400
        }
    );
}

#[test]
fn a_token_split_never_counts_more_than_input_tokens_even_when_parts_overlap() {
    let mut usage = llm_usage("openai", "gpt-4o-realtime-preview", 1_000, 500);
    usage.cached_input_tokens = Some(700);
    usage.audio_input_tokens = Some(500);
    let split = TokenSplit::of(&usage);
    assert_eq!(split.text_input + split.cached_input + split.audio_input, 1_000, "{split:?}");
    assert_eq!(split.cached_input, 700, "{split:?}");
}

#[test]
fn cached_input_tokens_are_billed_once_at_the_cached_rate() {
    let mut usage = llm_usage("openai", "gpt-4o", 1_200, 150);
    usage.cached_input_tokens = Some(1_000);
    let line = priced_at(&shipped(), NOW, Body::LlmUsage(usage));
    // text input: (1 200 − 1 000) × $2.50/M = $0.0005
    // cached:      1 000 × $1.25/M          = $0.00125
    // output:        150 × $10.00/M         = $0.0015
    // total                                   $0.00325
    assert_eq!(line.cost, Nanos(3_250_000));
    assert_eq!(line.unit_price, "in $2.50/M, cached $1.25/M, out $10.00/M tokens");
}

#[test]
fn cached_input_tokens_are_billed_at_the_input_rate_when_no_cached_rate_is_given() {
    let mut usage = llm_usage("openai", "gpt-4o-audio-preview", 1_000, 0);
    usage.cached_input_tokens = Some(600);
    // gpt-4o-audio-preview has no cached rate: 400 × $2.50/M + 600 × $2.50/M = $0.0025
    assert_eq!(cost_at(&shipped(), NOW, Body::LlmUsage(usage)), 2_500_000);
}

#[test]
fn token_costs_below_a_nano_usd_are_rounded_half_up() {
    let prices = book(
        r#"
version = 1
[[price]]
component = "llm"
provider = "openai"
model = "tiny"
effective_from = "2025-01-01"
input_per_million = "0.00015"
cached_input_per_million = "0.000075"
output_per_million = "0.0006"
"#,
    );
    let mut usage = llm_usage("openai", "tiny", 5, 1);
    usage.cached_input_tokens = Some(2);
    // text input: 3 × $0.00015/M  = 0.45 nano-USD → 0
    // cached:     2 × $0.000075/M = 0.15 nano-USD → 0
    // output:     1 × $0.0006/M   = 0.60 nano-USD → 1
    assert_eq!(cost_at(&prices, NOW, Body::LlmUsage(usage)), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_token_split_accounts_for_every_token_exactly_once(
        input in 0u64..1_000_000,
        output in 0u64..1_000_000,
        cached_share in 0.0f64..=1.0,
        audio_share in 0.0f64..=1.0,
        audio_out_share in 0.0f64..=1.0,
    ) {
        // The shares are of each whole, as validation allows: each part at most its whole.
        let mut usage = llm_usage("openai", "m", input, output);
        usage.cached_input_tokens = Some((input as f64 * cached_share) as u64);
        usage.audio_input_tokens = Some((input as f64 * audio_share) as u64);
        usage.audio_output_tokens = Some((output as f64 * audio_out_share) as u64);
        let split = TokenSplit::of(&usage);
        prop_assert_eq!(split.text_input + split.cached_input + split.audio_input, input);
        prop_assert_eq!(split.text_output + split.audio_output, output);
        prop_assert_eq!(split.cached_input, usage.cached_input_tokens.unwrap_or(0));
    }
}

// ---------------------------------------------------------------------------- STT billing

/// nova-3 at $0.006/min in 15 s blocks; nova-2 at $0.006/min in 1 s blocks, 60 s minimum.
const BLOCKS_BOOK: &str = r#"
version = 1
[[price]]
component = "stt"
provider = "deepgram"
model = "nova-3"
effective_from = "2025-01-01"
per_audio_minute = "0.006"
billing_increment_seconds = 15

[[price]]
component = "stt"
provider = "deepgram"
model = "nova-2"
effective_from = "2025-01-01"
per_audio_minute = "0.006"
minimum_billed_seconds = 60
"#;

#[test]
fn stt_audio_is_billed_in_whole_blocks_rounded_up() {
    let prices = book(BLOCKS_BOOK);
    // $0.006/min is 100 000 nano-USD per second; 15 s blocks.
    let cases = [
        (0.0, 0),            // nothing to bill, no minimum
        (1.0, 1_500_000),    // 15 s × $0.006/60 s = $0.0015
        (15.0, 1_500_000),   // 15 s
        (15.001, 3_000_000), // 30 s = $0.003
        (16.0, 3_000_000),   // 30 s
        (30.0, 3_000_000),   // 30 s
        (44.9, 4_500_000),   // 45 s = $0.0045
    ];
    for (seconds, nanos) in cases {
        assert_eq!(cost_at(&prices, NOW, stt("deepgram", Some("nova-3"), seconds)), nanos, "{seconds} s");
    }
    let line = priced_at(&prices, NOW, stt("deepgram", Some("nova-3"), 1.0));
    assert_eq!(line.unit_price, "$0.006/audio min, 15 s blocks");
}

#[test]
fn stt_audio_is_billed_at_least_the_minimum_seconds() {
    let prices = book(BLOCKS_BOOK);
    let cases = [
        (0.0, 6_000_000),  // 60 s minimum × $0.006/60 s = $0.006
        (3.0, 6_000_000),  // 60 s minimum
        (60.0, 6_000_000), // 60 s
        (61.4, 6_200_000), // 62 s in 1 s blocks = $0.0062
    ];
    for (seconds, nanos) in cases {
        assert_eq!(cost_at(&prices, NOW, stt("deepgram", Some("nova-2"), seconds)), nanos, "{seconds} s");
    }
    let line = priced_at(&prices, NOW, stt("deepgram", Some("nova-2"), 1.0));
    assert_eq!(line.unit_price, "$0.006/audio min, 1 s blocks, 60 s minimum");
}

#[test]
fn stt_audio_in_one_second_blocks_is_billed_to_the_second() {
    // 3 s × $0.0077/60 s = $0.000385
    assert_eq!(cost_at(&shipped(), NOW, stt("deepgram", Some("nova-3"), 3.0)), 385_000);
    // 2.2 s is billed as 3 s: $0.000385
    assert_eq!(cost_at(&shipped(), NOW, stt("deepgram", Some("nova-3"), 2.2)), 385_000);
    // 47 s × $0.0077/60 s = $0.0060316666… → 6 031 667 nano-USD
    assert_eq!(cost_at(&shipped(), NOW, stt("deepgram", Some("nova-3"), 47.0)), 6_031_667);
}

// ---------------------------------------------------------------------------- bad books

/// A valid STT entry with `extra` lines appended to it.
fn stt_entry_with(extra: &str) -> String {
    format!(
        "version = 1
[[price]]
component = \"stt\"
provider = \"deepgram\"
model = \"nova-3\"
effective_from = \"2025-01-01\"
{extra}
"
    )
}

/// Asserts that `text` is refused with a message containing every one of `mentions`.
fn assert_refused(text: &str, mentions: &[&str]) {
    let message = book_error(text).to_string();
    for mention in mentions {
        assert!(message.contains(mention), "`{mention}` missing from: {message}\nbook:\n{text}");
    }
}

#[test]
fn a_negative_price_is_refused_naming_the_entry_and_the_field() {
    let text = stt_entry_with("per_audio_minute = \"-0.0077\"");
    assert_eq!(
        book_error(&text),
        PricingError::Entry {
            origin: "test.toml".into(),
            index: 1,
            what: "stt deepgram nova-3".into(),
            message: "per_audio_minute: `-0.0077` is negative".into(),
        }
    );
    assert_eq!(
        book_error(&text).to_string(),
        "test.toml: price #1 (stt deepgram nova-3): per_audio_minute: `-0.0077` is negative"
    );
    assert_refused(&stt_entry_with("per_audio_minute = -0.0077"), &["per_audio_minute", "negative"]);
}

#[test]
fn a_price_with_more_than_nine_decimals_or_not_a_number_is_refused() {
    assert_refused(
        &stt_entry_with("per_audio_minute = \"0.0000000001\""),
        &["per_audio_minute", "9 decimal"],
    );
    assert_refused(&stt_entry_with("per_audio_minute = \"cheap\""), &["per_audio_minute", "`cheap`"]);
}

#[test]
fn a_price_written_as_a_toml_number_is_read_as_its_decimal() {
    let prices = book(&stt_entry_with("per_audio_minute = 0.0077"));
    // 60 s × $0.0077/60 s = $0.0077, exactly
    assert_eq!(cost_at(&prices, NOW, stt("deepgram", Some("nova-3"), 60.0)), 7_700_000);
    let prices = book(&stt_entry_with("per_audio_minute = 1"));
    assert_eq!(cost_at(&prices, NOW, stt("deepgram", Some("nova-3"), 60.0)), 1_000_000_000);
}

#[test]
fn an_unknown_unit_is_refused_naming_the_unknown_field() {
    let text = stt_entry_with("per_audio_hour = \"0.46\"");
    let error = book_error(&text);
    assert!(matches!(error, PricingError::Parse { .. }), "{error:?}");
    assert_refused(&text, &["test.toml", "unknown field `per_audio_hour`"]);
}

#[test]
fn a_unit_that_does_not_apply_to_the_component_is_refused() {
    let text = stt_entry_with("per_audio_minute = \"0.0077\"\nper_million_characters = \"30\"");
    assert_refused(
        &text,
        &[
            "price #1 (stt deepgram nova-3)",
            "unit `per_million_characters` does not apply to stt",
            "per_audio_minute",
        ],
    );
    let text = r#"
version = 1
[[price]]
component = "tts"
provider = "cartesia"
model = "sonic*"
effective_from = "2025-01-01"
per_million_characters = "37.375"
billing_increment_seconds = 15
"#;
    assert_refused(text, &["unit `billing_increment_seconds` does not apply to tts"]);
}

#[test]
fn a_required_price_left_out_is_refused() {
    assert_refused(&stt_entry_with(""), &["per_audio_minute is required for stt"]);
    let text = r#"
version = 1
[[price]]
component = "llm"
provider = "openai"
model = "gpt-4o"
effective_from = "2025-01-01"
input_per_million = "2.50"
"#;
    assert_refused(text, &["output_per_million is required for llm"]);
}

#[test]
fn a_billing_increment_of_zero_is_refused() {
    let text = stt_entry_with("per_audio_minute = \"0.0077\"\nbilling_increment_seconds = 0");
    assert_refused(&text, &["billing_increment_seconds must be at least 1"]);
}

#[test]
fn two_entries_for_one_model_starting_the_same_day_overlap() {
    let text = format!(
        "{}
[[price]]
component = \"stt\"
provider = \"deepgram\"
model = \"nova-3\"
effective_from = \"2025-01-01\"
per_audio_minute = \"0.0080\"
",
        stt_entry_with("per_audio_minute = \"0.0077\"")
    );
    assert_eq!(
        book_error(&text),
        PricingError::Overlap {
            first: "stt/deepgram/nova-3@2025-01-01".into(),
            second: "stt/deepgram/nova-3@2025-01-01".into(),
        }
    );
    assert_refused(&text, &["overlap", "one model may have one price at a time"]);
}

#[test]
fn an_entry_ending_after_the_next_one_begins_overlaps_it() {
    let text = format!(
        "{}
[[price]]
component = \"stt\"
provider = \"deepgram\"
model = \"nova-3\"
effective_from = \"2025-06-01\"
per_audio_minute = \"0.0080\"
",
        stt_entry_with("per_audio_minute = \"0.0077\"\neffective_to = \"2025-07-01\"")
    );
    assert_eq!(
        book_error(&text),
        PricingError::Overlap {
            first: "stt/deepgram/nova-3@2025-01-01".into(),
            second: "stt/deepgram/nova-3@2025-06-01".into(),
        }
    );
}

#[test]
fn an_entry_ending_the_day_the_next_one_begins_does_not_overlap_it() {
    let text = format!(
        "{}
[[price]]
component = \"stt\"
provider = \"deepgram\"
model = \"nova-3\"
effective_from = \"2025-06-01\"
per_audio_minute = \"0.0080\"
",
        stt_entry_with("per_audio_minute = \"0.0077\"\neffective_to = \"2025-06-01\"")
    );
    let prices = book(&text);
    // 60 s at $0.0080/min from 2025-06-01
    assert_eq!(cost_at(&prices, "2025-06-01T00:00:00Z", stt("deepgram", Some("nova-3"), 60.0)), 8_000_000);
}

#[test]
fn the_same_model_for_two_tenants_starting_the_same_day_does_not_overlap() {
    let text = format!(
        "{}
[[price]]
component = \"stt\"
provider = \"deepgram\"
model = \"nova-3\"
tenant = \"acme\"
effective_from = \"2025-01-01\"
per_audio_minute = \"0.0050\"
",
        stt_entry_with("per_audio_minute = \"0.0077\"")
    );
    assert_eq!(book(&text).entries().len(), 2);
}

#[test]
fn an_override_overlapping_a_shipped_price_is_refused() {
    let mut ending_late = override_entry(None, "0.0080");
    ending_late.effective_from = "2024-06-01".into();
    ending_late.effective_to = Some("2025-02-01".into());
    let error = PriceBook::with_overrides(&[ending_late], "voicemon.toml").expect_err("refused");
    assert_eq!(
        error,
        PricingError::Overlap {
            first: "stt/deepgram/nova-3@2024-06-01".into(),
            second: "stt/deepgram/nova-3@2025-01-01".into(),
        }
    );
}

#[test]
fn two_overrides_for_one_model_starting_the_same_day_overlap_rather_than_one_silently_winning() {
    let first = override_entry(None, "0.0070");
    let second = override_entry(None, "0.0065");
    let error = PriceBook::with_overrides(&[first, second], "voicemon.toml").expect_err("refused");
    assert_eq!(
        error,
        PricingError::Overlap {
            first: "stt/deepgram/nova-3@2025-01-01".into(),
            second: "stt/deepgram/nova-3@2025-01-01".into(),
        }
    );
}

#[test]
fn a_bad_date_is_refused_naming_the_field() {
    assert_refused(
        &stt_entry_with("per_audio_minute = \"0.0077\"").replace("2025-01-01", "2025-13-01"),
        &["effective_from `2025-13-01` is not a date such as 2025-01-31"],
    );
    assert_refused(
        &stt_entry_with("per_audio_minute = \"0.0077\"").replace("2025-01-01", "01/02/2025"),
        &["effective_from `01/02/2025` is not a date"],
    );
    assert_refused(
        &stt_entry_with("per_audio_minute = \"0.0077\"\neffective_to = \"soon\""),
        &["effective_to `soon` is not a date"],
    );
}

#[test]
fn an_effective_to_not_after_effective_from_is_refused() {
    assert_refused(
        &stt_entry_with("per_audio_minute = \"0.0077\"\neffective_to = \"2025-01-01\""),
        &["effective_to must be after effective_from"],
    );
}

#[test]
fn an_unknown_component_is_refused() {
    let text = r#"
version = 1
[[price]]
component = "asr"
provider = "deepgram"
model = "nova-3"
effective_from = "2025-01-01"
per_audio_minute = "0.0077"
"#;
    assert_refused(text, &["price #1 (asr deepgram nova-3)", "component `asr` is not one of stt, llm, tts"]);
}

#[test]
fn an_empty_provider_or_model_is_refused() {
    assert_refused(
        &stt_entry_with("per_audio_minute = \"0.0077\"").replace("\"nova-3\"", "\" \""),
        &["provider and model must not be empty"],
    );
}

#[test]
fn an_unknown_version_is_refused() {
    let error = book_error("version = 2\n");
    assert_eq!(
        error,
        PricingError::Parse {
            origin: "test.toml".into(),
            message: "version 2 is not known; this voicemon reads version 1".into(),
        }
    );
    assert_refused("", &["test.toml", "missing field `version`"]);
}

#[test]
fn the_index_in_an_error_is_the_entry_s_position_counting_from_one() {
    let text = format!(
        "{}
[[price]]
component = \"tts\"
provider = \"cartesia\"
model = \"sonic*\"
effective_from = \"2025-01-01\"
per_million_characters = \"-1\"
",
        stt_entry_with("per_audio_minute = \"0.0077\"")
    );
    assert_refused(&text, &["price #2 (tts cartesia sonic*)"]);
}

// ---------------------------------------------------------------------------- shipped defaults

#[test]
fn the_shipped_book_loads() {
    let prices = shipped();
    assert!(prices.entries().len() >= 14, "{} entries", prices.entries().len());
    assert!(prices.entries().iter().all(|e| e.tenant.is_none()), "list prices only");
    assert!(prices.entries().iter().all(|e| e.source.is_some()), "every list price says where it is from");
}

#[test]
fn the_shipped_book_prices_every_speech_to_text_model_it_lists() {
    let prices = shipped();
    let cases = [
        // (provider, model, USD per minute → nano-USD for 60 s)
        ("deepgram", Some("nova-3"), 7_700_000), // $0.0077
        ("deepgram", Some("nova-2"), 5_800_000), // $0.0058
        ("assemblyai", Some("universal-streaming"), 2_500_000), // $0.0025
        ("assemblyai", None, 2_500_000),         // $0.0025, any model
        ("openai", Some("gpt-4o-transcribe"), 6_000_000), // $0.006
        ("openai", Some("gpt-4o-mini-transcribe"), 3_000_000), // $0.003
    ];
    for (provider, model, nanos) in cases {
        let line = priced_at(&prices, NOW, stt(provider, model, 60.0));
        assert_eq!(line.cost, Nanos(nanos), "{provider}/{model:?}");
    }
}

#[test]
fn the_shipped_book_prices_every_language_model_it_lists() {
    let prices = shipped();
    let million = 1_000_000;
    let cases = [
        // 1M input + 1M output tokens: the two list prices added.
        ("gpt-4o", 12_500_000_000),                      // $2.50 + $10.00
        ("gpt-4o-2024-08-06", 12_500_000_000),           // the same, by snapshot
        ("gpt-4o-mini", 750_000_000),                    // $0.15 + $0.60
        ("gpt-4o-mini-2024-07-18", 750_000_000),         // the same, not gpt-4o's
        ("gpt-4o-realtime-preview", 25_000_000_000),     // $5.00 + $20.00 as text
        ("gpt-4o-mini-realtime-preview", 3_000_000_000), // $0.60 + $2.40
        ("gpt-4o-audio-preview", 12_500_000_000),        // $2.50 + $10.00
    ];
    for (model, nanos) in cases {
        assert_eq!(cost_at(&prices, NOW, llm("openai", model, million, million)), nanos, "{model}");
    }
}

#[test]
fn the_shipped_book_prices_realtime_audio_tokens_at_the_audio_rates() {
    let mut usage = llm_usage("openai", "gpt-4o-realtime-preview-2024-12-17", 1_000, 500);
    usage.cached_input_tokens = Some(100);
    usage.audio_input_tokens = Some(800);
    usage.audio_output_tokens = Some(400);
    let line = priced_at(&shipped(), NOW, Body::LlmUsage(usage));
    // text input: (1 000 − 100 − 800) = 100 × $5.00/M  = $0.0005
    // cached:                           100 × $2.50/M  = $0.00025
    // audio input:                      800 × $40.00/M = $0.032
    // text output: (500 − 400)        = 100 × $20.00/M = $0.002
    // audio output:                     400 × $80.00/M = $0.032
    // total                                              $0.06675
    assert_eq!(line.cost, Nanos(66_750_000));
    assert_eq!(line.price_ref, "llm/openai/gpt-4o-realtime-preview@2024-12-17");
    assert_eq!(
        line.unit_price,
        "in $5.00/M, cached $2.50/M, out $20.00/M tokens, audio in $40.00/M, audio out $80.00/M"
    );
}

#[test]
fn the_shipped_book_prices_every_text_to_speech_model_it_lists() {
    let prices = shipped();
    let cases = [
        // 1 000 characters
        ("cartesia", "sonic-2", 37_375_000),     // × $37.375/M = $0.037375
        ("cartesia", "sonic-turbo", 37_375_000), // sonic*
        ("elevenlabs", "eleven_flash_v2_5", 50_000_000), // × $50/M = $0.05
        ("elevenlabs", "eleven_turbo_v2_5", 50_000_000), // × $50/M
        ("elevenlabs", "eleven_multilingual_v2", 100_000_000), // × $100/M = $0.10
    ];
    for (provider, model, nanos) in cases {
        assert_eq!(cost_at(&prices, NOW, tts(provider, Some(model), 1_000)), nanos, "{provider}/{model}");
    }
}

#[test]
fn the_shipped_prices_apply_only_from_their_effective_dates() {
    let prices = shipped();
    let reason = unpriced_at(&prices, "2025-03-19T23:59:59Z", stt("openai", Some("gpt-4o-transcribe"), 60.0));
    assert_eq!(reason, "no stt price for openai/gpt-4o-transcribe on 2025-03-19");
    assert_eq!(
        cost_at(&prices, "2025-03-20T00:00:00Z", stt("openai", Some("gpt-4o-transcribe"), 60.0)),
        6_000_000
    );
}
