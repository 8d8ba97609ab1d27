//! The embedded default store: one SQLite file in WAL mode under the data directory.
//!
//! One writer connection (group commits arrive one at a time from the batch writer) and
//! a small pool of reader connections, all used from tokio's blocking threads.

mod alerting;
mod checkpoint;
mod column;
mod cost;
mod health;
mod keys;
mod lease;
mod read;
mod schema;
mod write;

use crate::pending::{overlay_workers, CallRows, PendingDerived, Unflushed};
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
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use voicemon_core::alerting::silence::Silence;
use voicemon_core::latency::Component;
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::TimeRange;

pub use schema::latest_version;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "voicemon.sqlite3";
/// Page cache of the writer, KiB: the hot right-hand edges of the indexes it appends to.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
/// Page cache of each reader, KiB. Readers are many and short-lived; memory stays bounded
/// (writer + 8 idle readers ≈ 100 MiB at most).
const READER_CACHE_KIB: i64 = 8 * 1024;
/// Reader connections kept open between queries.
const MAX_IDLE_READERS: usize = 8;

/// How hard each commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives a power cut. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives a crash of voicemon, not of the machine.
    Normal,
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Moves the WAL into the database file off the commit path; stops when the last
    /// clone of the store goes.
    _checkpointer: Arc<checkpoint::Checkpointer>,
    path: PathBuf,
    writer: Arc<Mutex<write::Writer>>,
    /// Derived data waits in the writer for a flush; reads of derived tables flush first,
    /// but latency reads, which merge …
    pending: Arc<AtomicBool>,
    /// … the derived data committed and not flushed yet ([`crate::pending`]).
    unflushed: Arc<PendingDerived>,
    /// The lock that makes this process the one that folds journal rows left by an
    /// unclean stop; `None` when another process (a running server) holds it.
    _owner: Option<Arc<std::fs::File>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    pool: Arc<PoolCounters>,
}

/// What `/metrics/health` shows of the connections.
#[derive(Debug, Default)]
struct PoolCounters {
    readers_in_use: AtomicU32,
    writer_in_use: AtomicU32,
    writer_waiting: AtomicU32,
    errors: LastError,
}

/// Counts one use of a connection for as long as it lives.
struct InUse<'a>(&'a AtomicU32);

