//! The read path: rollups and call facts for the metrics endpoints.

use crate::column::Stored;
use crate::pending::CallRows;
use crate::rollup::read_plan;
use crate::{
    CallRequest, CallTurns, CallWindow, CallsGathered, EndedCall, LatencyFilter, Resolution, TurnRow,
};
use rusqlite::{params, Connection, OptionalExtension, ToSql};
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::TimeRange;

use super::cost;
use super::health::tenant_scoped;

/// Runs `work` in one read transaction (one snapshot of the WAL) when `needed`, so that
/// the rows it reads and the journal rows it looks for agree ([`crate::pending`]); the
/// snapshot opens with `work`'s first statement. Otherwise as it is.
pub fn in_snapshot<T>(
    conn: &Connection,
    needed: bool,
    work: impl FnOnce() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    if !needed {
        return work();
    }
    conn.execute_batch("BEGIN")?;
    match work() {
        Ok(answer) => {
            conn.execute_batch("COMMIT")?;
            Ok(answer)
        }
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

/// Which of the journal rows `seqs` the snapshot holds (their derived data is not in the
/// tables in it). It runs a statement even for none, so that, first in a transaction, it
/// opens the snapshot ([`in_snapshot`]).
pub fn journal_rows_present(conn: &Connection, seqs: &[i64]) -> rusqlite::Result<Vec<i64>> {
    let mut statement = conn.prepare_cached("SELECT 1 FROM derived_journal WHERE seq = ?1")?;
    if seqs.is_empty() {
        // No journal row has seq 0 (they count from 1).
        statement.exists([0])?;
    }
    let mut present = Vec::new();
    for seq in seqs {
        if statement.exists([seq])? {
            present.push(*seq);
        }
    }
    Ok(present)
}

pub fn latency_sketches(
    conn: &Connection,
    filter: &LatencyFilter,
    range: TimeRange,
    resolution: Resolution,
) -> rusqlite::Result<Vec<(i64, LatencySketch)>> {
    let mut sketches = Vec::new();
    for (period, part) in read_plan(range, resolution) {
        read_rollups(conn, period.table(), filter, part, &mut sketches)?;
    }
    Ok(sketches)
}

fn read_rollups(
    conn: &Connection,
    table: &str,
    filter: &LatencyFilter,
    range: TimeRange,
    into: &mut Vec<(i64, LatencySketch)>,
) -> rusqlite::Result<()> {
    // Only the filters given appear in the SQL, so the primary key (tenant, component,
    // source, start) serves the range.
    let mut sql = format!(
        "SELECT start_ms, sketch FROM {table}
         WHERE component = ?1 AND source = ?2 AND start_ms >= ?3 AND start_ms < ?4"
    );
    let component = filter.component.as_str();
    let source = filter.source.as_str();
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&component, &source, &range.from_ms, &range.to_ms];
    for (column, value) in filter.given() {
        values.push(value);
        sql.push_str(&format!(" AND {column} = ?{}", values.len()));
    }
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(values.as_slice())?;
    while let Some(row) = rows.next()? {
        let start: i64 = row.get(0)?;
        let bytes = row.get_ref(1)?.as_blob()?;
        let sketch = LatencySketch::decode(bytes).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, Box::new(err))
        })?;
        into.push((start, sketch));
    }
    Ok(())
}

pub fn ended_calls(
    conn: &Connection,
    tenant_id: Option<&str>,
    range: TimeRange,
) -> rusqlite::Result<Vec<EndedCall>> {
    let mut statement = conn.prepare_cached(&tenant_scoped(
        "SELECT ended_ms, status, ended_reason, duration_s, objective FROM calls
         WHERE ended_ms >= ?2 AND ended_ms < ?3 {tenant}",
        tenant_id,
    ))?;
    let rows = statement.query_map(params![tenant_id, range.from_ms, range.to_ms], |row| {
        Ok(EndedCall {
            ended_ms: row.get(0)?,
            status: row.get::<_, Stored<_>>(1)?.0,
            ended_reason: row.get(2)?,
            duration_s: row.get(3)?,
            objective: row.get(4)?,
        })
    })?;
    rows.collect()
}

pub fn started_calls(
    conn: &Connection,
    tenant_id: Option<&str>,
    range: TimeRange,
) -> rusqlite::Result<(u64, u64)> {
    conn.prepare_cached(&tenant_scoped(
        "SELECT count(*), count(*) FILTER (WHERE ended_ms IS NULL) FROM calls
         WHERE started_ms >= ?2 AND started_ms < ?3 {tenant}",
        tenant_id,
    ))?
    .query_row(params![tenant_id, range.from_ms, range.to_ms], |row| {
        Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
    })
}

/// Per tenant (source turn), or per tenant and provider (source usage), merged sketches
/// for `component` over the minutes of `range`.
pub fn latency_by_tenant(
    conn: &Connection,
    component: voicemon_core::latency::Component,
    range: TimeRange,
    by_provider: bool,
) -> rusqlite::Result<Vec<(String, String, LatencySketch)>> {
    let mut statement = conn.prepare_cached(
        "SELECT tenant_id, CASE WHEN ?4 THEN provider ELSE '' END, sketch FROM latency_minute
         WHERE component = ?1 AND source = CASE WHEN ?4 THEN 'usage' ELSE 'turn' END
           AND start_ms >= ?2 AND start_ms < ?3",
    )?;
    let mut rows = statement.query(params![component.as_str(), range.from_ms, range.to_ms, by_provider])?;
    let mut merged: std::collections::BTreeMap<(String, String), LatencySketch> = Default::default();
    while let Some(row) = rows.next()? {
        let sketch = LatencySketch::decode(row.get_ref(2)?.as_blob()?).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Blob, Box::new(err))
        })?;
        merged.entry((row.get(0)?, row.get(1)?)).or_default().merge(&sketch);
    }
    Ok(merged.into_iter().map(|((tenant, provider), sketch)| (tenant, provider, sketch)).collect())
}

