//! voicemon-store: where events live. Owns all SQL.
//!
//! # Layout
//! - [`contract`]: the contract every backend satisfies (SQLite, PostgreSQL): one narrow
//!   trait per subsystem ([`IngestStore`], [`LatencyStore`], [`CallStore`], [`CostStore`],
//!   [`RepriceStore`], [`HealthStore`], [`AlertStore`], [`KeyStore`], [`AdminStore`]) and
//!   [`Store`], their union. Consumers take the narrow one they use.
//! - [`sqlite`]: the embedded default backend (one file in WAL mode).
//! - [`rollup`]: what a batch adds to the rollups, and which rollup table serves which part
//!   of a read, shared by both backends.
//! - [`delivery`]: what a delivery attempt leaves in the alert history, shared by both backends.
//! - [`pool`]: the connection pool as `/metrics/health` shows it, and the last-error
//!   bookkeeping behind it, shared by both backends.
//! - `column`: core enums stored as text, read back by both backends.
//! - [`plan`]: the raw-fact row of each event, backend-neutral; each backend binds it.
//! - [`derived`]: derived data (rollups, provider minutes, call totals, latest workers) kept
//!   off the commit path: journalled with each commit, folded in memory, flushed every second.
//! - [`postgres`]: PostgreSQL (TimescaleDB hypertables when present), selected by `DATABASE_URL`.
//!
//! # Invariants
//! - `write_batch` returns only after the batch is durable; a batch commits whole or not
//!   at all, and an event whose tenant+id digest is already stored is a duplicate.
//! - Latency rollups are per-minute and per-hour sketches merged with the sketch merge, in
//!   any arrival order; nothing here assumes events arrive in time order. An hour rollup
//!   always equals the merge of its sixty minute rollups.

pub mod call_ids;
mod column;
pub mod contract;
pub mod delivery;
pub mod derived;
pub mod pending;
pub mod plan;
pub mod pool;
pub mod postgres;
pub mod rollup;
pub mod sqlite;

pub use contract::{
    AdminStore, AlertStore, CallStore, CostStore, HealthStore, IngestStore, KeyStore, LatencyStore,
    LeaseStore, RepriceStore, Store,
};
pub use pool::PoolStats;

use serde::Serialize;
use voicemon_core::access::Role;
use voicemon_core::alerting::evaluator::Alert;
use voicemon_core::alerting::policy::NotifyRecord;
use voicemon_core::alerting::silence::Silence;
use voicemon_core::alerting::{HistoryKind, Labels};
use voicemon_core::event::{BreakerState, CallStatus, Event, PipelineComponent};
use voicemon_core::latency::{Component, Source};
use voicemon_core::pricing::Costing;

/// Errors a caller branches on: `Unavailable` and `Fault` are worth retrying (HTTP 503),
/// the rest is not.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A passing condition (a busy database, a rolled-back transaction, a full queue).
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// The store cannot write until someone fixes `fault` (frees disk space, makes the
    /// file writable, brings the database back); `detail` is what the backend said.
    #[error("storage is unavailable: {fault}: {detail}")]
    Fault { fault: Fault, detail: String },
    #[error("storage error: {0}")]
    Internal(String),
    #[error("{0}")]
    NotFound(String),
    /// The store's configuration cannot work (a bad URL, a missing root certificate).
    #[error("{0}")]
    Config(String),
    /// A write fenced by a lease was refused: the lease has passed to another instance.
    #[error("{0}")]
    LeaseLost(String),
}

/// Why a store cannot take writes, as `/metrics/health` names it and
/// `voicemon_store_write_errors_total{cause}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The disk (or the database's quota) is full.
    DiskFull,
    /// The database file or server only takes reads.
    ReadOnly,
    /// The database cannot be reached or opened.
    Unreachable,
    /// The disk failed to read or write.
    Io,
}

impl Fault {
    /// The name of the cause, as a metric label and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::DiskFull => "disk_full",
            Fault::ReadOnly => "read_only",
            Fault::Unreachable => "unreachable",
            Fault::Io => "io",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::DiskFull => "the disk is full",
            Fault::ReadOnly => "the database is read-only",
            Fault::Unreachable => "the database is unreachable",
            Fault::Io => "the disk failed to read or write",
        })
    }
}

