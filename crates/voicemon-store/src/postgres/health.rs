//! Health reads: workers, breaker changes, provider minutes and errors, health samples.

use super::read::sketch_at;
use super::{at, map_error, ms, scoped};
use crate::column::Stored;
use crate::{BreakerRow, ProviderErrorCount, ProviderMinuteRow, StoreError, WorkerRow};
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row, Transaction};
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::TimeRange;

/// Runs `sql` whose `$1` is a time and whose `{tenant}` becomes `AND tenant_id = $2`.
async fn since(client: &Client, sql: &str, tenant: Option<&str>, since_ms: i64) -> Result<Vec<Row>, Error> {
    let sql = scoped(sql, "tenant_id", tenant, 1);
    let since = at(since_ms);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&since];
    if let Some(tenant) = &tenant {
        params.push(tenant);
    }
    client.query(&sql, &params).await
}

pub async fn workers(client: &Client, tenant: Option<String>) -> Result<Vec<WorkerRow>, Error> {
    let sql = scoped(
        "SELECT tenant_id, worker_id, last_at, memory_used_bytes, memory_limit_bytes, cpu_percent, active_calls
         FROM workers WHERE true {tenant} ORDER BY tenant_id COLLATE \"C\", worker_id COLLATE \"C\"",
        "tenant_id",
        tenant.as_deref(),
        0,
    );
    let rows = match &tenant {
        Some(tenant) => client.query(&sql, &[tenant]).await?,
        None => client.query(&sql, &[]).await?,
    };
    Ok(rows
        .iter()
        .map(|row| WorkerRow {
            tenant_id: row.get(0),
            worker_id: row.get(1),
            last_ms: ms(row.get(2)),
            memory_used_bytes: row.get::<_, i64>(3) as u64,
            memory_limit_bytes: row.get::<_, i64>(4) as u64,
            cpu_percent: row.get(5),
            active_calls: row.get::<_, i32>(6) as u32,
        })
        .collect())
}

pub async fn breaker_changes(
    client: &Client,
    tenant: Option<String>,
    since_ms: i64,
) -> Result<Vec<BreakerRow>, Error> {
    // The changes in the window; for each breaker the last one before it (the state the
    // window began in); and the first change of the run of that same state before the
    // window, so `since` is right even when a state was reported twice.
    let sql = "WITH scoped AS (SELECT * FROM breaker_changes WHERE true {tenant}),
         before AS (
             SELECT DISTINCT ON (tenant_id, breaker) tenant_id, breaker, ts, state FROM scoped
             WHERE ts < $1 ORDER BY tenant_id, breaker, ts DESC
         ),
         run_start AS (
             SELECT b.tenant_id, b.breaker, min(c.ts) AS ts, b.state FROM before b
             JOIN scoped c ON c.tenant_id = b.tenant_id AND c.breaker = b.breaker
             WHERE c.ts < $1 AND c.state = b.state
               AND c.ts > coalesce((SELECT max(x.ts) FROM scoped x
                                    WHERE x.tenant_id = b.tenant_id AND x.breaker = b.breaker
                                      AND x.ts < $1 AND x.state <> b.state), '-infinity')
             GROUP BY b.tenant_id, b.breaker, b.state
         )
         SELECT tenant_id, breaker, ts, state FROM scoped WHERE ts >= $1
         UNION SELECT tenant_id, breaker, ts, state FROM before
         UNION SELECT tenant_id, breaker, ts, state FROM run_start
         ORDER BY 3, 1, 2, 4";
    let rows = since(client, sql, tenant.as_deref(), since_ms).await?;
    rows.iter()
        .map(|row| {
            Ok(BreakerRow {
                tenant_id: row.get(0),
                breaker: row.get(1),
                at_ms: ms(row.get(2)),
                state: row.try_get::<_, Stored<_>>(3)?.0,
            })
        })
        .collect()
}

pub async fn provider_minutes(
    client: &Client,
    tenant: Option<String>,
    since_ms: i64,
) -> Result<Vec<ProviderMinuteRow>, Error> {
    let sql = "SELECT provider, start_at, sum(requests)::bigint, sum(errors)::bigint FROM provider_minutes
               WHERE start_at >= $1 {tenant} GROUP BY provider, start_at ORDER BY provider COLLATE \"C\", start_at";
    let rows = since(client, sql, tenant.as_deref(), since_ms).await?;
    Ok(rows
        .iter()
        .map(|row| ProviderMinuteRow {
            provider: row.get(0),
            start_ms: ms(row.get(1)),
            requests: row.get::<_, i64>(2) as u64,
            errors: row.get::<_, i64>(3) as u64,
        })
        .collect())
}

pub async fn provider_latency(
    client: &Client,
    tenant: Option<String>,
    since_ms: i64,
) -> Result<Vec<(String, LatencySketch)>, Error> {
    let sql = "SELECT provider, (sketch).zero_count, (sketch).keys, (sketch).counts FROM provider_minutes
               WHERE start_at >= $1 {tenant}";
    let mut merged: BTreeMap<String, LatencySketch> = BTreeMap::new();
    for row in since(client, sql, tenant.as_deref(), since_ms).await? {
        merged.entry(row.get(0)).or_default().merge(&sketch_at(&row, 1));
    }
    Ok(merged.into_iter().collect())
}

pub async fn provider_errors(
    client: &Client,
    tenant: Option<String>,
    since_ms: i64,
) -> Result<Vec<ProviderErrorCount>, Error> {
    let sql = "SELECT provider, error, sum(count)::bigint AS n FROM provider_errors
               WHERE start_at >= $1 {tenant} GROUP BY provider, error
               ORDER BY provider COLLATE \"C\", n DESC, error COLLATE \"C\"";
    let rows = since(client, sql, tenant.as_deref(), since_ms).await?;
    Ok(rows
        .iter()
        .map(|row| ProviderErrorCount {
            provider: row.get(0),
            error: row.get(1),
            count: row.get::<_, i64>(2) as u64,
        })
        .collect())
}

pub async fn put_health_sample(
    client: &Client,
    tenant: String,
    minute_ms: i64,
    sample: String,
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO health_samples (tenant_id, minute, sample) VALUES ($1, $2, $3::text::json)
             ON CONFLICT (tenant_id, minute) DO UPDATE SET sample = excluded.sample",
            &[&tenant, &at(minute_ms), &sample],
        )
        .await
        .map(|_| ())
}

pub async fn health_samples(
    client: &Client,
    tenant: String,
    range: TimeRange,
) -> Result<Vec<(i64, String)>, Error> {
    let rows = client
        .query(
            "SELECT minute, sample::text FROM health_samples
             WHERE tenant_id = $1 AND minute >= $2 AND minute < $3 ORDER BY minute",
            &[&tenant, &at(range.from_ms), &at(range.to_ms)],
        )
        .await?;
    Ok(rows.iter().map(|row| (ms(row.get(0)), row.get(1))).collect())
}

pub async fn prune(tx: &Transaction<'_>, before_ms: i64) -> Result<u64, StoreError> {
    let before = at(before_ms);
    let mut removed = 0;
    for sql in [
        "DELETE FROM health_samples WHERE minute < $1",
        "DELETE FROM provider_minutes WHERE start_at < $1",
        "DELETE FROM provider_errors WHERE start_at < $1",
        "DELETE FROM heartbeats WHERE ts < $1",
        "DELETE FROM provider_requests WHERE ts < $1",
    ] {
        removed += tx.execute(sql, &[&before]).await.map_err(map_error)?;
    }
    Ok(removed)
}
