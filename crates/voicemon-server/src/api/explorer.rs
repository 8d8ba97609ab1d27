//! `GET /calls` (a window's calls, slowest first) and `GET /calls/{call_id}` (one call
//! whole): the call explorer ([`crate::query::explorer`]).

use crate::api::error::{ApiError, ErrorBody};
use crate::api::openapi::ReadErrors;
use crate::api::params::{Limit, Params, RangeParams};
use crate::auth::Principal;
use crate::query::explorer::{self, CallDetail, CallListAnswer, CallListQuestion, CallSort};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

const DEFAULT_RANGE_MS: i64 = 60 * 60 * 1000;
const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 50;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallListParams {
    /// The tenant; a key confined to a tenant reads its own, a key of every tenant must
    /// name one.
    tenant_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    range: RangeParams,
    /// Order, worst first: `worst_turn` (default), `p95` (the call's own P95 turn
    /// latency), `cost`, `duration`.
    #[param(value_type = Option<CallSort>, inline)]
    sort: Option<SortParam>,
    /// Only calls of this agent.
    agent_id: Option<String>,
    /// Only calls with this objective.
    objective: Option<String>,
    /// Only calls in this state: `completed`, `failed`, `abandoned`, `transferred`, `in_progress`.
    #[param(value_type = Option<String>, pattern = "^(completed|failed|abandoned|transferred|in_progress)$")]
    status: Option<StatusParam>,
    /// Only calls that used this provider (a usage line of it).
    provider: Option<String>,
    /// Only calls with a turn at least this slow, end-to-end, in ms.
    #[param(value_type = Option<f64>, minimum = 0)]
    min_e2e_ms: Option<MinLatency>,
    /// 1 to 500; 50 by default.
    #[param(value_type = Option<u16>, minimum = 1, maximum = 500)]
    limit: Option<Limit<MAX_PAGE>>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct SortParam(CallSort);

impl TryFrom<String> for SortParam {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        CallSort::parse(&text)
            .map(SortParam)
            .ok_or_else(|| format!("cannot sort calls by `{text}`; use worst_turn, p95, cost or duration"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct StatusParam(String);

impl TryFrom<String> for StatusParam {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "completed" | "failed" | "abandoned" | "transferred" | "in_progress" => Ok(StatusParam(text)),
            other => Err(format!(
                "`{other}` is not a call status; use completed, failed, abandoned, transferred or in_progress"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct MinLatency(f64);

impl TryFrom<String> for MinLatency {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.parse::<f64>() {
            Ok(ms) if ms.is_finite() && ms >= 0.0 => Ok(MinLatency(ms)),
            _ => Err(format!("`{text}` is not a latency in ms (a number, 0 or more)")),
        }
    }
}

/// The tenant a call explorer question is about: the key's own, or the one named.
fn tenant(principal: &Principal, requested: Option<&str>) -> Result<String, ApiError> {
    principal.read_scope(requested)?.ok_or_else(|| {
        ApiError::BadRequest("query parameter `tenant_id`: name the tenant whose calls to read".into())
    })
}

/// `GET /calls`.
#[utoipa::path(
    get,
    path = "/calls",
    tag = "metrics",
    params(CallListParams, RangeParams),
    responses(
        (status = 200, description = "The tenant's calls that began in the range (the last hour by default), \
                                      worst first, each with its worst turn and slowest component.", body = CallListAnswer),
        ReadErrors,
    )
)]
pub async fn get_calls(
    State(state): State<AppState>,
    principal: Principal,
    Params(params): Params<CallListParams>,
) -> Result<Json<CallListAnswer>, ApiError> {
    let tenant_id = tenant(&principal, params.tenant_id.as_deref())?;
    let range = params.range.resolve(state.clock.now_ms(), DEFAULT_RANGE_MS)?;
    let question = CallListQuestion {
        tenant_id,
        range,
        agent_id: params.agent_id,
        objective: params.objective,
        provider: params.provider,
        status: params.status.map(|s| s.0),
        min_e2e_ms: params.min_e2e_ms.map(|m| m.0),
        sort: params.sort.map(|s| s.0).unwrap_or_default(),
        limit: params.limit.map_or(DEFAULT_PAGE, |l| l.0),
        cursor: params.cursor,
    };
    Ok(Json(explorer::list(state.store.as_ref(), question).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallDetailParams {
    /// The call's tenant; a key confined to a tenant reads its own, a key of every tenant
    /// must name one.
    tenant_id: Option<String>,
}

/// `GET /calls/{call_id}`.
#[utoipa::path(
    get,
    path = "/calls/{call_id}",
    tag = "metrics",
    params(("call_id" = String, Path, description = "The call's id, as its events gave it."), CallDetailParams),
    responses(
        (status = 200, description = "The call whole: its facts, every turn with its components, usage lines and \
                                      their cost, provider requests, and the tenant's breaker changes and alerts while it lasted.", body = CallDetail),
        (status = 404, description = "The tenant has no such call.", body = ErrorBody),
        ReadErrors,
    )
)]
pub async fn get_call(
    State(state): State<AppState>,
    principal: Principal,
    Path(call_id): Path<String>,
    Params(params): Params<CallDetailParams>,
) -> Result<Json<CallDetail>, ApiError> {
    let tenant_id = tenant(&principal, params.tenant_id.as_deref())?;
    Ok(Json(explorer::detail(state.store.as_ref(), &tenant_id, &call_id).await?))
}
