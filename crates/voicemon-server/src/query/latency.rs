//! Latency: P50/P95/P99 per step and overall, merged from minute (or hour) sketches.

use super::QueryError;
use serde::Serialize;
use utoipa::ToSchema;
use voicemon_core::latency::{Component, Source};
use voicemon_core::sketch::{LatencySketch, ESTIMATOR, RELATIVE_ACCURACY};
use voicemon_core::window::{format_time, TimeRange, HOUR_MS};
use voicemon_store::{LatencyFilter, LatencyStore, Resolution};

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    pub fn of(sketch: &LatencySketch) -> Percentiles {
        let rounded = |q| sketch.quantile(q).map(|v| (v * 100.0).round() / 100.0);
        Percentiles { count: sketch.count(), p50: rounded(0.50), p95: rounded(0.95), p99: rounded(0.99) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Step {
    pub start: String,
    #[serde(flatten)]
    pub percentiles: Percentiles,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Estimator {
    pub name: &'static str,
    /// Every percentile is within this relative error of the exact value.
    pub relative_error: f64,
}

impl Estimator {
    /// The estimator behind every latency answer.
    pub fn sketch() -> Estimator {
        Estimator { name: ESTIMATOR, relative_error: RELATIVE_ACCURACY }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LatencyAnswer {
    pub tenant_id: Option<String>,
    pub component: Component,
    /// `turn`: from turn.completed; `usage`: from the usage events of providers.
    pub source: Source,
    pub agent_id: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// The range answered, widened to whole minutes.
    pub from: String,
    pub to: String,
    pub step_seconds: i64,
    pub unit: &'static str,
    pub estimator: Estimator,
    pub overall: Percentiles,
    pub steps: Vec<Step>,
}

/// A latency question: which series, over which range, in which steps.
#[derive(Debug, Clone)]
pub struct LatencyQuestion {
    /// `filter.source` is chosen by the answer (see [`read_sketches`]).
    pub filter: LatencyFilter,
    pub range: TimeRange,
    /// `None`: the default step for the range.
    pub step_ms: Option<i64>,
}

/// Percentiles per step and overall of one series over a range (widened to whole minutes).
pub async fn latency(
    store: &dyn LatencyStore,
    question: LatencyQuestion,
) -> Result<LatencyAnswer, QueryError> {
    let LatencyQuestion { mut filter, range, step_ms } = question;
    let range = range.minutes();
    let step_ms = step_ms.unwrap_or_else(|| voicemon_core::window::default_step_ms(&range));
    let step_starts = range.steps(step_ms)?;
    // Whole-hour steps may read hour rollups: an hour never straddles two such steps.
    let resolution = if step_ms % HOUR_MS == 0 { Resolution::Hour } else { Resolution::Minute };
    let sketches = read_sketches(store, &mut filter, range, resolution).await?;
    let (overall, steps) = merge_into_steps(&sketches, &step_starts, step_ms);
    Ok(LatencyAnswer {
        tenant_id: filter.tenant_id,
        component: filter.component,
        source: filter.source,
        agent_id: filter.agent_id,
        provider: filter.provider,
        model: filter.model,
        from: format_time(range.from_ms),
        to: format_time(range.to_ms),
        step_seconds: step_ms / 1000,
        unit: "ms",
        estimator: Estimator::sketch(),
        overall: Percentiles::of(&overall),
        steps,
    })
}

/// Chooses the source: a provider or model filter reads usage events (only they name
/// one); otherwise turn.completed, falling back to usage events for a component the
/// workers report only per provider request. `turn_e2e` and `eou` exist only per turn.
/// Sets `filter.source` to the source that answered.
pub async fn read_sketches(
    store: &dyn LatencyStore,
    filter: &mut LatencyFilter,
    range: TimeRange,
    resolution: Resolution,
) -> Result<Vec<(i64, LatencySketch)>, QueryError> {
    let per_turn_only = matches!(filter.component, Component::TurnE2e | Component::Eou);
    let wants_provider = filter.provider.is_some() || filter.model.is_some();
    if wants_provider && per_turn_only {
        return Err(QueryError::Invalid(format!(
            "{} is measured per turn, not per provider; drop the provider and model filters",
            filter.component.as_str()
        )));
    }
    filter.source = if wants_provider { Source::Usage } else { Source::Turn };
    let sketches = store.latency_sketches(filter, range, resolution).await?;
    if !sketches.is_empty() || wants_provider || per_turn_only {
        return Ok(sketches);
    }
    filter.source = Source::Usage;
    Ok(store.latency_sketches(filter, range, resolution).await?)
}

/// Merges minute sketches into their steps and into one overall sketch.
pub fn merge_into_steps(
    sketches: &[(i64, LatencySketch)],
    step_starts: &[i64],
    step_ms: i64,
) -> (LatencySketch, Vec<Step>) {
    let mut overall = LatencySketch::new();
    let mut per_step = vec![LatencySketch::new(); step_starts.len()];
    let first = step_starts.first().copied().unwrap_or(0);
    for (minute, sketch) in sketches {
        overall.merge(sketch);
        let slot = ((minute - first) / step_ms) as usize;
        if let Some(step) = per_step.get_mut(slot) {
            step.merge(sketch);
        }
    }
    let steps = step_starts
        .iter()
        .zip(per_step.iter())
        .map(|(start, sketch)| Step { start: format_time(*start), percentiles: Percentiles::of(sketch) })
        .collect();
    (overall, steps)
}
