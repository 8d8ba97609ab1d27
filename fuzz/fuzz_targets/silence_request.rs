//! The body of `POST /alerts/silences`: its JSON, matchers and time window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voicemon_server::api::alerts::NewSilence;

const NOW_MS: i64 = 1_795_780_800_000;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<NewSilence>(data) else { return };
    let _ = body.resolve(NOW_MS);
});
