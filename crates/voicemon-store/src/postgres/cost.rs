//! Cost reads (itemised calls, per-call totals, breakdowns) and re-pricing writes.

use super::read::query_range;
use super::write::{cost_note_ids, note_key, Learned, NoteCache};
use super::{at, map_error, ms, scoped};
use crate::column::Stored;
use crate::pending::{merged_first, CallRows};
use crate::{
    CallCost, CallCostTotal, CallRef, CostGroup, CostGroupRow, CostUpdate, StoreError, TenantCost, UsageLine,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::{ClientWrapper, Transaction};
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row};
use voicemon_core::pricing::Costing;
use voicemon_core::window::TimeRange;

const LINE_COLUMNS: &str = "u.id, c.tenant_id, c.call_id, u.ts, u.component, u.provider, u.model, u.voice,
     u.audio_seconds, u.input_tokens, u.output_tokens, u.cached_input_tokens, u.audio_input_tokens,
     u.audio_output_tokens, u.characters, u.cost_nano, n.price_ref, n.detail";

fn line_from_row(row: &Row) -> Result<UsageLine, Error> {
    let count = |i: usize| row.get::<_, Option<i64>>(i).map(|v| v as u64);
    Ok(UsageLine {
        id: row.get(0),
        tenant_id: row.get(1),
        call_id: row.get(2),
        ts_ms: ms(row.get(3)),
        component: row.try_get::<_, Stored<_>>(4)?.0,
        provider: row.get(5),
        model: row.get(6),
        voice: row.get(7),
        audio_seconds: row.get(8),
        input_tokens: count(9),
        output_tokens: count(10),
        cached_input_tokens: count(11),
        audio_input_tokens: count(12),
        audio_output_tokens: count(13),
        characters: count(14),
        cost_nano: row.get(15),
        price_ref: row.get(16),
        detail: row.get(17),
    })
}

/// One call's usage lines, by call id or trace id (of those found, the call whose first
/// event is the latest), its first time merged with `pending`, the call totals not
/// flushed yet.
pub async fn call_cost(
    client: &Client,
    tenant: Option<String>,
    call: CallRef,
    pending: CallRows,
) -> Result<Option<CallCost>, Error> {
    let (column, value) = match &call {
        CallRef::CallId(id) => ("call_id", id),
        CallRef::TraceId(id) => ("trace_id", id),
    };
    let sql = scoped(
        &format!(
            "SELECT id, tenant_id, call_id, trace_id, first_at, duration_s, status FROM calls
             WHERE {column} = $1 {{tenant}}"
        ),
        "tenant_id",
        tenant.as_deref(),
        1,
    );
    let found = match &tenant {
        Some(tenant) => client.query(&sql, &[value, tenant]).await?,
        None => client.query(&sql, &[value]).await?,
    };
    let latest = found
        .iter()
        .map(|row| {
            let id: i64 = row.get(0);
            let stored = row.get::<_, Option<DateTime<Utc>>>(4).map(ms);
            (id, row, merged_first(stored, pending.get(&id)))
        })
        .max_by_key(|(_, _, first)| *first);
    let Some((row_id, row, first_ms)) = latest else { return Ok(None) };
    let mut cost = CallCost {
        tenant_id: row.get(1),
        call_id: row.get(2),
        trace_id: row.get(3),
        first_ms,
        duration_s: row.get(5),
        status: row.get(6),
        lines: Vec::new(),
    };
    let lines = client
        .query(
            &format!(
                "SELECT {LINE_COLUMNS} FROM usage u JOIN calls c ON c.id = u.call
                 JOIN cost_notes n ON n.id = u.cost_note WHERE u.call = $1 ORDER BY u.ts, u.id"
            ),
            &[&row_id],
        )
        .await?;
    cost.lines = lines.iter().map(line_from_row).collect::<Result<_, _>>()?;
    Ok(Some(cost))
}

