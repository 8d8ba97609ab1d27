//! The storage contract, one narrow trait per subsystem, and [`Store`], their union.
//!
//! Every backend implements each narrow trait and so, by the blanket impl below, `Store`.
//! The application opens one `Arc<dyn Store>` and hands each consumer only the trait
//! object it needs (`Arc<dyn Store>` upcasts to `Arc<dyn CostStore>`), so a consumer's
//! signature says which part of the store it may touch: the batch writer ingests, the
//! dispatcher delivers alerts, the key ring reads keys.

use crate::{
    AlertingState, AlertingTick, ApiKey, BreakerRow, CallCost, CallCostTotal, CallRef, CallRequest,
    CallTurns, CallWindow, CostGroup, CostGroupRow, CostUpdate, Delivery, EndedCall, HistoryEntry,
    IngestEvent, LatencyFilter, LeaseRow, NewApiKey, OutboxItem, PoolStats, ProviderErrorCount,
    ProviderMinuteRow, ReceiverState, Resolution, StoreError, TenantCost, UsageLine, WorkerRow, WriteOutcome,
};
use async_trait::async_trait;
use std::fmt::Debug;
use voicemon_core::alerting::silence::Silence;
use voicemon_core::latency::Component;
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::TimeRange;

/// The write path: group commits of raw facts, and the flush of their derived data.
#[async_trait]
pub trait IngestStore: Debug + Send + Sync + 'static {
    /// How many `write_batch` calls may run at once: 1 for SQLite's single writer.
    fn concurrent_writes(&self) -> usize {
        1
    }

    /// Stores a batch durably in one transaction, skipping duplicates. Its derived data
    /// ([`crate::derived`]) is journalled in that transaction and merged by a later flush.
    async fn write_batch(&self, events: Vec<IngestEvent>) -> Result<WriteOutcome, StoreError>;

    /// Merges the derived data of the commits made so far into the derived tables;
    /// returns how many derived rows it wrote. Reads of derived data flush first (latency
    /// reads merge what is pending instead, [`crate::pending`]), so calling it is only
    /// needed to bound memory and keep direct SQL readers (Grafana) fresh.
    async fn flush_derived(&self) -> Result<usize, StoreError>;
}

/// Latency sketches: the minute and hour rollups.
#[async_trait]
pub trait LatencyStore: Debug + Send + Sync + 'static {
    /// Sketches matching `filter` in the minute-aligned `range`, each with the start of
    /// the minute or hour it covers (several series may share one; the caller merges).
    async fn latency_sketches(
        &self,
        filter: &LatencyFilter,
        range: TimeRange,
        resolution: Resolution,
    ) -> Result<Vec<(i64, LatencySketch)>, StoreError>;

    /// Latency sketches for `component` over the minutes of `range`, per tenant (from
    /// turn.completed), or per tenant and provider when `by_provider` (from usage events;
    /// the provider is '' otherwise).
    async fn latency_by_tenant(
        &self,
        component: Component,
        range: TimeRange,
        by_provider: bool,
    ) -> Result<Vec<(String, String, LatencySketch)>, StoreError>;
}

/// Calls as the calls metrics count them.
#[async_trait]
pub trait CallStore: Debug + Send + Sync + 'static {
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

    /// The calls of `window`, oldest first, each with its turns; at most `window.limit`.
    async fn window_calls(&self, window: CallWindow) -> Result<Vec<CallTurns>, StoreError>;

    /// One call of `tenant_id` with its turns, and its provider requests in time order.
    async fn call_record(
        &self,
        tenant_id: &str,
        call_id: &str,
    ) -> Result<Option<(CallTurns, Vec<CallRequest>)>, StoreError>;
}

/// Cost reads: itemised calls, per-call totals, breakdowns.
#[async_trait]
pub trait CostStore: Debug + Send + Sync + 'static {
    /// A call and its usage lines, if it exists (within `tenant_id` when given).
    async fn call_cost(
        &self,
        tenant_id: Option<&str>,
        call: &CallRef,
    ) -> Result<Option<CallCost>, StoreError>;

    /// The tenants that hold a call with this id (or trace id), in name order, at most
    /// `limit`: whether an unscoped `call_cost` would have to pick one of several.
    async fn call_tenants(&self, call: &CallRef, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Cost totals of the calls whose first event falls in `range`.
    async fn call_costs(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
    ) -> Result<Vec<CallCostTotal>, StoreError>;

    /// Each tenant's cost totals over the calls whose first event falls in `range` (what
    /// [`CostStore::call_costs`] gives, summed by tenant in the store), in tenant order.
    async fn tenant_costs(&self, range: TimeRange) -> Result<Vec<TenantCost>, StoreError>;

    /// The usage cost of the calls whose first event falls in `range`, split by `group`.
    async fn cost_breakdown(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
        group: CostGroup,
    ) -> Result<Vec<CostGroupRow>, StoreError>;
}

