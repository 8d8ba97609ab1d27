//! A price book file (`pricing/default.toml`'s format), then every example event costed
//! with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use voicemon_core::event::Event;
use voicemon_core::pricing::PriceBook;
use voicemon_core::validate::parse_event;

const NOW_MS: i64 = 1_795_780_800_000;

/// The usage examples of `examples/events`, at times inside and outside price periods.
static USAGE: LazyLock<Vec<Event>> = LazyLock::new(|| {
    let examples = [
        include_str!("../../examples/events/llm.usage.json"),
        include_str!("../../examples/events/stt.usage.json"),
        include_str!("../../examples/events/tts.usage.json"),
    ];
    examples.iter().map(|text| parse_event(text, NOW_MS).expect("the examples are valid")).collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(book) = PriceBook::from_toml(text, "fuzz.toml") else { return };
    for event in USAGE.iter() {
        let _ = book.cost(event);
    }
    for entry in book.entries() {
        let _ = voicemon_core::pricing::describe(&entry.rates);
    }
});
