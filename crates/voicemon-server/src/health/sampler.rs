//! Health samples: once a minute the platform-wide health is summarised and stored, so
//! `GET /metrics/health?from&to` shows the recent past; samples (and provider minutes)
//! older than the retention are deleted once an hour.
//!
//! Samples are platform-wide: overall status and reasons, providers, breakers, database,
//! Redis and worker totals. Per-tenant worker lists are not sampled (with 1 000 tenants they
//! would dominate storage); a tenant's current state is always in the live answer.

use super::{report, Depth, HealthReport, RedisMonitor};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use voicemon_core::clock::Clock;
use voicemon_core::health::HealthRules;
use voicemon_core::window::{minute_of, MINUTE_MS};
use voicemon_store::{HealthStore, Store};

/// The tenant key platform-wide samples are stored under.
pub const PLATFORM: &str = "";

/// One stored minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Platform-wide; absent in answers to tenant-scoped keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<voicemon_core::health::Overall>,
    pub reasons: Vec<String>,
    /// Worker totals; absent in answers to tenant-scoped keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkerTotals>,
    pub breakers_open: Vec<String>,
    pub providers: Vec<ProviderSample>,
    pub database_reachable: bool,
    pub database_round_trip_ms: Option<f64>,
    pub redis_reachable: Option<bool>,
    pub redis_hit_rate: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerTotals {
    pub up: usize,
    pub stale: usize,
    pub down: usize,
    pub active_calls: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderSample {
    pub provider: String,
    pub status: voicemon_core::health::ProviderStatus,
    /// Platform-wide volume; absent in answers to tenant-scoped keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_last_minute: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors_last_minute: Option<u64>,
}

/// Reasons kept per sample (the worst first).
const MAX_REASONS: usize = 20;

impl Sample {
    pub fn of(report: &HealthReport) -> Sample {
        let mut reasons = report.reasons.clone();
        reasons.sort_by_key(|reason| std::cmp::Reverse(reason.severity));
        Sample {
            status: Some(report.status),
            reasons: reasons.into_iter().take(MAX_REASONS).map(|r| r.message).collect(),
            workers: Some(WorkerTotals {
                up: report.workers.up,
                stale: report.workers.stale,
                down: report.workers.down,
                active_calls: report.workers.active_calls,
            }),
            breakers_open: report
                .breakers
                .iter()
                .filter(|b| b.state == voicemon_core::event::BreakerState::Open)
                .map(|b| format!("{} ({})", b.breaker, b.tenant_id))
                .collect(),
            providers: report
                .providers
                .iter()
                .map(|p| ProviderSample {
                    provider: p.provider.clone(),
                    status: p.status,
                    requests_last_minute: Some(p.requests_last_minute),
                    errors_last_minute: Some(p.errors_last_minute),
                })
                .collect(),
            database_reachable: report.database.reachable,
            database_round_trip_ms: report.database.round_trip_ms,
            redis_reachable: report.redis.reachable,
            redis_hit_rate: report.redis.hit_rate,
        }
    }

    /// What a tenant-scoped key may see of a platform-wide sample: provider statuses,
    /// the database and Redis, its own open breakers; not the platform's verdict, worker
    /// totals or request volumes, which speak of other tenants.
    pub fn for_tenant(mut self, tenant_id: &str) -> Sample {
        self.status = None;
        self.workers = None;
        self.breakers_open.retain(|b| b.ends_with(&format!("({tenant_id})")));
        self.reasons.retain(|r| {
            r.starts_with("provider ") || r.starts_with("voicemon's database") || r.starts_with("redis ")
        });
        for provider in &mut self.providers {
            provider.requests_last_minute = None;
            provider.errors_last_minute = None;
        }
        self
    }
}

/// Settings of the sampler.
#[derive(Debug, Clone, Copy)]
pub struct SamplerConfig {
    pub every: Duration,
    pub retention: Duration,
}

/// Takes one sample for the minute of `now_ms`: the health report read from `facts` (the
/// report reads every subsystem's facts), stored in `samples`.
pub async fn take_sample(
    facts: &dyn Store,
    samples: &dyn HealthStore,
    redis: &RedisMonitor,
    rules: &HealthRules,
    now_ms: i64,
) -> Result<(), voicemon_store::StoreError> {
    let report = report(facts, redis, rules, None, now_ms, Depth::Recent).await;
    let sample = serde_json::to_string(&Sample::of(&report)).unwrap_or_default();
    samples.put_health_sample(PLATFORM, minute_of(now_ms), sample).await
}

/// Samples every `config.every` and prunes hourly until `shutdown` turns true.
pub fn spawn(
    facts: Arc<dyn Store>,
    samples: Arc<dyn HealthStore>,
    redis: RedisMonitor,
    rules: HealthRules,
    config: SamplerConfig,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(config.every);
        let mut last_prune_ms: Option<i64> = None;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now_ms = clock.now_ms();
            if let Err(err) = take_sample(facts.as_ref(), samples.as_ref(), &redis, &rules, now_ms).await {
                tracing::warn!(error = %err, "health sample not stored");
            }
            if last_prune_ms.is_none_or(|last| now_ms - last >= 60 * MINUTE_MS) {
                last_prune_ms = Some(now_ms);
                let before = now_ms - config.retention.as_millis() as i64;
                match samples.prune_health(before).await {
                    Ok(removed) if removed > 0 => {
                        tracing::info!(removed, "pruned health history past retention")
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "health history not pruned"),
                }
            }
        }
    })
}
