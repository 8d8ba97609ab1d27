//! The traffic model: a pure, seeded discrete-event generator of contract-v1 events.
//!
//! Simulated time moves only when [`TrafficModel::events_until`] is called; happenings
//! (a call arrives, a turn completes, a heartbeat is due, an incident starts…) wait in
//! a queue ordered by time and emit events when their time comes. The same seed and
//! start time give the same events, however time is stepped.
//!
//! - `agenda`: the queue of happenings and what each one does.
//! - `event`: the envelope every event shares, and `provider.request` events.
//! - `fleet`: tenants, agents, their provider stacks; built once from the seed.
//! - `call`: arrivals, plans, `call.started` / `call.ended`.
//! - `turn`: latencies, tokens, usage and provider requests of each turn.
//! - `incident`: provider slowdowns and circuit breakers.
//! - `worker`: the workers hosting calls and their heartbeats.
//! - `random`: the distributions everything is drawn from.

mod agenda;
mod call;
mod event;
mod fleet;
mod incident;
mod random;
mod turn;
mod worker;

use super::SimulateOptions;
use agenda::{Happening, Scheduled};
use call::CallSim;
use event::Scope;
use fleet::{build_tenants, used_providers, Provider, TenantSim};
use incident::{Slowdown, DEFAULT_INCIDENT_GAP};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use random::{uniform, zipf_weights};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;
use worker::HEARTBEAT_EVERY_MS;

/// What the model generates. [`ModelConfig::new`] gives the defaults of [`SimulateOptions`].
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub seed: u64,
    /// Simulated time starts here (unix ms); nothing is stamped earlier.
    pub start_ms: i64,
    pub tenants: usize,
    pub agents_per_tenant: usize,
    pub calls_per_minute: f64,
    /// Mean quiet time between two provider incidents; `None` turns incidents off.
    /// The first incident starts 1–4 simulated minutes in.
    pub mean_incident_gap: Option<Duration>,
}

impl ModelConfig {
    pub fn new(seed: u64, start_ms: i64) -> Self {
        let defaults = SimulateOptions::default();
        ModelConfig {
            seed,
            start_ms,
            tenants: defaults.tenants,
            agents_per_tenant: defaults.agents_per_tenant,
            calls_per_minute: defaults.calls_per_minute,
            mean_incident_gap: Some(DEFAULT_INCIDENT_GAP),
        }
    }

    pub(super) fn from_options(options: &SimulateOptions, seed: u64, start_ms: i64) -> Self {
        ModelConfig {
            tenants: options.tenants,
            agents_per_tenant: options.agents_per_tenant,
            calls_per_minute: options.calls_per_minute,
            ..ModelConfig::new(seed, start_ms)
        }
    }
}

/// What the model has generated so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ModelStats {
    pub events: u64,
    pub calls_started: u64,
    pub calls_ended: u64,
    pub completed: u64,
    pub failed: u64,
    pub abandoned: u64,
    pub transferred: u64,
    pub breaker_trips: u64,
}

/// Latencies are clamped here, well inside the contract's 10-minute bound.
const MAX_SIMULATED_LATENCY_MS: f64 = 60_000.0;

/// A seeded generator of realistic voice-agent traffic. It holds simulated time: each
/// [`TrafficModel::events_until`] moves it forward and returns what happened meanwhile.
pub struct TrafficModel {
    config: ModelConfig,
    rng: StdRng,
    /// `{seed}-{start unix seconds}`: ids are `sim-{run_tag}-{n}` and call ids
    /// `call-{run_tag}-{n}`, so a rerun with the same seed at another time does not
    /// collide with the first run's ids (voicemon would drop them as duplicates).
    run_tag: String,
    next_event: u64,
    next_call: u64,
    next_seq: u64,
    cursor_ms: i64,
    queue: BinaryHeap<Scheduled>,
    tenants: Vec<TenantSim>,
    tenant_weights: Vec<f64>,
    used_providers: Vec<Provider>,
    calls: BTreeMap<u64, CallSim>,
    slowdown: Option<Slowdown>,
    open_breakers: BTreeSet<(usize, Provider)>,
    stats: ModelStats,
    out: Vec<(i64, Value)>,
}

