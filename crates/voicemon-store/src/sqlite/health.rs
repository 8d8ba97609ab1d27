//! Health reads: workers, breaker changes, provider minutes and errors, health samples.

use crate::column::Stored;
use crate::{BreakerRow, ProviderErrorCount, ProviderMinuteRow, WorkerRow};
use rusqlite::{params, Connection};
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::TimeRange;

/// `sql` with `{tenant}` replaced by `AND tenant_id = ?1` when a tenant is given (so the
/// tenant-first primary key serves it) and by `AND ?1 IS NULL` otherwise: a
/// `(?1 IS NULL OR tenant_id = ?1)` would make SQLite scan every tenant's rows.
pub fn tenant_scoped(sql: &str, tenant_id: Option<&str>) -> String {
    sql.replace("{tenant}", if tenant_id.is_some() { "AND tenant_id = ?1" } else { "AND ?1 IS NULL" })
}

pub fn workers(conn: &Connection, tenant_id: Option<&str>) -> rusqlite::Result<Vec<WorkerRow>> {
    let mut statement = conn.prepare_cached(
        "SELECT tenant_id, worker_id, last_ms, memory_used_bytes, memory_limit_bytes, cpu_percent, active_calls
         FROM workers WHERE (?1 IS NULL OR tenant_id = ?1) ORDER BY tenant_id, worker_id",
    )?;
    let rows = statement.query_map([tenant_id], |row| {
        Ok(WorkerRow {
            tenant_id: row.get(0)?,
            worker_id: row.get(1)?,
            last_ms: row.get(2)?,
            memory_used_bytes: row.get::<_, i64>(3)? as u64,
            memory_limit_bytes: row.get::<_, i64>(4)? as u64,
            cpu_percent: row.get(5)?,
            active_calls: row.get(6)?,
        })
    })?;
    rows.collect()
}

pub fn breaker_changes(
    conn: &Connection,
    tenant_id: Option<&str>,
    since_ms: i64,
) -> rusqlite::Result<Vec<BreakerRow>> {
    // The changes in the window; for each breaker the last one before it (the state the
    // window began in); and the first change of the run of that same state before the
    // window, so `since` is right even when a state was reported twice.
    let mut statement = conn.prepare_cached(
        "WITH before AS (
             SELECT tenant_id, breaker, max(ts_ms) AS ts_ms, state FROM breaker_changes
             WHERE (?1 IS NULL OR tenant_id = ?1) AND ts_ms < ?2
             GROUP BY tenant_id, breaker
         ),
         run_start AS (
             SELECT b.tenant_id, b.breaker, min(c.ts_ms) AS ts_ms, b.state FROM before b
             JOIN breaker_changes c ON c.tenant_id = b.tenant_id AND c.breaker = b.breaker
             WHERE c.ts_ms < ?2 AND c.state = b.state
               AND c.ts_ms > coalesce((SELECT max(x.ts_ms) FROM breaker_changes x
                                       WHERE x.tenant_id = b.tenant_id AND x.breaker = b.breaker
                                         AND x.ts_ms < ?2 AND x.state <> b.state), -9223372036854775807)
             GROUP BY b.tenant_id, b.breaker
         )
         SELECT tenant_id, breaker, ts_ms, state FROM breaker_changes
         WHERE (?1 IS NULL OR tenant_id = ?1) AND ts_ms >= ?2
         UNION SELECT tenant_id, breaker, ts_ms, state FROM before
         UNION SELECT tenant_id, breaker, ts_ms, state FROM run_start
         ORDER BY 3",
    )?;
    let rows = statement.query_map(params![tenant_id, since_ms], |row| {
        Ok(BreakerRow {
            tenant_id: row.get(0)?,
            breaker: row.get(1)?,
            at_ms: row.get(2)?,
            state: row.get::<_, Stored<_>>(3)?.0,
        })
    })?;
    rows.collect()
}

