//! write_batch: an event is stored once per tenant, id and timestamp, whether the
//! duplicate comes in a later batch or in the same one.

use crate::backends::on_both_backends;
use crate::events::{at, call_started, event, range, turn, turns};
use crate::latency::{merged, sketch_of, turn_e2e};
use crate::transcript::Transcript;
use serde_json::json;
use std::sync::Arc;
use voicemon_store::{Resolution, Store};

#[tokio::test]
async fn the_same_event_twice_is_stored_once_across_batches_and_within_one() {
    on_both_backends(same_event_twice).await;
}

async fn same_event_twice(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let write = |batch| {
        let store = Arc::clone(&store);
        async move { store.write_batch(batch).await.expect("the batch is stored").stored }
    };
    let first = vec![call_started("e1", "acme", "c1", at(10, 0)), turn("e2", "acme", "c1", at(10, 1), 700.0)];
    t.check("a first batch is stored whole", write(first).await, vec![true, true]);
    let retry = vec![turn("e2", "acme", "c1", at(10, 1), 700.0), turn("e3", "acme", "c1", at(10, 2), 800.0)];
    t.check("a retry stores only the new event", write(retry).await, vec![false, true]);
    let twice = vec![turn("e4", "acme", "c1", at(10, 3), 900.0), turn("e4", "acme", "c1", at(10, 3), 900.0)];
    t.check("an event twice in one batch is stored once", write(twice).await, vec![true, false]);
    // Idempotency is at the event's own timestamp: the same id at another time is another event.
    let moved =
        || vec![turn("e5", "acme", "c1", at(10, 4), 1000.0), turn("e5", "acme", "c1", at(10, 4) + 1, 1100.0)];
    t.check("one id at two timestamps is two events", write(moved()).await, vec![true, true]);
    t.check("resending both stores neither", write(moved()).await, vec![false, false]);
    t.check(
        "the same id from another tenant is another event",
        write(vec![turn("e2", "globex", "c1", at(10, 1), 700.0)]).await,
        vec![true],
    );
    t.check("an empty batch stores nothing", write(Vec::new()).await, Vec::new());

    let stored = store
        .latency_sketches(&turn_e2e(Some("acme")), range(at(10, 0), at(11, 0)), Resolution::Minute)
        .await
        .unwrap();
    t.check(
        "each stored turn counts once in the latency rollups",
        merged(&stored),
        sketch_of(&[700.0, 800.0, 900.0, 1000.0, 1100.0]),
    );
    t.check(
        "a call started once is counted once",
        store.started_calls(Some("acme"), range(at(10, 0), at(11, 0))).await.unwrap(),
        (1, 1),
    );
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_events_from_two_writers_at_once_are_stored_once() {
    on_both_backends(two_writers).await;
}

/// Two writers send the same batches at the same moment (a client retrying while its first
/// request is still being written, or two instances given one redelivered message). Every
/// event is stored by exactly one of them, and counted once. A store's first batch holds
/// an event twice, as the first batch of a fresh instance may.
async fn two_writers(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let first = vec![turn("d1", "acme", "c1", at(10, 0), 500.0), turn("d1", "acme", "c1", at(10, 0), 500.0)];
    t.check(
        "a first batch with an event twice stores it once",
        store.write_batch(first).await.expect("the batch is stored").stored,
        vec![true, false],
    );
    let mut stored_once = Vec::new();
    for round in 0..6_i64 {
        let batch = || -> Vec<_> {
            (0..50)
                .map(|n| {
                    turn(&format!("r{round}-{n}"), "acme", &format!("c{}", n % 7), at(10, round) + n, 600.0)
                })
                .collect()
        };
        let (a, b) = (Arc::clone(&store), Arc::clone(&store));
        let (batch_a, batch_b) = (batch(), batch());
        let (one, other) = tokio::join!(
            tokio::spawn(async move { a.write_batch(batch_a).await.expect("one writer's batch").stored }),
            tokio::spawn(async move { b.write_batch(batch_b).await.expect("the other's batch").stored }),
        );
        let (one, other) = (one.expect("the task ends"), other.expect("the task ends"));
        stored_once.push(one.iter().zip(&other).all(|(x, y)| x != y));
    }
    t.check("in each round every event is stored by exactly one writer", stored_once, vec![true; 6]);
    let stored = store
        .latency_sketches(&turn_e2e(Some("acme")), range(at(10, 0), at(11, 0)), Resolution::Minute)
        .await
        .unwrap();
    t.check("each event counts once", merged(&stored).count(), 1 + 6 * 50);
    t
}

#[tokio::test]
async fn a_usage_line_sent_twice_is_costed_once() {
    on_both_backends(usage_twice).await;
}

async fn usage_twice(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let usage = || {
        event(
            "llm.usage",
            "u1",
            "acme",
            at(10, 0),
            json!({"call_id": "c1", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
                   "output_tokens": 100}),
        )
    };
    let cost = crate::cost::nanos(&usage());
    t.check("first", store.write_batch(vec![usage()]).await.unwrap().stored, vec![true]);
    let again = store.write_batch(vec![usage(), usage()]).await.unwrap();
    t.check("then twice more: all duplicates", again.duplicates(), 2);
    let totals = store.call_costs(Some("acme"), range(at(10, 0), at(11, 0))).await.unwrap();
    t.check(
        "the call has one line and its cost once",
        totals.iter().map(|c| (c.usage_lines, c.unpriced_lines, c.cost_nano)).collect::<Vec<_>>(),
        vec![(1, 0, cost)],
    );
    t.check("one usage line", store.count_usage_lines(None, range(at(10, 0), at(11, 0))).await.unwrap(), 1);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_during_a_flush_counts_every_acknowledged_event() {
    on_both_backends(read_during_flush).await;
}

/// A flush runs beside the reads (as the periodic flusher does beside queries): a read
/// that starts while the flush is merging must wait for it, not read the tables the flush
/// has not reached yet.
async fn read_during_flush(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let mut counts = Vec::new();
    for round in 0..30_i64 {
        let values: Vec<(i64, f64)> = (0..5).map(|i| (at(10, round) + i * 1000, 500.0 + i as f64)).collect();
        store.write_batch(turns("acme", "c1", "receptionist", &values)).await.expect("the batch is stored");
        let flusher = Arc::clone(&store);
        let flush =
            tokio::spawn(async move { flusher.flush_derived().await.expect("derived data is flushed") });
        // Let the flush take the pending data before the read starts.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let read = store
            .latency_sketches(&turn_e2e(Some("acme")), range(at(10, 0), at(11, 0)), Resolution::Minute)
            .await
            .expect("the read answers");
        counts.push(merged(&read).count());
        flush.await.expect("the flush task ends");
    }
    let acknowledged: Vec<u64> = (1..=30).map(|round| round * 5).collect();
    t.check("every read counts every turn acknowledged before it", counts, acknowledged);
    t
}
