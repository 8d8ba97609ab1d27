//! `GET /metrics/latency`: P50/P95/P99 per step and overall, merged from minute sketches.

use crate::api::error::ApiError;
use crate::api::openapi::ReadErrors;
use crate::api::params::{ComponentParam, Params, RangeParams, StepParam};
use crate::auth::Principal;
use crate::query::latency::{latency, LatencyAnswer, LatencyQuestion};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use voicemon_core::latency::{Component, Source};
use voicemon_store::LatencyFilter;

const DEFAULT_RANGE_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LatencyParams {
    /// Only this tenant; a key confined to a tenant reads its own.
    tenant_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    range: RangeParams,
    /// `turn_e2e` (the default), `stt`, `eou`, `llm_ttft` or `tts_ttfb`.
    #[param(value_type = Option<Component>, inline)]
    component: Option<ComponentParam>,
    /// A whole number of minutes as a duration such as `5m` or `1h`; by default one that
    /// gives a readable number of steps (at most 11 000).
    #[param(value_type = Option<String>, pattern = "^[0-9]+(ms|s|m|h|d|w)?$")]
    step: Option<StepParam>,
    /// Only this agent.
    agent_id: Option<String>,
    /// Only this provider (case-insensitive).
    provider: Option<String>,
    /// Only this model.
    model: Option<String>,
}

/// `GET /metrics/latency`.
#[utoipa::path(
    get,
    path = "/metrics/latency",
    tag = "metrics",
    params(LatencyParams, RangeParams),
    responses(
        (status = 200, description = "P50/P95/P99 per step and overall of one latency component over the range (one hour by default).", body = LatencyAnswer),
        ReadErrors,
    )
)]

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
