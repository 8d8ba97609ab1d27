//! One event's JSON through the contract's validation, then costed and added to derived
//! data as the batch writer would: what validation lets through must not break either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use voicemon_core::pricing::PriceBook;
use voicemon_core::validate::parse_event;
use voicemon_store::derived::Derived;

/// 2026-11-27T12:00:00Z, the time the events are validated at.
const NOW_MS: i64 = 1_795_780_800_000;

static PRICES: LazyLock<PriceBook> =
    LazyLock::new(|| PriceBook::with_overrides(&[], "").expect("the shipped price book is valid"));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(event) = parse_event(text, NOW_MS) else { return };
    let costing = PRICES.cost(&event);
    let mut derived = Derived::default();
    derived.add(&event, &costing, Some(1));
    let encoded = derived.encode();
    let decoded = Derived::decode(&encoded).expect("what the journal writes, it reads back");
    assert_eq!(decoded.canonical(), derived.canonical(), "the journal encoding round-trips");
});
