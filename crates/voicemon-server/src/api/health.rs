//! `GET /metrics/health`: what is sick now, with an overall status and its reasons;
//! `?from&to` adds the stored per-minute samples of that range.

use crate::api::error::ApiError;
use crate::api::openapi::ReadErrors;
use crate::api::params::{Params, RangeParams};
use crate::auth::Principal;
use crate::query::health::sample::{history, HistoryPoint};
use crate::query::health::{report, Depth, HealthReport};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const DEFAULT_HISTORY_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthAnswer {
    #[serde(flatten)]
    pub now: HealthReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryPoint>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HealthParams {
    /// Only this tenant; a key confined to a tenant reads its own.
    tenant_id: Option<String>,
    /// Either of `from` / `to` adds the stored samples of that range.
    #[serde(flatten)]
    #[param(ignore)]
    range: RangeParams,
}

/// `GET /metrics/health`.
#[utoipa::path(
    get,
    path = "/metrics/health",
    tag = "metrics",
    params(HealthParams, RangeParams),
    responses(
        (status = 200, description = "What is sick now and why; with `from` or `to`, also the stored per-minute samples of that range.", body = HealthAnswer),
        ReadErrors,
    )
)]

pub async fn get_health(
    State(state): State<AppState>,
    principal: Principal,
    Params(params): Params<HealthParams>,
) -> Result<Json<HealthAnswer>, ApiError> {
    let tenant = principal.read_scope(params.tenant_id.as_deref())?;
    let now_ms = state.clock.now_ms();
    let store = state.store.as_ref();
    let now = report(store, &state.redis, &state.health_rules, tenant.as_deref(), now_ms, Depth::Full).await;
    let history = match params.range.is_given() {
        false => None,
        true => {
            let range = params.range.resolve(now_ms, DEFAULT_HISTORY_MS)?;
            Some(history(store, tenant.as_deref(), range).await?)
        }
    };
    Ok(Json(HealthAnswer { now, history }))
}
