//! Migrations, and the time partitions of raw facts: native day partitions that voicemon
//! creates ahead and drops past retention, or TimescaleDB hypertables.

use super::{at, map_error, PostgresConfig, PostgresStore};
use crate::{IngestEvent, StoreError};
use std::collections::BTreeSet;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use voicemon_core::window::DAY_MS;

/// Migrations in order; migration `n` (1-based) brings the schema to version `n`.
/// Never edit a released migration: add a new one (and update schema/metrics.sql).
const MIGRATIONS: &[(&str, &str)] = &[
    ("initial schema", include_str!("migrations/0001_initial.sql")),
    ("derived data journal", include_str!("migrations/0002_derived_journal.sql")),
    ("leases and outbox claims", include_str!("migrations/0003_leases.sql")),
    ("call explorer", include_str!("migrations/0004_call_explorer.sql")),
    ("calls updated in place", include_str!("migrations/0005_calls_fillfactor.sql")),
];

/// The TimescaleDB-only part: hypertables instead of native partitions. `{chunk}` is the
/// chunk interval.
const TIMESCALE_SQL: &str = include_str!("migrations/timescale.sql");

/// Raw fact tables partitioned by time, with their time column.
pub const PARTITIONED: &[(&str, &str)] = &[
    ("event_ids", "ts"),
    ("turns", "ts"),
    ("usage", "ts"),
    ("provider_requests", "ts"),
    ("heartbeats", "ts"),
    ("latency_minute", "start_at"),
];

/// The schema version this build expects.
pub fn latest_version() -> i32 {
    MIGRATIONS.len() as i32
}

/// How raw facts are split by time; chosen at the first migration and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioning {
    /// Declarative `PARTITION BY RANGE`, one partition per UTC day, managed by voicemon.
    Native,
    /// TimescaleDB hypertables with one-day chunks.
    Timescale,
}

impl Partitioning {
    pub fn as_str(self) -> &'static str {
        match self {
            Partitioning::Native => "native",
            Partitioning::Timescale => "timescaledb",
        }
    }
}

