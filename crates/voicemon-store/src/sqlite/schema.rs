//! Versioned migrations, tracked in SQLite's `user_version`.

use rusqlite::Connection;

/// Migrations in order; migration `n` (1-based) brings `user_version` to `n`.
/// Never edit a released migration: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: raw facts, latency rollups, API keys.
    r#"
    -- Idempotency: every stored event's timestamp and 64-bit key of tenant_id + id
    -- (voicemon_core::access::event_key). Time first keeps inserts append-mostly.
    CREATE TABLE event_ids (
        ts_ms INTEGER NOT NULL,
        key   INTEGER NOT NULL,
        PRIMARY KEY (ts_ms, key)
    ) WITHOUT ROWID;

    -- One row per call, filled by call.started and call.ended in either order.
    CREATE TABLE calls (
        id           INTEGER PRIMARY KEY,
        tenant_id    TEXT NOT NULL,
        call_id      TEXT NOT NULL,
        started_ms   INTEGER,
        ended_ms     INTEGER,
        channel      TEXT,
        agent_id     TEXT,
        objective    TEXT,
        trace_id     TEXT,
        duration_s   REAL,
        status       TEXT,
        ended_reason TEXT,
        ended_by     TEXT,
        attributes   TEXT,
        -- The call's earliest event: cost is attributed to the call at this time.
        first_ms       INTEGER,
        -- Sum of its priced usage lines (nano-USD), and how many lines it has / are unpriced.
        cost_nano      INTEGER NOT NULL DEFAULT 0,
        usage_lines    INTEGER NOT NULL DEFAULT 0,
        unpriced_lines INTEGER NOT NULL DEFAULT 0,
        UNIQUE (tenant_id, call_id)
    );
    CREATE INDEX calls_by_first ON calls (tenant_id, first_ms);
    -- Every tenant's calls by time (alert rules on cost), and calls by id (admin lookups).
    CREATE INDEX calls_by_first_time ON calls (first_ms);
    CREATE INDEX calls_by_call_id ON calls (call_id);
    CREATE INDEX calls_by_trace ON calls (trace_id) WHERE trace_id IS NOT NULL;
    CREATE INDEX calls_by_end ON calls (tenant_id, ended_ms) WHERE ended_ms IS NOT NULL;
    CREATE INDEX calls_by_start ON calls (tenant_id, started_ms) WHERE started_ms IS NOT NULL;

    -- Latencies in raw fact tables are integer tenths of a millisecond (compact varints).
    CREATE TABLE turns (
        call        INTEGER NOT NULL,   -- calls.id
        ts_ms       INTEGER NOT NULL,
        turn_index  INTEGER NOT NULL,
        e2e         INTEGER NOT NULL,
        stt         INTEGER,
        eou         INTEGER,
        llm_ttft    INTEGER,
        tts_ttfb    INTEGER,
        interrupted INTEGER,
        tool_calls  INTEGER,
        agent_id    TEXT
    );
    CREATE INDEX turns_by_call ON turns (call);

    CREATE TABLE usage (
        call                INTEGER NOT NULL,   -- calls.id
        ts_ms               INTEGER NOT NULL,
        component           TEXT NOT NULL,      -- stt | llm | tts
        provider            TEXT NOT NULL,
        model               TEXT,
        voice               TEXT,
        audio_seconds       REAL,
        input_tokens        INTEGER,
        output_tokens       INTEGER,
        cached_input_tokens INTEGER,
        audio_input_tokens  INTEGER,
        audio_output_tokens INTEGER,
        characters          INTEGER,
        latency             INTEGER,
        cost_nano           INTEGER,            -- NULL: unpriced
        cost_note           INTEGER NOT NULL    -- cost_notes.id
    );
    -- Which price entry priced a line and its unit prices, or why it is unpriced;
    -- interned, since a few dozen notes serve millions of lines.
    CREATE TABLE cost_notes (
        id        INTEGER PRIMARY KEY,
        price_ref TEXT NOT NULL,    -- '' for unpriced lines
        detail    TEXT NOT NULL,
        UNIQUE (price_ref, detail)
    );
    CREATE INDEX usage_by_call ON usage (call);
    CREATE INDEX usage_by_time ON usage (ts_ms);

    CREATE TABLE provider_requests (
        tenant_id TEXT NOT NULL,
        ts_ms     INTEGER NOT NULL,
        provider  TEXT NOT NULL,
        component TEXT NOT NULL,
        ok        INTEGER NOT NULL,
        latency   INTEGER,
        error     TEXT,
        call      INTEGER
    );
    CREATE INDEX provider_requests_by_time ON provider_requests (ts_ms);

    CREATE TABLE breaker_changes (
        tenant_id TEXT NOT NULL,
        ts_ms     INTEGER NOT NULL,
        breaker   TEXT NOT NULL,
        state     TEXT NOT NULL
    );
    CREATE INDEX breaker_changes_by_time ON breaker_changes (ts_ms);
    CREATE INDEX breaker_changes_by_breaker ON breaker_changes (tenant_id, breaker, ts_ms);

    CREATE TABLE heartbeats (
        tenant_id          TEXT NOT NULL,
        ts_ms              INTEGER NOT NULL,
        worker_id          TEXT NOT NULL,
        memory_used_bytes  INTEGER NOT NULL,
        memory_limit_bytes INTEGER NOT NULL,
        cpu_percent        REAL NOT NULL,
        active_calls       INTEGER NOT NULL
    );
    CREATE INDEX heartbeats_by_time ON heartbeats (ts_ms);

    -- Per-minute DDSketch rollups (voicemon_core::sketch encoding), merged on conflict,
    -- and the same per hour for long ranges. start_ms is the minute's (hour's) start.
    CREATE TABLE latency_rollups (
        tenant_id TEXT NOT NULL,
        component TEXT NOT NULL,
        source    TEXT NOT NULL,   -- turn | usage
        start_ms  INTEGER NOT NULL,
        agent_id  TEXT NOT NULL,   -- '' when none
        provider  TEXT NOT NULL,
        model     TEXT NOT NULL,
        sketch    BLOB NOT NULL,
        PRIMARY KEY (tenant_id, component, source, start_ms, agent_id, provider, model)
    ) WITHOUT ROWID;
    CREATE TABLE latency_rollups_hourly (
        tenant_id TEXT NOT NULL,
        component TEXT NOT NULL,
        source    TEXT NOT NULL,
        start_ms  INTEGER NOT NULL,
        agent_id  TEXT NOT NULL,
        provider  TEXT NOT NULL,
        model     TEXT NOT NULL,
        sketch    BLOB NOT NULL,
        PRIMARY KEY (tenant_id, component, source, start_ms, agent_id, provider, model)
    ) WITHOUT ROWID;
    -- Queries over every tenant (admin keys) read by time.
    CREATE INDEX latency_rollups_by_time ON latency_rollups (component, source, start_ms);
    CREATE INDEX latency_rollups_hourly_by_time ON latency_rollups_hourly (component, source, start_ms);

    -- Each worker's latest heartbeat (the heartbeats table keeps them all).
    CREATE TABLE workers (
        tenant_id          TEXT NOT NULL,
        worker_id          TEXT NOT NULL,
        last_ms            INTEGER NOT NULL,
        memory_used_bytes  INTEGER NOT NULL,
        memory_limit_bytes INTEGER NOT NULL,
        cpu_percent        REAL NOT NULL,
        active_calls       INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, worker_id)
    ) WITHOUT ROWID;

    -- provider.request outcomes per minute, with a latency sketch, and errors by kind.
    CREATE TABLE provider_minutes (
        tenant_id TEXT NOT NULL,
        provider  TEXT NOT NULL,
        start_ms  INTEGER NOT NULL,
        requests  INTEGER NOT NULL,
        errors    INTEGER NOT NULL,
        sketch    BLOB NOT NULL,
        PRIMARY KEY (tenant_id, provider, start_ms)
    ) WITHOUT ROWID;
    CREATE INDEX provider_minutes_by_time ON provider_minutes (start_ms);
    CREATE TABLE provider_errors (
        tenant_id TEXT NOT NULL,
        provider  TEXT NOT NULL,
        start_ms  INTEGER NOT NULL,
        error     TEXT NOT NULL,
        count     INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, provider, start_ms, error)
    ) WITHOUT ROWID;
    CREATE INDEX provider_errors_by_time ON provider_errors (start_ms);

    -- One health summary per minute (and per tenant; '' for all tenants), for the recent past.
    CREATE TABLE health_samples (
        tenant_id TEXT NOT NULL,
        minute_ms INTEGER NOT NULL,
        sample    TEXT NOT NULL,   -- JSON
        PRIMARY KEY (tenant_id, minute_ms)
    ) WITHOUT ROWID;
    CREATE INDEX health_samples_by_time ON health_samples (minute_ms);

    -- Alerting: active alerts, the notification log, the outbox, silences, history.
    CREATE TABLE alerts (
        fingerprint TEXT PRIMARY KEY,
        alert       TEXT NOT NULL    -- JSON of voicemon_core::alerting::evaluator::Alert
    );
    CREATE TABLE notify_log (
        fingerprint       TEXT PRIMARY KEY,
        rule              TEXT NOT NULL,
        first_notified_ms INTEGER NOT NULL,
        last_notified_ms  INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        receiver        TEXT NOT NULL,
        rule            TEXT NOT NULL,
        payload         TEXT NOT NULL,
        created_ms      INTEGER NOT NULL,
        next_attempt_ms INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        status          TEXT NOT NULL DEFAULT 'pending',   -- pending | sent | failed
        last_error      TEXT,
        done_ms         INTEGER
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_ms) WHERE status = 'pending';
    CREATE TABLE receivers (
        name         TEXT PRIMARY KEY,
        broken       INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT,
        last_sent_ms INTEGER
    );
    CREATE TABLE silences (
        id         TEXT PRIMARY KEY,
        silence    TEXT NOT NULL,    -- JSON of voicemon_core::alerting::silence::Silence
        ends_ms    INTEGER NOT NULL
    );
    CREATE TABLE alert_history (
        id          INTEGER PRIMARY KEY,
        at_ms       INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        rule        TEXT NOT NULL,
        tenant_id   TEXT,
        labels      TEXT NOT NULL,
        value       REAL,
        detail      TEXT
    );
    CREATE INDEX alert_history_by_time ON alert_history (at_ms);

    CREATE TABLE api_keys (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        role       TEXT NOT NULL,
        tenant_id  TEXT,
        prefix     TEXT NOT NULL,
        key_hash   TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    );
    "#,
    // 2: derived data off the commit path: each group commit journals what it adds to the
    // rollups, provider minutes, call totals and workers; a flush folds the journal into
    // those tables and deletes what it folded (crate::derived).
    r#"
    CREATE TABLE derived_journal (
        seq  INTEGER PRIMARY KEY,
        body BLOB NOT NULL
    );
    "#,
    // 3: the latency rollup tables take PostgreSQL's names, so both backends name every
    // table alike. Renamed in place: the rows stay. SQLite cannot rename an index, so the
    // time indexes are built again under the new names.
    r#"
    ALTER TABLE latency_rollups RENAME TO latency_minute;
    ALTER TABLE latency_rollups_hourly RENAME TO latency_hour;
    DROP INDEX latency_rollups_by_time;
    DROP INDEX latency_rollups_hourly_by_time;
    CREATE INDEX latency_minute_by_time ON latency_minute (component, source, start_ms);
    CREATE INDEX latency_hour_by_time ON latency_hour (component, source, start_ms);
    "#,
    // 4: scale-out: leases of the duties that run once among instances sharing a database,
    // and claims on outbox messages (one process serves a SQLite file, so both always go
    // to it; the tables keep the two backends alike).
    r#"
    CREATE TABLE leases (
        role       TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    ALTER TABLE outbox ADD COLUMN claimed_until_ms INTEGER;
    "#,
    // 5: the call explorer (GET /calls/{call_id}) reads a call's provider requests.
    r#"
    CREATE INDEX provider_requests_by_call ON provider_requests (call) WHERE call IS NOT NULL;
    "#,
    // 6: a journal row's seq is never given again (AUTOINCREMENT): a latency read tells by
    // a seq whether that commit's derived data is flushed (crate::pending), and a plain
    // rowid comes back once the rows above it are deleted.
    r#"
    CREATE TABLE derived_journal_unique (
        seq  INTEGER PRIMARY KEY AUTOINCREMENT,
        body BLOB NOT NULL
    );
    INSERT INTO derived_journal_unique (seq, body) SELECT seq, body FROM derived_journal;
    DROP TABLE derived_journal;
    ALTER TABLE derived_journal_unique RENAME TO derived_journal;
    "#,
];