impl<'a> InUse<'a> {
    fn new(counter: &'a AtomicU32) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InUse(counter)
    }
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, applying migrations.
    pub fn open(data_dir: &Path, durability: Durability) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|err| {
            StoreError::Unavailable(format!("cannot create data directory {}: {err}", data_dir.display()))
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = open_connection(&path, OpenFlags::default())?;
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous).map_err(map_error)?;
        // Checkpoints run on a thread of their own (checkpoint::spawn); the writer's own,
        // far past the usual 1 000 pages, only guards against one that cannot keep up.
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint::WRITER_FALLBACK_PAGES)
            .map_err(map_error)?;
        let found: i64 =
            conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(map_error)?;
        if found > latest_version() {
            return Err(StoreError::Internal(format!(
                "{} has schema version {found}, newer than this voicemon ({}); upgrade voicemon",
                path.display(),
                latest_version()
            )));
        }
        schema::migrate(&mut conn).map_err(map_error)?;
        write::register_functions(&conn).map_err(map_error)?;
        let unflushed = Arc::new(PendingDerived::default());
        let mut writer = write::Writer::new(conn, Arc::clone(&unflushed));
        let owner = own_derived_data(data_dir)?;
        if owner.is_some() {
            // Only the process holding the lock serves this file: leases left in it are of
            // one that stopped, and must not keep this one from its duties until they expire.
            lease::clear(writer.connection()).map_err(map_error)?;
            let recovered = writer.recover()?;
            if recovered > 0 {
                tracing::info!(
                    commits = recovered,
                    "folded derived data of commits made before an unclean stop"
                );
            }
        }
        let checkpointer = checkpoint::spawn(&path)?;
        Ok(SqliteStore {
            _checkpointer: Arc::new(checkpointer),
            path,
            writer: Arc::new(Mutex::new(writer)),
            pending: Arc::default(),
            unflushed,
            _owner: owner.map(Arc::new),
            readers: Arc::new(Mutex::new(Vec::new())),
            pool: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a reader connection on a blocking thread.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        let pool = Arc::clone(&self.pool);
        let result = blocking(move || {
            let _in_use = InUse::new(&pool.readers_in_use);
            let pooled = readers.lock().map_err(poisoned)?.pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
            };
            let result = work(&conn).map_err(map_error);
            let mut idle = readers.lock().map_err(poisoned)?;
            if result.is_ok() && idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await;
        self.pool.errors.record(result)
    }

    /// Runs `work` in one snapshot with what `copy` takes of what is pending (before the
    /// snapshot opens) and which of its parts' journal rows the snapshot still holds:
    /// their data is not in the tables in it ([`crate::pending`]). The read waits for no
    /// flush. A read that also reads raw facts holds commits off (`hold_commits`:
    /// [`PendingDerived::gate`]) from before its copy until its snapshot is open, so that
    /// no commit lands in between: every commit in the snapshot is flushed in it or copied.
    async fn read_unflushed<R, T>(
        &self,
        hold_commits: bool,
        copy: impl FnOnce(&PendingDerived) -> Unflushed<R> + Send + 'static,
        work: impl FnOnce(&Connection, &Unflushed<R>, &[i64]) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError>
    where
        R: Send + 'static,
        T: Send + 'static,
    {
        let pending = Arc::clone(&self.unflushed);
        self.read(move |conn| {
            let gate = hold_commits.then(|| pending.gate());
            let unflushed = copy(&pending);
            let needed = gate.is_some() || !unflushed.is_empty();
            read::in_snapshot(conn, needed, || {
                // The first statement: the snapshot is open after it.
                let present = match needed {
                    true => read::journal_rows_present(conn, &unflushed.seqs())?,
                    false => Vec::new(),
                };
                drop(gate);
                work(conn, &unflushed, &present)
            })
        })
        .await
    }

    /// Reads derived rows with `work` and merges into them with `merge` what `unflushed`
    /// holds of the commits not flushed when the read began ([`SqliteStore::read_unflushed`]).
    async fn read_merging<R, T>(
        &self,
        hold_commits: bool,
        copy: impl FnOnce(&PendingDerived) -> Unflushed<R> + Send + 'static,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        merge: impl FnOnce(&Unflushed<R>, &[i64], T) -> T + Send + 'static,
    ) -> Result<T, StoreError>
    where
        R: Send + 'static,
        T: Send + 'static,
    {
        self.read_unflushed(hold_commits, copy, move |conn, unflushed, present| {
            Ok(merge(unflushed, present, work(conn)?))
        })
        .await
    }

    /// Runs `work` with the call totals of `tenant_id` (or of every tenant) not flushed
    /// yet, in its snapshot, copied while commits are held off, so that it never sees a
    /// batch's raw facts (turns, usage lines) without its call totals
    /// ([`SqliteStore::read_unflushed`]).
    async fn read_with_call_totals<T>(
        &self,
        tenant_id: Option<&str>,
        work: impl FnOnce(&Connection, &CallRows) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
    {
        let tenant = tenant_id.map(str::to_owned);
        self.read_unflushed(
            true,
            move |pending| pending.calls(tenant.as_deref()),
            move |conn, unflushed, present| work(conn, &unflushed.totals(present)),
        )
        .await
    }

    /// Runs a read of calls by first time with the call totals of `tenant_id` (or every
    /// tenant) not flushed yet staged for it to merge ([`cost::stage_pending_calls`];
    /// `work` is told whether any are) ([`SqliteStore::read_unflushed`]).
    async fn read_merging_calls<T>(
        &self,
        tenant_id: Option<&str>,
        work: impl FnOnce(&Connection, bool) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
    {
        self.read_with_call_totals(tenant_id, move |conn, totals| {
            let pending = !totals.is_empty();
            if pending {
                cost::stage_pending_calls(conn, totals)?;
            }
            work(conn, pending)
        })
        .await
    }

    /// [`SqliteStore::read`] after flushing pending derived data, so the answer counts
    /// every event acknowledged so far.
    async fn read_fresh<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        if self.pending.load(Ordering::SeqCst) {
            self.flush_derived().await?;
        }
        self.read(work).await
    }

    /// Runs `work` on the writer connection on a blocking thread.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut write::Writer) -> Result<T, StoreError> + Send + 'static,
    {
        // Only a group commit's success proves that writes work again (a full disk still
        // takes a lease renewed in place): see `write_batch`.
        let result = self.on_writer(work).await;
        self.pool.errors.record(result)
    }

    /// Runs `work` on the writer connection on a blocking thread, recording nothing.
    async fn on_writer<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut write::Writer) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        let pool = Arc::clone(&self.pool);
        blocking(move || {
            let waiting = InUse::new(&pool.writer_waiting);
            let mut writer = writer.lock().map_err(poisoned)?;
            drop(waiting);
            let _in_use = InUse::new(&pool.writer_in_use);
            work(&mut writer)
        })
        .await
    }
}

/// The lock file beside the database: whoever holds it owns the derived-data journal.
const OWNER_LOCK: &str = "voicemon.sqlite3.lock";

/// Takes the owner lock when no other process holds it. A command run beside a serving
/// voicemon (`keys create`, say) does not get it, and leaves the server's journal alone.
fn own_derived_data(data_dir: &Path) -> Result<Option<std::fs::File>, StoreError> {
    let path = data_dir.join(OWNER_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| StoreError::Unavailable(format!("cannot open {}: {err}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(StoreError::Unavailable(format!("cannot lock {}: {err}", path.display())))
        }
    }
}

async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| StoreError::Internal(format!("storage task failed: {err}")))?
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Internal("a storage thread panicked earlier".into())
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags).map_err(map_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(map_error)?;
    let read_only = flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY);
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL").map_err(map_error)?;
    }
    let cache_kib = if read_only { READER_CACHE_KIB } else { WRITER_CACHE_KIB };
    conn.pragma_update(None, "cache_size", -cache_kib).map_err(map_error)?;
    Ok(conn)
}

