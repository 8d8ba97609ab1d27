//! Cost: one call itemised, a tenant's cost over a month or a range, and the cost
//! signals alert rules and the live view read.
//!
//! Cost belongs to a call, at the time of the call's first event: a range or a month
//! holds the calls that began in it, with all their usage, so a month's total is the sum
//! of its calls' totals and every split adds up to the total.

use super::QueryError;
use serde::Serialize;
use utoipa::ToSchema;
use voicemon_core::money::{Amount, Nanos};
use voicemon_core::window::{format_time, TimeRange};
use voicemon_store::{
    CallCost, CallCostTotal, CallRef, CostGroup, CostGroupRow, CostStore, StoreError, TenantCost, UsageLine,
};

/// One itemised line of a call.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineAnswer {
    pub time: String,
    pub component: String,
    pub provider: String,
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// What was billed: audio seconds, tokens or characters.
    pub quantity: serde_json::Value,
    /// The unit prices used (or why there is none).
    pub unit_price: Option<String>,
    pub price_ref: Option<String>,
    /// `null` when unpriced.
    pub cost: Option<Amount>,
    pub unpriced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpriced_reason: Option<String>,
}

impl From<&UsageLine> for LineAnswer {
    fn from(line: &UsageLine) -> Self {
        let unpriced = line.cost_nano.is_none();
        let mut quantity = serde_json::Map::new();
        let mut put = |name: &str, value: Option<serde_json::Value>| {
            if let Some(value) = value {
                quantity.insert(name.to_owned(), value);
            }
        };
        put("audio_seconds", line.audio_seconds.map(Into::into));
        put("input_tokens", line.input_tokens.map(Into::into));
        put("cached_input_tokens", line.cached_input_tokens.map(Into::into));
        put("audio_input_tokens", line.audio_input_tokens.map(Into::into));
        put("output_tokens", line.output_tokens.map(Into::into));
        put("audio_output_tokens", line.audio_output_tokens.map(Into::into));
        put("characters", line.characters.map(Into::into));
        LineAnswer {
            time: format_time(line.ts_ms),
            component: line.component.as_str().to_owned(),
            provider: line.provider.clone(),
            model: line.model.clone(),
            voice: line.voice.clone(),
            quantity: quantity.into(),
            unit_price: (!unpriced).then(|| line.detail.clone()),
            price_ref: (!unpriced).then(|| line.price_ref.clone()),
            cost: line.cost_nano.map(|n| Amount(Nanos(n))),
            unpriced,
            unpriced_reason: unpriced.then(|| line.detail.clone()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallAnswer {
    pub tenant_id: String,
    pub call_id: String,
    pub trace_id: Option<String>,
    pub status: Option<String>,
    pub duration_s: Option<f64>,
    /// Sum of the priced lines.
    pub total: Amount,
    /// `total` per minute of call; `null` until the call has ended.
    pub cost_per_minute: Option<Amount>,
    pub unpriced_lines: usize,
    pub lines: Vec<LineAnswer>,
}

impl From<CallCost> for CallAnswer {
    fn from(call: CallCost) -> Self {
        let total = Nanos(call.lines.iter().filter_map(|l| l.cost_nano).sum());
        CallAnswer {
            cost_per_minute: call.duration_s.and_then(|d| per_minute(total, d)).map(Amount),
            unpriced_lines: call.lines.iter().filter(|l| l.cost_nano.is_none()).count(),
            lines: call.lines.iter().map(LineAnswer::from).collect(),
            total: Amount(total),
            tenant_id: call.tenant_id,
            call_id: call.call_id,
            trace_id: call.trace_id,
            status: call.status,
            duration_s: call.duration_s,
        }
    }
}

/// `cost / (seconds / 60)`, rounded half up; `None` for a zero duration.
pub fn per_minute(cost: Nanos, seconds: f64) -> Option<Nanos> {
    let millis = (seconds * 1000.0).round() as i64;
    (millis > 0).then(|| voicemon_core::money::prorate(cost.0, Nanos(60_000), millis))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PerCall {
    pub mean: Option<Amount>,
    /// Exact: the call at rank floor(q × (n − 1)).
    pub p50: Option<Amount>,
    pub p95: Option<Amount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupAnswer {
    pub key: String,
    pub cost: Amount,
    pub usage_lines: u64,
    pub unpriced_lines: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostSummary {
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
    pub from: String,
    pub to: String,
    pub total: Amount,
    /// Calls whose first event falls in the range.
    pub calls: usize,
    /// Minutes of the calls that have ended.
    pub minutes: f64,
    pub cost_per_call: PerCall,
    /// Cost of the ended calls per minute of them.
    pub cost_per_minute: Option<Amount>,
    pub usage_lines: u64,
    pub unpriced_lines: u64,
    pub by_component: Vec<GroupAnswer>,
    pub by_provider: Vec<GroupAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupAnswer>>,
}

/// Cost signals over a window: what alert rules on cost per call and per minute read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostSignals {
    pub calls: usize,
    pub total: Nanos,
    pub mean_per_call: Option<Nanos>,
    pub per_minute: Option<Nanos>,
}

/// Cost per call and per minute of a tenant's calls that began in `range`.
pub async fn cost_signals(
    store: &dyn CostStore,
    tenant_id: Option<&str>,
    range: TimeRange,
) -> Result<CostSignals, StoreError> {
    Ok(signals_of(&store.call_costs(tenant_id, range).await?))
}

/// Cost signals of a set of calls.
pub fn signals_of(calls: &[CallCostTotal]) -> CostSignals {
    let ended = calls.iter().filter(|c| c.duration_s.is_some());
    CostSignals::of(&TenantCost {
        tenant_id: String::new(),
        calls: calls.len() as u64,
        cost_nano: calls.iter().map(|c| c.cost_nano).sum(),
        ended_cost_nano: ended.clone().map(|c| c.cost_nano).sum(),
        ended_seconds: ended.filter_map(|c| c.duration_s).fold(0.0, |sum, d| sum + d),
    })
}

impl CostSignals {
    /// The signals of calls' summed totals.
    pub fn of(totals: &TenantCost) -> CostSignals {
        let calls = totals.calls as usize;
        CostSignals {
            calls,
            total: Nanos(totals.cost_nano),
            mean_per_call: (calls > 0)
                .then(|| voicemon_core::money::prorate(totals.cost_nano, Nanos(1), totals.calls as i64)),
            per_minute: per_minute(Nanos(totals.ended_cost_nano), totals.ended_seconds),
        }
    }
}

/// Which calls a cost summary covers.
#[derive(Debug, Clone)]
pub struct CostQuestion {
    pub tenant_id: Option<String>,
    pub range: TimeRange,
    /// The month the range is, as asked (`YYYY-MM`), echoed in the answer.
    pub month: Option<String>,
    /// A split beside the by-component and by-provider ones.
    pub group: Option<CostGroup>,
}

/// A call and its itemised usage; `NotFound` when there is none (within the tenant).
pub async fn call(
    store: &dyn CostStore,
    tenant_id: Option<&str>,
    call: &CallRef,
) -> Result<CallAnswer, QueryError> {
    let tenant = match tenant_id {
        Some(tenant) => tenant.to_owned(),
        None => the_tenant_of(store, call).await?,
    };
    let found = store.call_cost(Some(&tenant), call).await?;
    found.map(CallAnswer::from).ok_or_else(|| QueryError::NotFound("no such call".into()))
}

/// How many tenants an ambiguous call's error names.
const NAMED_TENANTS: usize = 10;

/// The one tenant holding `call`, for a caller who named none; a call id (or trace id)
/// in several tenants is [`QueryError::Ambiguous`], naming them, never one picked.
async fn the_tenant_of(store: &dyn CostStore, call: &CallRef) -> Result<String, QueryError> {
    let mut tenants = store.call_tenants(call, NAMED_TENANTS + 1).await?;
    if tenants.len() <= 1 {
        return tenants.pop().ok_or_else(|| QueryError::NotFound("no such call".into()));
    }
    let (name, id) = match call {
        CallRef::CallId(id) => ("call_id", id),
        CallRef::TraceId(id) => ("trace_id", id),
    };
    let more = if tenants.len() > NAMED_TENANTS { ", …" } else { "" };
    tenants.truncate(NAMED_TENANTS);
    Err(QueryError::Ambiguous(format!(
        "{name} `{id}` is in several tenants ({}{more}); add tenant_id to say which",
        tenants.join(", ")
    )))
}

/// The cost of the calls whose first event falls in the question's range.
pub async fn summary(store: &dyn CostStore, question: CostQuestion) -> Result<CostSummary, QueryError> {
    let CostQuestion { tenant_id, range, month, group } = question;
    let tenant = tenant_id.as_deref();
    let calls = store.call_costs(tenant, range).await?;
    let signals = signals_of(&calls);
    let mut costs: Vec<i64> = calls.iter().map(|c| c.cost_nano).collect();
    costs.sort_unstable();
    let rank =
        |q: f64| costs.get((q * (costs.len().max(1) - 1) as f64).floor() as usize).map(|&n| Amount(Nanos(n)));
    let by_component = store.cost_breakdown(tenant, range, CostGroup::Component).await?;
    let by_provider = store.cost_breakdown(tenant, range, CostGroup::Provider).await?;
    let groups = match group {
        Some(group) => Some(store.cost_breakdown(tenant, range, group).await?),
        None => None,
    };
    Ok(CostSummary {
        tenant_id: tenant_id.clone(),
        month,
        from: format_time(range.from_ms),
        to: format_time(range.to_ms),
        total: Amount(signals.total),
        calls: signals.calls,
        minutes: (calls.iter().filter_map(|c| c.duration_s).fold(0.0, |sum, d| sum + d) / 60.0 * 100.0)
            .round()
            / 100.0,
        cost_per_call: PerCall { mean: signals.mean_per_call.map(Amount), p50: rank(0.50), p95: rank(0.95) },
        cost_per_minute: signals.per_minute.map(Amount),
        usage_lines: calls.iter().map(|c| c.usage_lines).sum(),
        unpriced_lines: calls.iter().map(|c| c.unpriced_lines).sum(),
        by_component: group_answers(by_component, CostGroup::Component),
        by_provider: group_answers(by_provider, CostGroup::Provider),
        group_by: group.map(group_name),
        groups: groups.zip(group).map(|(rows, group)| group_answers(rows, group)),
    })
}

fn group_name(group: CostGroup) -> &'static str {
    match group {
        CostGroup::Provider => "provider",
        CostGroup::Component => "component",
        CostGroup::Model => "model",
        CostGroup::Day => "day",
    }
}

fn group_answers(rows: Vec<CostGroupRow>, group: CostGroup) -> Vec<GroupAnswer> {
    rows.into_iter()
        .map(|row| GroupAnswer {
            key: match group {
                CostGroup::Day => {
                    row.key.parse::<i64>().map(|ms| format_time(ms)[..10].to_owned()).unwrap_or(row.key)
                }
                _ => row.key,
            },
            cost: Amount(Nanos(row.cost_nano)),
            usage_lines: row.usage_lines,
            unpriced_lines: row.unpriced_lines,
        })
        .collect()
}