/// The schema version this build expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies every migration above the file's version, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<i64> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let version = index as i64 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied sqlite migration");
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = "('acme', 'turn_e2e', 'turn', 0, '', '', '', x'00')";

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0)).expect("counted")
    }

    #[test]
    fn the_rollup_tables_take_postgresqls_names_and_keep_their_rows() {
        let mut conn = Connection::open_in_memory().expect("an in-memory database");
        for (index, sql) in MIGRATIONS[..2].iter().enumerate() {
            conn.execute_batch(sql).expect("an earlier migration applies");
            conn.pragma_update(None, "user_version", index as i64 + 1).expect("the version is set");
        }
        conn.execute(&format!("INSERT INTO latency_rollups VALUES {ROW}"), []).expect("a minute row");
        conn.execute(&format!("INSERT INTO latency_rollups_hourly VALUES {ROW}"), []).expect("an hour row");

        assert_eq!(migrate(&mut conn).expect("the rename applies"), 2, "it started at version 2");
        assert_eq!((count(&conn, "latency_minute"), count(&conn, "latency_hour")), (1, 1));
        let old: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'latency_rollups%'", [], |row| {
                row.get(0)
            })
            .expect("counted");
        assert_eq!(old, 0, "no table or index keeps an old name");
    }
}
