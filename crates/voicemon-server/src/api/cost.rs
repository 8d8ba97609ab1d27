//! `GET /metrics/cost`: one call itemised, or a tenant's cost over a month or a range.
//!
//! Cost belongs to a call, at the time of the call's first event: a range or a month
//! holds the calls that began in it, with all their usage, so a month's total is the sum
//! of its calls' totals and every split adds up to the total.

use crate::api::error::ApiError;
use crate::api::params::{CostGroupParam, MonthParam, Params, RangeParams};
use crate::auth::Principal;
use crate::query::cost::{call, summary, CostQuestion};
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use voicemon_store::CallRef;

const DEFAULT_RANGE_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Deserialize)]
pub struct CostParams {
    tenant_id: Option<String>,
    /// Itemise this call (or the call of `trace_id`) instead of summarising a range.
    call_id: Option<String>,
    trace_id: Option<String>,
    /// `YYYY-MM`: that UTC month, instead of `from` / `to`.
    month: Option<MonthParam>,
    #[serde(flatten)]
    range: RangeParams,
    /// `provider`, `component`, `model` or `day`.
    group_by: Option<CostGroupParam>,
}

pub async fn get_cost(
    State(state): State<AppState>,
    principal: Principal,
    Params(params): Params<CostParams>,
) -> Result<Response, ApiError> {
    let tenant_id = principal.read_scope(params.tenant_id.as_deref())?;
    let store = state.store.as_ref();
    let wanted_call = match (params.call_id, params.trace_id) {
        (Some(id), _) => Some(CallRef::CallId(id)),
        (None, Some(id)) => Some(CallRef::TraceId(id)),
        (None, None) => None,
    };
    if let Some(wanted) = wanted_call {
        return Ok(Json(call(store, tenant_id.as_deref(), &wanted).await?).into_response());
    }
    let range = match &params.month {
        Some(month) => month.range,
        None => params.range.resolve(state.clock.now_ms(), DEFAULT_RANGE_MS)?,
    };
    let group = params.group_by.map(|group| group.0);
    let question = CostQuestion { tenant_id, range, month: params.month.map(|month| month.text), group };
    Ok(Json(summary(store, question).await?).into_response())
}