/// A full disk, a read-only file, a file that cannot be opened and an I/O failure are
/// faults (retry once someone fixes them); a busy or locked database is `Unavailable`
/// (retry later); everything else is `Internal`.
fn map_error(err: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    let fault = match err.sqlite_error_code() {
        Some(DiskFull) => Fault::DiskFull,
        Some(ReadOnly) => Fault::ReadOnly,
        Some(CannotOpen) => Fault::Unreachable,
        Some(SystemIoFailure) => Fault::Io,
        Some(DatabaseBusy | DatabaseLocked | FileLockingProtocolFailed | NotADatabase) => {
            return StoreError::Unavailable(err.to_string())
        }
        _ => return StoreError::Internal(err.to_string()),
    };
    StoreError::Fault { fault, detail: err.to_string() }
}

#[async_trait]
impl IngestStore for SqliteStore {
    async fn write_batch(&self, events: Vec<IngestEvent>) -> Result<WriteOutcome, StoreError> {
        let pending = Arc::clone(&self.pending);
        let result = self
            .on_writer(move |writer| {
                // Marked before the commit: a reader that sees this batch's raw facts must
                // also flush its derived data (waiting for this writer) before reading it.
                pending.store(true, Ordering::SeqCst);
                let outcome = writer.write_batch(&events);
                pending.store(writer.has_pending(), Ordering::SeqCst);
                outcome
            })
            .await;
        // A group commit that worked clears a fault (a disk full no longer).
        self.pool.errors.record_write(result)
    }

    async fn flush_derived(&self) -> Result<usize, StoreError> {
        let pending = Arc::clone(&self.pending);
        self.write(move |writer| {
            let flushed = writer.flush();
            pending.store(writer.has_pending(), Ordering::SeqCst);
            flushed
        })
        .await
    }
}

