//! A stored latency sketch (`LatencySketch::decode`): it reads back what it encodes, and
//! answers quantiles and merges without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voicemon_core::sketch::LatencySketch;

fuzz_target!(|data: &[u8]| {
    let Ok(sketch) = LatencySketch::decode(data) else { return };
    let encoded = sketch.encode();
    let again = LatencySketch::decode(&encoded).expect("an encoding decodes");
    assert_eq!(again.encode(), encoded, "decode and encode agree");
    for q in [0.0, 0.5, 0.99, 1.0] {
        let _ = sketch.quantile(q);
    }
    let mut merged = again;
    merged.merge(&sketch);
    let _ = merged.count();
});
