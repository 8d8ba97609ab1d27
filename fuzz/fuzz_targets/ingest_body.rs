//! `POST /v1/events` bodies: framing, JSON, validation of each event and its costing.
//! The first byte picks the framing (as the content type would), the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use voicemon_core::body::{parse_body, Framing};
use voicemon_core::pricing::PriceBook;

/// 2026-11-27T12:00:00Z, the time the events are validated at.
const NOW_MS: i64 = 1_795_780_800_000;

static PRICES: LazyLock<PriceBook> =
    LazyLock::new(|| PriceBook::with_overrides(&[], "").expect("the shipped price book is valid"));

fuzz_target!(|data: &[u8]| {
    let Some((&framing, body)) = data.split_first() else { return };
    let framing = if framing % 2 == 0 { Framing::Ndjson } else { Framing::Json };
    if let Ok(parsed) = parse_body(body, framing, NOW_MS) {
        // The answer stays bounded whatever the body holds.
        assert!(parsed.rejections.listed.len() <= voicemon_core::body::LISTED_REJECTIONS);
        for event in &parsed.events {
            let _ = PRICES.cost(event);
        }
    }
});