/// Re-pricing: walk stored usage lines and store their new costs.
#[async_trait]
pub trait RepriceStore: Debug + Send + Sync + 'static {
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
}

/// Health facts (workers, breakers, providers), the per-minute health samples, and the
/// store's own connection pool.
#[async_trait]
pub trait HealthStore: Debug + Send + Sync + 'static {
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
}

/// Alerting state: alerts and the notification log, the outbox and its deliveries,
/// receivers, silences, history.
#[async_trait]
pub trait AlertStore: Debug + Send + Sync + 'static {
    /// Active alerts, the notification log and the silences not ended at `now_ms`.
    async fn load_alerting(&self, now_ms: i64) -> Result<AlertingState, StoreError>;

    /// Stores one evaluation tick.
    async fn save_alerting(&self, tick: AlertingTick) -> Result<(), StoreError>;

    /// Claims outbox messages due at `now_ms`, oldest first, for `claim_ms`: until then no
    /// other claim returns them (instances sharing a database each claim different
    /// messages; PostgreSQL takes rows with `FOR UPDATE SKIP LOCKED`). Recording a
    /// delivery ends the claim; a claim that was never recorded (its instance died)
    /// expires and the message is due again.
    async fn claim_outbox(
        &self,
        now_ms: i64,
        limit: usize,
        claim_ms: i64,
    ) -> Result<Vec<OutboxItem>, StoreError>;

    /// Ends the claims on messages `ids` that are still pending without recording an
    /// attempt (the claimant did not get to them), so they are due again at once.
    async fn unclaim_outbox(&self, ids: &[i64]) -> Result<(), StoreError>;

    /// Records a delivery attempt (and its history entry, [`crate::delivery`]).
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
}

/// Leases: which instance runs a duty that must run once among the instances sharing a
/// database (alert evaluation, health sampling, maintenance). Time is the caller's clock.
#[async_trait]
pub trait LeaseStore: Debug + Send + Sync + 'static {
    /// Takes `role` for `holder` until `now_ms + ttl_ms` if it is free, expired or already
    /// `holder`'s (a renewal). True when `holder` holds it afterwards.
    async fn acquire_lease(
        &self,
        role: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Gives `role` up if `holder` holds it, so another instance can take it at once.
    async fn release_lease(&self, role: &str, holder: &str) -> Result<(), StoreError>;

    /// Every lease ever taken, expired or not, by role.
    async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError>;
}

/// API keys; the secrets themselves are never stored, only their hashes.
#[async_trait]
pub trait KeyStore: Debug + Send + Sync + 'static {
    async fn create_key(&self, key: NewApiKey) -> Result<ApiKey, StoreError>;
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Revokes by id or by prefix; revoking twice is not an error.
    async fn revoke_key(&self, id_or_prefix: &str, now_ms: i64) -> Result<ApiKey, StoreError>;
    /// Active (unrevoked) keys with their hashes, for the server's key ring.
    async fn active_key_hashes(&self) -> Result<Vec<(String, ApiKey)>, StoreError>;
}

/// The store as a thing to run: which backend, its schema, whether it answers, housekeeping.
#[async_trait]
pub trait AdminStore: Debug + Send + Sync + 'static {
    /// A short name for logs and `/metrics/health`: `sqlite`, `postgres`.
    fn backend(&self) -> &'static str;

    /// The schema version the database is at (every migration up to it is applied).
    async fn schema_version(&self) -> Result<i64, StoreError>;

    /// A real round trip to the storage.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Housekeeping due at `now_ms`: partitions created ahead, those past retention
    /// dropped. Returns how many partitions were dropped. Nothing to do for SQLite.
    async fn maintain(&self, _now_ms: i64) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// The whole storage contract: every narrow trait. Every backend answers the same
/// questions the same way (the contract suite runs on both).
pub trait Store:
    IngestStore
    + LatencyStore
    + CallStore
    + CostStore
    + RepriceStore
    + HealthStore
    + AlertStore
    + KeyStore
    + LeaseStore
    + AdminStore
{
}

impl<T> Store for T where
    T: IngestStore
        + LatencyStore
        + CallStore
        + CostStore
        + RepriceStore
        + HealthStore
        + AlertStore
        + KeyStore
        + LeaseStore
        + AdminStore
{
}