/// Every `cause` label of `voicemon_store_write_errors_total`: the faults, then
/// `unavailable` (a passing condition) and `internal` (a bug or a bad request to the store).
pub const WRITE_ERROR_CAUSES: [&str; 6] =
    ["disk_full", "read_only", "unreachable", "io", "unavailable", "internal"];

impl StoreError {
    /// A fault that needs someone, if this is one.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            StoreError::Fault { fault, .. } => Some(*fault),
            _ => None,
        }
    }

    /// The `cause` label of a failed write (one of [`WRITE_ERROR_CAUSES`]).
    pub fn cause(&self) -> &'static str {
        match self {
            StoreError::Fault { fault, .. } => fault.as_str(),
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Internal(_)
            | StoreError::NotFound(_)
            | StoreError::Config(_)
            | StoreError::LeaseLost(_) => "internal",
        }
    }
}

/// An event on its way into the store, with its cost under the price book in force.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestEvent {
    pub event: Event,
    pub costing: Costing,
}

/// What happened to each event of a batch, in order: stored, or a duplicate of one
/// stored before (or earlier in the same batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    pub stored: Vec<bool>,
}

impl WriteOutcome {
    pub fn duplicates(&self) -> usize {
        self.stored.iter().filter(|stored| !**stored).count()
    }
}

/// The coarsest rollup a latency read may answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Minute rollups only.
    Minute,
    /// Hour rollups for the whole hours of the range, minute rollups for its edges.
    /// Right for steps that are whole hours: an hour never straddles two steps.
    Hour,
}

/// Which latency rollups to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyFilter {
    /// `None` reads every tenant (admin keys and open mode only).
    pub tenant_id: Option<String>,
    pub component: Component,
    pub source: Source,
    pub agent_id: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
}

impl LatencyFilter {
    /// The optional filters given, with the rollup column each matches. A read puts only
    /// these in its SQL, so the primary key serves the range (`(? IS NULL OR …)` would
    /// force a full scan).
    pub fn given(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("tenant_id", &self.tenant_id),
            ("agent_id", &self.agent_id),
            ("provider", &self.provider),
            ("model", &self.model),
        ]
        .into_iter()
        .filter_map(|(column, value)| Some((column, value.as_ref()?)))
    }
}

/// One call that ended, as the calls metrics need it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedCall {
    pub ended_ms: i64,
    pub status: CallStatus,
    pub ended_reason: Option<String>,
    pub duration_s: f64,
    pub objective: Option<String>,
}

/// The calls of one tenant the call explorer lists: those whose first event falls in
/// `range`, of an agent, with an objective, that used a provider (each filter optional).
#[derive(Debug, Clone, PartialEq)]
pub struct CallWindow {
    pub tenant_id: String,
    pub range: voicemon_core::window::TimeRange,
    pub agent_id: Option<String>,
    pub objective: Option<String>,
    /// Calls with a usage line of this provider.
    pub provider: Option<String>,
    /// Calls read at most.
    pub limit: usize,
}

/// A call as the call explorer shows it: its own facts and every turn, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct CallTurns {
    pub call_id: String,
    pub agent_id: Option<String>,
    pub objective: Option<String>,
    pub trace_id: Option<String>,
    /// Its earliest event (where cost is attributed).
    pub first_ms: i64,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub duration_s: Option<f64>,
    /// `None` while the call has not ended.
    pub status: Option<CallStatus>,
    pub ended_reason: Option<String>,
    /// Its priced usage, nano-USD, and how many of its lines have no price.
    pub cost_nano: i64,
    pub unpriced_lines: u32,
    pub turns: Vec<TurnRow>,
}

impl CallTurns {
    /// Puts over the call's own columns (`stored_first`: its row's first time, `None`
    /// until its first flush) what the flushes to come add to them (`pending`).
    pub(crate) fn merge_pending(&mut self, stored_first: Option<i64>, pending: Option<&derived::CallTotals>) {
        let Some(totals) = pending else { return };
        self.first_ms = pending::merged_first(stored_first, Some(totals)).unwrap_or_default();
        self.cost_nano += totals.cost_nano;
        let unpriced = u32::try_from(totals.unpriced_lines).unwrap_or(u32::MAX);
        self.unpriced_lines = self.unpriced_lines.saturating_add(unpriced);
    }
}

