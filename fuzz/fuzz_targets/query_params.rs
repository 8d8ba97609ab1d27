//! Query strings of the REST API as each handler reads them, and the time range and
//! steps a latency query resolves them to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use voicemon_core::window::default_step_ms;
use voicemon_server::api::params::{parse, RangeParams, StepParam};
use voicemon_server::api::{alerts, calls, cost, health, latency};

const NOW_MS: i64 = 1_795_780_800_000;
const HOUR_MS: i64 = 3_600_000;

/// What `GET /metrics/latency` reads to lay out its steps.
#[derive(Deserialize)]
struct Steps {
    #[serde(flatten)]
    range: RangeParams,
    step: Option<StepParam>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let _ = parse::<latency::LatencyParams>(query);
    let _ = parse::<calls::CallsParams>(query);
    let _ = parse::<cost::CostParams>(query);
    let _ = parse::<health::HealthParams>(query);
    let _ = parse::<alerts::AlertsParams>(query);
    let _ = parse::<alerts::HistoryParams>(query);
    let Ok(asked) = parse::<Steps>(query) else { return };
    let Ok(range) = asked.range.resolve(NOW_MS, HOUR_MS) else { return };
    let step_ms = asked.step.map_or_else(|| default_step_ms(&range), |step| step.0);
    let _ = range.minutes();
    let _ = range.steps(step_ms);
});
