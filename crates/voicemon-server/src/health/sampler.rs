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
use voicemon_store::Store;

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

/// Takes one sample for the minute of `now_ms`.
pub async fn take_sample(
    store: &dyn Store,
    redis: &RedisMonitor,
    rules: &HealthRules,
    now_ms: i64,
) -> Result<(), voicemon_store::StoreError> {
    let report = report(store, redis, rules, None, now_ms, Depth::Recent).await;
    let sample = serde_json::to_string(&Sample::of(&report)).unwrap_or_default();
    store.put_health_sample(PLATFORM, minute_of(now_ms), sample).await
}

/// Samples every `config.every` and prunes hourly until `shutdown` turns true.
pub fn spawn(
    store: Arc<dyn Store>,
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
            if let Err(err) = take_sample(store.as_ref(), &redis, &rules, now_ms).await {
                tracing::warn!(error = %err, "health sample not stored");
            }
            if last_prune_ms.is_none_or(|last| now_ms - last >= 60 * MINUTE_MS) {
                last_prune_ms = Some(now_ms);
                let before = now_ms - config.retention.as_millis() as i64;
                match store.prune_health(before).await {
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

/// The sampler's interval on tokio's paused clock, with a manual clock for the minute a
/// sample is stored under.
#[cfg(test)]
mod tests {
    use super::*;
    use voicemon_core::clock::ManualClock;
    use voicemon_core::window::TimeRange;
    use voicemon_store::sqlite::{Durability, SqliteStore};

    /// 2026-11-27T12:00:00Z.
    const NOW_MS: i64 = 1_795_780_800_000;
    const EVERY: Duration = Duration::from_secs(60);

    /// The minutes of the stored platform samples of the last hour.
    async fn sampled_minutes(store: &dyn Store) -> Vec<i64> {
        let hour = TimeRange { from_ms: NOW_MS - 60 * MINUTE_MS, to_ms: NOW_MS + 60 * MINUTE_MS };
        let samples = store.health_samples(PLATFORM, hour).await.expect("the samples read");
        samples.into_iter().map(|(minute_ms, _)| minute_ms).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_sample_is_stored_at_start_then_every_interval_under_the_clocks_minute() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path(), Durability::Normal).expect("the store opens"));
        let clock = ManualClock::at(NOW_MS + 5_000);
        let config = SamplerConfig { every: EVERY, retention: Duration::from_secs(30 * 24 * 3600) };
        let (_stop, shutdown) = watch::channel(false);
        let redis = RedisMonitor::disabled();
        let rules = HealthRules::default();
        spawn(Arc::clone(&store), redis, rules, config, Arc::new(clock.clone()), shutdown);

        // Virtual time moves only once the sampler waits for its next tick.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(sampled_minutes(store.as_ref()).await, [NOW_MS], "one sample at start");

        clock.advance(EVERY.as_millis() as i64);
        tokio::time::sleep(EVERY - Duration::from_secs(2)).await;
        assert_eq!(sampled_minutes(store.as_ref()).await, [NOW_MS], "none before the interval ends");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(sampled_minutes(store.as_ref()).await, [NOW_MS, NOW_MS + MINUTE_MS]);
    }
}
