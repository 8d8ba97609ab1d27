//! One snapshot of a scope: latency, calls, cost, health and alerts over a sliding
//! window, computed with the same queries as the REST answers (`crate::query`).

use super::subscription::Scope;
use crate::alerting::AlertingConfig;
use crate::query::alerts::{active_alerts, AlertAnswer};
use crate::query::calls::{summarise, ReasonCount};
use crate::query::cost::cost_signals;
use crate::query::health::{report, Depth, HealthReport};
use crate::query::latency::{merge_into_steps, read_sketches, Estimator, Percentiles, Step};
use crate::query::QueryError;
use crate::redis::RedisMonitor;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use voicemon_core::clock::Clock;
use voicemon_core::event::BreakerState;
use voicemon_core::health::{HealthRules, Overall, ProviderStatus, Reason, WorkerStatus};
use voicemon_core::latency::{Component, Source};
use voicemon_core::money::{prorate, Amount, Nanos};
use voicemon_core::window::{format_time, minute_of, TimeRange, HOUR_MS, MINUTE_MS};
use voicemon_store::{LatencyFilter, Resolution, Store};

/// At most this many entries of a list that grows with the fleet (reasons, workers that
/// need attention, breakers not closed); the totals are always complete.
const LIST_LIMIT: usize = 20;
/// Calls in progress: started this long ago at most, and not ended.
const IN_PROGRESS_LOOKBACK_MS: i64 = HOUR_MS;

/// What a snapshot is computed from.
#[derive(Clone)]
pub struct Sources {
    pub store: Arc<dyn Store>,
    pub redis: RedisMonitor,
    pub health_rules: HealthRules,
    pub alerting: Arc<AlertingConfig>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Counts the snapshots of this feed; a gap means the client skipped some.
    pub seq: u64,
    /// When the interval ticked (the snapshot describes that moment).
    pub computed_at: String,
    pub computed_at_ms: i64,
    /// How long the computation took.
    pub compute_ms: f64,
    pub tenant_id: Option<String>,
    pub interval_s: u64,
    pub window: WindowAnswer,
    pub latency: LatencyView,
    pub calls: CallsView,
    pub cost: CostView,
    pub health: HealthView,
    pub alerts: AlertsView,
}

#[derive(Debug, Serialize)]
pub struct WindowAnswer {
    pub seconds: u64,
    pub from: String,
    pub to: String,
    /// Latency reads the minute sketches overlapping the window: from this minute on.
    pub latency_from: String,
}

#[derive(Debug, Serialize)]
pub struct LatencyView {
    pub unit: &'static str,
    pub estimator: Estimator,
    pub components: BTreeMap<&'static str, ComponentView>,
}

#[derive(Debug, Serialize)]
pub struct ComponentView {
    /// `turn` (turn.completed) or `usage` (providers' usage events), as the REST answer.
    pub source: Source,
    /// Over the whole window.
    #[serde(flatten)]
    pub overall: Percentiles,
    /// Per minute of the window, oldest first; the last one is the current minute.
    pub minutes: Vec<Step>,
}

#[derive(Debug, Serialize)]
pub struct CallsView {
    /// Calls started in the last hour that have not ended.
    pub in_progress: u64,
    pub started_last_hour: u64,
    /// Calls that ended in the window, and how.
    pub ended: u64,
    pub completed: u64,
    pub failed: u64,
    pub abandoned: u64,
    pub transferred: u64,
    pub success_rate: Option<f64>,
    pub failure_reasons: Vec<ReasonCount>,
}

#[derive(Debug, Serialize)]
pub struct CostView {
    /// Cost of the calls that began in the window.
    pub total: Amount,
    pub calls: usize,
    pub per_call: Option<Amount>,
    /// Cost per minute of call (of the ended calls): the $0.20 guardrail.
    pub per_minute: Option<Amount>,
    /// `total` spread over the window: what the platform spends per wall-clock minute.
    pub spend_per_minute: Amount,
}