pub async fn call_tenants(client: &Client, call: CallRef, limit: usize) -> Result<Vec<String>, Error> {
    let (column, value) = match &call {
        CallRef::CallId(id) => ("call_id", id),
        CallRef::TraceId(id) => ("trace_id", id),
    };
    let sql = format!("SELECT DISTINCT tenant_id FROM calls WHERE {column} = $1 ORDER BY tenant_id LIMIT $2");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client.query(&sql, &[value, &limit]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The calls of a read by first time (cost, the explorer's window): those whose first
/// event falls in the range ($1, $2) once the call totals not flushed yet ($3 – $7,
/// [`PendingCalls`]) are merged, with their own columns and their merged first time and
/// totals. `{tenant}` marks where the tenant clause goes ($8). [`merged_calls`] puts it
/// before the query that reads `merged`.
const MERGED_CALLS: &str = "
    WITH pending AS (
        SELECT * FROM unnest($3::bigint[], $4::timestamptz[], $5::bigint[], $6::integer[], $7::integer[])
            AS p (id, first_at, cost_nano, usage_lines, unpriced_lines)),
    wanted AS (
        SELECT id FROM calls WHERE first_at >= $1 AND first_at < $2 {tenant}
        UNION SELECT id FROM pending WHERE first_at >= $1 AND first_at < $2),
    merged AS (
        SELECT c.id, c.tenant_id, c.call_id, c.agent_id, c.objective, c.trace_id,
               least(c.first_at, p.first_at) AS first_at, c.started_at, c.ended_at, c.duration_s,
               c.status, c.ended_reason,
               c.cost_nano + coalesce(p.cost_nano, 0) AS cost_nano,
               c.usage_lines + coalesce(p.usage_lines, 0) AS usage_lines,
               c.unpriced_lines + coalesce(p.unpriced_lines, 0) AS unpriced_lines
        FROM wanted JOIN calls c ON c.id = wanted.id LEFT JOIN pending p ON p.id = c.id
        WHERE true {tenant})
    ";

/// [`MERGED_CALLS`] when nothing is pending: the calls' own rows ($1, $2; tenant $3).
const FLUSHED_CALLS: &str = "
    WITH merged AS (
        SELECT id, tenant_id, call_id, agent_id, objective, trace_id, first_at, started_at, ended_at,
               duration_s, status, ended_reason, cost_nano, usage_lines, unpriced_lines
        FROM calls WHERE first_at >= $1 AND first_at < $2 {tenant})
    ";

/// The call totals not flushed yet, as the arrays [`MERGED_CALLS`] takes.
#[derive(Debug, Default)]
pub struct PendingCalls {
    ids: Vec<i64>,
    firsts: Vec<DateTime<Utc>>,
    costs: Vec<i64>,
    lines: Vec<i32>,
    unpriced: Vec<i32>,
}

impl PendingCalls {
    pub fn of(totals: &CallRows) -> PendingCalls {
        let mut calls = PendingCalls::default();
        for (call, t) in totals {
            calls.ids.push(*call);
            calls.firsts.push(at(t.first_ms));
            calls.costs.push(t.cost_nano);
            calls.lines.push(i32::try_from(t.usage_lines).unwrap_or(i32::MAX));
            calls.unpriced.push(i32::try_from(t.unpriced_lines).unwrap_or(i32::MAX));
        }
        calls
    }
}

/// Runs `select` (which reads the CTE `merged`) over the calls of `range`, `pending`
/// merged ([`MERGED_CALLS`]; [`FLUSHED_CALLS`] when none is), for `tenant` or all.
/// `extra` parameters follow the others; `select` names them `{1}`, `{2}`, ….
pub(super) async fn merged_calls(
    client: &ClientWrapper,
    select: &str,
    range: TimeRange,
    tenant: Option<&str>,
    pending: &PendingCalls,
    extra: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Error> {
    let (from, to) = (at(range.from_ms), at(range.to_ms));
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &to];
    let calls = if pending.ids.is_empty() {
        FLUSHED_CALLS
    } else {
        params.push(&pending.ids);
        params.push(&pending.firsts);
        params.push(&pending.costs);
        params.push(&pending.lines);
        params.push(&pending.unpriced);
        MERGED_CALLS
    };
    let mut sql = scoped(&format!("{calls} {select}"), "tenant_id", tenant, params.len());
    if let Some(tenant) = &tenant {
        params.push(tenant);
    }
    for n in 1..=extra.len() {
        sql = sql.replace(&format!("{{{n}}}"), &format!("${}", params.len() + n));
    }
    params.extend_from_slice(extra);
    client.query(&client.prepare_cached(&sql).await?, &params).await
}

pub async fn call_costs(
    client: &ClientWrapper,
    tenant: Option<String>,
    range: TimeRange,
    pending: PendingCalls,
) -> Result<Vec<CallCostTotal>, Error> {
    let select = "SELECT call_id, first_at, cost_nano, usage_lines, unpriced_lines, duration_s, tenant_id
         FROM merged WHERE first_at >= $1 AND first_at < $2";
    let rows = merged_calls(client, select, range, tenant.as_deref(), &pending, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| CallCostTotal {
            call_id: row.get(0),
            first_ms: ms(row.get(1)),
            cost_nano: row.get(2),
            usage_lines: row.get::<_, i32>(3) as u64,
            unpriced_lines: row.get::<_, i32>(4) as u64,
            duration_s: row.get(5),
            tenant_id: row.get(6),
        })
        .collect())
}

pub async fn tenant_costs(
    client: &ClientWrapper,
    range: TimeRange,
    pending: PendingCalls,
) -> Result<Vec<TenantCost>, Error> {
    let select = "SELECT tenant_id, count(*), coalesce(sum(cost_nano), 0)::bigint,
                coalesce(sum(cost_nano) FILTER (WHERE duration_s IS NOT NULL), 0)::bigint,
                coalesce(sum(duration_s), 0)::float8
         FROM merged WHERE first_at >= $1 AND first_at < $2 GROUP BY tenant_id ORDER BY tenant_id COLLATE \"C\"";
    let rows = merged_calls(client, select, range, None, &pending, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| TenantCost {
            tenant_id: row.get(0),
            calls: row.get::<_, i64>(1) as u64,
            cost_nano: row.get(2),
            ended_cost_nano: row.get(3),
            ended_seconds: row.get(4),
        })
        .collect())
}

pub async fn cost_breakdown(
    client: &ClientWrapper,
    tenant: Option<String>,
    range: TimeRange,
    group: CostGroup,
    pending: PendingCalls,
) -> Result<Vec<CostGroupRow>, Error> {
    let key = match group {
        CostGroup::Provider => "u.provider",
        CostGroup::Component => "u.component",
        CostGroup::Model => "coalesce(u.model, '')",
        CostGroup::Day => "(floor(extract(epoch FROM c.first_at) / 86400) * 86400000)::bigint::text",
    };
    let select = format!(
        "SELECT ({key}) COLLATE \"C\" AS k, coalesce(sum(u.cost_nano), 0)::bigint, count(*),
                count(*) - count(u.cost_nano)
         FROM merged c JOIN usage u ON u.call = c.id
         WHERE c.first_at >= $1 AND c.first_at < $2
         GROUP BY k ORDER BY k"
    );
    let rows = merged_calls(client, &select, range, tenant.as_deref(), &pending, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| CostGroupRow {
            key: row.get(0),
            cost_nano: row.get(1),
            usage_lines: row.get::<_, i64>(2) as u64,
            unpriced_lines: row.get::<_, i64>(3) as u64,
        })
        .collect())
}

