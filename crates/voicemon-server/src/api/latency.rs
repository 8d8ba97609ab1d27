//! `GET /metrics/latency`: P50/P95/P99 per step and overall, merged from minute sketches.

use crate::api::error::ApiError;
use crate::api::params::{ComponentParam, Params, RangeParams, StepParam};
use crate::auth::Principal;
use crate::query::latency::{latency, LatencyAnswer, LatencyQuestion};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use voicemon_core::latency::{Component, Source};
use voicemon_store::LatencyFilter;

const DEFAULT_RANGE_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Deserialize)]
pub struct LatencyParams {
    tenant_id: Option<String>,
    #[serde(flatten)]
    range: RangeParams,
    /// `turn_e2e` (the default), `stt`, `eou`, `llm_ttft` or `tts_ttfb`.
    component: Option<ComponentParam>,
    /// A duration such as `5m`; by default one that gives a readable number of steps.
    step: Option<StepParam>,
    agent_id: Option<String>,
    provider: Option<String>,
    model: Option<String>,
}

pub async fn get_latency(
    State(state): State<AppState>,
    principal: Principal,
    Params(params): Params<LatencyParams>,
) -> Result<Json<LatencyAnswer>, ApiError> {
    let tenant_id = principal.read_scope(params.tenant_id.as_deref())?;
    let range = params.range.resolve(state.clock.now_ms(), DEFAULT_RANGE_MS)?;
    let step_ms = params.step.map(|step| step.0);
    let filter = LatencyFilter {
        tenant_id,
        component: params.component.map_or(Component::TurnE2e, |c| c.0),
        source: Source::Turn,
        agent_id: params.agent_id,
        provider: params.provider.map(|p| p.to_ascii_lowercase()),
        model: params.model,
    };
    let answer = latency(state.store.as_ref(), LatencyQuestion { filter, range, step_ms }).await?;
    Ok(Json(answer))
}
