//! The current value of each rule's metric, per label set, from the store and the
//! health report.

use crate::query::cost::CostSignals;
use crate::query::health::HealthReport;
use std::collections::hash_map::{Entry, HashMap};
use voicemon_core::alerting::evaluator::Sample;
use voicemon_core::alerting::rules::{Metric, Rule};
use voicemon_core::alerting::Labels;
use voicemon_core::event::BreakerState;
use voicemon_core::health::{ProviderStatus, WorkerStatus};
use voicemon_core::window::{minute_of, TimeRange, MINUTE_MS};
use voicemon_store::{Store, StoreError, TenantCost};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

/// What the rules of one tick read once and share: each tenant's cost signals, by window
/// (the shipped cost-per-call and cost-per-minute rules both sum every call of the last
/// hour, 100 000 calls on a busy fleet).
#[derive(Debug, Default)]
pub struct TickReads {
    cost: HashMap<i64, Vec<(String, CostSignals)>>,
}

impl TickReads {
    /// Each tenant's cost signals over the calls that began in `window`.
    async fn cost(
        &mut self,
        store: &dyn Store,
        window: TimeRange,
    ) -> Result<&[(String, CostSignals)], StoreError> {
        let by_tenant = match self.cost.entry(window.to_ms - window.from_ms) {
            Entry::Occupied(read) => read.into_mut(),
            Entry::Vacant(unread) => {
                let tenants = store.tenant_costs(window).await?;
                let signals = |tenant: TenantCost| {
                    let signals = CostSignals::of(&tenant);
                    (tenant.tenant_id, signals)
                };
                unread.insert(tenants.into_iter().map(signals).collect())
            }
        };
        Ok(by_tenant)
    }
}

/// The samples of `rule` at `now_ms`; `health` is the platform-wide report of this tick,
/// `reads` what the tick's rules share.
pub async fn samples(
    store: &dyn Store,
    rule: &Rule,
    health: &HealthReport,
    now_ms: i64,
    reads: &mut TickReads,
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
        Metric::CostPerCall | Metric::CostPerMinute => reads
            .cost(store, window)
            .await?
            .iter()
            .filter_map(|(tenant, signals)| {
                let nanos = match rule.metric {
                    Metric::CostPerCall => signals.mean_per_call?,
                    _ => signals.per_minute?,
                };
                Some(Sample { labels: labels(&[("tenant_id", tenant)]), value: nanos.0 as f64 / 1e9 })
            })
            .collect(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use voicemon_core::pricing::PriceBook;
    use voicemon_core::validate::parse_event;
    use voicemon_store::sqlite::{Durability, SqliteStore};
    use voicemon_store::{IngestEvent, IngestStore};

    /// 2026-11-27T12:00:00Z.
    const NOW_MS: i64 = 1_795_780_800_000;

    /// gpt-4o usage of `tokens` input tokens in call `call` of `tenant` at `time`.
    fn usage(tenant: &str, call: &str, time: &str, tokens: u64) -> IngestEvent {
        let json = format!(
            r#"{{"id":"{call}-u","type":"llm.usage","timestamp":"{time}","tenant_id":"{tenant}",
            "call_id":"{call}","provider":"openai","model":"gpt-4o","input_tokens":{tokens},"output_tokens":0}}"#
        );
        let event = parse_event(&json, NOW_MS).expect("a valid event");
        let prices = PriceBook::with_overrides(&[], "").expect("the shipped price book");
        IngestEvent { costing: prices.cost(&event), event }
    }

    fn window(minutes: i64) -> TimeRange {
        TimeRange { from_ms: NOW_MS - minutes * MINUTE_MS, to_ms: NOW_MS + 1 }
    }

    #[tokio::test]
    async fn a_ticks_cost_rules_share_one_read_a_window_per_tenant() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path(), Durability::Normal).expect("the store opens");
        let events = vec![
            usage("acme", "recent", "2026-11-27T11:50:00Z", 100_000),
            usage("acme", "older", "2026-11-27T11:10:00Z", 300_000),
            usage("globex", "older", "2026-11-27T11:20:00Z", 200_000),
        ];
        store.write_batch(events).await.expect("the events are stored");

        let mut reads = TickReads::default();
        let calls = |answer: &[(String, CostSignals)]| -> Vec<(String, usize)> {
            answer.iter().map(|(tenant, signals)| (tenant.clone(), signals.calls)).collect()
        };
        let quarter = calls(reads.cost(&store, window(15)).await.expect("the read"));
        assert_eq!(quarter, [("acme".to_owned(), 1)], "only the recent call, by tenant");
        let hour = reads.cost(&store, window(60)).await.expect("the read");
        assert_eq!(
            calls(hour),
            [("acme".to_owned(), 2), ("globex".to_owned(), 1)],
            "another window, another read"
        );
        assert!(hour[0].1.total.0 > hour[1].1.total.0, "acme's two calls cost more than globex's one");

        store
            .write_batch(vec![usage("initech", "late", "2026-11-27T11:55:00Z", 1_000)])
            .await
            .expect("the event is stored");
        let again = calls(reads.cost(&store, window(15)).await.expect("the read"));
        assert_eq!(again, quarter, "within one tick a window is read once");
        let next_tick = calls(TickReads::default().cost(&store, window(15)).await.expect("the read"));
        assert_eq!(next_tick, [("acme".to_owned(), 1), ("initech".to_owned(), 1)]);
    }
}