impl TrafficModel {
    pub fn new(config: ModelConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let tenant_weights = zipf_weights(config.tenants.max(1), 0.7);
        let tenants = build_tenants(&mut rng, &config, &tenant_weights);
        let used_providers = used_providers(&tenants);
        let run_tag = format!("{}-{}", config.seed, config.start_ms / 1000);
        let mut model = TrafficModel {
            cursor_ms: config.start_ms,
            config,
            rng,
            run_tag,
            next_event: 0,
            next_call: 0,
            next_seq: 0,
            queue: BinaryHeap::new(),
            tenants,
            tenant_weights,
            used_providers,
            calls: BTreeMap::new(),
            slowdown: None,
            open_breakers: BTreeSet::new(),
            stats: ModelStats::default(),
            out: Vec::new(),
        };
        model.schedule_start();
        model
    }

    /// Advances simulated time to `now_ms` and returns every event that happened up to
    /// then, oldest first. No event is stamped after `now_ms`.
    pub fn events_until(&mut self, now_ms: i64) -> Vec<Value> {
        while self.queue.peek().is_some_and(|next| next.at_ms <= now_ms) {
            if let Some(next) = self.queue.pop() {
                self.handle(next.at_ms, next.happening);
            }
        }
        self.cursor_ms = self.cursor_ms.max(now_ms);
        let mut out = std::mem::take(&mut self.out);
        out.sort_by_key(|(at_ms, _)| *at_ms);
        out.into_iter().map(|(_, event)| event).collect()
    }

    /// How far simulated time has gone (unix ms).
    pub fn cursor_ms(&self) -> i64 {
        self.cursor_ms
    }

    pub fn stats(&self) -> ModelStats {
        self.stats
    }

    /// Calls started and not yet ended.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// The first arrival, every worker's first heartbeat, and the first incident.
    fn schedule_start(&mut self) {
        let start = self.config.start_ms;
        self.schedule_next_arrival(start);
        for tenant in 0..self.tenants.len() {
            for worker in 0..self.tenants[tenant].workers.len() {
                let offset = self.rng.random_range(0..HEARTBEAT_EVERY_MS);
                self.schedule(start + offset, Happening::Heartbeat { tenant, worker });
            }
        }
        if self.config.mean_incident_gap.is_some() {
            let first = seconds_ms(uniform(&mut self.rng, 60.0, 240.0));
            self.schedule(start + first, Happening::IncidentStarts);
        }
    }
}

fn seconds_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn clamp_latency(ms: f64) -> f64 {
    ms.clamp(0.0, MAX_SIMULATED_LATENCY_MS)
}

#[cfg(test)]
mod test_support {
    use super::{ModelConfig, TrafficModel};
    use serde_json::Value;

    /// 2026-01-01T00:00:00Z.
    pub(super) const START_MS: i64 = 1_767_225_600_000;
    pub(super) const MINUTE_MS: i64 = 60_000;

    pub(super) fn model(seed: u64) -> TrafficModel {
        TrafficModel::new(ModelConfig::new(seed, START_MS))
    }

    pub(super) fn lines_of(events: &[Value]) -> Vec<String> {
        events.iter().map(Value::to_string).collect()
    }

    pub(super) fn count_type(events: &[Value], kind: &str) -> usize {
        events.iter().filter(|e| e["type"] == kind).count()
    }

    pub(super) fn timestamp_ms(event: &Value) -> i64 {
        let text = event["timestamp"].as_str().unwrap_or_default();
        chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).unwrap_or(i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{lines_of, model, MINUTE_MS, START_MS};
    use serde_json::Value;
    use std::collections::HashSet;

    #[test]
    fn the_same_seed_and_start_give_the_same_events() {
        let first = model(7).events_until(START_MS + 5 * MINUTE_MS);
        let second = model(7).events_until(START_MS + 5 * MINUTE_MS);
        assert!(first.len() > 1_000, "only {} events in 5 minutes", first.len());
        assert_eq!(first, second);
    }

    #[test]
    fn different_seeds_give_different_events() {
        let first = model(7).events_until(START_MS + MINUTE_MS);
        let second = model(8).events_until(START_MS + MINUTE_MS);
        assert_ne!(lines_of(&first), lines_of(&second));
    }

    #[test]
    fn stepping_in_small_increments_gives_the_same_events_as_one_big_step() {
        let whole = model(3).events_until(START_MS + 3 * MINUTE_MS);
        let mut stepped_model = model(3);
        let mut stepped = Vec::new();
        for second in 1..=180 {
            stepped.extend(stepped_model.events_until(START_MS + second * 1000));
        }
        let sorted = |events: &[Value]| {
            let mut lines = lines_of(events);
            lines.sort();
            lines
        };
        assert_eq!(sorted(&whole), sorted(&stepped));
    }

    #[test]
    fn event_ids_are_unique() {
        let events = model(13).events_until(START_MS + 10 * MINUTE_MS);
        let ids: HashSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
        assert_eq!(ids.len(), events.len());
    }
}
