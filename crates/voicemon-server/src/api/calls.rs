//! `GET /metrics/calls`: totals, success rate, failure reasons, duration percentiles.

use crate::api::error::ApiError;
use crate::api::openapi::ReadErrors;
use crate::api::params::{Params, RangeParams};
use crate::auth::Principal;
use crate::query::calls::{calls, CallsAnswer};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

const DEFAULT_RANGE_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallsParams {
    /// Only this tenant; a key confined to a tenant reads its own.
    tenant_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    range: RangeParams,
    /// `objective`: also one summary per objective.
    #[param(inline)]
    by: Option<CallGrouping>,
}

/// `by`: how calls are also grouped (only `objective` so far).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(try_from = "String", rename_all = "snake_case")]
pub enum CallGrouping {
    Objective,
}

impl TryFrom<String> for CallGrouping {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "objective" => Ok(CallGrouping::Objective),
            other => Err(format!("cannot group calls by `{other}`; use by=objective")),
        }
    }
}

/// `GET /metrics/calls`.
#[utoipa::path(
    get,
    path = "/metrics/calls",
    tag = "metrics",
    params(CallsParams, RangeParams),
    responses(
        (status = 200, description = "Calls started and ended in the range (the last day by default).", body = CallsAnswer),
        ReadErrors,
    )
)]
pub async fn get_calls(
    State(state): State<AppState>,
    principal: Principal,
    Params(params): Params<CallsParams>,
) -> Result<Json<CallsAnswer>, ApiError> {
    let tenant_id = principal.read_scope(params.tenant_id.as_deref())?;
    let range = params.range.resolve(state.clock.now_ms(), DEFAULT_RANGE_MS)?;
    let by_objective = params.by.is_some();
    Ok(Json(calls(state.store.as_ref(), tenant_id, range, by_objective).await?))
}
