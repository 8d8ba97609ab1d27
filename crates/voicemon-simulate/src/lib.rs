//! voicemon-simulate: realistic voice-agent traffic sent to a running voicemon, for
//! `voicemon simulate`, `voicemon serve --demo`, tests and benchmarks. It speaks to
//! voicemon only over HTTP, so it depends on the core's event contract and on the one HTTP
//! client builder (`voicemon_tls::http`), never on the server.
//!
//! It owns two halves. [`TrafficModel`] is a pure, seeded discrete-event generator of
//! contract-v1 events (calls, turns, usage, provider requests, provider incidents with
//! circuit breakers, worker heartbeats); it never reads the wall clock, so it is tested
//! without a server. [`run`] drives the model against the wall clock (optionally after a
//! backfill of past history) and POSTs the events as NDJSON to `{base_url}/v1/events`,
//! with retries, progress reports and a final [`Summary`].
//!
//! # Layout
//! - this file: the options, progress, summary and errors of a run, and [`run`].
//! - `model`: the traffic generator; `model::{fleet, call, turn, incident, worker}` are
//!   its parts, `model::random` its distributions.
//! - `session`: one run's loop: backfill, live sending, counters, progress reports.
//! - `send`: NDJSON batches over HTTP, retries, voicemon's answers.
//!
//! `tests/run.rs` runs the whole loop against a stand-in voicemon (wiremock) that
//! validates every line with the core's contract code.

mod model;
mod send;
mod session;

pub use model::{ModelConfig, ModelStats, TrafficModel};
pub use send::RETRY_BUDGET;

use send::Sender;
use serde::Serialize;
use session::Session;
use std::time::Duration;
use tokio::sync::watch;
use voicemon_core::clock::{Clock, SystemClock};

/// Backfill is refused beyond this much history.
const MAX_BACKFILL: Duration = Duration::from_secs(366 * 24 * 3600);

/// What to simulate and where to send it.
#[derive(Clone)]
pub struct SimulateOptions {
    /// voicemon's base URL, e.g. `http://127.0.0.1:3001`; events go to `{base_url}/v1/events`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>`; the key needs the ingest role.
    pub api_key: Option<String>,
    /// Tenants `tenant-01`, `tenant-02`…; traffic is spread unevenly, as in real life.
    pub tenants: usize,
    /// Agents per tenant: `support-bot`, `sales-bot`, `booking-bot`…
    pub agents_per_tenant: usize,
    /// Call arrivals per minute over all tenants (a Poisson process).
    pub calls_per_minute: f64,
    /// How long `run` goes on, backfill included; `None` runs until `shutdown` turns true.
    pub duration: Option<Duration>,
    /// History to generate first, ending now, sent as fast as voicemon takes it.
    pub backfill: Option<Duration>,
    /// The same seed and start time give the same events; `None` picks one at random.
    pub seed: Option<u64>,
    /// Largest number of events in one POST.
    pub batch_max_events: usize,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        SimulateOptions {
            base_url: "http://127.0.0.1:3001".to_owned(),
            api_key: None,
            tenants: 5,
            agents_per_tenant: 3,
            calls_per_minute: 60.0,
            duration: None,
            backfill: None,
            seed: None,
            batch_max_events: 500,
        }
    }
}

/// Hand-written so the API key never reaches a log line.
impl std::fmt::Debug for SimulateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulateOptions")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("tenants", &self.tenants)
            .field("agents_per_tenant", &self.agents_per_tenant)
            .field("calls_per_minute", &self.calls_per_minute)
            .field("duration", &self.duration)
            .field("backfill", &self.backfill)
            .field("seed", &self.seed)
            .field("batch_max_events", &self.batch_max_events)
            .finish()
    }
}

/// Counters handed to the progress callback about once a second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Progress {
    /// Events handed to a POST (each counted once, however many retries it took).
    pub events_sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub calls_started: u64,
    pub calls_ended: u64,
    #[serde(serialize_with = "serialize_seconds")]
    pub elapsed: Duration,
    /// Batches given up on after retrying for [`RETRY_BUDGET`]; their events are lost.
    pub failed_requests: u64,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub events_sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub calls_started: u64,
    pub calls_ended: u64,
    /// Calls started but not ended when the run stopped (they get no `call.ended`).
    pub calls_active: u64,
    pub calls_completed: u64,
    pub calls_failed: u64,
    pub calls_abandoned: u64,
    pub calls_transferred: u64,
    /// `circuit_breaker.changed` events with state `open`.
    pub breaker_trips: u64,
    #[serde(serialize_with = "serialize_seconds")]
    pub elapsed: Duration,
    pub failed_requests: u64,
    /// The first rejection voicemon reported (`event N: field: error`), if any.
    pub first_rejection: Option<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "simulated for {:.1} s (seed {}): {} events sent, {} accepted, {} duplicates, \
             {} rejected, {} failed requests",
            self.elapsed.as_secs_f64(),
            self.seed,
            self.events_sent,
            self.accepted,
            self.duplicates,
            self.rejected,
            self.failed_requests
        )?;
        writeln!(
            f,
            "calls: {} started, {} ended ({} completed, {} failed, {} abandoned, \
             {} transferred), {} still active",
            self.calls_started,
            self.calls_ended,
            self.calls_completed,
            self.calls_failed,
            self.calls_abandoned,
            self.calls_transferred,
            self.calls_active
        )?;
        write!(f, "circuit breaker trips: {}", self.breaker_trips)?;
        if let Some(rejection) = &self.first_rejection {
            write!(f, "\nfirst rejection: {rejection}")?;
        }
        Ok(())
    }
}