#[async_trait]
impl LatencyStore for SqliteStore {
    async fn latency_sketches(
        &self,
        filter: &LatencyFilter,
        range: TimeRange,
        resolution: Resolution,
    ) -> Result<Vec<(i64, LatencySketch)>, StoreError> {
        // Unflushed data is merged, not flushed first: a read waits for no flush.
        let (filter, wanted) = (filter.clone(), filter.clone());
        self.read_merging(
            false,
            move |pending| pending.latency_of(&wanted, range),
            move |conn| read::latency_sketches(conn, &filter, range, resolution),
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
            false,
            move |pending| pending.latency_by_tenant(component, range, by_provider),
            move |conn| read::latency_by_tenant(conn, component, range, by_provider),
            move |unflushed, present, rows| unflushed.add_by_tenant(present, by_provider, rows),
        )
        .await
    }
}

#[async_trait]
impl CallStore for SqliteStore {
    async fn ended_calls(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
    ) -> Result<Vec<EndedCall>, StoreError> {
        // The calls' own fields, written by their commit: nothing derived to flush first.
        let tenant_id = tenant_id.map(str::to_owned);
        self.read(move |conn| read::ended_calls(conn, tenant_id.as_deref(), range)).await
    }

    async fn started_calls(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
    ) -> Result<(u64, u64), StoreError> {
        // The calls' own fields, written by their commit: nothing derived to flush first.
        let tenant_id = tenant_id.map(str::to_owned);
        self.read(move |conn| read::started_calls(conn, tenant_id.as_deref(), range)).await
    }

    async fn window_calls(&self, window: CallWindow) -> Result<Vec<CallTurns>, StoreError> {
        let tenant = window.tenant_id.clone();
        self.read_merging_calls(Some(&tenant), move |conn, pending| {
            read::window_calls(conn, &window, pending)
        })
        .await
    }

    async fn call_record(
        &self,
        tenant_id: &str,
        call_id: &str,
    ) -> Result<Option<(CallTurns, Vec<CallRequest>)>, StoreError> {
        let (tenant, call_id) = (tenant_id.to_owned(), call_id.to_owned());
        self.read_with_call_totals(Some(tenant_id), move |conn, pending| {
            read::call_record(conn, &tenant, &call_id, pending)
        })
        .await
    }
}

#[async_trait]
impl CostStore for SqliteStore {
    async fn call_cost(
        &self,
        tenant_id: Option<&str>,
        call: &CallRef,
    ) -> Result<Option<CallCost>, StoreError> {
        let tenant = tenant_id.map(str::to_owned);
        let call = call.clone();
        self.read_with_call_totals(tenant_id, move |conn, pending| {
            cost::call_cost(conn, tenant.as_deref(), &call, pending)
        })
        .await
    }

    async fn call_tenants(&self, call: &CallRef, limit: usize) -> Result<Vec<String>, StoreError> {
        let call = call.clone();
        self.read(move |conn| cost::call_tenants(conn, &call, limit)).await
    }

    async fn call_costs(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
    ) -> Result<Vec<CallCostTotal>, StoreError> {
        let tenant = tenant_id.map(str::to_owned);
        self.read_merging_calls(tenant_id, move |conn, pending| {
            cost::call_costs(conn, tenant.as_deref(), range, pending)
        })
        .await
    }

    async fn tenant_costs(&self, range: TimeRange) -> Result<Vec<TenantCost>, StoreError> {
        self.read_merging_calls(None, move |conn, pending| cost::tenant_costs(conn, range, pending)).await
    }

    async fn cost_breakdown(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
        group: CostGroup,
    ) -> Result<Vec<CostGroupRow>, StoreError> {
        let tenant = tenant_id.map(str::to_owned);
        self.read_merging_calls(tenant_id, move |conn, pending| {
            cost::cost_breakdown(conn, tenant.as_deref(), range, group, pending)
        })
        .await
    }
}

