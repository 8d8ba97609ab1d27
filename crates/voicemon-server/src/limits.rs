//! Request limits: one token bucket per caller and kind (GCRA, from `governor`), on ingest
//! counted in events and on queries counted in requests, timed by the application's
//! [`Clock`] so that tests move time by hand.
//!
//! A caller is an API key (its id), or, on an open server (no keys, loopback only), the
//! one bucket [`Caller::Open`] that every local client shares: without keys there is no
//! identity to tell callers apart, and every peer is the same machine anyway.
//!
//! Memory: one entry per caller that has sent something, so at most the number of keys
//! (plus the open bucket); unknown keys are refused (401) before they reach a bucket.

use crate::telemetry::Telemetry;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use voicemon_core::clock::Clock;

/// Default events per second of one ingest caller: about a third of what one SQLite
/// instance commits on two cores (BENCHMARKS.md), some 10 000 concurrent calls of events.
pub const DEFAULT_INGEST_EVENTS_PER_SECOND: u32 = 25_000;
/// Default ingest burst: five seconds at the default rate, more than a 10 MiB body holds
/// of real events.
pub const DEFAULT_INGEST_BURST: u32 = 125_000;
/// Default queries per second of one caller: dashboards and scripts poll a few a second.
pub const DEFAULT_QUERY_REQUESTS_PER_SECOND: u32 = 20;
/// Default query burst: a page load or a script's start asks many things at once.
pub const DEFAULT_QUERY_BURST: u32 = 100;
/// The highest rate a bucket takes: one cell a microsecond keeps GCRA's arithmetic exact.
pub const MAX_PER_SECOND: u32 = 1_000_000;
/// Default longest hold of a refusal: a client that ignores `Retry-After` and asks again
/// at once gets at most one answer a second per connection, not thousands.
pub const DEFAULT_REFUSAL_HOLD: Duration = Duration::from_secs(1);
/// The longest hold `[limits] refusal_hold` takes: a held refusal keeps its connection.
pub const MAX_REFUSAL_HOLD: Duration = Duration::from_secs(10);

/// What a bucket counts (the `kind` label of `voicemon_api_rate_limited_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `POST /v1/events`, in events.
    Ingest,
    /// Every other authenticated route (latency, calls, cost, health, alerts, silences),
    /// in requests.
    Query,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Ingest, Kind::Query];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ingest => "ingest",
            Kind::Query => "query",
        }
    }
}

/// Whose bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// An API key, by id.
    Key(i64),
    /// Every client of an open server.
    Open,
}

/// The rates and bursts, as `[limits]` gives them (validated in `config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    pub ingest_events_per_second: NonZeroU32,
    pub ingest_burst: NonZeroU32,
    pub query_requests_per_second: NonZeroU32,
    pub query_burst: NonZeroU32,
    /// How long a 429 is held at most before it is sent: the time the caller's bucket
    /// needs to admit the request, up to this (zero sends it at once). A flood that
    /// ignores `Retry-After` then costs one refusal per connection per wait, instead of
    /// as many as the machine can answer, which is what would slow every other caller.
    pub refusal_hold: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let nonzero = |n: u32| NonZeroU32::new(n).expect("the default limits are above 0");
        LimitsConfig {
            ingest_events_per_second: nonzero(DEFAULT_INGEST_EVENTS_PER_SECOND),
            ingest_burst: nonzero(DEFAULT_INGEST_BURST),
            query_requests_per_second: nonzero(DEFAULT_QUERY_REQUESTS_PER_SECOND),
            query_burst: nonzero(DEFAULT_QUERY_BURST),
            refusal_hold: DEFAULT_REFUSAL_HOLD,
        }
    }
}

impl LimitsConfig {
    fn quota(rate: NonZeroU32, burst: NonZeroU32) -> Quota {
        Quota::per_second(rate).allow_burst(burst)
    }

    fn burst(&self, kind: Kind) -> NonZeroU32 {
        match kind {
            Kind::Ingest => self.ingest_burst,
            Kind::Query => self.query_burst,
        }
    }
}

/// Why a request is refused by its bucket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The bucket is empty for now: 429 with `Retry-After`.
    #[error("{what} from this caller are over its limit of {rate} a second; retry after {} s", retry_after_seconds(*.retry_after))]
    Limited { what: &'static str, rate: u32, retry_after: Duration },
    /// More events in one body than the bucket ever holds: no retry can pass (413).
    #[error("this body holds {events} events, more than the {burst} this caller may send at once; split it")]
    OverBurst { events: u32, burst: u32 },
}

