//! How PostgreSQL takes a group commit's raw facts: one `INSERT … SELECT FROM
//! unnest($arrays)` per table, or one binary `COPY … FROM STDIN` (what the store does),
//! measured on their own, batch by batch in turn, into a copy of the `turns` table
//! (partitioned by day, its two indexes) in a schema of this run, dropped at the end.
//! Rows are live-shaped: 100 000 interleaved calls of 50 tenants, times over the last hour.
//!
//!   cargo run --release -p voicemon-store --example copy_vs_unnest -- [batches=300] [rows=1000] [url]
//!
//! The URL defaults to DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test (no TLS).
use std::time::{Duration, Instant};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

/// One `turns` row, as the write plan binds it.
struct Turn {
    call: i64,
    tenant: String,
    ts: chrono::DateTime<chrono::Utc>,
    turn_index: i32,
    ms: [Option<f32>; 5],
    interrupted: Option<bool>,
    tool_calls: Option<i32>,
    agent: Option<String>,
}

const COPY: &str =
    "COPY turns (call, tenant_id, ts, turn_index, e2e_ms, stt_ms, eou_ms, llm_ttft_ms, tts_ttfb_ms,
    interrupted, tool_calls, agent_id) FROM STDIN (FORMAT binary)";

fn batch(seed: &mut u64, rows: usize, now_ms: i64) -> Vec<Turn> {
    let mut next = move || {
        // xorshift64: the same rows on every run.
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    (0..rows)
        .map(|_| {
            let call = (next() % 100_000) as i64;
            let ms = |n: u64| Some(100.0 + (n % 2_000) as f32 / 2.0);
            Turn {
                call,
                tenant: format!("t{:02}", call % 50),
                ts: chrono::DateTime::from_timestamp_millis(now_ms - (next() % 3_600_000) as i64)
                    .expect("a time"),
                turn_index: (next() % 20) as i32,
                ms: [ms(next()), ms(next()), ms(next()), ms(next()), ms(next())],
                interrupted: Some(next() % 5 == 0),
                tool_calls: Some((next() % 3) as i32),
                agent: Some("support-bot".into()),
            }
        })
        .collect()
}

const UNNEST: &str =
    "INSERT INTO turns (call, tenant_id, ts, turn_index, e2e_ms, stt_ms, eou_ms, llm_ttft_ms,
    tts_ttfb_ms, interrupted, tool_calls, agent_id)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::integer[], $5::real[], $6::real[],
      $7::real[], $8::real[], $9::real[], $10::boolean[], $11::integer[], $12::text[])";

async fn by_unnest(
    client: &mut Client,
    statement: &Statement,
    rows: &[Turn],
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let column = |f: fn(&Turn) -> Option<f32>| rows.iter().map(f).collect::<Vec<_>>();
    let calls: Vec<i64> = rows.iter().map(|r| r.call).collect();
    let tenants: Vec<&str> = rows.iter().map(|r| r.tenant.as_str()).collect();
    let times: Vec<_> = rows.iter().map(|r| r.ts).collect();
    let indexes: Vec<i32> = rows.iter().map(|r| r.turn_index).collect();
    let e2e: Vec<f32> = rows.iter().map(|r| r.ms[0].unwrap_or_default()).collect();
    let (stt, eou, ttft, ttfb) =
        (column(|r| r.ms[1]), column(|r| r.ms[2]), column(|r| r.ms[3]), column(|r| r.ms[4]));
    let interrupted: Vec<_> = rows.iter().map(|r| r.interrupted).collect();
    let tools: Vec<_> = rows.iter().map(|r| r.tool_calls).collect();
    let agents: Vec<_> = rows.iter().map(|r| r.agent.as_deref()).collect();
    let params: [&(dyn ToSql + Sync); 12] =
        [&calls, &tenants, &times, &indexes, &e2e, &stt, &eou, &ttft, &ttfb, &interrupted, &tools, &agents];
    tx.execute(statement, &params).await?;
    tx.commit().await
}

async fn by_copy(
    client: &mut Client,
    statement: &Statement,
    rows: &[Turn],
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::INT4,
        Type::FLOAT4,
        Type::FLOAT4,
        Type::FLOAT4,
        Type::FLOAT4,
        Type::FLOAT4,
        Type::BOOL,
        Type::INT4,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(tx.copy_in(statement).await?, &types);
    let mut writer = std::pin::pin!(writer);
    for r in rows {
        let e2e = r.ms[0].unwrap_or_default();
        writer
            .as_mut()
            .write(&[
                &r.call,
                &r.tenant,
                &r.ts,
                &r.turn_index,
                &e2e,
                &r.ms[1],
                &r.ms[2],
                &r.ms[3],
                &r.ms[4],
                &r.interrupted,
                &r.tool_calls,
                &r.agent,
            ])
            .await?;
    }
    writer.finish().await?;
    tx.commit().await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batches: usize = args.first().map_or(Ok(300), |n| n.parse())?;
    let rows: usize = args.get(1).map_or(Ok(1000), |n| n.parse())?;
    let url = args.get(2).cloned().or_else(|| std::env::var("DATABASE_URL").ok());
    let url = url.unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let (mut client, connection) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(connection);
    let schema = format!("copy_bench_{}", std::process::id());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let day_ms = 86_400_000;
    let (from, to) = (now_ms - 2 * day_ms, now_ms + day_ms);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path = {schema};
             CREATE TABLE turns (call bigint NOT NULL, tenant_id text NOT NULL, ts timestamptz NOT NULL,
               turn_index integer NOT NULL, e2e_ms real NOT NULL, stt_ms real, eou_ms real, llm_ttft_ms real,
               tts_ttfb_ms real, interrupted boolean, tool_calls integer, agent_id text) PARTITION BY RANGE (ts);
             CREATE TABLE turns_now PARTITION OF turns
               FOR VALUES FROM (to_timestamp({from} / 1000.0)) TO (to_timestamp({to} / 1000.0));
             CREATE INDEX turns_by_call ON turns (call);
             CREATE INDEX turns_by_tenant ON turns (tenant_id, ts);"
        ))
        .await?;
    let outcome = run(&mut client, batches, rows, now_ms).await;
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await?;
    let (unnest, copy) = outcome?;
    let per_s = |spent: Duration| (batches * rows) as f64 / spent.as_secs_f64();
    println!("unnest: {:.0} rows/s ({:.2} s)", per_s(unnest), unnest.as_secs_f64());
    println!("copy:   {:.0} rows/s ({:.2} s)", per_s(copy), copy.as_secs_f64());
    println!("copy / unnest: {:.2}x the rows per second", unnest.as_secs_f64() / copy.as_secs_f64());
    Ok(())
}

/// `batches` batches of each kind, in turn (so both see the table grow alike); the time
/// each kind took in all.
async fn run(
    client: &mut Client,
    batches: usize,
    rows: usize,
    now_ms: i64,
) -> Result<(Duration, Duration), tokio_postgres::Error> {
    let (by_arrays, by_rows) = (client.prepare(UNNEST).await?, client.prepare(COPY).await?);
    let (mut unnest, mut copy) = (Duration::ZERO, Duration::ZERO);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for n in 0..batches * 2 {
        let turns = batch(&mut seed, rows, now_ms);
        let started = Instant::now();
        if n % 2 == 0 {
            by_unnest(client, &by_arrays, &turns).await?;
            unnest += started.elapsed();
        } else {
            by_copy(client, &by_rows, &turns).await?;
            copy += started.elapsed();
        }
    }
    Ok((unnest, copy))
}
