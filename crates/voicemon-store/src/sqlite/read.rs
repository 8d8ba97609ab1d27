//! The read path: rollups and call facts for the metrics endpoints.

use crate::{EndedCall, LatencyFilter};
use rusqlite::{params, Connection};
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::TimeRange;

pub fn latency_sketches(
    conn: &Connection,
    filter: &LatencyFilter,
    range: TimeRange,
) -> rusqlite::Result<Vec<(i64, LatencySketch)>> {
    // A NULL parameter means "any": `(?n IS NULL OR column = ?n)`.
    let sql = "SELECT minute_ms, sketch FROM latency_rollups
               WHERE (?1 IS NULL OR tenant_id = ?1) AND component = ?2 AND source = ?3
                 AND minute_ms >= ?4 AND minute_ms < ?5
                 AND (?6 IS NULL OR agent_id = ?6) AND (?7 IS NULL OR provider = ?7)
                 AND (?8 IS NULL OR model = ?8)";
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(
        params![
            filter.tenant_id,
            filter.component.as_str(),
            filter.source.as_str(),
            range.from_ms,
            range.to_ms,
            filter.agent_id,
            filter.provider,
            filter.model,
        ],
        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
    )?;
    let mut sketches = Vec::new();
    for row in rows {
        let (minute, bytes) = row?;
        let sketch = LatencySketch::decode(&bytes).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, Box::new(err))
        })?;
        sketches.push((minute, sketch));
    }
    Ok(sketches)
}

pub fn ended_calls(
    conn: &Connection,
    tenant_id: Option<&str>,
    range: TimeRange,
) -> rusqlite::Result<Vec<EndedCall>> {
    let mut statement = conn.prepare_cached(
        "SELECT ended_ms, status, ended_reason, duration_s, objective FROM calls
         WHERE (?1 IS NULL OR tenant_id = ?1) AND ended_ms >= ?2 AND ended_ms < ?3",
    )?;
    let rows = statement.query_map(params![tenant_id, range.from_ms, range.to_ms], |row| {
        Ok(EndedCall {
            ended_ms: row.get(0)?,
            status: row.get(1)?,
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
    conn.prepare_cached(
        "SELECT count(*), count(*) FILTER (WHERE ended_ms IS NULL) FROM calls
         WHERE (?1 IS NULL OR tenant_id = ?1) AND started_ms >= ?2 AND started_ms < ?3",
    )?
    .query_row(params![tenant_id, range.from_ms, range.to_ms], |row| {
        Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
    })
}
