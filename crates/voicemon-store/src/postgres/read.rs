//! The read path: latency rollups and call facts for the metrics endpoints.

use super::cost::{self, PendingCalls};
use super::{at, ms, scoped, sketch_of};
use crate::column::Stored;
use crate::pending::CallRows;
use crate::rollup::read_plan;
use crate::{
    CallRequest, CallTurns, CallWindow, CallsGathered, EndedCall, LatencyFilter, Resolution, TurnRow,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::ClientWrapper;
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row};
use voicemon_core::latency::Component;
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::TimeRange;

/// The sketch of a row whose `(sketch).zero_count, (sketch).keys, (sketch).counts` start
/// at column `first`.
pub(super) fn sketch_at(row: &Row, first: usize) -> LatencySketch {
    sketch_of(row.get(first), row.get(first + 1), row.get(first + 2))
}

/// Runs `work` in one snapshot (a read-only REPEATABLE READ transaction) when `needed`,
/// so that the rollup rows it reads and the journal rows it looks for agree
/// ([`crate::pending`]); with nothing unflushed to look for, as it is. On an error the
/// transaction is left open: the caller discards such a connection.
pub async fn in_snapshot<T>(
    client: &Client,
    needed: bool,
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    if !needed {
        return work.await;
    }
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let answer = work.await?;
    client.batch_execute("COMMIT").await?;
    Ok(answer)
}

