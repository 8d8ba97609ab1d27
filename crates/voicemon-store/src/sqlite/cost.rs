//! Cost reads (itemised calls, per-call totals, breakdowns) and re-pricing writes.

use super::write::{CostColumns, Writer};
use crate::column::Stored;
use crate::pending::{merged_first, CallRows};
use crate::{CallCost, CallCostTotal, CallRef, CostGroup, CostGroupRow, CostUpdate, TenantCost, UsageLine};
use rusqlite::{params, Connection, OptionalExtension, Row, ToSql};
use std::collections::BTreeMap;
use voicemon_core::window::TimeRange;

const LINE_COLUMNS: &str =
    "u.rowid, c.tenant_id, c.call_id, u.ts_ms, u.component, u.provider, u.model, u.voice,
     u.audio_seconds, u.input_tokens, u.output_tokens, u.cached_input_tokens, u.audio_input_tokens,
     u.audio_output_tokens, u.characters, u.cost_nano, n.price_ref, n.detail";

fn line_from_row(row: &Row<'_>) -> rusqlite::Result<UsageLine> {
    let count =
        |i: usize| -> rusqlite::Result<Option<u64>> { Ok(row.get::<_, Option<i64>>(i)?.map(|v| v as u64)) };
    Ok(UsageLine {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        call_id: row.get(2)?,
        ts_ms: row.get(3)?,
        component: row.get::<_, Stored<_>>(4)?.0,
        provider: row.get(5)?,
        model: row.get(6)?,
        voice: row.get(7)?,
        audio_seconds: row.get(8)?,
        input_tokens: count(9)?,
        output_tokens: count(10)?,
        cached_input_tokens: count(11)?,
        audio_input_tokens: count(12)?,
        audio_output_tokens: count(13)?,
        characters: count(14)?,
        cost_nano: row.get(15)?,
        price_ref: row.get(16)?,
        detail: row.get(17)?,
    })
}

