//! The PostgreSQL store, for teams that outgrow one machine or already run PostgreSQL.
//!
//! A pool of connections (deadpool), versioned migrations applied at start under an
//! advisory lock (several voicemon instances may start together), raw fact tables
//! partitioned by day (native declarative partitioning, or TimescaleDB hypertables when
//! the extension is there) and sketch rollups merged in SQL. Bulk writes are one
//! multi-row `INSERT … SELECT FROM unnest($arrays)` per table and group commit.

mod alerting;
mod column;
mod cost;
mod health;
mod journal;
mod keys;
mod lease;
mod read;
mod schema;
pub mod tls;
mod write;

pub use schema::{latest_version, partitions, Partitioning, TimescaleDecision, TimescaleReport, PARTITIONED};

use crate::derived::KnownFirsts;
use crate::pending::{overlay_workers, CallRows, Unflushed};
use crate::pool::LastError;
use crate::{
    AdminStore, AlertStore, AlertingState, AlertingTick, ApiKey, BreakerRow, CallCost, CallCostTotal,
    CallRef, CallRequest, CallStore, CallTurns, CallWindow, CostGroup, CostGroupRow, CostStore, CostUpdate,
    Delivery, EndedCall, Fault, HealthStore, HistoryEntry, IngestEvent, IngestStore, KeyStore, LatencyFilter,
    LatencyStore, LeaseRow, LeaseStore, NewApiKey, OutboxItem, PoolStats, ProviderErrorCount,
    ProviderMinuteRow, ReceiverState, RepriceStore, Resolution, StoreError, TenantCost, UsageLine, WorkerRow,
    WriteOutcome,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use journal::HeldCommits;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use voicemon_core::alerting::silence::Silence;
use voicemon_core::clock::{Clock, SystemClock};
use voicemon_core::latency::Component;
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::TimeRange;

/// How voicemon uses a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/db` (`DATABASE_URL`). `?options=-csearch_path%3Dname`
    /// keeps voicemon's tables in a schema of their own; `?sslmode=…&sslrootcert=…` as
    /// libpq reads them ([`tls`]). It may hold a password, so it never prints.
    pub url: SecretString,
    /// Connections at most; the batch writer holds one per commit, queries the others.
    pub pool_size: usize,
    /// How long a caller waits for a connection (or to open one) before the store is
    /// reported unavailable.
    pub connect_timeout: Duration,
    /// Raw facts and minute rollups older than this are dropped, a day partition at a time.
    /// Hour rollups, calls' cost totals and alert history are kept.
    pub retention: Duration,
    /// Day partitions created ahead of today.
    pub partitions_ahead: u32,
    /// Group commits in flight at once, each on its own connection (at most `pool_size - 1`).
    pub concurrent_writes: usize,
    /// Use TimescaleDB when the extension can be created (`false`: always native partitions).
    pub timescaledb: bool,
    /// Compress hypertable chunks older than this (TimescaleDB community licence only).
    pub compress_after: Option<Duration>,
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: SecretString::from(url.into()),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            retention: Duration::from_secs(400 * 86_400),
            partitions_ahead: 3,
            concurrent_writes: 2,
            timescaledb: true,
            compress_after: Some(Duration::from_secs(7 * 86_400)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: Pool,
    config: Arc<PostgresConfig>,
    partitioning: Partitioning,
    /// Day partitions known to exist, per table (start of day, unix ms).
    partitions: Arc<Mutex<HashMap<&'static str, std::collections::BTreeSet<i64>>>>,
    /// `cost_notes` ids by (price_ref, detail); notes are never deleted.
    cost_notes: Arc<Mutex<HashMap<(String, String), i64>>>,
    errors: Arc<LastError>,
    /// Derived data of this instance's commits, not flushed yet.
    derived: Arc<journal::DerivedState>,
    /// Call row ids this instance has seen committed.
    known_calls: write::CallCache,
    /// First-event times of call rows that this instance's flushes wrote.
    known_firsts: Arc<KnownFirsts>,
    /// How group commits claim idempotency keys (by `COPY` unless one was met stored).
    claims: Arc<write::Claims>,
}

impl PostgresStore {
    /// Connects, applies pending migrations and creates the partitions due now.
    pub async fn connect(config: PostgresConfig) -> Result<PostgresStore, StoreError> {
        let pool = build_pool(&config)?;
        let mut client = pool.get().await.map_err(pool_error)?;
        let migrated = schema::migrate(&mut client, &config).await.map_err(map_error);
        release(client, &migrated);
        let partitioning = migrated?;
        let client = pool.get().await.map_err(pool_error)?;
        if let (Partitioning::Timescale, Some(after)) = (partitioning, config.compress_after) {
            schema::enable_compression(&client, after).await;
        }
        drop(client);
        let store = PostgresStore {
            pool,
            config: Arc::new(config),
            partitioning,
            partitions: Arc::default(),
            cost_notes: Arc::default(),
            errors: Arc::default(),
            derived: Arc::new(journal::DerivedState::new()),
            known_calls: Arc::default(),
            known_firsts: Arc::default(),
            claims: Arc::default(),
        };
        store.hold_owner_lock().await?;
        store.maintain(SystemClock.now_ms()).await?;
        Ok(store)
    }

    /// How raw facts are partitioned in this database.
    pub fn partitioning(&self) -> Partitioning {
        self.partitioning
    }

    /// Flushes this instance's pending derived data before a read of derived tables, so
    /// the answer counts every event it acknowledged. A group commit under way may have
    /// made its raw facts visible without its derived data being pending yet: the read
    /// waits for it first. A flush already under way has taken the pending data out of
    /// memory without having merged it yet: the read waits for it (the flush lock) rather
    /// than trusting the pending flag.
    async fn fresh(&self) -> Result<(), StoreError> {
        self.derived.settle().await;
        if self.derived.pending.has_pending() || self.derived.is_flushing() {
            self.flush_pending().await?;
        }
        Ok(())
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.record(self.pool.get().await.map_err(pool_error))
    }

    fn record<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.errors.record(result)
    }

    /// Runs a read on a pooled connection, mapping and recording its error.
    async fn read<T>(
        &self,
        work: impl for<'c> FnOnce(&'c Object) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        let client = self.client().await?;
        let result = work(&client).await.map_err(map_error);
        release(client, &result);
        self.record(result)
    }

    /// Runs `work` in one REPEATABLE READ snapshot with `unflushed` (copied from what is
    /// pending before it opens) and which of its parts' journal rows the snapshot still
    /// holds: their data is not in the tables in it ([`crate::pending`]). The read waits
    /// for no flush. A read that also reads raw facts copies while it holds commits off
    /// (`held`, [`journal::DerivedState::hold_commits`]), which it does until its snapshot is open: every
    /// commit in the snapshot is then flushed in it or copied.
    async fn read_unflushed<R, T>(
        &self,
        held: Option<HeldCommits>,
        unflushed: Unflushed<R>,
        work: impl for<'c> FnOnce(
                &'c Object,
                &'c Unflushed<R>,
                &'c [i64],
            ) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>
            + Send
            + 'static,
    ) -> Result<T, StoreError>
    where
        R: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.read(move |client| {
            let needed = held.is_some() || !unflushed.is_empty();
            Box::pin(read::in_snapshot(client, needed, async move {
                // The first statement: the snapshot is open after it.
                let present = match needed {
                    true => read::journal_rows_present(client, &unflushed.seqs()).await?,
                    false => Vec::new(),
                };
                drop(held);
                work(client, &unflushed, &present).await
            }))
        })
        .await
    }

    /// Reads derived rows with `work` and merges into them with `merge` what `unflushed`
    /// holds of the commits not flushed when the read began ([`PostgresStore::read_unflushed`]).
    async fn read_merging<R, T>(
        &self,
        held: Option<HeldCommits>,
        unflushed: Unflushed<R>,
        work: impl for<'c> FnOnce(&'c Object) -> BoxFuture<'c, Result<T, tokio_postgres::Error>> + Send + 'static,
        merge: impl FnOnce(&Unflushed<R>, &[i64], T) -> T + Send + 'static,
    ) -> Result<T, StoreError>
    where
        R: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.read_unflushed(held, unflushed, move |client, unflushed, present| {
            Box::pin(async move {
                let rows = work(client).await?;
                Ok(merge(unflushed, present, rows))
            })
        })
        .await
    }

    /// Runs `work` with the call totals of `tenant` (or of every tenant) not flushed yet,
    /// in its snapshot ([`PostgresStore::read_unflushed`]), copied while it holds commits
    /// off, so that it never sees a batch's raw facts (turns, usage lines) without its
    /// call totals.
    async fn read_with_call_totals<T>(
        &self,
        tenant: Option<&str>,
        work: impl for<'c> FnOnce(&'c Object, CallRows) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>
            + Send
            + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
    {
        let held = self.derived.hold_commits().await;
        self.read_unflushed(held, self.derived.pending.calls(tenant), move |client, unflushed, present| {
            work(client, unflushed.totals(present))
        })
        .await
    }

    /// Runs a read of calls by first time with the call totals not flushed yet for it to
    /// merge in its statement ([`cost::PendingCalls`], [`PostgresStore::read_with_call_totals`]).
    async fn read_merging_calls<T>(
        &self,
        tenant: Option<&str>,
        work: impl for<'c> FnOnce(&'c Object, cost::PendingCalls) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>
            + Send
            + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
    {
        self.read_with_call_totals(tenant, move |client, totals| {
            work(client, cost::PendingCalls::of(&totals))
        })
        .await
    }

    /// Runs `work` in one transaction on a pooled connection.
    async fn transaction<T>(
        &self,
        work: impl for<'t> FnOnce(&'t deadpool_postgres::Transaction<'t>) -> BoxFuture<'t, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut client = self.client().await?;
        let result = async {
            let tx = client.transaction().await.map_err(map_error)?;
            let value = work(&tx).await?;
            tx.commit().await.map_err(map_error)?;
            Ok(value)
        }
        .await;
        release(client, &result);
        // Only a group commit's success proves that writes work again (`write_batch`).
        self.record(result)
    }
}

