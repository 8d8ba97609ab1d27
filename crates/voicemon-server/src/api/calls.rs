//! `GET /metrics/calls`: totals, success rate, failure reasons, duration percentiles.

use crate::api::error::ApiError;
use crate::api::params::{Params, RangeParams};
use crate::auth::Principal;
use crate::query::calls::{calls, CallsAnswer};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;

const DEFAULT_RANGE_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Deserialize)]
pub struct CallsParams {
    tenant_id: Option<String>,
    #[serde(flatten)]
    range: RangeParams,
    /// `objective`: also one summary per objective.
    by: Option<CallGrouping>,
}

/// `by`: how calls are also grouped (only `objective` so far).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct CallGrouping;

impl TryFrom<String> for CallGrouping {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "objective" => Ok(CallGrouping),
            other => Err(format!("cannot group calls by `{other}`; use by=objective")),
        }
    }
}

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
