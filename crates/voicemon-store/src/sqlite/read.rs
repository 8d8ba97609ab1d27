//! The read path: rollups and call facts for the metrics endpoints.

use crate::column::Stored;
use crate::rollup::read_plan;
use crate::{EndedCall, LatencyFilter, Resolution};
use rusqlite::{params, Connection};
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::TimeRange;

use super::health::tenant_scoped;

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