const BOOKKEEPING: &str = "
    CREATE TABLE IF NOT EXISTS voicemon_migrations (
        version     integer PRIMARY KEY,
        description text NOT NULL,
        applied_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE IF NOT EXISTS voicemon_settings (
        name  text PRIMARY KEY,
        value text NOT NULL
    );";

/// Applies every pending migration under an advisory lock (instances starting together
/// take turns) and returns the partitioning in force.
pub async fn migrate(
    client: &mut Client,
    config: &PostgresConfig,
) -> Result<Partitioning, tokio_postgres::Error> {
    client.execute("SELECT pg_advisory_lock(hashtext('voicemon.migrate.' || current_schema()))", &[]).await?;
    let result = migrate_locked(client, config).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock(hashtext('voicemon.migrate.' || current_schema()))", &[])
        .await;
    let partitioning = result?;
    unlocked?;
    Ok(partitioning)
}

async fn migrate_locked(
    client: &mut Client,
    config: &PostgresConfig,
) -> Result<Partitioning, tokio_postgres::Error> {
    client.batch_execute(BOOKKEEPING).await?;
    let current = version(client).await?;
    if current > latest_version() {
        return Err(newer_schema(client, current).await);
    }
    let partitioning = choose_partitioning(client, config).await?;
    for (index, (description, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i32 + 1;
        let tx = client.transaction().await?;
        match partitioning {
            Partitioning::Native => tx.batch_execute(sql).await?,
            Partitioning::Timescale => tx.batch_execute(&without_partitioning(sql)).await?,
        }
        if version == 1 && partitioning == Partitioning::Timescale {
            tx.batch_execute(&TIMESCALE_SQL.replace("{chunk}", "1 day")).await?;
        }
        tx.execute(
            "INSERT INTO voicemon_migrations (version, description) VALUES ($1, $2)",
            &[&version, description],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, partitioning = partitioning.as_str(), "applied postgresql migration");
    }
    Ok(partitioning)
}

/// The version the database's schema is at: its last migration applied (0: none).
pub async fn version(client: &Client) -> Result<i32, tokio_postgres::Error> {
    client
        .query_one("SELECT coalesce(max(version), 0) FROM voicemon_migrations", &[])
        .await
        .map(|row| row.get(0))
}

/// An error that names the problem: this database was migrated by a newer voicemon.
async fn newer_schema(client: &Client, found: i32) -> tokio_postgres::Error {
    // A server-side RAISE gives a real tokio_postgres::Error carrying our message.
    let message = format!(
        "the database has voicemon schema version {found}, newer than this voicemon ({}); upgrade voicemon",
        latest_version()
    );
    let sql = format!("DO $$ BEGIN RAISE EXCEPTION '%', {}; END $$", quote_literal(&message));
    match client.batch_execute(&sql).await {
        Err(err) => err,
        Ok(()) => unreachable!("RAISE EXCEPTION always fails"),
    }
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The partitioning recorded at the first migration, or the one to record now.
async fn choose_partitioning(
    client: &Client,
    config: &PostgresConfig,
) -> Result<Partitioning, tokio_postgres::Error> {
    let recorded =
        client.query_opt("SELECT value FROM voicemon_settings WHERE name = 'partitioning'", &[]).await?;
    if let Some(row) = recorded {
        let value: String = row.get(0);
        return Ok(if value == Partitioning::Timescale.as_str() {
            Partitioning::Timescale
        } else {
            Partitioning::Native
        });
    }
    let mut chosen = Partitioning::Native;
    let report =
        if config.timescaledb { TimescaleReport::read(client).await? } else { TimescaleReport::default() };
    match report.decide(config.timescaledb) {
        TimescaleDecision::Native => {}
        TimescaleDecision::NotPreloaded => tracing::warn!(
            shared_preload_libraries = %report.preload,
            "timescaledb is installed but not in shared_preload_libraries, so it cannot be enabled; \
             using native partitioning (add it there and restart PostgreSQL before the first migration \
             to use it)"
        ),
        TimescaleDecision::Use => chosen = Partitioning::Timescale,
        TimescaleDecision::Create => {
            match client.batch_execute("CREATE EXTENSION IF NOT EXISTS timescaledb").await {
                Ok(()) => chosen = Partitioning::Timescale,
                // A FATAL error closed the connection: nothing more can be done on it.
                Err(err) if is_fatal(&err) || client.is_closed() => return Err(err),
                Err(err) => tracing::warn!(
                    error = %err,
                    "timescaledb is installed and preloaded but cannot be enabled; using native partitioning"
                ),
            }
        }
    }
    client
        .execute(
            "INSERT INTO voicemon_settings (name, value) VALUES ('partitioning', $1) ON CONFLICT (name) DO NOTHING",
            &[&chosen.as_str()],
        )
        .await?;
    Ok(chosen)
}

/// What the server says about TimescaleDB, read before anything is created with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimescaleReport {
    /// The extension's files are installed (`pg_available_extensions`).
    pub installed: bool,
    /// `CREATE EXTENSION` was already run in this database (`pg_extension`).
    pub created: bool,
    /// The server's `shared_preload_libraries`, as it reports it.
    pub preload: String,
}

/// What to do about TimescaleDB, given a [`TimescaleReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimescaleDecision {
    /// Not wanted or not installed: native partitions, nothing to say.
    Native,
    /// Installed but not preloaded: `CREATE EXTENSION` would fail with FATAL and close
    /// the connection, so native partitions, with a warning.
    NotPreloaded,
    /// Preloaded and created already.
    Use,
    /// Preloaded, not created yet.
    Create,
}

impl TimescaleReport {
    /// Asks the server.
    pub async fn read(client: &Client) -> Result<TimescaleReport, tokio_postgres::Error> {
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
                        EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),
                        current_setting('shared_preload_libraries')",
                &[],
            )
            .await?;
        Ok(TimescaleReport { installed: row.get(0), created: row.get(1), preload: row.get(2) })
    }

    /// Whether `shared_preload_libraries` names timescaledb (as `timescaledb`,
    /// `$libdir/timescaledb` or a versioned `timescaledb-2.x.y`, quoted or not).
    pub fn preloaded(&self) -> bool {
        self.preload.split(',').any(|entry| {
            let entry = entry.trim().trim_matches('"');
            let library = entry.rsplit('/').next().unwrap_or(entry);
            library == "timescaledb" || library.starts_with("timescaledb-")
        })
    }

    /// What to do when `wanted` (`[postgres] timescaledb`).
    pub fn decide(&self, wanted: bool) -> TimescaleDecision {
        match (wanted && self.installed, self.preloaded(), self.created) {
            (false, _, _) => TimescaleDecision::Native,
            (true, false, _) => TimescaleDecision::NotPreloaded,
            (true, true, true) => TimescaleDecision::Use,
            (true, true, false) => TimescaleDecision::Create,
        }
    }
}

