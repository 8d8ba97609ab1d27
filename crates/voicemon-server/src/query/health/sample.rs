//! The stored form of a health report, one per minute, and reading it back for a range.
//!
//! Samples are platform-wide: overall status and reasons, providers, breakers, database,
//! Redis and worker totals. Per-tenant worker lists are not sampled (with 1 000 tenants they
//! would dominate storage); a tenant's current state is always in the live answer.

use super::HealthReport;
use crate::query::QueryError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use voicemon_core::window::{format_time, TimeRange};
use voicemon_store::HealthStore;

/// The tenant key platform-wide samples are stored under.
pub const PLATFORM: &str = "";

/// One stored minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerTotals {
    pub up: usize,
    pub stale: usize,
    pub down: usize,
    pub active_calls: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

/// One minute of the health history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPoint {
    pub minute: String,
    #[serde(flatten)]
    pub sample: Sample,
}

/// The stored samples of `range`, oldest first, as `tenant` may see them (all with `None`).
pub async fn history(
    store: &dyn HealthStore,
    tenant: Option<&str>,
    range: TimeRange,
) -> Result<Vec<HistoryPoint>, QueryError> {
    let stored = store.health_samples(PLATFORM, range).await?;
    let points = stored
        .into_iter()
        .filter_map(|(minute, text)| {
            let sample: Sample = serde_json::from_str(&text).ok()?;
            let sample = match tenant {
                Some(tenant) => sample.for_tenant(tenant),
                None => sample,
            };
            Some(HistoryPoint { minute: format_time(minute), sample })
        })
        .collect();
    Ok(points)
}
