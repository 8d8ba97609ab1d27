//! The live view's own metrics, registered with the other self-metrics in
//! [`crate::telemetry::Telemetry`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Buckets of the snapshot duration histogram: 0.5 ms doubling 16 times.
const SNAPSHOT_SECONDS_BUCKETS: u16 = 16;

/// Why the server disconnects a client (the `reason` label of `voicemon_live_dropped`).
pub const DROP_REASONS: [&str; 4] = ["lagging", "write_timeout", "no_pong", "auth_timeout"];

/// Series of the live metrics, whatever the traffic: connections, feeds, snapshots, the
/// snapshot histogram (buckets, +Inf, sum, count), skipped messages, one per drop reason.
pub const LIVE_SERIES: usize = 1 + 1 + 1 + (SNAPSHOT_SECONDS_BUCKETS as usize + 3) + 1 + DROP_REASONS.len();

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Handles to the `voicemon_live_*` metrics; cheap to clone.
#[derive(Clone, Debug)]
pub struct LiveMetrics {
    connections: Gauge,
    feeds: Gauge,
    snapshots: Counter,
    snapshot_seconds: Histogram,
    skipped: Counter,
    dropped: Family<ReasonLabel, Counter>,
}

impl LiveMetrics {
    pub fn register(registry: &mut Registry) -> LiveMetrics {
        let metrics = LiveMetrics {
            connections: Gauge::default(),
            feeds: Gauge::default(),
            snapshots: Counter::default(),
            snapshot_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, SNAPSHOT_SECONDS_BUCKETS)),
            skipped: Counter::default(),
            dropped: Family::default(),
        };
        registry.register(
            "voicemon_live_connections",
            "Open WebSocket connections of /metrics/stream",
            metrics.connections.clone(),
        );
        registry.register(
            "voicemon_live_feeds",
            "Scopes (tenant, components, interval, window) with a task computing their snapshots",
            metrics.feeds.clone(),
        );
        registry.register(
            "voicemon_live_snapshots",
            "Snapshots computed (once per interval per scope, whatever the number of subscribers)",
            metrics.snapshots.clone(),
        );
        registry.register(
            "voicemon_live_snapshot_duration_seconds",
            "Time to compute one snapshot",
            metrics.snapshot_seconds.clone(),
        );
        registry.register(
            "voicemon_live_skipped_messages",
            "Messages a lagging client skipped because its queue was full",
            metrics.skipped.clone(),
        );
        registry.register(
            "voicemon_live_dropped",
            "Clients disconnected by the server, by reason: lagging, write_timeout, no_pong, auth_timeout",
            metrics.dropped.clone(),
        );
        // Known reasons start at 0, so a rate over them exists from the first scrape.
        for reason in DROP_REASONS {
            let _ = metrics.dropped.get_or_create(&ReasonLabel { reason });
        }
        metrics
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    pub fn feed_started(&self) {
        self.feeds.inc();
    }

    pub fn feed_stopped(&self) {
        self.feeds.dec();
    }

    pub fn snapshot(&self, took: Duration) {
        self.snapshots.inc();
        self.snapshot_seconds.observe(took.as_secs_f64());
    }

    pub fn skipped(&self, messages: u64) {
        self.skipped.inc_by(messages);
    }

    pub fn dropped(&self, reason: &'static str) {
        self.dropped.get_or_create(&ReasonLabel { reason }).inc();
    }
}
