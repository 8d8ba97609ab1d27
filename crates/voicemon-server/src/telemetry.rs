//! voicemon's own metrics: what its ingest and store are doing, for `/metrics`.
//!
//! Names follow `voicemon_<subsystem>_<name>_<unit>[_total]`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// Handles to every self-metric; cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    registry: Arc<Registry>,
    events: Family<OutcomeLabel, Counter>,
    flushes: Family<OutcomeLabel, Counter>,
    flush_seconds: Histogram,
    flush_events: Histogram,
    /// The live view's WebSocket metrics (`voicemon_live_*`).
    pub live: crate::live::LiveMetrics,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        let mut registry = Registry::default();
        let events = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "voicemon_ingest_events",
            "Events received by outcome: accepted, duplicate, rejected",
            events.clone(),
        );
        let flushes = Family::<OutcomeLabel, Counter>::default();
        registry.register("voicemon_store_flushes", "Group commits by outcome: ok, error", flushes.clone());
        let flush_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "voicemon_store_flush_duration_seconds",
            "Time to commit one group of events",
            flush_seconds.clone(),
        );
        let flush_events = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        registry.register("voicemon_store_flush_events", "Events in one group commit", flush_events.clone());
        let live = crate::live::LiveMetrics::register(&mut registry);
        Telemetry { registry: Arc::new(registry), events, flushes, flush_seconds, flush_events, live }
    }

    pub fn events(&self, outcome: &'static str, count: usize) {
        self.events.get_or_create(&OutcomeLabel { outcome }).inc_by(count as u64);
    }

    pub fn flush(&self, ok: bool, events: usize, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.flushes.get_or_create(&OutcomeLabel { outcome }).inc();
        self.flush_seconds.observe(took.as_secs_f64());
        self.flush_events.observe(events as f64);
    }

    /// The Prometheus text exposition of every self-metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