pub async fn usage_lines(
    client: &Client,
    tenant: Option<String>,
    range: TimeRange,
    after_id: i64,
    limit: usize,
) -> Result<Vec<UsageLine>, Error> {
    let sql = scoped(
        &format!(
            "SELECT {LINE_COLUMNS} FROM usage u JOIN calls c ON c.id = u.call JOIN cost_notes n ON n.id = u.cost_note
             WHERE u.ts >= $1 AND u.ts < $2 AND u.id > $3 {{tenant}} ORDER BY u.id LIMIT $4"
        ),
        "u.tenant_id",
        tenant.as_deref(),
        4,
    );
    let (from, to) = (at(range.from_ms), at(range.to_ms));
    let limit = limit as i64;
    let rows = match &tenant {
        Some(tenant) => client.query(&sql, &[&from, &to, &after_id, &limit, tenant]).await?,
        None => client.query(&sql, &[&from, &to, &after_id, &limit]).await?,
    };
    rows.iter().map(line_from_row).collect()
}

pub async fn count_usage_lines(
    client: &Client,
    tenant: Option<String>,
    range: TimeRange,
) -> Result<u64, Error> {
    let sql = scoped(
        "SELECT count(*) FROM usage WHERE ts >= $1 AND ts < $2 {tenant}",
        "tenant_id",
        tenant.as_deref(),
        2,
    );
    let rows = query_range(client, &sql, range, tenant.as_deref()).await?;
    Ok(rows[0].get::<_, i64>(0) as u64)
}

