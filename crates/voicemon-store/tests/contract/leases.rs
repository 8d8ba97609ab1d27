//! Scale-out: leases of single-run duties, claims on outbox messages, and ticks fenced by
//! the alerting lease. The last case runs two PostgreSQL stores on one schema at once.

use crate::backends::{on_both_backends, postgres_url, TestSchema};
use crate::events::at;
use crate::transcript::Transcript;
use std::sync::Arc;
use voicemon_store::{
    AlertStore, AlertingTick, CostStore, Delivery, IngestStore, LeaseClaim, LeaseRow, Store, StoreError,
};

const TTL_MS: i64 = 15_000;

#[tokio::test]
async fn a_lease_goes_to_one_holder_until_it_expires_or_is_given_up() {
    on_both_backends(leases).await;
}

async fn leases(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let now = at(10, 0);
    let take = |holder: &'static str, now_ms: i64| {
        let store = Arc::clone(&store);
        async move { store.acquire_lease("alerting", holder, now_ms, TTL_MS).await.expect("the lease answers") }
    };
    t.check("a free role is taken", take("a", now).await, true);
    t.check("another instance cannot take it", take("b", now + 1_000).await, false);
    t.check("its holder renews it", take("a", now + 5_000).await, true);
    t.check("still not the other's just before the renewed expiry", take("b", now + 19_999).await, false);
    t.check("an expired lease is taken over", take("b", now + 20_000).await, true);
    t.check("the old holder cannot take it back while it runs", take("a", now + 21_000).await, false);
    let other = store.acquire_lease("maintenance", "a", now, TTL_MS).await.unwrap();
    t.check("roles are leased separately", other, true);
    t.check(
        "every lease with its holder and expiry",
        store.leases().await.unwrap(),
        vec![
            LeaseRow { role: "alerting".into(), holder: "b".into(), expires_ms: now + 20_000 + TTL_MS },
            LeaseRow { role: "maintenance".into(), holder: "a".into(), expires_ms: now + TTL_MS },
        ],
    );
    store.release_lease("alerting", "a").await.unwrap();
    t.check("giving up a lease one does not hold changes nothing", take("a", now + 22_000).await, false);
    store.release_lease("alerting", "b").await.unwrap();
    t.check("a lease given up is taken at once", take("a", now + 22_000).await, true);
    t
}