#[async_trait]
impl RepriceStore for SqliteStore {
    async fn usage_lines(
        &self,
        tenant_id: Option<&str>,
        range: TimeRange,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<UsageLine>, StoreError> {
        let tenant_id = tenant_id.map(str::to_owned);
        self.read_fresh(move |conn| cost::usage_lines(conn, tenant_id.as_deref(), range, after_id, limit))
            .await
    }

    async fn count_usage_lines(&self, tenant_id: Option<&str>, range: TimeRange) -> Result<u64, StoreError> {
        let tenant_id = tenant_id.map(str::to_owned);
        self.read_fresh(move |conn| cost::count_usage_lines(conn, tenant_id.as_deref(), range)).await
    }

    async fn apply_costs(&self, updates: Vec<CostUpdate>) -> Result<(), StoreError> {
        // Call totals are recomputed from the lines: pending deltas must be in them first.
        self.flush_derived().await?;
        self.write(move |writer| writer.apply_costs(&updates).map_err(map_error)).await
    }
}

#[async_trait]
impl HealthStore for SqliteStore {
    async fn workers(&self, tenant_id: Option<&str>) -> Result<Vec<WorkerRow>, StoreError> {
        // Heartbeats not flushed yet are put over the rows, not flushed first.
        let pending = self.unflushed.workers(tenant_id);
        let tenant_id = tenant_id.map(str::to_owned);
        let rows = self.read(move |conn| health::workers(conn, tenant_id.as_deref())).await?;
        Ok(overlay_workers(rows, pending))
    }