/// Calls with their turns, gathered from rows of a call joined to its turns (ordered by
/// call, one row per turn, a call without turns once with none), as both backends read
/// a window of calls.
#[derive(Debug, Default)]
pub(crate) struct CallsGathered(Vec<(i64, CallTurns)>);

impl CallsGathered {
    /// One row: the call with row id `id` (read by `call` only when it is a new one) and
    /// its turn, if the row has one.
    pub(crate) fn row<E>(
        &mut self,
        id: i64,
        call: impl FnOnce() -> Result<CallTurns, E>,
        turn: Option<TurnRow>,
    ) -> Result<(), E> {
        if self.0.last().is_none_or(|(last, _)| *last != id) {
            self.0.push((id, call()?));
        }
        if let (Some(turn), Some((_, call))) = (turn, self.0.last_mut()) {
            call.turns.push(turn);
        }
        Ok(())
    }

    pub(crate) fn into_calls(self) -> Vec<CallTurns> {
        self.0.into_iter().map(|(_, call)| call).collect()
    }
}

/// One stored `turn.completed`.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnRow {
    pub ts_ms: i64,
    pub turn_index: u32,
    pub e2e_ms: f64,
    pub stt_ms: Option<f64>,
    pub eou_ms: Option<f64>,
    pub llm_ttft_ms: Option<f64>,
    pub tts_ttfb_ms: Option<f64>,
    pub interrupted: Option<bool>,
    pub tool_calls: Option<u32>,
}

/// One stored `provider.request` of a call, as the call explorer reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRequest {
    pub ts_ms: i64,
    pub provider: String,
    pub component: PipelineComponent,
    pub ok: bool,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
}

/// Which call to itemise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallRef {
    CallId(String),
    TraceId(String),
}

/// One stored usage line with its cost.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageLine {
    /// The line's row id (stable; re-pricing updates by it).
    pub id: i64,
    pub tenant_id: String,
    pub call_id: String,
    pub ts_ms: i64,
    pub component: PipelineComponent,
    pub provider: String,
    pub model: Option<String>,
    pub voice: Option<String>,
    pub audio_seconds: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub audio_input_tokens: Option<u64>,
    pub audio_output_tokens: Option<u64>,
    pub characters: Option<u64>,
    /// `None`: unpriced.
    pub cost_nano: Option<i64>,
    /// The price entry used ('' when unpriced).
    pub price_ref: String,
    /// Unit prices used, or why the line is unpriced.
    pub detail: String,
}

/// One call with its itemised usage.
#[derive(Debug, Clone, PartialEq)]
pub struct CallCost {
    pub tenant_id: String,
    pub call_id: String,
    pub trace_id: Option<String>,
    pub first_ms: Option<i64>,
    pub duration_s: Option<f64>,
    pub status: Option<String>,
    pub lines: Vec<UsageLine>,
}

/// A call's cost totals.
#[derive(Debug, Clone, PartialEq)]
pub struct CallCostTotal {
    pub tenant_id: String,
    pub call_id: String,
    pub first_ms: i64,
    pub cost_nano: i64,
    pub usage_lines: u64,
    pub unpriced_lines: u64,
    /// From call.ended; `None` while the call has not ended.
    pub duration_s: Option<f64>,
}

/// One tenant's cost totals over the calls of a range ([`CostStore::tenant_costs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantCost {
    pub tenant_id: String,
    pub calls: u64,
    pub cost_nano: i64,
    /// Of the calls that ended: their cost and their durations, summed.
    pub ended_cost_nano: i64,
    pub ended_seconds: f64,
}

