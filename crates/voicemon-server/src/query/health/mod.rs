//! The health report: what is sick right now — workers, circuit breakers, providers,
//! voicemon's own database, the platform's Redis, alert receivers.
//!
//! The rules (staleness, error ratios) live in `voicemon_core::health`; this module
//! gathers the facts from the store and the Redis monitor and applies them.

pub mod sample;

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use utoipa::ToSchema;
use voicemon_core::event::BreakerState;
use voicemon_core::health::{
    breaker_summary, down_since, memory_percent, provider_status, uptime_percent, worker_status,
    BreakerChange, HealthRules, Overall, ProviderMinute, ProviderStatus, Verdict, WorkerStatus,
};
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::{format_time, MINUTE_MS};
use voicemon_store::{Fault, PoolStats, ProviderErrorCount, ReceiverState, Store, StoreError, WorkerRow};

use crate::redis::{RedisHealth, RedisMonitor};

const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerAnswer {
    pub tenant_id: String,
    pub worker_id: String,
    pub status: WorkerStatus,
    pub last_seen: String,
    pub seconds_since_heartbeat: f64,
    pub memory_used_bytes: u64,
    pub memory_limit_bytes: u64,
    pub memory_percent: f64,
    pub cpu_percent: f64,
    pub active_calls: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkersAnswer {
    pub total: usize,
    pub up: usize,
    pub stale: usize,
    pub down: usize,
    /// Active calls reported by workers that are not down.
    pub active_calls: u64,
    pub active_calls_by_tenant: BTreeMap<String, u64>,
    pub list: Vec<WorkerAnswer>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerAnswer {
    pub tenant_id: String,
    pub breaker: String,
    pub state: BreakerState,
    pub since: String,
    /// How long it has been in its current state.
    pub for_seconds: f64,
    pub open_seconds_24h: f64,
    pub transitions_24h: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Uptime {
    #[serde(rename = "1h")]
    pub hour: Option<f64>,
    #[serde(rename = "24h")]
    pub day: Option<f64>,
    #[serde(rename = "7d")]
    pub week: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorKind {
    pub error: String,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderLatency {
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderAnswer {
    pub provider: String,
    pub status: ProviderStatus,
    pub down_since: Option<String>,
    pub requests_last_minute: u64,
    pub errors_last_minute: u64,
    /// Percent of minutes (with at least `min_requests` requests) that were not down.
    pub uptime_percent: Uptime,
    pub errors_24h: Vec<ErrorKind>,
    /// Request latency over the last hour.
    pub latency_1h: ProviderLatency,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseAnswer {
    pub reachable: bool,
    pub round_trip_ms: Option<f64>,
    pub error: Option<String>,
    pub pool: PoolStats,
}

/// The whole answer of `GET /metrics/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    pub status: Overall,
    pub reasons: Vec<voicemon_core::health::Reason>,
    pub checked_at: String,
    pub tenant_id: Option<String>,
    pub workers: WorkersAnswer,
    pub breakers: Vec<BreakerAnswer>,
    pub providers: Vec<ProviderAnswer>,
    pub database: DatabaseAnswer,
    pub redis: RedisHealth,
    /// Alert receivers: a broken one answered a 4xx other than 429 (wrong URL, revoked
    /// webhook) and needs a person. Absent for tenant-scoped keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receivers: Option<Vec<ReceiverState>>,
    /// Set when the facts could not be read: the lists above are then incomplete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts_error: Option<String>,
}

/// How much provider history a report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Uptime over 1 h, 24 h and 7 d (the API).
    Full,
    /// The last hour only: status, down-since and 1 h uptime (alert ticks, samples).
    Recent,
}

/// Gathers and judges everything, as of `now_ms`.
pub async fn report(
    store: &dyn Store,
    redis: &RedisMonitor,
    rules: &HealthRules,
    tenant_id: Option<&str>,
    now_ms: i64,
    depth: Depth,
) -> HealthReport {
    let mut verdict = Verdict::default();
    let database = database(store).await;
    database_reasons(&database, store.backend(), &mut verdict);
    let facts = Facts::gather(store, tenant_id, now_ms, depth).await;
    let facts_error = facts.as_ref().err().map(|err| {
        tracing::warn!(error = %err, "health: could not read facts");
        verdict.add(Overall::Degraded, "voicemon could not read its health facts; the lists are incomplete");
        err.to_string()
    });
    let facts = facts.unwrap_or_default();
    let workers = workers(&facts.workers, now_ms, rules, &mut verdict);
    let breakers = breakers(&facts.breakers, now_ms, &mut verdict);
    let providers = providers(&facts, &breakers, now_ms, rules, depth, &mut verdict);
    let redis = redis.health();
    if redis.reachable == Some(false) {
        verdict.add(
            Overall::Degraded,
            format!("redis at {} is unreachable", redis.address.clone().unwrap_or_default()),
        );
    }
    let receivers = store.receiver_states().await.unwrap_or_default();
    for receiver in receivers.iter().filter(|r| r.broken && tenant_id.is_none()) {
        verdict.add(
            Overall::Degraded,
            format!(
                "alert receiver {} is broken: {}",
                receiver.name,
                receiver.last_error.as_deref().unwrap_or("it refused a notification")
            ),
        );
    }
    HealthReport {
        status: verdict.status(),
        reasons: verdict.reasons,
        checked_at: format_time(now_ms),
        tenant_id: tenant_id.map(str::to_owned),
        workers,
        breakers,
        providers,
        database,
        redis,
        receivers: tenant_id.is_none().then_some(receivers),
        facts_error,
    }
}

/// The facts health is judged from.
#[derive(Debug, Default)]
struct Facts {
    workers: Vec<WorkerRow>,
    breakers: Vec<voicemon_store::BreakerRow>,
    minutes: Vec<voicemon_store::ProviderMinuteRow>,
    latency: Vec<(String, LatencySketch)>,
    errors: Vec<ProviderErrorCount>,
}

impl Facts {
    async fn gather(
        store: &dyn Store,
        tenant: Option<&str>,
        now_ms: i64,
        depth: Depth,
    ) -> Result<Facts, StoreError> {
        let lookback = match depth {
            Depth::Full => 7 * DAY_MS,
            Depth::Recent => HOUR_MS,
        };
        // Raw facts (breaker changes) before derived data (provider minutes, then the rest):
        // a commit landing between two reads is then in both or in the derived ones only
        // (each derived read counts what was committed before it; on PostgreSQL the
        // provider minutes read first waits for the commits under way, which covers the
        // reads after it), never in the raw facts alone, so a report never shows a batch's
        // breakers without its workers.
        let breakers = store.breaker_changes(tenant, now_ms - DAY_MS).await?;
        let minutes = store.provider_minutes(tenant, now_ms - lookback).await?;
        Ok(Facts {
            workers: store.workers(tenant).await?,
            breakers,
            minutes,
            latency: store.provider_latency(tenant, now_ms - HOUR_MS).await?,
            errors: store.provider_errors(tenant, now_ms - DAY_MS).await?,
        })
    }
}

/// A database that does not answer, or that answers but cannot store writes, is critical:
/// ingest answers 503 until someone fixes the cause, which the reason names.
fn database_reasons(database: &DatabaseAnswer, backend: &str, verdict: &mut Verdict) {
    match (database.reachable, database.pool.fault) {
        (false, Some(fault)) if fault != Fault::Unreachable => verdict
            .add(Overall::Critical, format!("voicemon's database ({backend}) is not answering: {fault}")),
        (false, _) => verdict.add(
            Overall::Critical,
            format!("voicemon's database ({backend}) is not answering: {}", Fault::Unreachable),
        ),
        (true, Some(fault)) => verdict
            .add(Overall::Critical, format!("voicemon's database ({backend}) cannot store writes: {fault}")),
        (true, None) => {}
    }
}

async fn database(store: &dyn Store) -> DatabaseAnswer {
    let started = Instant::now();
    let ping = store.ping().await;
    let round_trip_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    DatabaseAnswer {
        reachable: ping.is_ok(),
        round_trip_ms: ping.is_ok().then_some(round_trip_ms),
        error: ping.err().map(|err| err.to_string()),
        pool: store.pool_stats(),
    }
}

fn workers(rows: &[WorkerRow], now_ms: i64, rules: &HealthRules, verdict: &mut Verdict) -> WorkersAnswer {
    let mut answer = WorkersAnswer {
        total: rows.len(),
        up: 0,
        stale: 0,
        down: 0,
        active_calls: 0,
        active_calls_by_tenant: BTreeMap::new(),
        list: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        let status = worker_status(row.last_ms, now_ms, rules);
        let memory = memory_percent(row.memory_used_bytes, row.memory_limit_bytes);
        let silent_s = (now_ms - row.last_ms) as f64 / 1000.0;
        match status {
            WorkerStatus::Up => answer.up += 1,
            WorkerStatus::Stale => {
                answer.stale += 1;
                verdict.add(
                    Overall::Degraded,
                    format!("worker {} is stale: silent for {silent_s:.0} s", row.worker_id),
                );
            }
            WorkerStatus::Down => {
                answer.down += 1;
                verdict.add(
                    Overall::Degraded,
                    format!("worker {} is down: silent for {silent_s:.0} s", row.worker_id),
                );
            }
        }
        if status != WorkerStatus::Down {
            answer.active_calls += u64::from(row.active_calls);
            *answer.active_calls_by_tenant.entry(row.tenant_id.clone()).or_default() +=
                u64::from(row.active_calls);
            if memory >= rules.worker_memory_percent {
                verdict.add(
                    Overall::Degraded,
                    format!("worker {} uses {memory} % of its memory", row.worker_id),
                );
            }
        }
        answer.list.push(WorkerAnswer {
            tenant_id: row.tenant_id.clone(),
            worker_id: row.worker_id.clone(),
            status,
            last_seen: format_time(row.last_ms),
            seconds_since_heartbeat: silent_s,
            memory_used_bytes: row.memory_used_bytes,
            memory_limit_bytes: row.memory_limit_bytes,
            memory_percent: memory,
            cpu_percent: row.cpu_percent,
            active_calls: row.active_calls,
        });
    }
    answer
}

fn breakers(rows: &[voicemon_store::BreakerRow], now_ms: i64, verdict: &mut Verdict) -> Vec<BreakerAnswer> {
    let mut by_breaker: BTreeMap<(&str, &str), Vec<BreakerChange>> = BTreeMap::new();
    for row in rows {
        let change = BreakerChange { at_ms: row.at_ms, state: row.state };
        by_breaker.entry((&row.tenant_id, &row.breaker)).or_default().push(change);
    }
    let mut answers = Vec::new();
    for ((tenant, breaker), changes) in by_breaker {
        let Some(summary) = breaker_summary(&changes, now_ms - DAY_MS, now_ms) else { continue };
        let for_seconds = (now_ms - summary.since_ms) as f64 / 1000.0;
        match summary.state {
            BreakerState::Open => verdict.add(
                Overall::Critical,
                format!("breaker {breaker} ({tenant}) is open for {for_seconds:.0} s"),
            ),
            BreakerState::HalfOpen => {
                verdict.add(Overall::Degraded, format!("breaker {breaker} ({tenant}) is half open"))
            }
            BreakerState::Closed => {}
        }
        answers.push(BreakerAnswer {
            tenant_id: tenant.to_owned(),
            breaker: breaker.to_owned(),
            state: summary.state,
            since: format_time(summary.since_ms),
            for_seconds,
            open_seconds_24h: summary.open_ms_in_window as f64 / 1000.0,
            transitions_24h: summary.transitions_in_window,
        });
    }
    answers
}

/// The worst state of the breakers named after a provider (any tenant in scope).
fn breaker_of(provider: &str, breakers: &[BreakerAnswer]) -> Option<BreakerState> {
    let rank = |state: BreakerState| match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    };
    breakers
        .iter()
        .filter(|b| b.breaker.eq_ignore_ascii_case(provider))
        .map(|b| b.state)
        .max_by_key(|s| rank(*s))
}

fn providers(
    facts: &Facts,
    breakers: &[BreakerAnswer],
    now_ms: i64,
    rules: &HealthRules,
    depth: Depth,
    verdict: &mut Verdict,
) -> Vec<ProviderAnswer> {
    let full = depth == Depth::Full;
    let mut minutes: BTreeMap<&str, Vec<ProviderMinute>> = BTreeMap::new();
    for row in &facts.minutes {
        let minute = ProviderMinute { start_ms: row.start_ms, requests: row.requests, errors: row.errors };
        minutes.entry(&row.provider).or_default().push(minute);
    }
    let mut answers = Vec::new();
    for (provider, minutes) in minutes {
        let status = provider_status(&minutes, breaker_of(provider, breakers), now_ms, rules);
        let since = down_since(&minutes, now_ms, rules);
        match status {
            ProviderStatus::Down => verdict.add(
                Overall::Critical,
                match since {
                    Some(since) => format!("provider {provider} is down since {}", format_time(since)),
                    None => format!("provider {provider} is down (its breaker is open)"),
                },
            ),
            ProviderStatus::Degraded => {
                verdict.add(Overall::Degraded, format!("provider {provider} is degraded"))
            }
            ProviderStatus::Up => {}
        }
        let recent_start = voicemon_core::window::minute_of(now_ms) - MINUTE_MS;
        let recent = minutes.iter().filter(|m| m.start_ms >= recent_start);
        let latency = facts.latency.iter().find(|(name, _)| name == provider).map(|(_, s)| s);
        answers.push(ProviderAnswer {
            provider: provider.to_owned(),
            status,
            down_since: since.filter(|_| status == ProviderStatus::Down).map(format_time),
            requests_last_minute: recent.clone().map(|m| m.requests).sum(),
            errors_last_minute: recent.map(|m| m.errors).sum(),
            uptime_percent: Uptime {
                hour: uptime_percent(&minutes, now_ms - HOUR_MS, now_ms + 1, rules),
                day: full.then(|| uptime_percent(&minutes, now_ms - DAY_MS, now_ms + 1, rules)).flatten(),
                week: full
                    .then(|| uptime_percent(&minutes, now_ms - 7 * DAY_MS, now_ms + 1, rules))
                    .flatten(),
            },
            errors_24h: facts
                .errors
                .iter()
                .filter(|e| e.provider == provider)
                .map(|e| ErrorKind { error: e.error.clone(), count: e.count })
                .collect(),
            latency_1h: ProviderLatency {
                count: latency.map_or(0, |s| s.count()),
                p50_ms: latency.and_then(|s| s.quantile(0.5)).map(round2),
                p95_ms: latency.and_then(|s| s.quantile(0.95)).map(round2),
            },
        });
    }
    answers
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