/// A FATAL error: the server closed the connection after sending it.
fn is_fatal(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| db.severity() == "FATAL" || db.severity() == "PANIC")
}

/// `sql` without its `PARTITION BY RANGE (…)` clauses.
fn without_partitioning(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find(" PARTITION BY RANGE (") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after.find(')').map_or(after.len(), |close| close + 1);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The name of a table's partition for the UTC day starting at `day_ms`.
fn partition_name(table: &str, day_ms: i64) -> String {
    format!("{table}_p{}", at(day_ms).format("%Y%m%d"))
}

impl PostgresStore {
    /// Creates the day partitions a batch's events fall in, unless known to exist.
    pub(super) async fn ensure_partitions(&self, events: &[IngestEvent]) -> Result<(), StoreError> {
        self.ensure_partitions_at(events.iter().map(|e| e.event.envelope.timestamp_ms)).await
    }

    /// Creates the day partitions of every table for the days of `times` (unix ms) that
    /// do not have them yet.
    pub(super) async fn ensure_partitions_at(
        &self,
        times: impl Iterator<Item = i64>,
    ) -> Result<(), StoreError> {
        if self.partitioning != Partitioning::Native {
            return Ok(());
        }
        let days: BTreeSet<i64> = times.map(|ms| ms.div_euclid(DAY_MS) * DAY_MS).collect();
        let missing: Vec<(&'static str, &'static str, i64)> = {
            let known = self.partitions.lock().map_err(|_| StoreError::Internal("poisoned".into()))?;
            PARTITIONED
                .iter()
                .flat_map(|&(table, column)| days.iter().map(move |&day| (table, column, day)))
                .filter(|(table, _, day)| !known.get(table).is_some_and(|days| days.contains(day)))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        for (table, _, day) in missing {
            create_partition(&client, table, day).await.map_err(map_error)?;
            if let Ok(mut known) = self.partitions.lock() {
                known.entry(table).or_default().insert(day);
            }
        }
        Ok(())
    }
}

impl PostgresStore {
    /// Forgets which partitions exist, so the next batch checks again.
    pub(super) fn forget_partitions(&self) {
        if let Ok(mut known) = self.partitions.lock() {
            known.clear();
        }
    }
}

/// Whether a write failed for want of a partition (SQLSTATE 23514, "no partition of
/// relation … found for row"): one dropped by another instance since this one looked.
pub(super) fn is_missing_partition(err: &StoreError) -> bool {
    matches!(err, StoreError::Internal(message)
        if message.starts_with("postgresql: 23514: no partition of relation"))
}

async fn create_partition(client: &Client, table: &str, day_ms: i64) -> Result<(), tokio_postgres::Error> {
    let name = partition_name(table, day_ms);
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ('{}') TO ('{}')",
        at(day_ms).to_rfc3339(),
        at(day_ms + DAY_MS).to_rfc3339()
    );
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(()),
        // Another instance created it between our check and our CREATE.
        Err(err)
            if err.code() == Some(&SqlState::DUPLICATE_TABLE)
                || err.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(err) => Err(err),
    }
}

/// Creates partitions from yesterday to `partitions_ahead` days ahead, and drops those
/// (or, with TimescaleDB, the chunks) wholly older than the retention.
pub async fn maintain(store: &PostgresStore, now_ms: i64) -> Result<u64, StoreError> {
    let client = store.client().await?;
    let cutoff_ms = now_ms - store.config.retention.as_millis() as i64;
    if store.partitioning == Partitioning::Timescale {
        return drop_chunks(&client, cutoff_ms).await.map_err(map_error);
    }
    let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
    let mut dropped = 0;
    for &(table, _) in PARTITIONED {
        // One listing per table: create the days missing, drop those past retention,
        // and cache what is left.
        let mut known = BTreeSet::new();
        for (name, day) in partitions(&client, table).await.map_err(map_error)? {
            if day + DAY_MS <= cutoff_ms {
                client.batch_execute(&format!("DROP TABLE IF EXISTS {name}")).await.map_err(map_error)?;
                tracing::info!(partition = %name, "dropped a partition past retention");
                dropped += 1;
            } else {
                known.insert(day);
            }
        }
        for day in (-1..=store.config.partitions_ahead as i64).map(|offset| today + offset * DAY_MS) {
            if !known.contains(&day) {
                create_partition(&client, table, day).await.map_err(map_error)?;
                known.insert(day);
            }
        }
        if let Ok(mut cache) = store.partitions.lock() {
            cache.insert(table, known);
        }
    }
    Ok(dropped)
}