    async fn breaker_changes(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<BreakerRow>, StoreError> {
        let tenant_id = tenant_id.map(str::to_owned);
        self.read(move |conn| health::breaker_changes(conn, tenant_id.as_deref(), since_ms)).await
    }

    async fn provider_minutes(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<ProviderMinuteRow>, StoreError> {
        let tenant_id = tenant_id.map(str::to_owned);
        let tenant = tenant_id.clone();
        // Commits held off, so that a health report that saw their breaker changes (raw
        // facts) sees their providers and, read after this, their workers.
        self.read_merging(
            true,
            move |pending| pending.providers(tenant.as_deref(), since_ms),
            move |conn| health::provider_minutes(conn, tenant_id.as_deref(), since_ms),
            Unflushed::add_minutes,
        )
        .await
    }

    async fn provider_latency(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<(String, LatencySketch)>, StoreError> {
        let tenant_id = tenant_id.map(str::to_owned);
        let tenant = tenant_id.clone();
        self.read_merging(
            false,
            move |pending| pending.providers(tenant.as_deref(), since_ms),
            move |conn| health::provider_latency(conn, tenant_id.as_deref(), since_ms),
            Unflushed::add_latency,
        )
        .await
    }

    async fn provider_errors(
        &self,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<ProviderErrorCount>, StoreError> {
        let tenant_id = tenant_id.map(str::to_owned);
        let tenant = tenant_id.clone();
        self.read_merging(
            false,
            move |pending| pending.providers(tenant.as_deref(), since_ms),
            move |conn| health::provider_errors(conn, tenant_id.as_deref(), since_ms),
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
        let tenant_id = tenant_id.to_owned();
        self.write(move |writer| {
            health::put_health_sample(writer.connection(), &tenant_id, minute_ms, &sample).map_err(map_error)
        })
        .await
    }

    async fn health_samples(
        &self,
        tenant_id: &str,
        range: TimeRange,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let tenant_id = tenant_id.to_owned();
        self.read(move |conn| health::health_samples(conn, &tenant_id, range)).await
    }

    async fn prune_health(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.flush_derived().await?;
        self.write(move |writer| health::prune(writer.parts().0, before_ms).map_err(map_error)).await
    }

    fn pool_stats(&self) -> PoolStats {
        let idle_readers = self.readers.lock().map(|idle| idle.len() as u32).unwrap_or(0);
        let readers_in_use = self.pool.readers_in_use.load(Ordering::Relaxed);
        let writer_in_use = self.pool.writer_in_use.load(Ordering::Relaxed).min(1);
        let (last_error, last_error_ms) = self.pool.errors.last();
        // The writer connection is always open: one, plus the readers.
        let size = 1 + idle_readers + readers_in_use;
        let in_use = readers_in_use + writer_in_use;
        PoolStats {
            backend: "sqlite",
            size,
            in_use,
            idle: size - in_use,
            waiting: self.pool.writer_waiting.load(Ordering::Relaxed),
            last_error,
            last_error_ms,
            fault: self.pool.errors.fault(),
        }
    }
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn load_alerting(&self, now_ms: i64) -> Result<AlertingState, StoreError> {
        self.read(move |conn| alerting::load(conn, now_ms)).await
    }

    async fn save_alerting(&self, tick: AlertingTick) -> Result<(), StoreError> {
        self.write(move |writer| alerting::save(writer.parts().0, &tick)).await
    }

    async fn claim_outbox(
        &self,
        now_ms: i64,
        limit: usize,
        claim_ms: i64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        self.write(move |writer| {
            alerting::claim_outbox(writer.connection(), now_ms, limit, claim_ms).map_err(map_error)
        })
        .await
    }

    async fn unclaim_outbox(&self, ids: &[i64]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.write(move |writer| alerting::unclaim_outbox(writer.connection(), &ids).map_err(map_error)).await
    }

    async fn record_delivery(&self, item: &OutboxItem, delivery: Delivery) -> Result<(), StoreError> {
        let item = item.clone();
        self.write(move |writer| {
            alerting::record_delivery(writer.parts().0, &item, &delivery).map_err(map_error)
        })
        .await
    }

    async fn receiver_states(&self) -> Result<Vec<ReceiverState>, StoreError> {
        self.read(alerting::receiver_states).await
    }

    async fn create_silence(&self, silence: Silence) -> Result<(), StoreError> {
        self.write(move |writer| alerting::create_silence(writer.connection(), &silence).map_err(map_error))
            .await
    }

    async fn expire_silence(&self, id: &str, now_ms: i64) -> Result<Silence, StoreError> {
        let id = id.to_owned();
        self.write(move |writer| {
            alerting::expire_silence(writer.connection(), &id, now_ms)
                .map_err(map_error)?
                .ok_or_else(|| StoreError::NotFound(format!("no silence with id `{id}`")))
        })
        .await
    }

    async fn silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        self.read(move |conn| alerting::silences(conn, now_ms)).await
    }

    async fn alert_history(
        &self,
        range: TimeRange,
        rule: Option<&str>,
        tenant_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let (rule, tenant_id) = (rule.map(str::to_owned), tenant_id.map(str::to_owned));
        self.read(move |conn| alerting::history(conn, range, rule.as_deref(), tenant_id.as_deref(), limit))
            .await
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        role: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let (role, holder) = (role.to_owned(), holder.to_owned());
        self.write(move |writer| {
            lease::acquire(writer.connection(), &role, &holder, now_ms, ttl_ms).map_err(map_error)
        })
        .await
    }

    async fn release_lease(&self, role: &str, holder: &str) -> Result<(), StoreError> {
        let (role, holder) = (role.to_owned(), holder.to_owned());
        self.write(move |writer| lease::release(writer.connection(), &role, &holder).map_err(map_error)).await
    }

    async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        self.read(lease::all).await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create_key(&self, key: NewApiKey) -> Result<ApiKey, StoreError> {
        self.write(move |writer| keys::create(writer.connection(), &key)).await
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(keys::list).await
    }

    async fn revoke_key(&self, id_or_prefix: &str, now_ms: i64) -> Result<ApiKey, StoreError> {
        let id_or_prefix = id_or_prefix.to_owned();
        self.write(move |writer| keys::revoke(writer.connection(), &id_or_prefix, now_ms)).await
    }

    async fn active_key_hashes(&self) -> Result<Vec<(String, ApiKey)>, StoreError> {
        self.read(keys::active_hashes).await
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|conn| conn.pragma_query_value(None, "user_version", |row| row.get(0))).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if !self.path.exists() {
            return Err(StoreError::Unavailable(format!("{} is gone", self.path.display())));
        }
        self.read(|conn| conn.query_row("SELECT count(*) FROM api_keys", [], |row| row.get::<_, i64>(0)))
            .await
            .map(|_| ())
    }
}