/// How to split cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(rename_all = "snake_case"))]
pub enum CostGroup {
    Provider,
    Component,
    Model,
    /// The UTC day of the call's first event.
    Day,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostGroupRow {
    /// Provider, component, model ('' when none) or the day's start in unix ms as text.
    pub key: String,
    pub cost_nano: i64,
    pub usage_lines: u64,
    pub unpriced_lines: u64,
}

/// A usage line's new cost.
#[derive(Debug, Clone, PartialEq)]
pub struct CostUpdate {
    pub usage_id: i64,
    pub costing: Costing,
}

/// A worker's latest heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    pub tenant_id: String,
    pub worker_id: String,
    pub last_ms: i64,
    pub memory_used_bytes: u64,
    pub memory_limit_bytes: u64,
    pub cpu_percent: f64,
    pub active_calls: u32,
}

/// One circuit-breaker change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerRow {
    pub tenant_id: String,
    pub breaker: String,
    pub at_ms: i64,
    pub state: BreakerState,
}

/// One minute of one provider's requests (summed over the tenants read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMinuteRow {
    pub provider: String,
    pub start_ms: i64,
    pub requests: u64,
    pub errors: u64,
}

/// Errors of one kind from one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderErrorCount {
    pub provider: String,
    pub error: String,
    pub count: u64,
}

/// Everything the alert engine resumes from after a restart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertingState {
    pub alerts: Vec<Alert>,
    pub records: Vec<NotifyRecord>,
    pub silences: Vec<Silence>,
}

/// One entry of `alert_history`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub at_ms: i64,
    pub kind: HistoryKind,
    pub fingerprint: String,
    pub rule: String,
    pub tenant_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, String>))]
    pub labels: Labels,
    pub value: Option<f64>,
    pub detail: Option<String>,
}

/// A message waiting to be delivered to one receiver (the durable outbox).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub receiver: String,
    pub rule: String,
    /// The rendered notice (JSON), turned into the receiver's format when sent.
    pub payload: String,
    pub created_ms: i64,
    pub next_attempt_ms: i64,
    pub attempts: u32,
}

/// What one evaluation tick changed, stored in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertingTick {
    /// When the tick was evaluated; new outbox messages are due from then.
    pub now_ms: i64,
    pub upsert_alerts: Vec<Alert>,
    pub delete_alerts: Vec<String>,
    pub upsert_records: Vec<NotifyRecord>,
    pub delete_records: Vec<String>,
    /// New messages: (receiver, rule, payload).
    pub outbox: Vec<(String, String, String)>,
    pub history: Vec<HistoryEntry>,
    /// The lease the tick is written under: when set, the tick is stored only if `holder`
    /// still holds `role` at `now_ms`, else nothing is and the answer is
    /// [`StoreError::LeaseLost`]. An instance that lost the alerting role while it was
    /// evaluating cannot queue a notification the new holder also queues.
    pub lease: Option<LeaseClaim>,
}

/// A role held by one instance among those sharing a database, until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseClaim {
    pub role: String,
    pub holder: String,
}

impl LeaseClaim {
    /// The answer to a write fenced by this lease once another instance holds it.
    pub fn lost(&self) -> StoreError {
        StoreError::LeaseLost(format!(
            "{} no longer holds the {} lease; nothing was written",
            self.holder, self.role
        ))
    }
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub role: String,
    pub holder: String,
    pub expires_ms: i64,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Sent {
        at_ms: i64,
    },
    /// Try again at `next_attempt_ms`. The first retry of a message is written to the
    /// alert history (`notification_retrying`, with its reason), so a receiver that cannot
    /// be reached shows at once, not only when the delivery deadline has passed.
    Retry {
        at_ms: i64,
        next_attempt_ms: i64,
        error: String,
    },
    /// Given up; `broken` marks the receiver broken (a 4xx other than 429).
    Failed {
        at_ms: i64,
        error: String,
        broken: bool,
    },
}

/// A receiver's delivery health.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiverState {
    pub name: String,
    pub broken: bool,
    pub last_error: Option<String>,
    pub last_sent_ms: Option<i64>,
    pub pending: u64,
}

/// An API key as listed; the secret itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// `None`: every tenant (admin keys only).
    pub tenant_id: Option<String>,
    /// The first characters of the secret, to recognise it in a list.
    pub prefix: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// A key to create: the caller generates the secret and passes its hash.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    pub tenant_id: Option<String>,
    pub prefix: String,
    pub key_hash: String,
    pub created_ms: i64,
}
