//! Health rules: worker staleness, circuit-breaker timelines, provider status and uptime,
//! and the overall verdict with its reasons. Pure functions of facts and `now_ms`.

use crate::event::BreakerState;
use crate::window::MINUTE_MS;
use serde::{Deserialize, Serialize};

/// Thresholds, all adjustable in `voicemon.toml` `[health]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthRules {
    /// A worker silent this long is `stale`.
    pub stale_after_ms: i64,
    /// A worker silent this long is `down`.
    pub down_after_ms: i64,
    /// Error ratio of a provider's requests over the last minute at or above which it is
    /// `degraded`.
    pub degraded_error_ratio: f64,
    /// … and `down`.
    pub down_error_ratio: f64,
    /// Requests needed in the last minute before the error ratio counts.
    pub min_requests: u64,
    /// Worker memory use at or above this percent makes the verdict `degraded`.
    pub worker_memory_percent: f64,
}

impl Default for HealthRules {
    fn default() -> Self {
        HealthRules {
            stale_after_ms: 30_000,
            down_after_ms: 120_000,
            degraded_error_ratio: 0.05,
            down_error_ratio: 0.5,
            min_requests: 5,
            worker_memory_percent: 80.0,
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    Up,
    Stale,
    Down,
}

/// A worker's status from the time of its last heartbeat.
pub fn worker_status(last_seen_ms: i64, now_ms: i64, rules: &HealthRules) -> WorkerStatus {
    let silent = now_ms - last_seen_ms;
    if silent >= rules.down_after_ms {
        WorkerStatus::Down
    } else if silent >= rules.stale_after_ms {
        WorkerStatus::Stale
    } else {
        WorkerStatus::Up
    }
}

/// Memory used as a percent of the limit, one decimal.
pub fn memory_percent(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        return 0.0;
    }
    (used as f64 / limit as f64 * 1000.0).round() / 10.0
}

/// One recorded breaker change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerChange {
    pub at_ms: i64,
    pub state: BreakerState,
}

/// A breaker as of `now_ms`, over the window `[window_start_ms, now_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BreakerSummary {
    pub state: BreakerState,
    /// When it entered its current state (the change, even if before the window).
    pub since_ms: i64,
    /// Time spent `open` inside the window.
    pub open_ms_in_window: i64,
    /// Changes inside the window.
    pub transitions_in_window: u32,
}

/// Summarises a breaker from its changes (any order; the last change at or before the
/// window start says the state the window began in). `None` without any change.
pub fn breaker_summary(
    changes: &[BreakerChange],
    window_start_ms: i64,
    now_ms: i64,
) -> Option<BreakerSummary> {
    let mut sorted: Vec<BreakerChange> = changes.iter().copied().filter(|c| c.at_ms <= now_ms).collect();
    sorted.sort_by_key(|c| c.at_ms);
    let last = *sorted.last()?;
    let mut open_ms = 0;
    let mut transitions = 0;
    for (index, change) in sorted.iter().enumerate() {
        let end = sorted.get(index + 1).map_or(now_ms, |next| next.at_ms);
        let start = change.at_ms.max(window_start_ms);
        if change.state == BreakerState::Open && end > start {
            open_ms += end - start;
        }
        if change.at_ms >= window_start_ms {
            transitions += 1;
        }
    }
    let since_ms =
        sorted.iter().rev().take_while(|c| c.state == last.state).last().map_or(last.at_ms, |c| c.at_ms);
    Some(BreakerSummary {
        state: last.state,
        since_ms,
        open_ms_in_window: open_ms,
        transitions_in_window: transitions,
    })
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    Up,
    Degraded,
    Down,
}

/// One minute of a provider's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderMinute {
    pub start_ms: i64,
    pub requests: u64,
    pub errors: u64,
}