impl LimitError {
    /// Whole seconds to wait before a retry can pass, for `Retry-After`; `None` when none can.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            LimitError::Limited { retry_after, .. } => Some(retry_after_seconds(*retry_after)),
            LimitError::OverBurst { .. } => None,
        }
    }
}

/// At least one second (`Retry-After` takes whole seconds, and 0 invites a busy loop).
fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

type Bucket = RateLimiter<Caller, DashMapStateStore<Caller>, ForwardClock, NoOpMiddleware<Nanos>>;

/// The buckets of every caller, per kind; cheap to clone.
#[derive(Clone)]
pub struct RateLimits {
    config: LimitsConfig,
    ingest: Arc<Bucket>,
    query: Arc<Bucket>,
    /// Refusals being held, per kind and caller.
    held: Arc<Mutex<HashMap<(Kind, Caller), u32>>>,
    clock: ForwardClock,
    telemetry: Telemetry,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").field("config", &self.config).finish_non_exhaustive()
    }
}

impl RateLimits {
    pub fn new(config: LimitsConfig, clock: Arc<dyn Clock>, telemetry: Telemetry) -> RateLimits {
        let clock = ForwardClock::new(clock);
        let bucket = |rate, burst| {
            Arc::new(RateLimiter::dashmap_with_clock(LimitsConfig::quota(rate, burst), clock.clone()))
        };
        RateLimits {
            ingest: bucket(config.ingest_events_per_second, config.ingest_burst),
            query: bucket(config.query_requests_per_second, config.query_burst),
            held: Arc::default(),
            config,
            clock,
            telemetry,
        }
    }

    /// Takes `cells` (events or requests) from `caller`'s bucket of `kind`, or says why not.
    /// A refusal takes nothing and is counted in `/metrics`.
    pub fn admit(&self, kind: Kind, caller: Caller, cells: u32) -> Result<(), LimitError> {
        let Some(cells) = NonZeroU32::new(cells) else { return Ok(()) };
        let burst = self.config.burst(kind).get();
        if cells.get() > burst {
            return Err(LimitError::OverBurst { events: cells.get(), burst });
        }
        let bucket = match kind {
            Kind::Ingest => &self.ingest,
            Kind::Query => &self.query,
        };
        match bucket.check_key_n(&caller, cells) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                self.telemetry.rate_limited(kind.as_str());
                let retry_after = not_until.wait_time_from(self.clock.now());
                Err(LimitError::Limited { what: what(kind), rate: self.rate(kind), retry_after })
            }
            Err(_) => Err(LimitError::OverBurst { events: cells.get(), burst }),
        }
    }

    /// [`admit`](Self::admit), but a refusal for now ([`LimitError::Limited`]) comes back
    /// only once the caller's bucket could admit the request, counting the caller's
    /// refusals already held as requests queued before it, or after
    /// [`LimitsConfig::refusal_hold`] if that is sooner. A caller that honours
    /// `Retry-After` loses nothing (it would have waited anyway); one that asks again at
    /// once, from however many connections, is slowed to the pace its bucket refills, and
    /// its refusals stop costing the machine (and every other caller) more than its
    /// admitted requests do.
    pub async fn admit_or_hold(&self, kind: Kind, caller: Caller, cells: u32) -> Result<(), LimitError> {
        let refused = match self.admit(kind, caller, cells) {
            Ok(()) => return Ok(()),
            Err(refused) => refused,
        };
        if let LimitError::Limited { retry_after, .. } = &refused {
            let held = Held::enter(&self.held, kind, caller);
            let per_cell = Duration::from_secs(1) / self.rate(kind);
            let queued = per_cell.saturating_mul(held.ahead.saturating_mul(cells.max(1)));
            let hold = retry_after.saturating_add(queued).min(self.config.refusal_hold);
            if !hold.is_zero() {
                tokio::time::sleep(hold).await;
            }
        }
        Err(refused)
    }

    /// The rest of an ingest body of `events`, whose first event was taken up front
    /// (before the body was read, so that an empty bucket refuses it unread); a refusal is
    /// held as [`admit_or_hold`](Self::admit_or_hold) holds it.
    pub async fn admit_rest_of_body(&self, caller: Caller, events: u32) -> Result<(), LimitError> {
        let burst = self.config.ingest_burst.get();
        if events > burst {
            return Err(LimitError::OverBurst { events, burst });
        }
        self.admit_or_hold(Kind::Ingest, caller, events.saturating_sub(1)).await
    }

    fn rate(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Ingest => self.config.ingest_events_per_second.get(),
            Kind::Query => self.config.query_requests_per_second.get(),
        }
    }
}