/// A tick with one message to `receiver`, stored under `lease` when given.
fn tick(now_ms: i64, receiver: &str, lease: Option<LeaseClaim>) -> AlertingTick {
    AlertingTick {
        now_ms,
        outbox: vec![(receiver.into(), "worker_memory_high".into(), r#"{"status":"firing"}"#.into())],
        lease,
        ..AlertingTick::default()
    }
}

fn alerting_lease(holder: &str) -> Option<LeaseClaim> {
    Some(LeaseClaim { role: "alerting".into(), holder: holder.into() })
}

#[tokio::test]
async fn a_tick_under_a_lease_is_stored_only_while_its_instance_holds_the_lease() {
    on_both_backends(fenced_ticks).await;
}

async fn fenced_ticks(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let now = at(10, 0);
    assert!(store.acquire_lease("alerting", "a", now, TTL_MS).await.unwrap());
    store.save_alerting(tick(now, "slack", alerting_lease("a"))).await.expect("the holder's tick is stored");
    let refused = store.save_alerting(tick(now + 1_000, "webhook", alerting_lease("b"))).await;
    t.check("another instance's tick is refused", matches!(refused, Err(StoreError::LeaseLost(_))), true);
    let late = store.save_alerting(tick(now + TTL_MS, "webhook", alerting_lease("a"))).await;
    t.check(
        "so is the holder's once its lease has expired",
        matches!(late, Err(StoreError::LeaseLost(_))),
        true,
    );
    let queued = store.claim_outbox(now + TTL_MS, 10, 0).await.unwrap();
    t.check(
        "only the holder's message was queued",
        queued.iter().map(|item| item.receiver.as_str()).collect::<Vec<_>>(),
        vec!["slack"],
    );
    t.check("a refused tick is not the storage failing", store.pool_stats().last_error, None);
    t
}

#[tokio::test]
async fn a_claimed_message_is_sent_by_its_claimant_alone_until_the_claim_ends() {
    on_both_backends(claims).await;
}

async fn claims(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let now = at(10, 0);
    for receiver in ["slack", "webhook", "pagerduty"] {
        store.save_alerting(tick(now, receiver, None)).await.unwrap();
    }
    let ids = |items: Vec<voicemon_store::OutboxItem>| items.iter().map(|item| item.id).collect::<Vec<_>>();
    let claim = |now_ms: i64, limit: usize| {
        let store = Arc::clone(&store);
        async move { ids(store.claim_outbox(now_ms, limit, 60_000).await.expect("the outbox answers")) }
    };
    t.check("a first claim takes the oldest due", claim(now, 2).await, vec![1, 2]);
    t.check("a second claim takes what is left", claim(now + 1, 10).await, vec![3]);
    t.check("nothing is left to claim", claim(now + 2, 10).await, Vec::new());
    store.unclaim_outbox(&[2]).await.unwrap();
    t.check("a message given back is due at once", claim(now + 3, 10).await, vec![2]);
    let items = store.claim_outbox(now + 60_001, 10, 60_000).await.unwrap();
    t.check("claims not recorded expire and their messages are due again", ids(items.clone()), vec![1, 3]);
    let retry =
        Delivery::Retry { at_ms: now + 60_001, next_attempt_ms: now + 61_000, error: "HTTP 503".into() };
    store.record_delivery(&items[0], retry).await.unwrap();
    store.record_delivery(&items[1], Delivery::Sent { at_ms: now + 60_001 }).await.unwrap();
    let items = store.claim_outbox(now + 61_000, 10, 60_000).await.unwrap();
    t.check("a retry ends its claim: due again at its next attempt", ids(items.clone()), vec![1, 2]);
    for item in &items {
        store.record_delivery(item, Delivery::Sent { at_ms: now + 61_000 }).await.unwrap();
    }
    t.check("a sent message is never claimed again", claim(now + 200_000, 10).await, Vec::new());
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgresql_instances_claiming_at_once_never_take_the_same_message() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::create(&url).await;
    let (first, second) = (Arc::new(schema.connect().await), Arc::new(schema.connect().await));
    let now = at(10, 0);
    for index in 0..200 {
        first.save_alerting(tick(now, &format!("receiver-{index}"), None)).await.unwrap();
    }
    let claimant = |store: Arc<voicemon_store::postgres::PostgresStore>| async move {
        let mut taken = Vec::new();
        loop {
            let items = store.claim_outbox(now, 7, 60_000).await.expect("the outbox answers");
            if items.is_empty() {
                return taken;
            }
            taken.extend(items.into_iter().map(|item| item.id));
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(claimant(first)), tokio::spawn(claimant(second)));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut all: Vec<i64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=200).collect::<Vec<i64>>(),
        "every message claimed exactly once ({} and {})",
        a.len(),
        b.len()
    );
}

/// Usage lines of `calls` calls, `per_call` each, in an order of their own for `seed`.
fn usage_batch(seed: u64, round: u64, calls: u64) -> Vec<voicemon_store::IngestEvent> {
    (0..calls)
        .map(|n| {
            let call = (n * 7 + seed * 3 + round) % calls;
            crate::events::event(
                "llm.usage",
                &format!("u-{seed}-{round}-{n}"),
                "acme",
                at(10, (round % 50) as i64),
                serde_json::json!({"call_id": format!("c{call}"), "provider": "openai", "model": "gpt-4o",
                                   "input_tokens": 100, "output_tokens": 10, "ttft_ms": 300.0}),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgresql_instances_writing_and_flushing_the_same_calls_at_once_count_every_line_once() {
    let Some(url) = postgres_url() else { return };
    let schema = TestSchema::create(&url).await;
    let (first, second) = (Arc::new(schema.connect().await), Arc::new(schema.connect().await));
    // Each instance commits batches touching the same calls in another order, and flushes
    // its derived data (call totals) beside the other's commits.
    let instance = |store: Arc<voicemon_store::postgres::PostgresStore>, seed: u64| async move {
        for round in 0..30 {
            store.write_batch(usage_batch(seed, round, 40)).await.expect("a group commit is stored");
            if round % 3 == seed % 3 {
                store.flush_derived().await.expect("derived data is flushed");
            }
        }
        store.flush_derived().await.expect("derived data is flushed");
    };
    let (a, b) = tokio::join!(
        tokio::spawn(instance(Arc::clone(&first), 1)),
        tokio::spawn(instance(Arc::clone(&second), 2))
    );
    a.expect("the first instance ran");
    b.expect("the second instance ran");
    let totals = first.call_costs(Some("acme"), crate::events::range(at(10, 0), at(11, 0))).await.unwrap();
    let lines: u64 = totals.iter().map(|call| call.usage_lines).sum();
    assert_eq!(lines, 2 * 30 * 40, "every usage line counted once in its call's totals");
}