pub fn provider_minutes(
    conn: &Connection,
    tenant_id: Option<&str>,
    since_ms: i64,
) -> rusqlite::Result<Vec<ProviderMinuteRow>> {
    let mut statement = conn.prepare_cached(&tenant_scoped(
        "SELECT provider, start_ms, sum(requests), sum(errors) FROM provider_minutes
             WHERE start_ms >= ?2 {tenant} GROUP BY provider, start_ms ORDER BY provider, start_ms",
        tenant_id,
    ))?;
    let rows = statement.query_map(params![tenant_id, since_ms], |row| {
        Ok(ProviderMinuteRow {
            provider: row.get(0)?,
            start_ms: row.get(1)?,
            requests: row.get::<_, i64>(2)? as u64,
            errors: row.get::<_, i64>(3)? as u64,
        })
    })?;
    rows.collect()
}

pub fn provider_latency(
    conn: &Connection,
    tenant_id: Option<&str>,
    since_ms: i64,
) -> rusqlite::Result<Vec<(String, LatencySketch)>> {
    let mut statement = conn.prepare_cached(&tenant_scoped(
        "SELECT provider, sketch FROM provider_minutes WHERE start_ms >= ?2 {tenant}",
        tenant_id,
    ))?;
    let mut rows = statement.query(params![tenant_id, since_ms])?;
    let mut merged: std::collections::BTreeMap<String, LatencySketch> = Default::default();
    while let Some(row) = rows.next()? {
        let sketch = LatencySketch::decode(row.get_ref(1)?.as_blob()?).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, Box::new(err))
        })?;
        merged.entry(row.get(0)?).or_default().merge(&sketch);
    }
    Ok(merged.into_iter().collect())
}

pub fn provider_errors(
    conn: &Connection,
    tenant_id: Option<&str>,
    since_ms: i64,
) -> rusqlite::Result<Vec<ProviderErrorCount>> {
    let mut statement = conn.prepare_cached(&tenant_scoped(
        "SELECT provider, error, sum(count) FROM provider_errors
             WHERE start_ms >= ?2 {tenant} GROUP BY provider, error ORDER BY provider, sum(count) DESC",
        tenant_id,
    ))?;
    let rows = statement.query_map(params![tenant_id, since_ms], |row| {
        Ok(ProviderErrorCount {
            provider: row.get(0)?,
            error: row.get(1)?,
            count: row.get::<_, i64>(2)? as u64,
        })
    })?;
    rows.collect()
}

pub fn health_samples(
    conn: &Connection,
    tenant_id: &str,
    range: TimeRange,
) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut statement = conn.prepare_cached(
        "SELECT minute_ms, sample FROM health_samples
         WHERE tenant_id = ?1 AND minute_ms >= ?2 AND minute_ms < ?3 ORDER BY minute_ms",
    )?;
    let rows = statement
        .query_map(params![tenant_id, range.from_ms, range.to_ms], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

pub fn put_health_sample(
    conn: &Connection,
    tenant_id: &str,
    minute_ms: i64,
    sample: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO health_samples (tenant_id, minute_ms, sample) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant_id, minute_ms) DO UPDATE SET sample = excluded.sample",
    )?
    .execute(params![tenant_id, minute_ms, sample])?;
    Ok(())
}

pub fn prune(conn: &mut Connection, before_ms: i64) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    let mut removed = 0;
    for sql in [
        "DELETE FROM health_samples WHERE minute_ms < ?1",
        "DELETE FROM provider_minutes WHERE start_ms < ?1",
        "DELETE FROM provider_errors WHERE start_ms < ?1",
        "DELETE FROM heartbeats WHERE ts_ms < ?1",
        "DELETE FROM provider_requests WHERE ts_ms < ?1",
    ] {
        removed += tx.execute(sql, [before_ms])? as u64;
    }
    tx.commit()?;
    Ok(removed)
}