/// One call's usage lines, by call id or trace id (of those found, the call whose first
/// event is the latest), its first time merged with `pending`, the call totals not
/// flushed yet.
pub fn call_cost(
    conn: &Connection,
    tenant_id: Option<&str>,
    call: &CallRef,
    pending: &CallRows,
) -> rusqlite::Result<Option<CallCost>> {
    let (column, value) = match call {
        CallRef::CallId(id) => ("call_id", id),
        CallRef::TraceId(id) => ("trace_id", id),
    };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT id, tenant_id, call_id, trace_id, first_ms, duration_s, status FROM calls WHERE {column} = ?1 {}",
        if tenant_id.is_some() { "AND tenant_id = ?2" } else { "AND ?2 IS NULL" }
    ))?;
    let found = statement
        .query_map(params![value, tenant_id], |row| {
            let id = row.get::<_, i64>(0)?;
            Ok((
                id,
                CallCost {
                    tenant_id: row.get(1)?,
                    call_id: row.get(2)?,
                    trace_id: row.get(3)?,
                    first_ms: merged_first(row.get(4)?, pending.get(&id)),
                    duration_s: row.get(5)?,
                    status: row.get(6)?,
                    lines: Vec::new(),
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let Some((row_id, mut call)) = found.into_iter().max_by_key(|(_, call)| call.first_ms) else {
        return Ok(None);
    };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {LINE_COLUMNS} FROM usage u JOIN calls c ON c.id = u.call JOIN cost_notes n ON n.id = u.cost_note
         WHERE u.call = ?1 ORDER BY u.ts_ms, u.rowid"
    ))?;
    call.lines = statement.query_map([row_id], line_from_row)?.collect::<rusqlite::Result<_>>()?;
    Ok(Some(call))
}

pub fn call_tenants(conn: &Connection, call: &CallRef, limit: usize) -> rusqlite::Result<Vec<String>> {
    let (column, value) = match call {
        CallRef::CallId(id) => ("call_id", id),
        CallRef::TraceId(id) => ("trace_id", id),
    };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT DISTINCT tenant_id FROM calls WHERE {column} = ?1 ORDER BY tenant_id LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let tenants = statement.query_map(params![value, limit], |row| row.get(0))?.collect();
    tenants
}

/// The calls of a read by first time (cost, the explorer's window): those whose first
/// event falls in the range (?1, ?2) once the call totals not flushed yet
/// (`temp.pending_calls`, [`stage_pending_calls`]) are merged, with their own columns and
/// their merged first time and totals. `{tenant}` marks where the tenant clause goes.
const MERGED_CALLS: &str = "
    WITH wanted(id) AS (
        SELECT id FROM calls WHERE first_ms >= ?1 AND first_ms < ?2 {tenant}
        UNION SELECT id FROM temp.pending_calls WHERE first_ms >= ?1 AND first_ms < ?2),
    merged AS (
        SELECT c.id, c.tenant_id, c.call_id, c.agent_id, c.objective, c.trace_id,
               min(coalesce(c.first_ms, p.first_ms), coalesce(p.first_ms, c.first_ms)) AS first_ms,
               c.started_ms, c.ended_ms, c.duration_s, c.status, c.ended_reason,
               c.cost_nano + coalesce(p.cost_nano, 0) AS cost_nano,
               c.usage_lines + coalesce(p.usage_lines, 0) AS usage_lines,
               c.unpriced_lines + coalesce(p.unpriced_lines, 0) AS unpriced_lines
        FROM wanted JOIN calls c ON c.id = wanted.id LEFT JOIN temp.pending_calls p ON p.id = c.id
        WHERE 1 {tenant})
    ";

/// [`MERGED_CALLS`] when nothing is pending: the calls' own rows.
const FLUSHED_CALLS: &str = "
    WITH merged AS (
        SELECT id, tenant_id, call_id, agent_id, objective, trace_id, first_ms, started_ms, ended_ms,
               duration_s, status, ended_reason, cost_nano, usage_lines, unpriced_lines
        FROM calls WHERE first_ms >= ?1 AND first_ms < ?2 {tenant})
    ";

/// Puts `totals` in this connection's `temp.pending_calls`, which the cost reads merge
/// ([`MERGED_CALLS`]): what the flushes to come add to each call. In the read's snapshot.
pub fn stage_pending_calls(conn: &Connection, totals: &CallRows) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS pending_calls (id INTEGER PRIMARY KEY, first_ms INTEGER NOT NULL,
           cost_nano INTEGER NOT NULL, usage_lines INTEGER NOT NULL, unpriced_lines INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS temp.pending_calls_by_first ON pending_calls (first_ms);
         DELETE FROM temp.pending_calls;",
    )?;
    let mut insert = conn.prepare_cached("INSERT INTO temp.pending_calls VALUES (?1, ?2, ?3, ?4, ?5)")?;
    for (call, t) in totals {
        insert.execute([*call, t.first_ms, t.cost_nano, t.usage_lines, t.unpriced_lines])?;
    }
    Ok(())
}

/// Cost totals of the calls whose first event falls in `range`, the call totals staged in
/// `temp.pending_calls` merged when `pending`.
pub fn call_costs(
    conn: &Connection,
    tenant_id: Option<&str>,
    range: TimeRange,
    pending: bool,
) -> rusqlite::Result<Vec<CallCostTotal>> {
    let select = "SELECT call_id, first_ms, cost_nano, usage_lines, unpriced_lines, duration_s, tenant_id
         FROM merged WHERE first_ms >= ?1 AND first_ms < ?2";
    merged_calls(conn, select, tenant_id, range, pending, &[], |row| {
        Ok(CallCostTotal {
            call_id: row.get(0)?,
            first_ms: row.get(1)?,
            cost_nano: row.get(2)?,
            usage_lines: row.get::<_, i64>(3)? as u64,
            unpriced_lines: row.get::<_, i64>(4)? as u64,
            duration_s: row.get(5)?,
            tenant_id: row.get(6)?,
        })
    })
}

/// Each tenant's totals over the calls whose first event falls in `range`, the call totals
/// staged in `temp.pending_calls` merged when `pending`.
pub fn tenant_costs(conn: &Connection, range: TimeRange, pending: bool) -> rusqlite::Result<Vec<TenantCost>> {
    let select = "SELECT tenant_id, count(*), coalesce(sum(cost_nano), 0),
                coalesce(sum(cost_nano) FILTER (WHERE duration_s IS NOT NULL), 0), coalesce(sum(duration_s), 0.0)
         FROM merged WHERE first_ms >= ?1 AND first_ms < ?2 GROUP BY tenant_id ORDER BY tenant_id";
    merged_calls(conn, select, None, range, pending, &[], |row| {
        Ok(TenantCost {
            tenant_id: row.get(0)?,
            calls: row.get::<_, i64>(1)? as u64,
            cost_nano: row.get(2)?,
            ended_cost_nano: row.get(3)?,
            ended_seconds: row.get(4)?,
        })
    })
}

/// Runs `select` (which reads the CTE `merged`, the range as ?1 and ?2) over the calls of
/// `range`, those staged merged when `pending` ([`MERGED_CALLS`]; [`FLUSHED_CALLS`]
/// otherwise), with `AND tenant_id = ?3` when a tenant is given, so the tenant index
/// serves it; `extra` parameters follow (from ?4 with a tenant, ?3 without).
pub(super) fn merged_calls<T>(
    conn: &Connection,
    select: &str,
    tenant_id: Option<&str>,
    range: TimeRange,
    pending: bool,
    extra: &[&dyn ToSql],
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let calls = if pending { MERGED_CALLS } else { FLUSHED_CALLS };
    let clause = if tenant_id.is_some() { " AND tenant_id = ?3" } else { "" };
    let sql = format!("{calls} {select}").replace("{tenant}", clause);
    let mut statement = conn.prepare_cached(&sql)?;
    let mut params: Vec<&dyn ToSql> = vec![&range.from_ms, &range.to_ms];
    if let Some(tenant) = &tenant_id {
        params.push(tenant);
    }
    params.extend_from_slice(extra);
    let rows = statement.query_map(params.as_slice(), map)?.collect();
    rows
}

/// The usage cost of the calls whose first event falls in `range`, by `group`, the call
/// totals staged in `temp.pending_calls` merged when `pending`.
pub fn cost_breakdown(
    conn: &Connection,
    tenant_id: Option<&str>,
    range: TimeRange,
    group: CostGroup,
    pending: bool,
) -> rusqlite::Result<Vec<CostGroupRow>> {
    let key = match group {
        CostGroup::Provider => "u.provider",
        CostGroup::Component => "u.component",
        CostGroup::Model => "coalesce(u.model, '')",
        CostGroup::Day => "CAST((c.first_ms / 86400000) * 86400000 AS TEXT)",
    };
    let select = format!(
        "SELECT {key} AS k, coalesce(sum(u.cost_nano), 0), count(*), count(*) - count(u.cost_nano)
         FROM merged c JOIN usage u ON u.call = c.id
         WHERE c.first_ms >= ?1 AND c.first_ms < ?2
         GROUP BY k ORDER BY k"
    );
    merged_calls(conn, &select, tenant_id, range, pending, &[], |row| {
        Ok(CostGroupRow {
            key: row.get(0)?,
            cost_nano: row.get(1)?,
            usage_lines: row.get::<_, i64>(2)? as u64,
            unpriced_lines: row.get::<_, i64>(3)? as u64,
        })
    })
}

pub fn usage_lines(
    conn: &Connection,
    tenant_id: Option<&str>,
    range: TimeRange,
    after_id: i64,
    limit: usize,
) -> rusqlite::Result<Vec<UsageLine>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {LINE_COLUMNS} FROM usage u JOIN calls c ON c.id = u.call JOIN cost_notes n ON n.id = u.cost_note
         WHERE u.rowid > ?1 AND u.ts_ms >= ?2 AND u.ts_ms < ?3 AND (?4 IS NULL OR c.tenant_id = ?4)
         ORDER BY u.rowid LIMIT ?5"
    ))?;
    let rows = statement
        .query_map(params![after_id, range.from_ms, range.to_ms, tenant_id, limit as i64], line_from_row)?;
    rows.collect()
}

