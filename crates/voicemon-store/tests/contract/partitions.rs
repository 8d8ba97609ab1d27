//! PostgreSQL only: day partitions of raw facts (plain PostgreSQL, native partitioning),
//! created on demand and ahead, dropped past retention; migrations under an advisory lock.

use crate::backends::{postgres_url, TestSchema};
use crate::events::{event, range, NOW_MS, TODAY_MS};
use crate::latency::merged;
use serde_json::json;
use std::time::Duration;
use tokio_postgres::Client;
use voicemon_core::latency::{Component, Source};
use voicemon_core::window::{DAY_MS, HOUR_MS};
use voicemon_store::postgres::{latest_version, partitions, Partitioning, PostgresStore, PARTITIONED};
use voicemon_store::{
    AdminStore, CallRef, CostStore, IngestEvent, IngestStore, LatencyFilter, LatencyStore, RepriceStore,
    Resolution, StoreError,
};

async fn test_schema() -> Option<TestSchema> {
    Some(TestSchema::create(&postgres_url()?).await)
}

/// The start of the day `offset` days from today (2026-11-27).
fn day(offset: i64) -> i64 {
    TODAY_MS + offset * DAY_MS
}

fn partition_name(table: &str, day_ms: i64) -> String {
    let date = chrono::DateTime::from_timestamp_millis(day_ms).expect("a valid day");
    format!("{table}_p{}", date.format("%Y%m%d"))
}

async fn days_of(client: &Client, table: &str) -> Vec<i64> {
    partitions(client, table).await.expect("partitions are listed").into_iter().map(|p| p.1).collect()
}

async fn count(client: &Client, relation: &str) -> i64 {
    client.query_one(&format!("SELECT count(*) FROM {relation}"), &[]).await.expect("counted").get(0)
}

/// A call's turn, usage line, provider request and heartbeat, at 10:00 of `day_ms`.
fn facts_of_day(day_ms: i64, tag: &str) -> Vec<IngestEvent> {
    let at_ms = day_ms + 10 * HOUR_MS;
    let call = format!("call-{tag}");
    vec![
        event(
            "turn.completed",
            &format!("t-{tag}"),
            "acme",
            at_ms,
            json!({"call_id": call, "turn_index": 0, "e2e_ms": 640.0}),
        ),
        event(
            "stt.usage",
            &format!("u-{tag}"),
            "acme",
            at_ms,
            json!({"call_id": call, "provider": "deepgram", "model": "nova-3", "audio_seconds": 4.0,
                   "latency_ms": 95.0}),
        ),
        event(
            "provider.request",
            &format!("r-{tag}"),
            "acme",
            at_ms,
            json!({"provider": "openai", "component": "llm", "ok": true}),
        ),
        event(
            "worker.heartbeat",
            &format!("h-{tag}"),
            "acme",
            at_ms,
            json!({"worker_id": "w1", "memory_used_bytes": 1, "memory_limit_bytes": 2, "cpu_percent": 3.0,
                   "active_calls": 0}),
        ),
    ]
}

fn e2e() -> LatencyFilter {
    LatencyFilter {
        tenant_id: Some("acme".into()),
        component: Component::TurnE2e,
        source: Source::Turn,
        agent_id: None,
        provider: None,
        model: None,
    }
}