impl PostgresStore {
    /// [`PostgresStore::transaction`] for the writes that run beside one another (group
    /// commits, derived-data flushes, on one instance or several): a transaction that
    /// PostgreSQL rolled back for a deadlock or a serialisation failure (SQLSTATE class 40)
    /// is run again, up to [`CONFLICT_ATTEMPTS`] times in all, after a short pause. It
    /// changed nothing, so running it again is safe.
    async fn transaction_retrying<T>(
        &self,
        work: impl for<'t> Fn(&'t deadpool_postgres::Transaction<'t>) -> BoxFuture<'t, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut attempt = 1;
        loop {
            match self.transaction(&work).await {
                Err(err) if attempt < CONFLICT_ATTEMPTS && rolled_back_for_conflict(&err) => {
                    tracing::debug!(attempt, error = %err, "transaction rolled back by a conflict; running it again");
                    tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

/// Attempts of a write that PostgreSQL rolls back for a conflict with another.
const CONFLICT_ATTEMPTS: u32 = 4;

/// Whether PostgreSQL rolled the transaction back for a conflict (class 40: deadlock,
/// serialisation failure), as [`map_error`] words it.
fn rolled_back_for_conflict(err: &StoreError) -> bool {
    matches!(err, StoreError::Unavailable(text) if text.starts_with("postgresql: 40"))
}

/// Returns a connection to the pool, unless the operation on it failed: then it may be
/// dead (the server closed it) or in a state nobody knows, so it is closed and the next
/// caller gets a fresh one.
fn release<T>(client: Object, result: &Result<T, StoreError>) {
    if result.is_err() {
        drop(Object::take(client));
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

fn build_pool(config: &PostgresConfig) -> Result<Pool, StoreError> {
    let (url, tls) = tls::split_url(config.url.expose_secret())?;
    let mut pg: tokio_postgres::Config = url
        .parse()
        .map_err(|err| StoreError::Config(format!("DATABASE_URL is not a PostgreSQL URL: {err}")))?;
    pg.connect_timeout(config.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name("voicemon");
    }
    // Verified: a pooled connection answers a round trip before it is handed out, so one
    // the server closed while it sat idle (a restart, `pg_terminate_backend`) is replaced
    // instead of failing the next caller.
    let manager = Manager::from_config(
        pg,
        tls.connector()?,
        ManagerConfig { recycling_method: RecyclingMethod::Verified },
    );
    Pool::builder(manager)
        .max_size(config.pool_size.max(2))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.connect_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .build()
        .map_err(|err| StoreError::Internal(format!("cannot build the connection pool: {err}")))
}

/// A lost or refused connection (and a server shutting down) is the fault `Unreachable`,
/// a full disk `DiskFull`, a read-only server (a standby) `ReadOnly`; transactions the
/// server rolled back (deadlock, serialization) are `Unavailable` (retry later); the rest
/// is `Internal`.
pub(crate) fn map_error(err: tokio_postgres::Error) -> StoreError {
    let text = match err.as_db_error() {
        Some(db) => format!("postgresql: {}: {}", db.code().code(), db.message()),
        // tokio-postgres keeps the cause (connection refused, a certificate error) apart.
        None => format!("postgresql: {}", voicemon_tls::error_chain(&err)),
    };
    if connection_failed(&err) {
        return StoreError::Fault { fault: Fault::Unreachable, detail: text };
    }
    let Some(code) = err.code() else { return StoreError::Unavailable(text) };
    let fault = match code {
        code if code.code().starts_with("08") => Fault::Unreachable,
        code if [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW]
            .contains(code) =>
        {
            Fault::Unreachable
        }
        &SqlState::DISK_FULL => Fault::DiskFull,
        &SqlState::READ_ONLY_SQL_TRANSACTION => Fault::ReadOnly,
        code if code.code().starts_with("40") => return StoreError::Unavailable(text),
        _ => return StoreError::Internal(text),
    };
    StoreError::Fault { fault, detail: text }
}

/// Whether the connection itself failed (closed, refused, broken, timed out), as opposed
/// to a statement on a working connection.
fn connection_failed(err: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    const CONNECTION_KINDS: [&str; 4] =
        ["error connecting", "error communicating", "error performing TLS", "timeout waiting"];
    err.is_closed()
        || err.source().is_some_and(|source| source.is::<std::io::Error>())
        || (err.code().is_none() && CONNECTION_KINDS.iter().any(|kind| err.to_string().starts_with(kind)))
}

fn pool_error(err: PoolError) -> StoreError {
    match err {
        PoolError::Backend(err) => map_error(err),
        // Every connection is busy: a passing condition.
        PoolError::Timeout(TimeoutType::Wait) => {
            StoreError::Unavailable("postgresql: timed out waiting for a free connection".into())
        }
        PoolError::Timeout(kind) => StoreError::Fault {
            fault: Fault::Unreachable,
            detail: format!("postgresql: timed out opening a connection ({kind:?})"),
        },
        other => StoreError::Unavailable(format!("postgresql: {other}")),
    }
}

/// Unix ms as a `timestamptz` parameter.
pub(crate) fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

pub(crate) fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A sketch from its `voicemon_sketch` columns.
pub(crate) fn sketch_of(zero: i64, keys: Vec<i32>, counts: Vec<i64>) -> LatencySketch {
    LatencySketch::from_buckets(zero as u64, keys.into_iter().zip(counts.into_iter().map(|c| c as u64)))
}

/// `sql` with `{tenant}` replaced by `AND {column} = $n` (n = params + 1) when a tenant
/// is given, so the tenant-first index serves it; removed otherwise.
pub(crate) fn scoped(sql: &str, column: &str, tenant: Option<&str>, params: usize) -> String {
    match tenant {
        Some(_) => sql.replace("{tenant}", &format!("AND {column} = ${}", params + 1)),
        None => sql.replace("{tenant}", ""),
    }
}

#[async_trait]
impl IngestStore for PostgresStore {
    fn concurrent_writes(&self) -> usize {
        self.config.concurrent_writes.clamp(1, self.config.pool_size.max(2) - 1)
    }

    async fn write_batch(&self, events: Vec<IngestEvent>) -> Result<WriteOutcome, StoreError> {
        let events = Arc::new(events);
        let mut retried = false;
        loop {
            self.record(self.ensure_partitions(&events).await)?;
            let result = self.write_events(Arc::clone(&events)).await;
            if !retried && result.as_ref().is_err_and(schema::is_missing_partition) {
                // Another instance dropped a partition this one still knew of: look again, once.
                retried = true;
                self.forget_partitions();
                continue;
            }
            return self.errors.record_write(result);
        }
    }

    async fn flush_derived(&self) -> Result<usize, StoreError> {
        self.flush_pending().await
    }
}

#[async_trait]
impl LatencyStore for PostgresStore {
    async fn latency_sketches(
        &self,
        filter: &LatencyFilter,
        range: TimeRange,
        resolution: Resolution,
    ) -> Result<Vec<(i64, LatencySketch)>, StoreError> {
        // Unflushed data is merged, not flushed first: a read waits for no flush.
        let filter = filter.clone();
        self.read_merging(
            None,
            self.derived.pending.latency_of(&filter, range),
            move |client| Box::pin(read::latency_sketches(client, filter, range, resolution)),
            move |unflushed, present, mut sketches| {
                unflushed.add_periods(present, range, resolution, &mut sketches);
                sketches
            },
        )
        .await
    }

    async fn latency_by_tenant(
        &self,
        component: Component,
        range: TimeRange,
        by_provider: bool,
    ) -> Result<Vec<(String, String, LatencySketch)>, StoreError> {
        self.read_merging(
            None,
            self.derived.pending.latency_by_tenant(component, range, by_provider),
            move |client| Box::pin(read::latency_by_tenant(client, component, range, by_provider)),
            move |unflushed, present, rows| unflushed.add_by_tenant(present, by_provider, rows),
        )
        .await
    }
}

#[async_trait]
impl CallStore for PostgresStore {
    async fn ended_calls(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
    ) -> Result<Vec<EndedCall>, StoreError> {
        // The calls' own fields, written by their commit: nothing derived to flush first.
        let tenant = tenant_id.map(str::to_owned);
        self.read(move |client| Box::pin(read::ended_calls(client, tenant, range))).await
    }

    async fn started_calls(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
    ) -> Result<(u64, u64), StoreError> {
        // The calls' own fields, written by their commit: nothing derived to flush first.
        let tenant = tenant_id.map(str::to_owned);
        self.read(move |client| Box::pin(read::started_calls(client, tenant, range))).await
    }

    async fn window_calls(&self, window: CallWindow) -> Result<Vec<CallTurns>, StoreError> {
        let tenant = window.tenant_id.clone();
        self.read_merging_calls(Some(&tenant), move |client, pending| {
            Box::pin(read::window_calls(client, window, pending))
        })
        .await
    }

    async fn call_record(
        &self,
        tenant_id: &str,
        call_id: &str,
    ) -> Result<Option<(CallTurns, Vec<CallRequest>)>, StoreError> {
        let (tenant, call_id) = (tenant_id.to_owned(), call_id.to_owned());
        self.read_with_call_totals(Some(tenant_id), move |client, pending| {
            Box::pin(read::call_record(client, tenant, call_id, pending))
        })
        .await
    }
}

#[async_trait]
impl CostStore for PostgresStore {
    async fn call_cost(
        &self,
        tenant_id: Option<&str>,
        call: &CallRef,
    ) -> Result<Option<CallCost>, StoreError> {
        let tenant = tenant_id.map(str::to_owned);
        let call = call.clone();
        self.read_with_call_totals(tenant_id, move |client, pending| {
            Box::pin(cost::call_cost(client, tenant, call, pending))
        })
        .await
    }

    async fn call_tenants(&self, call: &CallRef, limit: usize) -> Result<Vec<String>, StoreError> {
        let call = call.clone();
        self.read(move |client| Box::pin(cost::call_tenants(client, call, limit))).await
    }

    async fn call_costs(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
    ) -> Result<Vec<CallCostTotal>, StoreError> {
        let tenant = tenant_id.map(str::to_owned);
        self.read_merging_calls(tenant_id, move |client, pending| {
            Box::pin(cost::call_costs(client, tenant, range, pending))
        })
        .await
    }

    async fn tenant_costs(&self, range: TimeRange) -> Result<Vec<TenantCost>, StoreError> {
        self.read_merging_calls(None, move |client, pending| {
            Box::pin(cost::tenant_costs(client, range, pending))
        })
        .await
    }

    async fn cost_breakdown(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
        group: CostGroup,
    ) -> Result<Vec<CostGroupRow>, StoreError> {
        let tenant = tenant_id.map(str::to_owned);
        self.read_merging_calls(tenant_id, move |client, pending| {
            Box::pin(cost::cost_breakdown(client, tenant, range, group, pending))
        })
        .await
    }
}

#[async_trait]
impl RepriceStore for PostgresStore {
    async fn usage_lines(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<UsageLine>, StoreError> {
        self.fresh().await?;
        let tenant = tenant_id.map(str::to_owned);
        self.read(move |client| Box::pin(cost::usage_lines(client, tenant, range, after_id, limit))).await
    }

    async fn count_usage_lines(&self, tenant_id: Option<&str>, range: TimeRange) -> Result<u64, StoreError> {
        self.fresh().await?;
        let tenant = tenant_id.map(str::to_owned);
        self.read(move |client| Box::pin(cost::count_usage_lines(client, tenant, range))).await
    }

    async fn apply_costs(&self, updates: Vec<CostUpdate>) -> Result<(), StoreError> {
        self.fresh().await?;
        let notes = Arc::clone(&self.cost_notes);
        let learned = self.transaction(move |tx| Box::pin(cost::apply_costs(tx, notes, updates))).await?;
        self.learn_notes(learned);
        Ok(())
    }
}

#[async_trait]
impl HealthStore for PostgresStore {
    async fn workers(&self, tenant_id: Option<&str>) -> Result<Vec<WorkerRow>, StoreError> {
        // Heartbeats not flushed yet are put over the rows, not flushed first. No wait for the
        // commits under way (the live view reads workers every tick): the health report
        // reads provider minutes, which waits, between breaker changes and workers.
        let pending = self.derived.pending.workers(tenant_id);
        let tenant = tenant_id.map(str::to_owned);
        let rows = self.read(move |client| Box::pin(health::workers(client, tenant))).await?;
        Ok(overlay_workers(rows, pending))
    }

    async fn breaker_changes(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<BreakerRow>, StoreError> {
        let tenant = tenant_id.map(str::to_owned);
        self.read(move |client| Box::pin(health::breaker_changes(client, tenant, since_ms))).await
    }

    async fn provider_minutes(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<ProviderMinuteRow>, StoreError> {
        // Commits held off, so that a health report that saw their breaker changes (raw
        // facts) sees their providers and, read after this, their workers.
        let held = self.derived.hold_commits().await;
        let unflushed = self.derived.pending.providers(tenant_id, since_ms);
        let tenant = tenant_id.map(str::to_owned);
        self.read_merging(
            held,
            unflushed,
            move |client| Box::pin(health::provider_minutes(client, tenant, since_ms)),
            Unflushed::add_minutes,
        )
        .await
    }

    async fn provider_latency(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<(String, LatencySketch)>, StoreError> {
        // No wait for the commits under way: the health report reads provider minutes
        // (which waits) first.
        let unflushed = self.derived.pending.providers(tenant_id, since_ms);
        let tenant = tenant_id.map(str::to_owned);
        self.read_merging(
            None,
            unflushed,
            move |client| Box::pin(health::provider_latency(client, tenant, since_ms)),
            Unflushed::add_latency,
        )
        .await
    }

    async fn provider_errors(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<ProviderErrorCount>, StoreError> {
        // No wait for the commits under way: the health report reads provider minutes
        // (which waits) first.
        let unflushed = self.derived.pending.providers(tenant_id, since_ms);
        let tenant = tenant_id.map(str::to_owned);
        self.read_merging(
            None,
            unflushed,
            move |client| Box::pin(health::provider_errors(client, tenant, since_ms)),
            Unflushed::add_errors,
        )
        .await
    }

    async fn put_health_sample(
        &self,
        tenant_id: &str,
        minute_ms: i64,
        sample: String,
    ) -> Result<(), StoreError> {
        let tenant = tenant_id.to_owned();
        self.read(move |client| Box::pin(health::put_health_sample(client, tenant, minute_ms, sample))).await
    }

    async fn health_samples(
        &self,
        tenant_id: &str,
        range: TimeRange,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let tenant = tenant_id.to_owned();
        self.read(move |client| Box::pin(health::health_samples(client, tenant, range))).await
    }

    async fn prune_health(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.fresh().await?;
        self.transaction(move |tx| Box::pin(health::prune(tx, before_ms))).await
    }

    fn pool_stats(&self) -> PoolStats {
        let status = self.pool.status();
        let (last_error, last_error_ms) = self.errors.last();
        let idle = status.available as u32;
        PoolStats {
            backend: "postgres",
            size: status.size as u32,
            in_use: (status.size as u32).saturating_sub(idle),
            idle,
            waiting: status.waiting as u32,
            last_error,
            last_error_ms,
            fault: self.errors.fault(),
        }
    }
}

#[async_trait]
impl AlertStore for PostgresStore {
    async fn load_alerting(&self, now_ms: i64) -> Result<AlertingState, StoreError> {
        let client = self.client().await?;
        let result = alerting::load(&client, now_ms).await;
        release(client, &result);
        self.record(result)
    }

    async fn save_alerting(&self, tick: AlertingTick) -> Result<(), StoreError> {
        self.transaction(move |tx| Box::pin(alerting::save(tx, tick))).await
    }

    async fn claim_outbox(
        &self,
        now_ms: i64,
        limit: usize,
        claim_ms: i64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        self.read(move |client| Box::pin(alerting::claim_outbox(client, now_ms, limit, claim_ms))).await
    }

    async fn unclaim_outbox(&self, ids: &[i64]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.read(move |client| {
            Box::pin(async move {
                client
                    .execute(
                        "UPDATE outbox SET claimed_until_ms = NULL WHERE id = ANY($1) AND status = 'pending'",
                        &[&ids],
                    )
                    .await
                    .map(|_| ())
            })
        })
        .await
    }

    async fn record_delivery(&self, item: &OutboxItem, delivery: Delivery) -> Result<(), StoreError> {
        let item = item.clone();
        self.transaction(move |tx| Box::pin(alerting::record_delivery(tx, item, delivery))).await
    }

    async fn receiver_states(&self) -> Result<Vec<ReceiverState>, StoreError> {
        self.read(|client| Box::pin(alerting::receiver_states(client))).await
    }

    async fn create_silence(&self, silence: Silence) -> Result<(), StoreError> {
        let client = self.client().await?;
        let result = alerting::create_silence(&client, silence).await;
        release(client, &result);
        self.record(result)
    }

    async fn expire_silence(&self, id: &str, now_ms: i64) -> Result<Silence, StoreError> {
        let id = id.to_owned();
        self.transaction(move |tx| Box::pin(alerting::expire_silence(tx, id, now_ms))).await
    }

    async fn silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        let client = self.client().await?;
        let result = alerting::silences(&client, now_ms).await;
        release(client, &result);
        self.record(result)
    }

    async fn alert_history(
        &self,
        range: TimeRange,
        rule: Option<&str>,
        tenant_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let client = self.client().await?;
        let result = alerting::history(&client, range, rule, tenant_id, limit).await;
        release(client, &result);
        self.record(result)
    }
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn acquire_lease(
        &self,
        role: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let (role, holder) = (role.to_owned(), holder.to_owned());
        self.read(move |client| {
            Box::pin(async move { lease::acquire(&***client, &role, &holder, now_ms, ttl_ms).await })
        })
        .await
    }

    async fn release_lease(&self, role: &str, holder: &str) -> Result<(), StoreError> {
        let (role, holder) = (role.to_owned(), holder.to_owned());
        self.read(move |client| Box::pin(async move { lease::release(&***client, &role, &holder).await }))
            .await
    }

    async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        self.read(|client| Box::pin(lease::all(&***client))).await
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn create_key(&self, key: NewApiKey) -> Result<ApiKey, StoreError> {
        let client = self.client().await?;
        let result = keys::create(&client, &key).await;
        release(client, &result);
        self.record(result)
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(|client| Box::pin(keys::list(client))).await
    }

    async fn revoke_key(&self, id_or_prefix: &str, now_ms: i64) -> Result<ApiKey, StoreError> {
        let client = self.client().await?;
        let result = keys::revoke(&client, id_or_prefix, now_ms).await;
        release(client, &result);
        self.record(result)
    }

    async fn active_key_hashes(&self) -> Result<Vec<(String, ApiKey)>, StoreError> {
        self.read(|client| Box::pin(keys::active_hashes(client))).await
    }
}

#[async_trait]
impl AdminStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|client| Box::pin(schema::version(client))).await.map(i64::from)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|client| Box::pin(async move { client.simple_query("SELECT 1").await.map(|_| ()) })).await
    }

    async fn maintain(&self, now_ms: i64) -> Result<u64, StoreError> {
        // Instances that stopped without flushing left journal rows: fold them, and ours,
        // before partitions past retention go.
        self.record(self.fold_orphans().await)?;
        self.fresh().await?;
        let result = schema::maintain(self, now_ms).await;
        self.record(result)
    }
}
