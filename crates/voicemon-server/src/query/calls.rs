//! Calls: totals, success rate, failure reasons, duration percentiles.

use super::QueryError;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use voicemon_core::event::CallStatus;
use voicemon_core::window::{format_time, TimeRange};
use voicemon_store::{CallStore, EndedCall};

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct DurationPercentiles {
    /// Exact: the value at rank floor(q × (n − 1)) of the call durations.
    pub estimator: &'static str,
    pub p50_s: Option<f64>,
    pub p95_s: Option<f64>,
}

/// Counts over calls that ended in the range.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct CallSummary {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub abandoned: u64,
    pub transferred: u64,
    /// (completed + transferred) / total; `null` with no calls.
    pub success_rate: Option<f64>,
    /// `ended_reason` of failed and abandoned calls, most frequent first.
    pub failure_reasons: Vec<ReasonCount>,
    pub duration: DurationPercentiles,
}

#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct ObjectiveSummary {
    pub objective: String,
    #[serde(flatten)]
    pub summary: CallSummary,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallsAnswer {
    pub tenant_id: Option<String>,
    pub from: String,
    pub to: String,
    /// Calls whose call.started falls in the range.
    pub started: u64,
    /// Of those, calls with no call.ended yet.
    pub in_progress: u64,
    #[serde(flatten)]
    pub ended: CallSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_objective: Option<Vec<ObjectiveSummary>>,
}

/// Calls with no objective are grouped under this name.
const NO_OBJECTIVE: &str = "(none)";
const NO_REASON: &str = "(unspecified)";

/// Calls started and ended in `range` (of one tenant, or all with `None`), optionally
/// also per objective.
pub async fn calls(
    store: &dyn CallStore,
    tenant_id: Option<String>,
    range: TimeRange,
    by_objective: bool,
) -> Result<CallsAnswer, QueryError> {
    let tenant = tenant_id.as_deref();
    let ended = store.ended_calls(tenant, range).await?;
    let (started, in_progress) = store.started_calls(tenant, range).await?;
    Ok(CallsAnswer {
        from: format_time(range.from_ms),
        to: format_time(range.to_ms),
        started,
        in_progress,
        ended: summarise(&ended),
        by_objective: by_objective.then(|| group_by_objective(&ended)),
        tenant_id,
    })
}

fn group_by_objective(calls: &[EndedCall]) -> Vec<ObjectiveSummary> {
    let mut groups: BTreeMap<&str, Vec<EndedCall>> = BTreeMap::new();
    for call in calls {
        let objective = call.objective.as_deref().unwrap_or(NO_OBJECTIVE);
        groups.entry(objective).or_default().push(call.clone());
    }
    groups
        .into_iter()
        .map(|(objective, calls)| ObjectiveSummary {
            objective: objective.to_owned(),
            summary: summarise(&calls),
        })
        .collect()
}

/// The summary of a set of ended calls.
pub fn summarise(calls: &[EndedCall]) -> CallSummary {
    let mut by_status: BTreeMap<CallStatus, u64> = BTreeMap::new();
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    let mut successes = 0u64;
    for call in calls {
        let status = call.status;
        *by_status.entry(status).or_default() += 1;
        if status.is_success() {
            successes += 1;
        } else {
            *reasons.entry(call.ended_reason.as_deref().unwrap_or(NO_REASON)).or_default() += 1;
        }
    }
    let mut failure_reasons: Vec<ReasonCount> =
        reasons.into_iter().map(|(reason, count)| ReasonCount { reason: reason.to_owned(), count }).collect();
    failure_reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    let total = calls.len() as u64;
    let count = |status| by_status.get(&status).copied().unwrap_or(0);
    let mut durations: Vec<f64> = calls.iter().map(|c| c.duration_s).collect();
    durations.sort_by(f64::total_cmp);
    CallSummary {
        total,
        completed: count(CallStatus::Completed),
        failed: count(CallStatus::Failed),
        abandoned: count(CallStatus::Abandoned),
        transferred: count(CallStatus::Transferred),
        success_rate: (total > 0).then(|| successes as f64 / total as f64),
        failure_reasons,
        duration: DurationPercentiles {
            estimator: "exact",
            p50_s: exact_quantile(&durations, 0.50),
            p95_s: exact_quantile(&durations, 0.95),
        },
    }
}

/// The value at rank floor(q × (n − 1)) of sorted values.
pub fn exact_quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
    Some(sorted[rank])
}