/// Which of the journal rows `seqs` the snapshot holds (their derived data is not in the
/// tables in it). First in a transaction, its statement opens the snapshot.
pub async fn journal_rows_present(client: &Client, seqs: &[i64]) -> Result<Vec<i64>, Error> {
    let rows = client.query("SELECT seq FROM derived_journal WHERE seq = ANY($1)", &[&seqs]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

pub async fn latency_sketches(
    client: &ClientWrapper,
    filter: LatencyFilter,
    range: TimeRange,
    resolution: Resolution,
) -> Result<Vec<(i64, LatencySketch)>, Error> {
    let mut sketches = Vec::new();
    for (period, part) in read_plan(range, resolution) {
        read_rollups(client, period.table(), &filter, part, &mut sketches).await?;
    }
    Ok(sketches)
}

async fn read_rollups(
    client: &ClientWrapper,
    table: &str,
    filter: &LatencyFilter,
    range: TimeRange,
    into: &mut Vec<(i64, LatencySketch)>,
) -> Result<(), Error> {
    // Only the filters given appear in the SQL, so the primary key serves the range.
    let mut sql = format!(
        "SELECT start_at, (sketch).zero_count, (sketch).keys, (sketch).counts FROM {table}
         WHERE component = $1 AND source = $2 AND start_at >= $3 AND start_at < $4"
    );
    let (from, to) = (at(range.from_ms), at(range.to_ms));
    let component = filter.component.as_str();
    let source = filter.source.as_str();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&component, &source, &from, &to];
    for (column, value) in filter.given() {
        params.push(value);
        sql.push_str(&format!(" AND {column} = ${}", params.len()));
    }
    // A handful of filter combinations exist: cached per connection, each is planned once.
    let statement = client.prepare_cached(&sql).await?;
    for row in client.query(&statement, &params).await? {
        into.push((ms(row.get(0)), sketch_at(&row, 1)));
    }
    Ok(())
}

pub async fn ended_calls(
    client: &Client,
    tenant: Option<String>,
    range: TimeRange,
) -> Result<Vec<EndedCall>, Error> {
    let sql = scoped(
        "SELECT ended_at, status, ended_reason, duration_s, objective FROM calls
         WHERE ended_at >= $1 AND ended_at < $2 {tenant}",
        "tenant_id",
        tenant.as_deref(),
        2,
    );
    let rows = query_range(client, &sql, range, tenant.as_deref()).await?;
    rows.iter()
        .map(|row| {
            Ok(EndedCall {
                ended_ms: ms(row.get(0)),
                status: row.try_get::<_, Stored<_>>(1)?.0,
                ended_reason: row.get(2),
                duration_s: row.get(3),
                objective: row.get(4),
            })
        })
        .collect()
}

pub async fn started_calls(
    client: &Client,
    tenant: Option<String>,
    range: TimeRange,
) -> Result<(u64, u64), Error> {
    let sql = scoped(
        "SELECT count(*), count(*) FILTER (WHERE ended_at IS NULL) FROM calls
         WHERE started_at >= $1 AND started_at < $2 {tenant}",
        "tenant_id",
        tenant.as_deref(),
        2,
    );
    let rows = query_range(client, &sql, range, tenant.as_deref()).await?;
    let row = &rows[0];
    Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
}

/// Runs `sql` whose first two parameters are the range, and the third the tenant if given.
pub async fn query_range(
    client: &Client,
    sql: &str,
    range: TimeRange,
    tenant: Option<&str>,
) -> Result<Vec<Row>, Error> {
    let (from, to): (DateTime<Utc>, DateTime<Utc>) = (at(range.from_ms), at(range.to_ms));
    match tenant {
        Some(tenant) => client.query(sql, &[&from, &to, &tenant]).await,
        None => client.query(sql, &[&from, &to]).await,
    }
}

/// Per tenant (source turn), or per tenant and provider (source usage), merged sketches
/// for `component` over the minutes of `range`.
pub async fn latency_by_tenant(
    client: &Client,
    component: Component,
    range: TimeRange,
    by_provider: bool,
) -> Result<Vec<(String, String, LatencySketch)>, Error> {
    let rows = client
        .query(
            "SELECT tenant_id, CASE WHEN $4 THEN provider ELSE '' END,
                    (sketch).zero_count, (sketch).keys, (sketch).counts
             FROM latency_minute
             WHERE component = $1 AND source = CASE WHEN $4 THEN 'usage' ELSE 'turn' END
               AND start_at >= $2 AND start_at < $3",
            &[&component.as_str(), &at(range.from_ms), &at(range.to_ms), &by_provider],
        )
        .await?;
    let mut merged: BTreeMap<(String, String), LatencySketch> = BTreeMap::new();
    for row in rows {
        merged.entry((row.get(0), row.get(1))).or_default().merge(&sketch_at(&row, 2));
    }
    Ok(merged.into_iter().map(|((tenant, provider), sketch)| (tenant, provider, sketch)).collect())
}

/// The call columns of the call explorer, then (for a window) the turn columns.
const CALL_COLUMNS: &str = "c.id, c.call_id, c.agent_id, c.objective, c.trace_id, c.first_at, c.started_at, \
     c.ended_at, c.duration_s, c.status, c.ended_reason, c.cost_nano, c.unpriced_lines";
const TURN_COLUMNS: &str =
    "t.ts, t.turn_index, t.e2e_ms, t.stt_ms, t.eou_ms, t.llm_ttft_ms, t.tts_ttfb_ms, t.interrupted, t.tool_calls";

fn call_turns(row: &Row) -> Result<(i64, CallTurns), Error> {
    let status: Option<Stored<_>> = row.try_get(9)?;
    let time = |index: usize| row.get::<_, Option<DateTime<Utc>>>(index).map(ms);
    Ok((
        row.get(0),
        CallTurns {
            call_id: row.get(1),
            agent_id: row.get(2),
            objective: row.get(3),
            trace_id: row.get(4),
            first_ms: time(5).unwrap_or_default(),
            started_ms: time(6),
            ended_ms: time(7),
            duration_s: row.get(8),
            status: status.map(|s| s.0),
            ended_reason: row.get(10),
            cost_nano: row.get(11),
            unpriced_lines: row.get::<_, i32>(12) as u32,
            turns: Vec::new(),
        },
    ))
}

/// A turn from its columns starting at `at`, if the row has one (a call without turns
/// joins to nulls).
fn turn_row(row: &Row, at: usize) -> Option<TurnRow> {
    let ts: Option<DateTime<Utc>> = row.get(at);
    let latency = |index: usize| row.get::<_, Option<f32>>(at + index).map(f64::from);
    Some(TurnRow {
        ts_ms: ms(ts?),
        turn_index: row.get::<_, i32>(at + 1) as u32,
        e2e_ms: latency(2).unwrap_or_default(),
        stt_ms: latency(3),
        eou_ms: latency(4),
        llm_ttft_ms: latency(5),
        tts_ttfb_ms: latency(6),
        interrupted: row.get(at + 7),
        tool_calls: row.get::<_, Option<i32>>(at + 8).map(|n| n as u32),
    })
}

/// A call's events are at most this long after its first (a call lasts at most a day):
/// the bound lets PostgreSQL skip the partitions of other days.
const CALL_SPAN: &str = "interval '1 day 1 hour'";

/// The calls of `window` (by `calls_by_first`), each joined to its turns (`turns_by_call`),
/// with `pending` (the call totals not flushed yet) merged ([`cost::merged_calls`]).
/// The turns are a lateral subquery (`OFFSET 0` keeps the planner from flattening it
/// into a join), so each call's are read through the index whatever the statistics say: right after a burst, before `ANALYZE` has seen it, a plain join
/// was planned as a scan of the whole day's turns (measured: 104 ms against 31 ms for
/// one tenant's busiest hour, BENCHMARKS.md).
pub async fn window_calls(
    client: &ClientWrapper,
    window: CallWindow,
    pending: PendingCalls,
) -> Result<Vec<CallTurns>, Error> {
    let select = format!(
        "SELECT {CALL_COLUMNS}, {TURN_COLUMNS}
         FROM (SELECT * FROM merged WHERE first_at >= $1 AND first_at < $2
                 AND ({{1}}::text IS NULL OR agent_id = {{1}}) AND ({{2}}::text IS NULL OR objective = {{2}})
                 AND ({{3}}::text IS NULL OR EXISTS (SELECT 1 FROM usage u WHERE u.call = merged.id AND u.provider = {{3}}
                                                  AND u.ts >= $1 AND u.ts < $2 + {CALL_SPAN}))
               ORDER BY first_at, id LIMIT {{4}}) c
         LEFT JOIN LATERAL (SELECT * FROM turns WHERE turns.call = c.id AND turns.ts >= $1 AND turns.ts < $2 + {CALL_SPAN}
                            OFFSET 0) t ON true
         ORDER BY c.first_at, c.id, t.turn_index, t.ts"
    );
    let limit = window.limit as i64;
    let extra: [&(dyn ToSql + Sync); 4] = [&window.agent_id, &window.objective, &window.provider, &limit];
    let rows =
        cost::merged_calls(client, &select, window.range, Some(&window.tenant_id), &pending, &extra).await?;
    let mut calls = CallsGathered::default();
    for row in &rows {
        calls.row(row.get(0), || call_turns(row).map(|(_, call)| call), turn_row(row, 13))?;
    }
    Ok(calls.into_calls())
}

/// One call with its turns and provider requests, the call totals not flushed yet
/// (`pending`) merged into its own.
pub async fn call_record(
    client: &ClientWrapper,
    tenant_id: String,
    call_id: String,
    pending: CallRows,
) -> Result<Option<(CallTurns, Vec<CallRequest>)>, Error> {
    let sql = format!("SELECT {CALL_COLUMNS} FROM calls c WHERE c.tenant_id = $1 AND c.call_id = $2");
    let Some(row) = client.query_opt(&client.prepare_cached(&sql).await?, &[&tenant_id, &call_id]).await?
    else {
        return Ok(None);
    };
    let (id, mut call) = call_turns(&row)?;
    call.merge_pending(row.get::<_, Option<DateTime<Utc>>>(5).map(ms), pending.get(&id));
    let since = at(call.first_ms);
    let sql = format!(
        "SELECT {TURN_COLUMNS} FROM turns t WHERE t.call = $1 AND t.ts >= $2 AND t.ts < $2 + {CALL_SPAN}
         ORDER BY t.turn_index, t.ts"
    );
    for row in client.query(&client.prepare_cached(&sql).await?, &[&id, &since]).await? {
        call.turns.extend(turn_row(&row, 0));
    }
    let sql = format!(
        "SELECT ts, provider, component, ok, latency_ms, error FROM provider_requests
         WHERE call = $1 AND ts >= $2 AND ts < $2 + {CALL_SPAN} ORDER BY ts"
    );
    let requests = client
        .query(&client.prepare_cached(&sql).await?, &[&id, &since])
        .await?
        .iter()
        .map(|row| {
            Ok(CallRequest {
                ts_ms: ms(row.get(0)),
                provider: row.get(1),
                component: row.try_get::<_, Stored<_>>(2)?.0,
                ok: row.get(3),
                latency_ms: row.get::<_, Option<f32>>(4).map(f64::from),
                error: row.get(5),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Some((call, requests)))
}