/// New costs for usage lines, and their calls' totals recomputed from their lines.
/// Re-prices usage lines and moves their calls' totals by the difference, so the totals
/// stay right whatever derived data instances have not flushed yet.
pub async fn apply_costs(
    tx: &Transaction<'_>,
    notes: NoteCache,
    updates: Vec<CostUpdate>,
) -> Result<Learned, StoreError> {
    let (note_ids, learned) = cost_note_ids(tx, &notes, updates.iter().map(|u| &u.costing)).await?;
    let old =
        tx.prepare("SELECT call, cost_nano FROM usage WHERE id = $1 FOR UPDATE").await.map_err(map_error)?;
    let update = tx
        .prepare("UPDATE usage SET cost_nano = $1, cost_note = $2 WHERE id = $3")
        .await
        .map_err(map_error)?;
    // Per call: the change of its cost and of its count of unpriced lines.
    let mut calls: BTreeMap<i64, (i64, i32)> = BTreeMap::new();
    for change in &updates {
        let Some(note) = note_key(&change.costing).and_then(|key| note_ids.get(&key).copied()) else {
            continue;
        };
        let cost_nano = match &change.costing {
            Costing::Priced(line) => Some(line.cost.0),
            _ => None,
        };
        for row in tx.query(&old, &[&change.usage_id]).await.map_err(map_error)? {
            let (call, before): (i64, Option<i64>) = (row.get(0), row.get(1));
            let delta = calls.entry(call).or_default();
            delta.0 += cost_nano.unwrap_or(0) - before.unwrap_or(0);
            delta.1 += i32::from(cost_nano.is_none()) - i32::from(before.is_none());
        }
        tx.execute(&update, &[&cost_nano, &note, &change.usage_id]).await.map_err(map_error)?;
    }
    let ids: Vec<i64> = calls.keys().copied().collect();
    let cost: Vec<i64> = calls.values().map(|d| d.0).collect();
    let unpriced: Vec<i32> = calls.values().map(|d| d.1).collect();
    tx.execute(
        "UPDATE calls c SET cost_nano = c.cost_nano + d.cost, unpriced_lines = c.unpriced_lines + d.unpriced
         FROM unnest($1::bigint[], $2::bigint[], $3::integer[]) AS d (call, cost, unpriced)
         WHERE c.id = d.call",
        &[&ids, &cost, &unpriced],
    )
    .await
    .map_err(map_error)?;
    Ok(learned)
}