/// The call columns of the call explorer, then (for a window) the turn columns.
const CALL_COLUMNS: &str = "c.id, c.call_id, c.agent_id, c.objective, c.trace_id, c.first_ms, c.started_ms, \
     c.ended_ms, c.duration_s, c.status, c.ended_reason, c.cost_nano, c.unpriced_lines";
const TURN_COLUMNS: &str =
    "t.ts_ms, t.turn_index, t.e2e, t.stt, t.eou, t.llm_ttft, t.tts_ttfb, t.interrupted, t.tool_calls";

fn call_turns(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, CallTurns)> {
    let status: Option<Stored<_>> = row.get(9)?;
    Ok((
        row.get(0)?,
        CallTurns {
            call_id: row.get(1)?,
            agent_id: row.get(2)?,
            objective: row.get(3)?,
            trace_id: row.get(4)?,
            first_ms: row.get::<_, Option<i64>>(5)?.unwrap_or_default(),
            started_ms: row.get(6)?,
            ended_ms: row.get(7)?,
            duration_s: row.get(8)?,
            status: status.map(|s| s.0),
            ended_reason: row.get(10)?,
            cost_nano: row.get(11)?,
            unpriced_lines: row.get::<_, i64>(12)? as u32,
            turns: Vec::new(),
        },
    ))
}

/// A turn from its columns starting at `at` (latencies are stored in tenths of a ms).
fn turn_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<TurnRow>> {
    let Some(ts_ms) = row.get::<_, Option<i64>>(at)? else { return Ok(None) };
    let ms = |index: usize| -> rusqlite::Result<Option<f64>> {
        Ok(row.get::<_, Option<i64>>(at + index)?.map(|tenths| tenths as f64 / 10.0))
    };
    Ok(Some(TurnRow {
        ts_ms,
        turn_index: row.get::<_, i64>(at + 1)? as u32,
        e2e_ms: ms(2)?.unwrap_or_default(),
        stt_ms: ms(3)?,
        eou_ms: ms(4)?,
        llm_ttft_ms: ms(5)?,
        tts_ttfb_ms: ms(6)?,
        interrupted: row.get(at + 7)?,
        tool_calls: row.get::<_, Option<i64>>(at + 8)?.map(|n| n as u32),
    }))
}

/// The calls of `window` (by `calls_by_first`), each joined to its turns (`turns_by_call`),
/// with the call totals staged in `temp.pending_calls` merged when `pending`
/// ([`cost::merged_calls`]).
pub fn window_calls(
    conn: &Connection,
    window: &CallWindow,
    pending: bool,
) -> rusqlite::Result<Vec<CallTurns>> {
    let select = format!(
        "SELECT {CALL_COLUMNS}, {TURN_COLUMNS}
         FROM (SELECT * FROM merged WHERE first_ms >= ?1 AND first_ms < ?2
                 AND (?4 IS NULL OR agent_id = ?4) AND (?5 IS NULL OR objective = ?5)
                 AND (?6 IS NULL OR EXISTS (SELECT 1 FROM usage u WHERE u.call = merged.id AND u.provider = ?6))
               ORDER BY first_ms, id LIMIT ?7) c
         LEFT JOIN turns t ON t.call = c.id
         ORDER BY c.first_ms, c.id, t.turn_index, t.ts_ms"
    );
    let limit = window.limit as i64;
    let extra: [&dyn ToSql; 4] = [&window.agent_id, &window.objective, &window.provider, &limit];
    let mut calls = CallsGathered::default();
    cost::merged_calls(conn, &select, Some(&window.tenant_id), window.range, pending, &extra, |row| {
        calls.row(row.get(0)?, || call_turns(row).map(|(_, call)| call), turn_row(row, 13)?)
    })?;
    Ok(calls.into_calls())
}

/// One call with its turns and provider requests, the call totals not flushed yet
/// (`pending`) merged into its own.
pub fn call_record(
    conn: &Connection,
    tenant_id: &str,
    call_id: &str,
    pending: &CallRows,
) -> rusqlite::Result<Option<(CallTurns, Vec<CallRequest>)>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {CALL_COLUMNS} FROM calls c WHERE c.tenant_id = ?1 AND c.call_id = ?2"
    ))?;
    let found = statement
        .query_row(params![tenant_id, call_id], |row| Ok((call_turns(row)?, row.get::<_, Option<i64>>(5)?)))
        .optional()?;
    let Some(((id, mut call), stored_first)) = found else {
        return Ok(None);
    };
    call.merge_pending(stored_first, pending.get(&id));
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {TURN_COLUMNS} FROM turns t WHERE t.call = ?1 ORDER BY t.turn_index, t.ts_ms"
    ))?;
    let mut rows = statement.query(params![id])?;
    while let Some(row) = rows.next()? {
        call.turns.extend(turn_row(row, 0)?);
    }
    let mut statement = conn.prepare_cached(
        "SELECT ts_ms, provider, component, ok, latency, error FROM provider_requests WHERE call = ?1 ORDER BY ts_ms",
    )?;
    let requests = statement
        .query_map(params![id], |row| {
            Ok(CallRequest {
                ts_ms: row.get(0)?,
                provider: row.get(1)?,
                component: row.get::<_, Stored<_>>(2)?.0,
                ok: row.get(3)?,
                latency_ms: row.get::<_, Option<i64>>(4)?.map(|tenths| tenths as f64 / 10.0),
                error: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((call, requests)))
}