#[tokio::test]
async fn day_partitions_are_created_for_the_days_a_batch_touches_and_ahead_of_today() {
    let Some(schema) = test_schema().await else { return };
    let store = schema.connect().await;
    let client = schema.client().await;
    assert_eq!(store.partitioning(), Partitioning::Native, "TimescaleDB is not available here");

    let later = NOW_MS + 10 * DAY_MS;
    store.maintain(later).await.expect("maintenance runs");
    for &(table, _) in PARTITIONED {
        let days = days_of(&client, table).await;
        for offset in 9..=13 {
            assert!(days.contains(&day(offset)), "{table}: no partition {offset} days ahead: {days:?}");
        }
        assert!(!days.contains(&day(-7)), "{table} has a partition for a day nothing touched");
    }

    let batch: Vec<IngestEvent> = [facts_of_day(day(-7), "a"), facts_of_day(day(-6), "b")].concat();
    let stored =
        store.write_batch(batch.clone()).await.expect("events for days without partitions are stored");
    assert_eq!(stored.stored, vec![true; 8]);
    for &(table, _) in PARTITIONED {
        let days = days_of(&client, table).await;
        assert!(days.contains(&day(-7)) && days.contains(&day(-6)), "{table}: {days:?}");
    }
    // Rollups are derived data, merged by a flush (reads through the store flush first).
    store.flush_derived().await.expect("derived data is flushed");
    for (table, rows) in [
        ("event_ids", 4),
        ("turns", 1),
        ("usage", 1),
        ("provider_requests", 1),
        ("heartbeats", 1),
        // turn_e2e from the turn, stt from the usage line.
        ("latency_minute", 2),
    ] {
        for offset in [-7, -6] {
            let partition = partition_name(table, day(offset));
            assert_eq!(count(&client, &partition).await, rows, "rows of {partition}");
        }
    }

    let again = store.write_batch(batch.clone()).await.expect("a retry is answered");
    assert_eq!(again.stored, vec![false; 8], "idempotency holds in partitions created on demand");
    let other_instance = schema.connect().await;
    let from_another = other_instance.write_batch(batch).await.expect("another instance answers");
    assert_eq!(from_another.stored, vec![false; 8], "and for an instance that did not create them");
}

#[tokio::test]
async fn maintenance_drops_partitions_wholly_past_retention_and_keeps_the_rest() {
    let Some(schema) = test_schema().await else { return };
    let mut config = schema.config();
    config.retention = Duration::from_secs(3 * 86_400);
    let store = schema.connect_with(config).await;
    let client = schema.client().await;
    // Now is 2026-11-27 12:00: the cut-off is 2026-11-24 12:00, so the 24th stays whole.
    for (offset, tag) in [(-6, "old"), (-3, "kept"), (-1, "yesterday"), (0, "today")] {
        store.write_batch(facts_of_day(day(offset), tag)).await.expect("the day's facts are stored");
    }
    assert_eq!(store.maintain(NOW_MS).await.expect("maintenance runs"), PARTITIONED.len() as u64);
    for &(table, _) in PARTITIONED {
        let days = days_of(&client, table).await;
        assert!(!days.contains(&day(-6)), "{table} kept a partition past retention: {days:?}");
        for offset in [-3, -1, 0, 1, 2, 3] {
            assert!(days.contains(&day(offset)), "{table} lost or lacks day {offset}: {days:?}");
        }
    }
    assert_eq!(store.maintain(NOW_MS).await.unwrap(), 0, "nothing more to drop");

    let old_day = range(day(-6), day(-5));
    let minutes = store.latency_sketches(&e2e(), old_day, Resolution::Minute).await.unwrap();
    assert_eq!(merged(&minutes).count(), 0, "minute rollups went with their day");
    assert_eq!(store.count_usage_lines(None, old_day).await.unwrap(), 0, "usage lines went with their day");
    let hours = store.latency_sketches(&e2e(), old_day, Resolution::Hour).await.unwrap();
    assert_eq!(merged(&hours).count(), 1, "hour rollups are kept");
    let calls = store.call_costs(None, old_day).await.unwrap();
    assert_eq!(calls.len(), 1, "calls and their cost totals are kept");
    assert_eq!(calls[0].usage_lines, 1);
    let kept_day = range(day(-3), day(-2));
    assert_eq!(store.count_usage_lines(None, kept_day).await.unwrap(), 1, "a day inside retention is whole");
    let kept = store.latency_sketches(&e2e(), kept_day, Resolution::Minute).await.unwrap();
    assert_eq!(merged(&kept).count(), 1);

    let late = event(
        "turn.completed",
        "t-late",
        "acme",
        day(-6) + 11 * HOUR_MS,
        json!({"call_id": "call-old", "turn_index": 1, "e2e_ms": 700.0}),
    );
    let stored = store.write_batch(vec![late]).await.expect("a late event for a dropped day is stored");
    assert_eq!(stored.stored, vec![true]);
    assert_eq!(count(&client, &partition_name("turns", day(-6))).await, 1, "its partition is created again");
}

