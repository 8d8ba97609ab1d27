//! voicemon-store: where events live. Owns all SQL.
//!
//! # Layout
//! - [`Store`]: the contract every backend satisfies (SQLite, PostgreSQL).
//! - [`sqlite`]: the embedded default backend (one file in WAL mode).
//! - [`rollup`]: what a batch adds to the rollups, shared by both backends.
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

pub mod derived;
pub mod plan;
pub mod postgres;
pub mod rollup;
pub mod sqlite;

use async_trait::async_trait;
use serde::Serialize;
use voicemon_core::access::Role;
use voicemon_core::alerting::evaluator::Alert;
use voicemon_core::alerting::policy::NotifyRecord;
use voicemon_core::alerting::silence::Silence;
use voicemon_core::alerting::Labels;
use voicemon_core::event::Event;
use voicemon_core::latency::{Component, Source};
use voicemon_core::pricing::Costing;
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::TimeRange;

/// Errors a caller branches on: `Unavailable` is worth retrying (HTTP 503), the rest is not.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Internal(String),
    #[error("{0}")]
    NotFound(String),
    /// The store's configuration cannot work (a bad URL, a missing root certificate).
    #[error("{0}")]
    Config(String),
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

/// One call that ended, as the calls metrics need it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedCall {
    pub ended_ms: i64,
    pub status: String,
    pub ended_reason: Option<String>,
    pub duration_s: f64,
    pub objective: Option<String>,
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
    /// `stt`, `llm` or `tts`.
    pub component: String,
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

/// How to split cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub state: String,
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

/// The store's own connection pool, as `/metrics/health` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    pub backend: &'static str,
    /// Connections open (idle + in use).
    pub size: u32,
    pub in_use: u32,
    pub idle: u32,
    /// Callers waiting for a connection (the writer, for SQLite).
    pub waiting: u32,
    /// The last storage error and when (unix ms), if any.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// Everything the alert engine resumes from after a restart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertingState {
    pub alerts: Vec<Alert>,
    pub records: Vec<NotifyRecord>,
    pub silences: Vec<Silence>,
}

/// One entry of `alert_history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub at_ms: i64,
    /// pending, fired, resolved, dropped, notified, notification_retrying, notification_failed,
    /// silenced.
    pub kind: String,
    pub fingerprint: String,
    pub rule: String,
    pub tenant_id: Option<String>,
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

