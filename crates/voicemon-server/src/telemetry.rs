//! What `GET /metrics` exposes: voicemon's own metrics (ingest, group commits, the store's
//! pool, alert evaluations, notification dispatch) and the voice metrics of [`voice`] (latency, calls, cost, providers by tenant
//! and component), in one prometheus-client registry.
//!
//! Names follow `voicemon_<subsystem>_<name>_<unit>[_total]`. Every metric and its
//! labels are described in `docs/prometheus.md`.

pub mod labels;
pub mod voice;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use voice::{PrometheusLimits, VoiceCollector, VoiceMetrics, VoiceRecord};
use voicemon_store::{PoolStats, WRITE_ERROR_CAUSES};

/// Flush duration buckets: 0.5 ms doubling 16 times.
const FLUSH_SECONDS_BUCKETS: u16 = 16;
/// Group size buckets: 1 event, ×4 ten times.
const FLUSH_EVENTS_BUCKETS: u16 = 10;

/// Outcomes of an alert evaluation (the `outcome` label of `voicemon_alerting_evaluations`).
pub const EVALUATION_OUTCOMES: [&str; 2] = ["ok", "error"];

/// Outcomes of one read of the notification outbox by the dispatcher (the `outcome` label
/// of `voicemon_notify_dispatch_rounds`): nothing was due, messages were due and handed to
/// their receivers, or the outbox could not be read.
pub const DISPATCH_OUTCOMES: [&str; 3] = ["idle", "sending", "error"];

/// Series of the self-metrics, whatever the events: ingest outcomes (3), events held by
/// the batch writer, flush outcomes (2), failed group commits by cause, the two flush histograms, pool connections by
/// state (2), pool waiters, build info, evaluation outcomes, dispatch round outcomes,
/// roles, event bus outcomes, requests refused by a rate limit by kind, and the live view's.
pub const SELF_SERIES: usize = 3
    + 1
    + 2
    + (FLUSH_SECONDS_BUCKETS as usize + 3)
    + (FLUSH_EVENTS_BUCKETS as usize + 3)
    + 2
    + 1
    + 1
    + EVALUATION_OUTCOMES.len()
    + DISPATCH_OUTCOMES.len()
    + ROLES
    + crate::bus::MESSAGE_OUTCOMES.len()
    + WRITE_ERROR_CAUSES.len()
    + RATE_LIMITED_KINDS.len()
    + crate::otlp::SPAN_OUTCOMES.len()
    + 1
    + crate::live::metrics::LIVE_SERIES;

/// Single-run roles an instance may hold (`voicemon_instance_role`; see [`crate::roles`]).
pub const ROLES: usize = crate::roles::Role::ALL.len();

/// What a rate limit counts (the `kind` label of `voicemon_api_rate_limited`): ingest
/// events, query requests.
pub const RATE_LIMITED_KINDS: [&str; 2] = ["ingest", "query"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: &'static str,
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolStateLabel {
    state: &'static str,
}

/// Handles to every metric; cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    registry: Arc<Registry>,
    events: Family<OutcomeLabel, Counter>,
    /// Events the batch writer has taken and not yet answered: a test (or an operator)
    /// sees that submissions reached it while it lingers for a fuller group.
    writer_events: Gauge,
    flushes: Family<OutcomeLabel, Counter>,
    /// Failed group commits by cause (a full disk, a read-only or unreachable database…).
    write_errors: Family<CauseLabel, Counter>,
    flush_seconds: Histogram,
    flush_events: Histogram,
    pool_connections: Family<PoolStateLabel, Gauge>,
    pool_waiting: Gauge,
    /// Alert evaluations by outcome: tells that the engine runs, and lets a test wait
    /// for evaluations instead of sleeping.
    evaluations: Family<OutcomeLabel, Counter>,
    /// Outbox reads of the notification dispatcher by outcome; an `idle` round after a
    /// point in time means nothing was left due to send then.
    dispatch_rounds: Family<OutcomeLabel, Counter>,
    /// 1 for each single-run role this instance holds, 0 for the others.
    roles: Family<RoleLabel, Gauge>,
    /// Messages of the NATS event bus by outcome.
    bus_messages: Family<OutcomeLabel, Counter>,
    /// Requests answered 429 by a rate limit, by kind (ingest, query).
    rate_limited: Family<KindLabel, Counter>,
    /// OTLP spans by outcome.
    otlp_spans: Family<OutcomeLabel, Counter>,
    /// OTLP spans held for their turn now.
    otlp_held: Gauge,
    voice: Arc<VoiceMetrics>,
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
        Self::new(PrometheusLimits::default())
    }
}