#[tokio::test]
async fn a_partition_dropped_by_another_instance_is_created_again_on_demand() {
    let Some(schema) = test_schema().await else { return };
    let store = schema.connect().await;
    let client = schema.client().await;
    store.write_batch(facts_of_day(day(-2), "first")).await.expect("stored");
    // Another instance with a shorter retention drops the day this instance knows about.
    let mut config = schema.config();
    config.retention = Duration::from_secs(86_400);
    let other = schema.connect_with(config).await;
    other.maintain(NOW_MS).await.expect("the other instance's maintenance runs");
    assert!(!days_of(&client, "turns").await.contains(&day(-2)), "the other instance dropped the day");
    let mut second = facts_of_day(day(-2), "second");
    // A price this instance has not used yet: its note is written in the retried transaction.
    second.push(event(
        "llm.usage",
        "u-second-llm",
        "acme",
        day(-2) + 10 * HOUR_MS,
        json!({"call_id": "call-second", "provider": "openai", "model": "gpt-4o", "input_tokens": 10,
               "output_tokens": 1}),
    ));
    let stored = store.write_batch(second).await.expect("stored after the drop");
    assert_eq!(stored.stored, vec![true; 5]);
    assert_eq!(count(&client, &partition_name("turns", day(-2))).await, 1);
    let call =
        store.call_cost(None, &CallRef::CallId("call-second".into())).await.unwrap().expect("the call");
    let providers: Vec<&str> = call.lines.iter().map(|line| line.provider.as_str()).collect();
    assert_eq!(providers, ["deepgram", "openai"], "every line keeps its cost note");
}

#[tokio::test]
async fn migrations_run_once_and_a_database_from_a_newer_voicemon_is_refused() {
    let Some(schema) = test_schema().await else { return };
    let first = schema.connect().await;
    let second = schema.connect().await;
    second.ping().await.expect("the second connection works");
    drop((first, second));
    let client = schema.client().await;
    let applied: Vec<(i32, String)> = client
        .query("SELECT version, description FROM voicemon_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        applied,
        vec![
            (1, "initial schema".to_owned()),
            (2, "derived data journal".to_owned()),
            (3, "leases and outbox claims".to_owned()),
            (4, "call explorer".to_owned()),
            (5, "calls updated in place".to_owned())
        ]
    );
    assert_eq!(latest_version(), 5);

    client
        .execute(
            "INSERT INTO voicemon_migrations (version, description) VALUES ($1, 'from the future')",
            &[&6i32],
        )
        .await
        .unwrap();
    match PostgresStore::connect(schema.config()).await {
        Err(StoreError::Internal(message)) => assert!(
            message.contains("schema version 6, newer than this voicemon (5); upgrade voicemon"),
            "{message}"
        ),
        other => panic!("a newer schema must be refused with a clear error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_starting_together_on_a_fresh_schema_both_connect() {
    let Some(schema) = test_schema().await else { return };
    let (a, b) =
        tokio::join!(PostgresStore::connect(schema.config()), PostgresStore::connect(schema.config()));
    let (a, b) = (a.expect("the first instance connects"), b.expect("the second instance connects"));
    let (wrote_a, wrote_b) =
        tokio::join!(a.write_batch(facts_of_day(day(-4), "a")), b.write_batch(facts_of_day(day(-4), "b")));
    assert_eq!(wrote_a.expect("the first writes").stored, vec![true; 4]);
    assert_eq!(wrote_b.expect("the second writes").stored, vec![true; 4]);
    let client = schema.client().await;
    assert_eq!(count(&client, "voicemon_migrations").await, i64::from(latest_version()));
    assert_eq!(count(&client, &partition_name("turns", day(-4))).await, 2);
}