/// The storage contract. Every backend answers the same questions the same way.
#[async_trait]
pub trait Store: std::fmt::Debug + Send + Sync + 'static {
    /// A short name for logs and `/metrics/health`: `sqlite`, `postgres`.
    fn backend(&self) -> &'static str;

    /// How many `write_batch` calls may run at once: 1 for SQLite's single writer.
    fn concurrent_writes(&self) -> usize {
        1
    }

    /// Stores a batch durably in one transaction, skipping duplicates. Its derived data
    /// ([`derived`]) is journalled in that transaction and merged by a later flush.
    async fn write_batch(&self, events: Vec<IngestEvent>) -> Result<WriteOutcome, StoreError>;

    /// Merges the derived data of the commits made so far into the derived tables;
    /// returns how many derived rows it wrote. Reads of derived data flush first, so
    /// calling it is only needed to bound memory and keep direct SQL readers (Grafana) fresh.
    async fn flush_derived(&self) -> Result<usize, StoreError>;

    /// Sketches matching `filter` in the minute-aligned `range`, each with the start of
    /// the minute or hour it covers (several series may share one; the caller merges).
    async fn latency_sketches(
        &self,
        filter: &LatencyFilter,
        range: TimeRange,
        resolution: Resolution,
    ) -> Result<Vec<(i64, LatencySketch)>, StoreError>;

    /// Calls whose `call.ended` falls in `range`.
    async fn ended_calls(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
    ) -> Result<Vec<EndedCall>, StoreError>;

    /// How many calls started in `range`, and how many of those have not ended.
    async fn started_calls(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
    ) -> Result<(u64, u64), StoreError>;

    /// A call and its usage lines, if it exists (within `tenant_id` when given).
    async fn call_cost(
        &self,
        tenant_id: Option<&str>,
        call: &CallRef,
    ) -> Result<Option<CallCost>, StoreError>;

    /// Cost totals of the calls whose first event falls in `range`.
    async fn call_costs(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
    ) -> Result<Vec<CallCostTotal>, StoreError>;

    /// The usage cost of the calls whose first event falls in `range`, split by `group`.
    async fn cost_breakdown(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
        group: CostGroup,
    ) -> Result<Vec<CostGroupRow>, StoreError>;

    /// Usage lines with `ts_ms` in `range`, in id order after `after_id`, at most `limit`.
    async fn usage_lines(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<UsageLine>, StoreError>;

    /// How many usage lines `usage_lines` would walk.
    async fn count_usage_lines(&self, tenant_id: Option<&str>, range: TimeRange) -> Result<u64, StoreError>;

    /// Stores new costs for usage lines and recomputes their calls' totals, in one transaction.
    async fn apply_costs(&self, updates: Vec<CostUpdate>) -> Result<(), StoreError>;

    /// Every worker's latest heartbeat.
    async fn workers(&self, tenant_id: Option<&str>) -> Result<Vec<WorkerRow>, StoreError>;

    /// Breaker changes at or after `since_ms`, plus each breaker's last change before it
    /// (the state the window began in), ordered by time.
    async fn breaker_changes(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<BreakerRow>, StoreError>;

    /// Provider request minutes starting at or after `since_ms`, summed over tenants.
    async fn provider_minutes(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<ProviderMinuteRow>, StoreError>;

    /// Each provider's request latency since `since_ms`, merged into one sketch.
    async fn provider_latency(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<(String, LatencySketch)>, StoreError>;

    /// Provider errors by kind since `since_ms`.
    async fn provider_errors(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<ProviderErrorCount>, StoreError>;

    /// Stores (or replaces) the health sample of one minute; `tenant_id` '' is all tenants.
    async fn put_health_sample(
        &self,
        tenant_id: &str,
        minute_ms: i64,
        sample: String,
    ) -> Result<(), StoreError>;

    /// Health samples of a tenant ('' for all) in `range`, oldest first.
    async fn health_samples(
        &self,
        tenant_id: &str,
        range: TimeRange,
    ) -> Result<Vec<(i64, String)>, StoreError>;

    /// Deletes health samples, provider minutes and errors older than `before_ms`;
    /// returns how many rows went.
    async fn prune_health(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// The connection pool as it is now.
    fn pool_stats(&self) -> PoolStats;

    /// Latency sketches for `component` over the minutes of `range`, per tenant (from
    /// turn.completed), or per tenant and provider when `by_provider` (from usage events;
    /// the provider is '' otherwise).
    async fn latency_by_tenant(
        &self,
        component: Component,
        range: TimeRange,
        by_provider: bool,
    ) -> Result<Vec<(String, String, LatencySketch)>, StoreError>;

    /// Active alerts, the notification log and the silences not ended at `now_ms`.
    async fn load_alerting(&self, now_ms: i64) -> Result<AlertingState, StoreError>;

    /// Stores one evaluation tick.
    async fn save_alerting(&self, tick: AlertingTick) -> Result<(), StoreError>;

    /// Outbox messages due at `now_ms`, oldest first.
    async fn due_outbox(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError>;

    /// Records a delivery attempt (and its history entry).
    async fn record_delivery(&self, item: &OutboxItem, delivery: Delivery) -> Result<(), StoreError>;

    /// Every receiver's delivery state.
    async fn receiver_states(&self) -> Result<Vec<ReceiverState>, StoreError>;

    async fn create_silence(&self, silence: Silence) -> Result<(), StoreError>;
    /// Ends a silence now; `NotFound` when there is none with that id.
    async fn expire_silence(&self, id: &str, now_ms: i64) -> Result<Silence, StoreError>;
    /// Silences not yet ended at `now_ms`.
    async fn silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError>;

    /// History entries in `range`, newest first, optionally of one rule and tenant.
    async fn alert_history(
        &self,
        range: TimeRange,
        rule: Option<&str>,
        tenant_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError>;

    /// A real round trip to the storage.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn create_key(&self, key: NewApiKey) -> Result<ApiKey, StoreError>;
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Revokes by id or by prefix; revoking twice is not an error.
    async fn revoke_key(&self, id_or_prefix: &str, now_ms: i64) -> Result<ApiKey, StoreError>;
    /// Active (unrevoked) keys with their hashes, for the server's key ring.
    async fn active_key_hashes(&self) -> Result<Vec<(String, ApiKey)>, StoreError>;

    /// Housekeeping due at `now_ms`: partitions created ahead, those past retention
    /// dropped. Returns how many partitions were dropped. Nothing to do for SQLite.
    async fn maintain(&self, _now_ms: i64) -> Result<u64, StoreError> {
        Ok(0)
    }
}
