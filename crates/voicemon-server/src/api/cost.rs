//! `GET /metrics/cost`: one call itemised, or a tenant's cost over a month or a range.
//!
//! Cost belongs to a call, at the time of the call's first event: a range or a month
//! holds the calls that began in it, with all their usage, so a month's total is the sum
//! of its calls' totals and every split adds up to the total.

use crate::api::error::{ApiError, ErrorBody};
use crate::api::openapi::ReadErrors;
use crate::api::params::{CostGroupParam, MonthParam, Params, RangeParams};
use crate::auth::Principal;
use crate::query::cost::{call, summary, CostQuestion};
use crate::query::cost::{CallAnswer, CostSummary};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use voicemon_store::{CallRef, CostGroup};

const DEFAULT_RANGE_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// Only this tenant; a key confined to a tenant reads its own.
    tenant_id: Option<String>,
    /// Itemise this call (or the call of `trace_id`) instead of summarising a range.
    call_id: Option<String>,
    /// Itemise the call of this trace, when `call_id` is not given.
    trace_id: Option<String>,
    /// `YYYY-MM`: that UTC month, instead of `from` / `to` (giving both is a 400).
    #[param(value_type = Option<String>, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    month: Option<MonthParam>,
    #[serde(flatten)]
    #[param(ignore)]
    range: RangeParams,
    /// `provider`, `component`, `model` or `day`: also split the total that way.
    #[param(value_type = Option<CostGroup>, inline)]
    group_by: Option<CostGroupParam>,
}

/// The answer of `GET /metrics/cost`: an itemised call or a summary.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CostAnswer {
    Call(CallAnswer),
    Summary(CostSummary),
}

/// `GET /metrics/cost`.
#[utoipa::path(
    get,
    path = "/metrics/cost",
    tag = "metrics",
    params(CostParams, RangeParams),
    responses(
        (status = 200, description = "One call itemised (with `call_id` or `trace_id`), or the calls that began in the month or range (the last day by default) summed.", body = CostAnswer),
        (status = 404, description = "No such call.", body = ErrorBody),
        ReadErrors,
    )
)]

pub async fn get_cost(
    State(state): State<AppState>,
    principal: Principal,
    Params(params): Params<CostParams>,
) -> Result<Json<CostAnswer>, ApiError> {
    let tenant_id = principal.read_scope(params.tenant_id.as_deref())?;
    let store = state.store.as_ref();
    let wanted_call = match (params.call_id, params.trace_id) {
        (Some(id), _) => Some(CallRef::CallId(id)),
        (None, Some(id)) => Some(CallRef::TraceId(id)),
        (None, None) => None,
    };
    if let Some(wanted) = wanted_call {
        return Ok(Json(CostAnswer::Call(call(store, tenant_id.as_deref(), &wanted).await?)));
    }
    let range = match &params.month {
        Some(_) if params.range.is_given() => {
            return Err(ApiError::BadRequest("give either `month` or `from` / `to`, not both".into()))
        }
        Some(month) => month.range,
        None => params.range.resolve(state.clock.now_ms(), DEFAULT_RANGE_MS)?,
    };
    let group = params.group_by.map(|group| group.0);
    let question = CostQuestion { tenant_id, range, month: params.month.map(|month| month.text), group };
    Ok(Json(CostAnswer::Summary(summary(store, question).await?)))
}