fn serialize_seconds<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(value.as_secs_f64())
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("invalid simulate options: {0}")]
    InvalidOptions(String),
    #[error("could not build the http client: {0}")]
    Client(String),
    #[error("voicemon is unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("voicemon refused the api key ({status}): {message}")]
    AuthRefused { status: u16, message: String },
    #[error("voicemon rejected all {count} events of a batch; first rejection: {first}")]
    Rejected { count: usize, first: String },
    #[error("voicemon answered {status} to POST {url}: {message}")]
    UnexpectedAnswer { status: u16, url: String, message: String },
}

/// Generates traffic and sends it to voicemon until `duration` has elapsed (backfill
/// included) or `shutdown` turns true; then sends what was generated and returns the
/// summary. `on_progress` is called about once a second.
pub async fn run(
    options: SimulateOptions,
    mut shutdown: watch::Receiver<bool>,
    on_progress: impl FnMut(&Progress) + Send,
) -> Result<Summary, SimulateError> {
    check_options(&options)?;
    let sender = Sender::new(&options)?;
    sender.check_reachable().await?;
    let now_ms = SystemClock.now_ms();
    let backfill_ms = options.backfill.map_or(0, |b| b.as_millis() as i64);
    let seed = options.seed.unwrap_or_else(rand::random);
    let model = TrafficModel::new(ModelConfig::from_options(&options, seed, now_ms - backfill_ms));
    tracing::info!(seed, url = %sender.events_url, ?options, "simulate: starting");
    let started = tokio::time::Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let mut session = Session::new(model, sender, seed, options.batch_max_events, on_progress);
    let backfilled = backfill_ms == 0 || session.backfill(now_ms, &shutdown).await?;
    if backfilled {
        session.live(deadline, &mut shutdown).await?;
        session.send_due_events().await?;
    }
    session.report(true);
    Ok(session.summary())
}

fn check_options(options: &SimulateOptions) -> Result<(), SimulateError> {
    let invalid = |message: &str| Err(SimulateError::InvalidOptions(message.to_owned()));
    if !(options.base_url.starts_with("http://") || options.base_url.starts_with("https://")) {
        return invalid("base_url must start with http:// or https://");
    }
    if options.tenants == 0 || options.agents_per_tenant == 0 {
        return invalid("tenants and agents_per_tenant must be at least 1");
    }
    if !(options.calls_per_minute.is_finite() && options.calls_per_minute >= 0.0) {
        return invalid("calls_per_minute must be a number ≥ 0");
    }
    if options.batch_max_events == 0 {
        return invalid("batch_max_events must be at least 1");
    }
    if options.backfill.is_some_and(|b| b > MAX_BACKFILL) {
        return invalid("backfill is at most 366 days");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_display_is_short_and_lowercase() {
        let summary = Summary {
            seed: 1,
            events_sent: 10,
            accepted: 9,
            duplicates: 1,
            rejected: 0,
            calls_started: 2,
            calls_ended: 1,
            calls_active: 1,
            calls_completed: 1,
            calls_failed: 0,
            calls_abandoned: 0,
            calls_transferred: 0,
            breaker_trips: 0,
            elapsed: Duration::from_millis(1500),
            failed_requests: 0,
            first_rejection: None,
        };
        let text = summary.to_string();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.starts_with("simulated for 1.5 s (seed 1): 10 events sent"), "{text}");
    }

    #[test]
    fn options_debug_hides_the_api_key() {
        let options = SimulateOptions { api_key: Some("vm_secret".into()), ..SimulateOptions::default() };
        assert!(!format!("{options:?}").contains("vm_secret"));
    }

    #[test]
    fn run_is_send_so_it_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let (_stop, shutdown) = watch::channel(false);
        let future = run(SimulateOptions::default(), shutdown, |_| {});
        assert_send(&future);
    }

    #[test]
    fn invalid_options_are_refused_before_anything_is_sent() {
        let options = SimulateOptions { batch_max_events: 0, ..SimulateOptions::default() };
        let error = check_options(&options).expect_err("zero batch size");
        assert_eq!(error.to_string(), "invalid simulate options: batch_max_events must be at least 1");
    }
}