#[derive(Debug, Serialize)]
pub struct HealthView {
    pub status: Overall,
    pub reasons: Vec<Reason>,
    pub reasons_total: usize,
    pub workers: WorkersView,
    /// Breakers not closed, longest first.
    pub breakers: Vec<BreakerView>,
    pub breakers_total: usize,
    pub providers: Vec<ProviderView>,
    pub database: DatabaseView,
    pub redis: RedisView,
}

#[derive(Debug, Serialize)]
pub struct WorkersView {
    pub total: usize,
    pub up: usize,
    pub stale: usize,
    pub down: usize,
    pub active_calls: u64,
    /// Workers stale, down or above the memory threshold.
    pub attention: Vec<WorkerView>,
}

#[derive(Debug, Serialize)]
pub struct WorkerView {
    pub tenant_id: String,
    pub worker_id: String,
    pub status: WorkerStatus,
    pub memory_percent: f64,
}

#[derive(Debug, Serialize)]
pub struct BreakerView {
    pub tenant_id: String,
    pub breaker: String,
    pub state: BreakerState,
    pub for_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct ProviderView {
    pub provider: String,
    pub status: ProviderStatus,
    pub requests_last_minute: u64,
    pub errors_last_minute: u64,
    pub p95_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct DatabaseView {
    pub reachable: bool,
    pub round_trip_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct RedisView {
    pub configured: bool,
    pub reachable: Option<bool>,
    pub hit_rate: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AlertsView {
    pub firing: Vec<AlertAnswer>,
    pub pending: Vec<AlertAnswer>,
}

/// Computes the snapshot of `scope` as of `now_ms`.
pub async fn compute(
    sources: &Sources,
    scope: &Scope,
    seq: u64,
    now_ms: i64,
) -> Result<Snapshot, QueryError> {
    let started = std::time::Instant::now();
    let store = sources.store.as_ref();
    let tenant = scope.tenant_id.as_deref();
    let window = TimeRange { from_ms: now_ms - scope.window_ms(), to_ms: now_ms + 1 };
    let minutes = TimeRange { from_ms: minute_of(window.from_ms), to_ms: minute_of(now_ms) + MINUTE_MS };
    let (latency, calls, cost, alerts, health) = tokio::join!(
        latency(store, scope, minutes),
        calls(store, tenant, window, now_ms),
        cost(store, tenant, window, scope.window_ms()),
        active_alerts(store, &sources.alerting.inhibit, tenant, now_ms),
        report(store, &sources.redis, &sources.health_rules, tenant, now_ms, Depth::Recent),
    );
    let alerts = alerts?;
    Ok(Snapshot {
        kind: "snapshot",
        seq,
        computed_at: format_time(now_ms),
        computed_at_ms: now_ms,
        compute_ms: (started.elapsed().as_secs_f64() * 1e5).round() / 100.0,
        tenant_id: scope.tenant_id.clone(),
        interval_s: scope.interval_s,
        window: WindowAnswer {
            seconds: scope.window_s,
            from: format_time(window.from_ms),
            to: format_time(now_ms),
            latency_from: format_time(minutes.from_ms),
        },
        latency: latency?,
        calls: calls?,
        cost: cost?,
        health: health_view(health, &sources.health_rules),
        alerts: AlertsView { firing: alerts.firing, pending: alerts.pending },
    })
}

async fn latency(store: &dyn Store, scope: &Scope, minutes: TimeRange) -> Result<LatencyView, QueryError> {
    let step_starts = minutes.steps(MINUTE_MS)?;
    let mut components = BTreeMap::new();
    for &component in &scope.components {
        let mut filter = turn_filter(scope.tenant_id.clone(), component);
        let sketches = read_sketches(store, &mut filter, minutes, Resolution::Minute).await?;
        let (overall, steps) = merge_into_steps(&sketches, &step_starts, MINUTE_MS);
        let view =
            ComponentView { source: filter.source, overall: Percentiles::of(&overall), minutes: steps };
        components.insert(component.as_str(), view);
    }
    Ok(LatencyView { unit: "ms", estimator: Estimator::sketch(), components })
}

fn turn_filter(tenant_id: Option<String>, component: Component) -> LatencyFilter {
    LatencyFilter { tenant_id, component, source: Source::Turn, agent_id: None, provider: None, model: None }
}

async fn calls(
    store: &dyn Store,
    tenant: Option<&str>,
    window: TimeRange,
    now_ms: i64,
) -> Result<CallsView, QueryError> {
    let ended = summarise(&store.ended_calls(tenant, window).await?);
    let last_hour = TimeRange { from_ms: now_ms - IN_PROGRESS_LOOKBACK_MS, to_ms: now_ms + 1 };
    let (started, in_progress) = store.started_calls(tenant, last_hour).await?;
    Ok(CallsView {
        in_progress,
        started_last_hour: started,
        ended: ended.total,
        completed: ended.completed,
        failed: ended.failed,
        abandoned: ended.abandoned,
        transferred: ended.transferred,
        success_rate: ended.success_rate,
        failure_reasons: ended.failure_reasons.into_iter().take(5).collect(),
    })
}

async fn cost(
    store: &dyn Store,
    tenant: Option<&str>,
    window: TimeRange,
    window_ms: i64,
) -> Result<CostView, QueryError> {
    let signals = cost_signals(store, tenant, window).await?;
    Ok(CostView {
        total: Amount(signals.total),
        calls: signals.calls,
        per_call: signals.mean_per_call.map(Amount),
        per_minute: signals.per_minute.map(Amount),
        spend_per_minute: Amount(prorate(signals.total.0, Nanos(MINUTE_MS), window_ms)),
    })
}

fn health_view(report: HealthReport, rules: &HealthRules) -> HealthView {
    let workers = &report.workers;
    let attention = workers
        .list
        .iter()
        .filter(|w| w.status != WorkerStatus::Up || w.memory_percent >= rules.worker_memory_percent)
        .take(LIST_LIMIT)
        .map(|w| WorkerView {
            tenant_id: w.tenant_id.clone(),
            worker_id: w.worker_id.clone(),
            status: w.status,
            memory_percent: w.memory_percent,
        })
        .collect();
    let mut breakers: Vec<BreakerView> = report
        .breakers
        .iter()
        .filter(|b| b.state != BreakerState::Closed)
        .map(|b| BreakerView {
            tenant_id: b.tenant_id.clone(),
            breaker: b.breaker.clone(),
            state: b.state,
            for_seconds: b.for_seconds,
        })
        .collect();
    breakers.sort_by(|a, b| b.for_seconds.total_cmp(&a.for_seconds));
    breakers.truncate(LIST_LIMIT);
    HealthView {
        status: report.status,
        reasons_total: report.reasons.len(),
        reasons: report.reasons.into_iter().take(LIST_LIMIT).collect(),
        workers: WorkersView {
            total: workers.total,
            up: workers.up,
            stale: workers.stale,
            down: workers.down,
            active_calls: workers.active_calls,
            attention,
        },
        breakers_total: report.breakers.len(),
        breakers,
        providers: report
            .providers
            .iter()
            .map(|p| ProviderView {
                provider: p.provider.clone(),
                status: p.status,
                requests_last_minute: p.requests_last_minute,
                errors_last_minute: p.errors_last_minute,
                p95_ms: p.latency_1h.p95_ms,
            })
            .collect(),
        database: DatabaseView {
            reachable: report.database.reachable,
            round_trip_ms: report.database.round_trip_ms,
        },
        redis: RedisView {
            configured: report.redis.configured,
            reachable: report.redis.reachable,
            hit_rate: report.redis.hit_rate,
        },
    }
}
