//! The read path: latency rollups and call facts for the metrics endpoints.

use super::{at, ms, scoped, sketch_of};
use crate::column::Stored;
use crate::rollup::read_plan;
use crate::{EndedCall, LatencyFilter, Resolution};
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
