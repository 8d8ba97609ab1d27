//! PostgreSQL only: `voicemon_quantile(voicemon_merge(sketch), q)` in SQL answers exactly
//! what `LatencySketch::quantile` answers in Rust for the same rollups, so a Grafana panel
//! on the tables and the API never disagree.

use crate::backends::{postgres_url, TestSchema};
use crate::events::{at, turns};
use crate::latency::{merged, turn_e2e};
use tokio_postgres::Client;
use voicemon_core::sketch::LatencySketch;
use voicemon_core::validate::MAX_LATENCY_MS;
use voicemon_core::window::MINUTE_MS;
use voicemon_store::postgres::PostgresStore;
use voicemon_store::{IngestEvent, IngestStore, LatencyStore, Resolution};

const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const TURNS_PER_TENANT: usize = 1000;
const QUANTILES: [f64; 5] = [0.0, 0.5, 0.95, 0.99, 1.0];

/// Latencies spread log-uniformly from microseconds to the 10-minute limit, with some
/// zeros, from a fixed-seed generator (the same every run).
fn latencies(seed: u64, n: usize) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|i| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            if i % 97 == 0 {
                0.0
            } else {
                10f64.powf(unit * 8.8 - 3.0).min(MAX_LATENCY_MS)
            }
        })
        .collect()
}

/// Each tenant's turns spread over three hours, one every ~10 s.
fn tenant_turns(tenant: &str, seed: u64) -> Vec<IngestEvent> {
    let values: Vec<(i64, f64)> = latencies(seed, TURNS_PER_TENANT)
        .into_iter()
        .enumerate()
        .map(|(i, value)| (at(9, 0) + i as i64 * 10_777 % (180 * MINUTE_MS), value))
        .collect();
    turns(tenant, "call-q", "agent", &values)
}

async fn sql_quantiles(client: &Client, relation: &str, q: f64) -> Vec<(String, Option<f64>)> {
    let rows = client
        .query(
            &format!(
                "SELECT tenant_id, voicemon_quantile(voicemon_merge(sketch), $1) FROM {relation}
                 WHERE component = 'turn_e2e' AND source = 'turn' GROUP BY tenant_id ORDER BY tenant_id"
            ),
            &[&q],
        )
        .await
        .unwrap_or_else(|err| panic!("quantiles over {relation}: {err}"));
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

async fn sql_merged(client: &Client, relation: &str) -> Vec<(String, i64, LatencySketch)> {
    let rows = client
        .query(
            &format!(
                "SELECT tenant_id, voicemon_count(m), (m).zero_count, (m).keys, (m).counts
                 FROM (SELECT tenant_id, voicemon_merge(sketch) AS m FROM {relation}
                       WHERE component = 'turn_e2e' AND source = 'turn' GROUP BY tenant_id) AS merged
                 ORDER BY tenant_id"
            ),
            &[],
        )
        .await
        .unwrap_or_else(|err| panic!("merging {relation}: {err}"));
    rows.iter()
        .map(|row| {
            let (keys, counts): (Vec<i32>, Vec<i64>) = (row.get(3), row.get(4));
            let buckets = keys.into_iter().zip(counts.into_iter().map(|c| c as u64));
            (row.get(0), row.get(1), LatencySketch::from_buckets(row.get::<_, i64>(2) as u64, buckets))
        })
        .collect()
}

async fn rust_sketches(store: &PostgresStore) -> Vec<(String, LatencySketch)> {
    let mut sketches = Vec::new();
    for tenant in TENANTS {
        let rows = store
            .latency_sketches(
                &turn_e2e(Some(tenant)),
                crate::events::range(at(9, 0), at(12, 0)),
                Resolution::Minute,
            )
            .await
            .expect("latency reads");
        sketches.push((tenant.to_owned(), merged(&rows)));
    }
    sketches
}

#[tokio::test]
async fn sql_percentiles_over_merged_rollups_equal_the_rust_sketch_exactly() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::create(&url).await;
    let store = schema.connect().await;
    for (seed, tenant) in TENANTS.iter().enumerate() {
        for batch in tenant_turns(tenant, seed as u64 + 1).chunks(250) {
            store.write_batch(batch.to_vec()).await.expect("the turns are stored");
        }
    }
    // SQL reads the tables: what is pending reaches them with a flush (every second in
    // the server).
    store.flush_derived().await.expect("flushed");
    let client = schema.client().await;
    let rust = rust_sketches(&store).await;
    for (tenant, sketch) in &rust {
        assert_eq!(sketch.count(), TURNS_PER_TENANT as u64, "{tenant}");
    }

    let relations =
        ["latency_minute", "latency_hour", "(SELECT * FROM latency_rollups WHERE resolution = 'hour') AS r"];
    for relation in relations {
        let merged = sql_merged(&client, relation).await;
        let expected: Vec<(String, i64, LatencySketch)> = rust
            .iter()
            .map(|(tenant, sketch)| (tenant.clone(), sketch.count() as i64, sketch.clone()))
            .collect();
        assert_eq!(merged, expected, "voicemon_merge over {relation} is the Rust merge");
        for q in QUANTILES {
            let expected: Vec<(String, Option<f64>)> =
                rust.iter().map(|(tenant, sketch)| (tenant.clone(), sketch.quantile(q))).collect();
            assert_eq!(sql_quantiles(&client, relation, q).await, expected, "q = {q} over {relation}");
        }
    }

    // Parallel plans combine partial aggregate states: the answer must not change.
    client
        .batch_execute(
            "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
             SET max_parallel_workers_per_gather = 2",
        )
        .await
        .unwrap();
    for q in QUANTILES {
        let expected: Vec<(String, Option<f64>)> =
            rust.iter().map(|(tenant, sketch)| (tenant.clone(), sketch.quantile(q))).collect();
        assert_eq!(sql_quantiles(&client, "latency_minute", q).await, expected, "q = {q}, parallel");
    }

    let nothing: Option<f64> = client
        .query_one(
            "SELECT voicemon_quantile(voicemon_merge(sketch), 0.5) FROM latency_minute
             WHERE tenant_id = 'nobody'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(nothing, None, "no values, no percentile");
}
