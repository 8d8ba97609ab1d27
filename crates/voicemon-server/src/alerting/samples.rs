//! The current value of each rule's metric, per label set, from the store and the
//! health report.

use crate::query::cost::signals_of;
use crate::query::health::HealthReport;
use std::collections::BTreeMap;
use voicemon_core::alerting::evaluator::Sample;
use voicemon_core::alerting::rules::{Metric, Rule};
use voicemon_core::alerting::Labels;
use voicemon_core::event::BreakerState;
use voicemon_core::health::{ProviderStatus, WorkerStatus};
use voicemon_core::window::{minute_of, TimeRange, MINUTE_MS};
use voicemon_store::{Store, StoreError};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

/// The samples of `rule` at `now_ms`; `health` is the platform-wide report of this tick.
pub async fn samples(
    store: &dyn Store,
    rule: &Rule,
    health: &HealthReport,
    now_ms: i64,
) -> Result<Vec<Sample>, StoreError> {
    let window = TimeRange { from_ms: now_ms - rule.window.as_millis() as i64, to_ms: now_ms + 1 };
    let health_based = matches!(
        rule.metric,
        Metric::BreakerOpenSeconds | Metric::WorkerMemoryPercent | Metric::ProviderDownSeconds
    );
    if let (true, Some(error)) = (health_based, &health.facts_error) {
        // No facts is not "no problem": keep the alerts as they are until facts return.
        return Err(StoreError::Unavailable(error.clone()));
    }
    Ok(match rule.metric {
        Metric::Latency { component, quantile } => {
            let minutes =
                TimeRange { from_ms: minute_of(window.from_ms), to_ms: minute_of(now_ms) + MINUTE_MS };
            let by_provider = rule.group_by.iter().any(|label| label == "provider");
            store
                .latency_by_tenant(component, minutes, by_provider)
                .await?
                .into_iter()
                .filter_map(|(tenant, provider, sketch)| {
                    let mut labels = labels(&[("tenant_id", &tenant)]);
                    if by_provider {
                        labels.insert("provider".into(), provider);
                    }
                    Some(Sample { labels, value: sketch.quantile(quantile.value())? })
                })
                .collect()
        }
        Metric::CostPerCall | Metric::CostPerMinute => {
            let mut by_tenant: BTreeMap<String, Vec<_>> = BTreeMap::new();
            for call in store.call_costs(None, window).await? {
                by_tenant.entry(call.tenant_id.clone()).or_default().push(call);
            }
            by_tenant
                .into_iter()
                .filter_map(|(tenant, calls)| {
                    let signals = signals_of(&calls);
                    let nanos = match rule.metric {
                        Metric::CostPerCall => signals.mean_per_call?,
                        _ => signals.per_minute?,
                    };
                    Some(Sample { labels: labels(&[("tenant_id", &tenant)]), value: nanos.0 as f64 / 1e9 })
                })
                .collect()
        }
        Metric::BreakerOpenSeconds => health
            .breakers
            .iter()
            .filter(|b| b.state == BreakerState::Open)
            .map(|b| Sample {
                labels: labels(&[("tenant_id", &b.tenant_id), ("breaker", &b.breaker)]),
                value: b.for_seconds,
            })
            .collect(),
        Metric::WorkerMemoryPercent => health
            .workers
            .list
            .iter()
            .filter(|w| w.status != WorkerStatus::Down)
            .map(|w| Sample {
                labels: labels(&[("tenant_id", &w.tenant_id), ("worker_id", &w.worker_id)]),
                value: w.memory_percent,
            })
            .collect(),
        Metric::ProviderDownSeconds => health
            .providers
            .iter()
            .filter(|p| p.status == ProviderStatus::Down)
            .map(|p| {
                let from_requests = p
                    .down_since
                    .as_deref()
                    .and_then(|since| voicemon_core::window::parse_time(since).ok())
                    .map(|since| (now_ms - since) as f64 / 1000.0);
                let from_breakers = health
                    .breakers
                    .iter()
                    .filter(|b| b.state == BreakerState::Open && b.breaker.eq_ignore_ascii_case(&p.provider))
                    .map(|b| b.for_seconds)
                    .fold(None, |max: Option<f64>, s| Some(max.map_or(s, |m| m.max(s))));
                let value = from_requests.into_iter().chain(from_breakers).fold(0.0, f64::max);
                Sample { labels: labels(&[("provider", &p.provider)]), value }
            })
            .collect(),
    })
}