impl Telemetry {
    pub fn new(limits: PrometheusLimits) -> Telemetry {
        let mut registry = Registry::default();
        let events = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "voicemon_ingest_events",
            "Events received by outcome: accepted, duplicate, rejected",
            events.clone(),
        );
        let writer_events = Gauge::default();
        registry.register(
            "voicemon_ingest_writer_events",
            "Events the batch writer holds: gathered into a group or being committed, not yet answered",
            writer_events.clone(),
        );
        let flushes = Family::<OutcomeLabel, Counter>::default();
        registry.register("voicemon_store_flushes", "Group commits by outcome: ok, error", flushes.clone());
        let write_errors = Family::<CauseLabel, Counter>::default();
        registry.register(
            "voicemon_store_write_errors",
            "Failed group commits by cause: disk_full, read_only, unreachable, io (someone must fix it), \
             unavailable (passing), internal",
            write_errors.clone(),
        );
        let flush_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, FLUSH_SECONDS_BUCKETS));
        registry.register(
            "voicemon_store_flush_duration_seconds",
            "Time to commit one group of events",
            flush_seconds.clone(),
        );
        let flush_events = Histogram::new(exponential_buckets(1.0, 4.0, FLUSH_EVENTS_BUCKETS));
        registry.register("voicemon_store_flush_events", "Events in one group commit", flush_events.clone());
        let pool_connections = Family::<PoolStateLabel, Gauge>::default();
        registry.register(
            "voicemon_store_pool_connections",
            "Store connections by state: idle, in_use (read at scrape time)",
            pool_connections.clone(),
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "voicemon_store_pool_waiting",
            "Callers waiting for a store connection (read at scrape time)",
            pool_waiting.clone(),
        );
        registry.register(
            "voicemon_build",
            "The running voicemon's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let evaluations = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "voicemon_alerting_evaluations",
            "Alert rule evaluations by outcome: ok (stored), error (not stored; run again next interval)",
            evaluations.clone(),
        );
        let dispatch_rounds = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "voicemon_notify_dispatch_rounds",
            "Reads of the notification outbox by outcome: idle (nothing due), sending, error",
            dispatch_rounds.clone(),
        );
        let roles = Family::<RoleLabel, Gauge>::default();
        registry.register(
            "voicemon_instance_role",
            "1 for each single-run role (alerting, health_sampling, maintenance) this instance holds, \
             0 for those another instance sharing the database holds",
            roles.clone(),
        );
        let bus_messages = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "voicemon_bus_messages",
            "NATS JetStream messages by outcome: stored (acknowledged after the commit), dead_lettered, \
             retried (refused for now: the store is unavailable)",
            bus_messages.clone(),
        );
        let rate_limited = Family::<KindLabel, Counter>::default();
        registry.register(
            "voicemon_api_rate_limited",
            "Requests answered 429 because their caller's bucket was empty, by kind: ingest, query",
            rate_limited.clone(),
        );
        let otlp_spans = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "voicemon_otlp_spans",
            "OTLP spans by outcome: assembled (into a turn, or the call), alone (usage without its turn: \
             late, expired or evicted), ignored (not read), repeated (held or emitted already), rejected",
            otlp_spans.clone(),
        );
        let otlp_held = Gauge::default();
        registry.register(
            "voicemon_otlp_held_spans",
            "OTLP spans held while their turn is assembled",
            otlp_held.clone(),
        );
        let live = crate::live::LiveMetrics::register(&mut registry);
        let voice = Arc::new(VoiceMetrics::new(limits));
        registry.register_collector(Box::new(VoiceCollector(Arc::clone(&voice))));
        // Known label values start at 0, so a rate over them exists from the first scrape.
        for outcome in ["accepted", "duplicate", "rejected"] {
            let _ = events.get_or_create(&OutcomeLabel { outcome });
        }
        for outcome in ["ok", "error"] {
            let _ = flushes.get_or_create(&OutcomeLabel { outcome });
        }
        for cause in WRITE_ERROR_CAUSES {
            let _ = write_errors.get_or_create(&CauseLabel { cause });
        }
        for outcome in EVALUATION_OUTCOMES {
            let _ = evaluations.get_or_create(&OutcomeLabel { outcome });
        }
        for outcome in DISPATCH_OUTCOMES {
            let _ = dispatch_rounds.get_or_create(&OutcomeLabel { outcome });
        }
        for outcome in crate::bus::MESSAGE_OUTCOMES {
            let _ = bus_messages.get_or_create(&OutcomeLabel { outcome });
        }
        for role in crate::roles::Role::ALL {
            let instance = crate::roles::instance_name().to_owned();
            let _ = roles.get_or_create(&RoleLabel { role: role.as_str(), instance });
        }
        for kind in RATE_LIMITED_KINDS {
            let _ = rate_limited.get_or_create(&KindLabel { kind });
        }
        for outcome in crate::otlp::SPAN_OUTCOMES {
            let _ = otlp_spans.get_or_create(&OutcomeLabel { outcome });
        }
        Telemetry {
            registry: Arc::new(registry),
            events,
            writer_events,
            flushes,
            write_errors,
            flush_seconds,
            flush_events,
            pool_connections,
            pool_waiting,
            evaluations,
            dispatch_rounds,
            roles,
            bus_messages,
            rate_limited,
            otlp_spans,
            otlp_held,
            voice,
            live,
        }
    }

    pub fn events(&self, outcome: &'static str, count: usize) {
        self.events.get_or_create(&OutcomeLabel { outcome }).inc_by(count as u64);
    }

    /// Counts what one ingest (an HTTP request, a bus message) came to: the events its
    /// group commit stored or found duplicate, and `rejected` refused before it.
    pub fn ingested(&self, outcome: &voicemon_store::WriteOutcome, rejected: usize) {
        let duplicates = outcome.duplicates();
        self.events("accepted", outcome.stored.len() - duplicates);
        self.events("duplicate", duplicates);
        self.events("rejected", rejected);
    }

    /// The batch writer took `count` more events into the group it gathers.
    pub fn writer_took(&self, count: usize) {
        self.writer_events.inc_by(count as i64);
    }

    /// The batch writer answered the submitters of `count` events (committed or not).
    pub fn writer_answered(&self, count: usize) {
        self.writer_events.dec_by(count as i64);
    }

    /// One alert evaluation ended; `stored` tells whether its tick reached the store.
    pub fn evaluation(&self, stored: bool) {
        let outcome = if stored { "ok" } else { "error" };
        self.evaluations.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// One read of the outbox by the dispatcher ended with `outcome` (one of
    /// [`DISPATCH_OUTCOMES`]).
    pub fn dispatch_round(&self, outcome: &'static str) {
        self.dispatch_rounds.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// One message of the event bus was handled with `outcome` (one of
    /// [`crate::bus::MESSAGE_OUTCOMES`]).
    pub fn bus_message(&self, outcome: &'static str) {
        self.bus_messages.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// `count` OTLP spans had `outcome` (one of [`crate::otlp::SPAN_OUTCOMES`]).
    pub fn otlp_spans(&self, outcome: &'static str, count: u64) {
        if count > 0 {
            self.otlp_spans.get_or_create(&OutcomeLabel { outcome }).inc_by(count);
        }
    }

    /// OTLP spans held for their turn now.
    pub fn otlp_held(&self, held: usize) {
        self.otlp_held.set(held as i64);
    }

    /// Whether this instance (`instance`) holds single-run role `role` now.
    pub fn role_held(&self, role: &'static str, instance: &str, held: bool) {
        let label = RoleLabel { role, instance: instance.to_owned() };
        self.roles.get_or_create(&label).set(i64::from(held));
    }

    /// A request of `kind` (one of [`RATE_LIMITED_KINDS`]) was refused by a rate limit.
    pub fn rate_limited(&self, kind: &'static str) {
        self.rate_limited.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn flush(&self, ok: bool, events: usize, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.flushes.get_or_create(&OutcomeLabel { outcome }).inc();
        self.flush_seconds.observe(took.as_secs_f64());
        self.flush_events.observe(events as f64);
    }

    /// A group commit failed for `cause` (one of [`WRITE_ERROR_CAUSES`]).
    pub fn write_error(&self, cause: &'static str) {
        self.write_errors.get_or_create(&CauseLabel { cause }).inc();
    }

    /// Records the voice metrics of a durable group commit: `records[i]` counts only
    /// when the store kept event `i` (`stored[i]`), so duplicates add nothing.
    pub fn voice_stored(&self, records: &[Option<VoiceRecord>], stored: &[bool]) {
        self.voice.record_stored(records, stored);
    }

    /// The Prometheus (OpenMetrics) text exposition of every metric, with the store's
    /// pool as `pool` says it is now.
    pub fn encode(&self, pool: &PoolStats) -> String {
        self.pool_connections.get_or_create(&PoolStateLabel { state: "idle" }).set(i64::from(pool.idle));
        self.pool_connections.get_or_create(&PoolStateLabel { state: "in_use" }).set(i64::from(pool.in_use));
        self.pool_waiting.set(i64::from(pool.waiting));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Readings of single metrics, for unit tests of what records them.
#[cfg(test)]
impl Telemetry {
    /// What `voicemon_ingest_writer_events` shows.
    pub(crate) fn writer_events_held(&self) -> i64 {
        self.writer_events.get()
    }

    /// What `voicemon_alerting_evaluations_total{outcome}` shows.
    pub(crate) fn evaluations_counted(&self, outcome: &'static str) -> u64 {
        self.evaluations.get_or_create(&OutcomeLabel { outcome }).get()
    }
}