pub fn count_usage_lines(
    conn: &Connection,
    tenant_id: Option<&str>,
    range: TimeRange,
) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM usage u JOIN calls c ON c.id = u.call
         WHERE u.ts_ms >= ?1 AND u.ts_ms < ?2 AND (?3 IS NULL OR c.tenant_id = ?3)",
        params![range.from_ms, range.to_ms, tenant_id],
        |row| Ok(row.get::<_, i64>(0)? as u64),
    )
}

impl Writer {
    /// New costs for usage lines, and their calls' totals recomputed from their lines.
    /// Re-prices usage lines and moves their calls' totals by the difference, so the
    /// totals stay right whatever derived data is still waiting for a flush.
    pub fn apply_costs(&mut self, updates: &[CostUpdate]) -> rusqlite::Result<()> {
        let (conn, notes) = self.parts();
        let tx = conn.transaction()?;
        // Per call: the change of its cost and of its count of unpriced lines.
        let mut calls: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        {
            let mut old = tx.prepare_cached("SELECT call, cost_nano FROM usage WHERE rowid = ?1")?;
            let mut update =
                tx.prepare_cached("UPDATE usage SET cost_nano = ?1, cost_note = ?2 WHERE rowid = ?3")?;
            for change in updates {
                let cost = CostColumns::of(&tx, notes, &change.costing)?;
                let Some((call, before)) = old
                    .query_row([change.usage_id], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?))
                    })
                    .optional()?
                else {
                    continue;
                };
                update.execute(params![cost.cost_nano, cost.note, change.usage_id])?;
                let delta = calls.entry(call).or_default();
                delta.0 += cost.cost_nano.unwrap_or(0) - before.unwrap_or(0);
                delta.1 += i64::from(cost.cost_nano.is_none()) - i64::from(before.is_none());
            }
            let mut totals = tx.prepare_cached(
                "UPDATE calls SET cost_nano = cost_nano + ?2, unpriced_lines = unpriced_lines + ?3 WHERE id = ?1",
            )?;
            for (call, (cost, unpriced)) in calls {
                totals.execute([call, cost, unpriced])?;
            }
        }
        tx.commit()
    }
}