/// One refusal being held: counted for its caller until dropped (sent, or its client gone).
struct Held<'a> {
    held: &'a Mutex<HashMap<(Kind, Caller), u32>>,
    key: (Kind, Caller),
    /// The caller's refusals held before this one.
    ahead: u32,
}

impl<'a> Held<'a> {
    fn enter(held: &'a Mutex<HashMap<(Kind, Caller), u32>>, kind: Kind, caller: Caller) -> Held<'a> {
        let mut counts = held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry((kind, caller)).or_default();
        let ahead = *count;
        *count += 1;
        Held { held, key: (kind, caller), ahead }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut counts = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::Ingest => "events",
        Kind::Query => "queries",
    }
}

/// The application's clock as the buckets read it: time since the limiter started that
/// only moves forward. A wall clock stepped back adds nothing (instead of refusing every
/// caller until it catches up), and stepped forward fills the buckets (at most to their
/// burst), which is harmless.
#[derive(Debug, Clone)]
struct ForwardClock {
    clock: Arc<dyn Clock>,
    /// (last reading of `clock` in ms, forward time accumulated in ms).
    state: Arc<Mutex<(i64, u64)>>,
}

impl ForwardClock {
    fn new(clock: Arc<dyn Clock>) -> ForwardClock {
        let start = clock.now_ms();
        ForwardClock { clock, state: Arc::new(Mutex::new((start, 0))) }
    }
}

impl GovernorClock for ForwardClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let now_ms = self.clock.now_ms();
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last_ms, elapsed_ms) = &mut *state;
        *elapsed_ms += u64::try_from(now_ms.saturating_sub(*last_ms)).unwrap_or(0);
        *last_ms = now_ms;
        Nanos::from(Duration::from_millis(*elapsed_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicemon_core::clock::ManualClock;

    fn limits(rate: u32, burst: u32) -> (RateLimits, ManualClock) {
        limits_holding(rate, burst, DEFAULT_REFUSAL_HOLD)
    }

    fn limits_holding(rate: u32, burst: u32, refusal_hold: Duration) -> (RateLimits, ManualClock) {
        let clock = ManualClock::at(1_000_000);
        let nonzero = |n| NonZeroU32::new(n).expect("above 0");
        let config = LimitsConfig {
            ingest_events_per_second: nonzero(rate),
            ingest_burst: nonzero(burst),
            query_requests_per_second: nonzero(rate),
            query_burst: nonzero(burst),
            refusal_hold,
        };
        (RateLimits::new(config, Arc::new(clock.clone()), Telemetry::default()), clock)
    }

    /// How long `admit_or_hold` took to answer, on tokio's paused clock.
    async fn answered_after(limits: &RateLimits, cells: u32) -> (Result<(), LimitError>, Duration) {
        let start = tokio::time::Instant::now();
        let answer = limits.admit_or_hold(Kind::Ingest, Caller::Key(1), cells).await;
        (answer, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_held_until_the_bucket_could_admit_the_request_but_no_longer_than_the_hold() {
        let (limits, _) = limits(4, 4);
        let (answer, took) = answered_after(&limits, 4).await;
        assert_eq!((answer, took), (Ok(()), Duration::ZERO), "an admitted request is never held");
        let (answer, took) = answered_after(&limits, 1).await;
        assert!(matches!(answer, Err(LimitError::Limited { .. })), "{answer:?}");
        assert_eq!(took, Duration::from_millis(250), "one event comes back in a quarter second");
        let (_, took) = answered_after(&limits, 4).await;
        assert_eq!(took, DEFAULT_REFUSAL_HOLD, "four would take a second: the hold's limit");
        let (answer, took) = answered_after(&limits, 5).await;
        assert!(matches!(answer, Err(LimitError::OverBurst { .. })), "{answer:?}");
        assert_eq!(took, Duration::ZERO, "a body no wait can admit is refused at once");
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_held_at_once_for_one_caller_queue_behind_each_other() {
        let (limits, _) = limits(10, 1);
        limits.admit(Kind::Query, Caller::Key(1), 1).expect("the burst");
        let start = tokio::time::Instant::now();
        let answered_after = |_| async {
            let answer = limits.admit_or_hold(Kind::Query, Caller::Key(1), 1).await;
            assert!(answer.is_err());
            start.elapsed()
        };
        let held = futures_util::future::join_all((0..12).map(answered_after)).await;
        let ms: Vec<u128> = held.iter().map(Duration::as_millis).collect();
        // 100 ms a request: the first waits for the bucket, each next one 100 ms more, to the hold's second.
        assert_eq!(ms, [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1000, 1000]);
        let other = answered_after_for(&limits, Caller::Key(2)).await;
        assert_eq!(other, Duration::ZERO, "another caller is not held behind them");
        assert!(limits.held.lock().expect("held").is_empty(), "every held refusal was counted out");
    }

    async fn answered_after_for(limits: &RateLimits, caller: Caller) -> Duration {
        let start = tokio::time::Instant::now();
        limits.admit_or_hold(Kind::Query, caller, 1).await.expect("admitted");
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_hold_sends_refusals_at_once() {
        let (limits, _) = limits_holding(1, 1, Duration::ZERO);
        limits.admit(Kind::Ingest, Caller::Key(1), 1).expect("the burst");
        let (answer, took) = answered_after(&limits, 1).await;
        assert!(answer.is_err());
        assert_eq!(took, Duration::ZERO);
    }

    #[test]
    fn a_caller_gets_its_burst_then_waits_for_the_rate() {
        let (limits, clock) = limits(2, 4);
        for _ in 0..4 {
            limits.admit(Kind::Query, Caller::Key(1), 1).expect("within the burst");
        }
        let refused = limits.admit(Kind::Query, Caller::Key(1), 1).expect_err("the burst is spent");
        assert_eq!(refused.retry_after_seconds(), Some(1), "{refused}");
        clock.advance(500);
        limits.admit(Kind::Query, Caller::Key(1), 1).expect("half a second brings one request back");
        assert!(limits.admit(Kind::Query, Caller::Key(1), 1).is_err());
    }

    #[test]
    fn callers_and_kinds_have_buckets_of_their_own() {
        let (limits, _) = limits(1, 3);
        limits.admit(Kind::Ingest, Caller::Key(1), 3).expect("the whole burst");
        assert!(limits.admit(Kind::Ingest, Caller::Key(1), 1).is_err());
        limits.admit(Kind::Ingest, Caller::Key(2), 3).expect("another key has its own bucket");
        limits.admit(Kind::Ingest, Caller::Open, 3).expect("so does the open server's");
        limits.admit(Kind::Query, Caller::Key(1), 3).expect("queries are counted apart from ingest");
    }

    #[test]
    fn more_events_than_the_burst_are_refused_for_good_and_take_nothing() {
        let (limits, _) = limits(10, 100);
        let refused = limits.admit(Kind::Ingest, Caller::Key(1), 101).expect_err("over the burst");
        assert_eq!(refused, LimitError::OverBurst { events: 101, burst: 100 });
        assert_eq!(refused.retry_after_seconds(), None);
        limits.admit(Kind::Ingest, Caller::Key(1), 100).expect("the bucket is still full");
    }

    #[tokio::test]
    async fn a_body_is_charged_its_events_beyond_the_one_taken_up_front() {
        let (limits, _) = limits(1, 10);
        limits.admit(Kind::Ingest, Caller::Key(1), 1).expect("the first event, before the body is read");
        limits.admit_rest_of_body(Caller::Key(1), 10).await.expect("nine more fill the burst");
        assert!(limits.admit(Kind::Ingest, Caller::Key(1), 1).is_err(), "the bucket is empty");
        let refused = limits.admit_rest_of_body(Caller::Key(2), 11).await.expect_err("over the burst");
        assert_eq!(refused, LimitError::OverBurst { events: 11, burst: 10 });
    }

    #[test]
    fn a_refused_request_takes_nothing_from_the_bucket() {
        let (limits, clock) = limits(1, 2);
        limits.admit(Kind::Ingest, Caller::Key(1), 2).expect("the burst");
        for _ in 0..10 {
            assert!(limits.admit(Kind::Ingest, Caller::Key(1), 1).is_err());
        }
        clock.advance(1_000);
        limits.admit(Kind::Ingest, Caller::Key(1), 1).expect("one second brings one event back");
    }

    #[test]
    fn a_wall_clock_stepped_back_neither_refills_nor_locks_the_buckets() {
        let (limits, clock) = limits(1, 1);
        limits.admit(Kind::Query, Caller::Key(1), 1).expect("the burst");
        clock.advance(-3_600_000);
        assert!(limits.admit(Kind::Query, Caller::Key(1), 1).is_err(), "no refill from a step back");
        clock.advance(1_000);
        limits.admit(Kind::Query, Caller::Key(1), 1).expect("a second later, as if nothing happened");
    }

    #[test]
    fn every_kind_has_its_series_in_metrics() {
        let kinds: Vec<&str> = Kind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(kinds, crate::telemetry::RATE_LIMITED_KINDS);
    }

    #[test]
    fn retry_after_is_whole_seconds_and_never_zero() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1_000)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(7)), 7);
    }
}