/// A partitioned table's day partitions: (name, start of day in unix ms).
pub async fn partitions(client: &Client, table: &str) -> Result<Vec<(String, i64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.oid = to_regclass($1) ORDER BY 1",
            &[&table],
        )
        .await?;
    let prefix = format!("{table}_p");
    Ok(rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            let day = chrono::NaiveDate::parse_from_str(name.strip_prefix(&prefix)?, "%Y%m%d").ok()?;
            Some((name, day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis()))
        })
        .collect())
}

/// TimescaleDB: drops chunks past retention with `drop_chunks` (Apache-licensed), so no
/// licensed background job is needed.
async fn drop_chunks(client: &Client, cutoff_ms: i64) -> Result<u64, tokio_postgres::Error> {
    let mut dropped = 0;
    for &(table, _) in PARTITIONED {
        let rows = client
            .query(
                "SELECT drop_chunks($1::text::regclass, older_than => $2::timestamptz)",
                &[&table, &at(cutoff_ms)],
            )
            .await?;
        dropped += rows.len() as u64;
    }
    Ok(dropped)
}

/// Compression (TimescaleDB community licence): enabled on the hypertables with a policy,
/// or a warning when the licence or the extension version does not allow it.
pub async fn enable_compression(client: &Client, after: std::time::Duration) {
    for &(table, _) in PARTITIONED {
        let sql = format!(
            "ALTER TABLE {table} SET (timescaledb.compress);
             SELECT add_compression_policy('{table}', INTERVAL '{} seconds', if_not_exists => true);",
            after.as_secs()
        );
        if let Err(err) = client.batch_execute(&sql).await {
            tracing::warn!(table, error = %err, "timescaledb compression is not available (needs the community licence)");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_partitioning_removes_every_partition_clause_and_nothing_else() {
        let sql = "CREATE TABLE a (ts timestamptz) PARTITION BY RANGE (ts);\nCREATE TABLE b (x int);\n\
                   CREATE TABLE c (start_at timestamptz) PARTITION BY RANGE (start_at);";
        assert_eq!(
            without_partitioning(sql),
            "CREATE TABLE a (ts timestamptz);\nCREATE TABLE b (x int);\nCREATE TABLE c (start_at timestamptz);"
        );
    }

    fn report(installed: bool, created: bool, preload: &str) -> TimescaleReport {
        TimescaleReport { installed, created, preload: preload.into() }
    }

    #[test]
    fn timescaledb_installed_but_not_preloaded_is_never_created_and_native_partitioning_is_used() {
        let cases = [
            (report(true, false, ""), TimescaleDecision::NotPreloaded),
            (report(true, false, "pg_stat_statements"), TimescaleDecision::NotPreloaded),
            (report(true, false, "timescaledb_toolkit"), TimescaleDecision::NotPreloaded),
            (report(true, true, "auto_explain"), TimescaleDecision::NotPreloaded),
        ];
        for (report, decision) in cases {
            assert_eq!(report.decide(true), decision, "{report:?}");
        }
    }

    #[test]
    fn timescaledb_preloaded_under_any_spelling_is_created_or_used() {
        let cases = [
            (report(true, false, "timescaledb"), TimescaleDecision::Create),
            (report(true, false, "pg_stat_statements, timescaledb"), TimescaleDecision::Create),
            (report(true, false, "$libdir/timescaledb"), TimescaleDecision::Create),
            (report(true, false, "\"timescaledb-2.17.2\""), TimescaleDecision::Create),
            (report(true, true, "timescaledb"), TimescaleDecision::Use),
        ];
        for (report, decision) in cases {
            assert_eq!(report.decide(true), decision, "{report:?}");
        }
    }

    #[test]
    fn timescaledb_not_installed_or_not_wanted_means_native_partitioning_without_a_word() {
        assert_eq!(report(false, false, "").decide(true), TimescaleDecision::Native);
        assert_eq!(report(false, false, "timescaledb").decide(true), TimescaleDecision::Native);
        assert_eq!(report(true, true, "timescaledb").decide(false), TimescaleDecision::Native);
    }

    #[test]
    fn partitions_are_named_by_their_utc_day() {
        assert_eq!(partition_name("turns", 1_795_737_600_000), "turns_p20261127");
    }
}