/// The status of one minute by its error ratio; `None` with too few requests to say.
pub fn minute_status(minute: &ProviderMinute, rules: &HealthRules) -> Option<ProviderStatus> {
    if minute.requests < rules.min_requests.max(1) {
        return None;
    }
    let ratio = minute.errors as f64 / minute.requests as f64;
    Some(if ratio >= rules.down_error_ratio {
        ProviderStatus::Down
    } else if ratio >= rules.degraded_error_ratio {
        ProviderStatus::Degraded
    } else {
        ProviderStatus::Up
    })
}

/// A provider's status now: from its requests over the last minute (the current and the
/// previous minute bucket together), made worse by any breaker of that name that is open
/// (down) or half open (degraded).
pub fn provider_status(
    minutes: &[ProviderMinute],
    breaker: Option<BreakerState>,
    now_ms: i64,
    rules: &HealthRules,
) -> ProviderStatus {
    let recent_start = crate::window::minute_of(now_ms) - MINUTE_MS;
    let recent = minutes.iter().filter(|m| m.start_ms >= recent_start && m.start_ms <= now_ms).fold(
        ProviderMinute { start_ms: recent_start, requests: 0, errors: 0 },
        |sum, m| ProviderMinute { requests: sum.requests + m.requests, errors: sum.errors + m.errors, ..sum },
    );
    let from_requests = minute_status(&recent, rules).unwrap_or(ProviderStatus::Up);
    let from_breaker = match breaker {
        Some(BreakerState::Open) => ProviderStatus::Down,
        Some(BreakerState::HalfOpen) => ProviderStatus::Degraded,
        _ => ProviderStatus::Up,
    };
    from_requests.max(from_breaker)
}

/// Percent of the minutes with enough requests in `[from_ms, to_ms)` that were not down;
/// `None` when no minute had enough requests.
pub fn uptime_percent(
    minutes: &[ProviderMinute],
    from_ms: i64,
    to_ms: i64,
    rules: &HealthRules,
) -> Option<f64> {
    let judged: Vec<ProviderStatus> = minutes
        .iter()
        .filter(|m| m.start_ms >= from_ms && m.start_ms < to_ms)
        .filter_map(|m| minute_status(m, rules))
        .collect();
    if judged.is_empty() {
        return None;
    }
    let up = judged.iter().filter(|s| **s != ProviderStatus::Down).count();
    Some((up as f64 / judged.len() as f64 * 10_000.0).round() / 100.0)
}

/// Since when a provider has been down without a break: the start of the earliest minute
/// of the run of consecutive down minutes that reaches the present (a minute without
/// enough requests breaks the run).
pub fn down_since(minutes: &[ProviderMinute], now_ms: i64, rules: &HealthRules) -> Option<i64> {
    let mut judged: Vec<(i64, ProviderStatus)> = minutes
        .iter()
        .filter(|m| m.start_ms <= now_ms)
        .filter_map(|m| Some((m.start_ms, minute_status(m, rules)?)))
        .collect();
    judged.sort_by_key(|(start, _)| *start);
    let mut since: Option<i64> = None;
    for (start, status) in judged.iter().rev() {
        // A gap of more than a minute (no judged minute) ends the run too.
        let contiguous = since.is_none_or(|later| later - start <= MINUTE_MS);
        if *status != ProviderStatus::Down || !contiguous {
            break;
        }
        since = Some(*start);
    }
    // The run must reach the present: its last minute is the current or the previous one.
    since.filter(|_| judged.last().is_some_and(|(last, _)| now_ms - last <= 2 * MINUTE_MS))
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Ok,
    Degraded,
    Critical,
}

/// The overall verdict and the reasons that made it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verdict {
    pub reasons: Vec<Reason>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub severity: Overall,
    pub message: String,
}

impl Verdict {
    pub fn add(&mut self, severity: Overall, message: impl Into<String>) {
        self.reasons.push(Reason { severity, message: message.into() });
    }

    pub fn status(&self) -> Overall {
        self.reasons.iter().map(|r| r.severity).max().unwrap_or(Overall::Ok)
    }
}
