//! Health samples: once a minute the platform-wide health is summarised and stored, so
//! `GET /metrics/health?from&to` shows the recent past; samples (and provider minutes)
//! older than the retention are deleted once an hour.
//!
//! Samples are platform-wide: overall status and reasons, providers, breakers, database,
//! Redis and worker totals. Per-tenant worker lists are not sampled (with 1 000 tenants they
//! would dominate storage); a tenant's current state is always in the live answer.

use crate::query::health::sample::{Sample, PLATFORM};
use crate::query::health::{report, Depth};
use crate::redis::RedisMonitor;
use crate::roles::{Role, Roles};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use voicemon_core::clock::Clock;
use voicemon_core::health::HealthRules;
use voicemon_core::window::{minute_of, MINUTE_MS};
use voicemon_store::Store;

/// Settings of the sampler.
#[derive(Debug, Clone, Copy)]
pub struct SamplerConfig {
    pub every: Duration,
    pub retention: Duration,
}

/// Takes one sample for the minute of `now_ms`: the health report (which reads every
/// subsystem's facts, hence the whole store), stored as the minute's sample.
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
/// Only the instance holding the health-sampling role samples (instances sharing a
/// database store one sample a minute between them).
pub fn spawn(
    store: Arc<dyn Store>,
    redis: RedisMonitor,
    rules: HealthRules,
    config: SamplerConfig,
    clock: Arc<dyn Clock>,
    roles: Roles,
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
            if !roles.holds(Role::HealthSampling) {
                continue;
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
        let manual = ManualClock::at(NOW_MS + 5_000);
        let config = SamplerConfig { every: EVERY, retention: Duration::from_secs(30 * 24 * 3600) };
        let (_stop, shutdown) = watch::channel(false);
        let redis = RedisMonitor::disabled();
        let rules = HealthRules::default();
        let clock: Arc<dyn Clock> = Arc::new(manual.clone());
        let (roles, _) =
            Roles::start(store.clone(), Arc::clone(&clock), Default::default(), shutdown.clone()).await;
        spawn(Arc::clone(&store), redis, rules, config, clock, roles, shutdown);

        // Virtual time moves only once the sampler waits for its next tick.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(sampled_minutes(store.as_ref()).await, [NOW_MS], "one sample at start");

        manual.advance(EVERY.as_millis() as i64);
        tokio::time::sleep(EVERY - Duration::from_secs(2)).await;
        assert_eq!(sampled_minutes(store.as_ref()).await, [NOW_MS], "none before the interval ends");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(sampled_minutes(store.as_ref()).await, [NOW_MS, NOW_MS + MINUTE_MS]);
    }
}
