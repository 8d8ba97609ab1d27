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
