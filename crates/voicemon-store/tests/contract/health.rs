//! Health facts: workers' latest heartbeats, breaker changes with the state a window
//! began in, provider request minutes, latencies and errors, health samples, pruning.

use crate::backends::on_both_backends;
use crate::events::{at, event, range};
use crate::latency::sketch_of;
use crate::transcript::Transcript;
use serde_json::json;
use std::sync::Arc;
use voicemon_core::event::BreakerState;
use voicemon_core::sketch::LatencySketch;
use voicemon_store::{BreakerRow, IngestEvent, ProviderErrorCount, ProviderMinuteRow, Store, WorkerRow};

fn heartbeat(
    id: &str,
    tenant: &str,
    worker: &str,
    at_ms: i64,
    cpu_percent: f64,
    active_calls: u32,
) -> IngestEvent {
    event(
        "worker.heartbeat",
        id,
        tenant,
        at_ms,
        json!({"worker_id": worker, "memory_used_bytes": 1_000_000 * active_calls as u64 + 1,
               "memory_limit_bytes": 4_000_000_000u64, "cpu_percent": cpu_percent,
               "active_calls": active_calls}),
    )
}

fn worker(tenant: &str, worker: &str, last_ms: i64, cpu_percent: f64, active_calls: u32) -> WorkerRow {
    WorkerRow {
        tenant_id: tenant.into(),
        worker_id: worker.into(),
        last_ms,
        memory_used_bytes: 1_000_000 * active_calls as u64 + 1,
        memory_limit_bytes: 4_000_000_000,
        cpu_percent,
        active_calls,
    }
}

#[tokio::test]
async fn a_workers_latest_heartbeat_wins_whatever_the_arrival_order() {
    on_both_backends(workers).await;
}

async fn workers(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let batches = [
        vec![
            heartbeat("h1", "acme", "w1", at(10, 5), 50.5, 3),
            heartbeat("h2", "acme", "w2", at(10, 0), 10.0, 1),
        ],
        // Older than what is stored: ignored. Another tenant's worker of the same name.
        vec![
            heartbeat("h3", "acme", "w1", at(10, 3), 90.0, 9),
            heartbeat("h4", "globex", "w1", at(10, 1), 5.25, 0),
        ],
        // Two in one batch, the later one listed first.
        vec![
            heartbeat("h5", "acme", "w2", at(10, 7), 70.0, 4),
            heartbeat("h6", "acme", "w2", at(10, 6), 20.0, 2),
        ],
        vec![heartbeat("h7", "acme", "w3", at(10, 10), 1.0, 1)],
        // The same instant again: the one stored last wins.
        vec![heartbeat("h8", "acme", "w3", at(10, 10), 2.0, 2)],
    ];
    for (index, batch) in batches.into_iter().enumerate() {
        store.write_batch(batch).await.expect("the heartbeats are stored");
        // Some beats flushed, the later ones read from what is pending, over them.
        if index == 1 || index == 3 {
            store.flush_derived().await.expect("flushed");
        }
    }
    let latest = vec![
        worker("acme", "w1", at(10, 5), 50.5, 3),
        worker("acme", "w2", at(10, 7), 70.0, 4),
        worker("acme", "w3", at(10, 10), 2.0, 2),
        worker("globex", "w1", at(10, 1), 5.25, 0),
    ];
    t.check(
        "every worker's latest heartbeat, by tenant and worker",
        store.workers(None).await.unwrap(),
        latest.clone(),
    );
    store.flush_derived().await.expect("flushed");
    t.check("the same once all is flushed", store.workers(None).await.unwrap(), latest);
    t.check(
        "one tenant's",
        store.workers(Some("globex")).await.unwrap(),
        vec![worker("globex", "w1", at(10, 1), 5.25, 0)],
    );
    t.check("a tenant without workers", store.workers(Some("initech")).await.unwrap(), Vec::new());
    t
}

fn breaker_event(id: &str, tenant: &str, breaker: &str, at_ms: i64, state: &str) -> IngestEvent {
    event("circuit_breaker.changed", id, tenant, at_ms, json!({"breaker": breaker, "state": state}))
}

fn change(tenant: &str, breaker: &str, at_ms: i64, state: &str) -> BreakerRow {
    BreakerRow {
        tenant_id: tenant.into(),
        breaker: breaker.into(),
        at_ms,
        state: BreakerState::parse(state).expect("a breaker state"),
    }
}

#[tokio::test]
async fn breaker_changes_start_with_the_state_the_window_began_in() {
    on_both_backends(breakers).await;
}

async fn breakers(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let batch = vec![
        breaker_event("b1", "acme", "openai", at(9, 0), "closed"),
        breaker_event("b2", "acme", "openai", at(9, 30), "open"),
        // Reported open again: the run of `open` still began at 9:30.
        breaker_event("b3", "acme", "openai", at(9, 40), "open"),
        breaker_event("b4", "acme", "openai", at(10, 20), "closed"),
        breaker_event("b6", "acme", "deepgram", at(8, 0), "closed"),
        breaker_event("b7", "globex", "openai", at(9, 50), "open"),
    ];
    store.write_batch(batch).await.expect("the changes are stored");
    store
        .write_batch(vec![breaker_event("b5", "acme", "openai", at(10, 10), "half_open")])
        .await
        .expect("a late change is stored");
    let since = |tenant, since_ms| {
        let store = Arc::clone(&store);
        async move { store.breaker_changes(tenant, since_ms).await.expect("breaker changes read") }
    };
    t.check(
        "the window's changes after the run that was in force when it began",
        since(Some("acme"), at(10, 0)).await,
        vec![
            change("acme", "deepgram", at(8, 0), "closed"),
            change("acme", "openai", at(9, 30), "open"),
            change("acme", "openai", at(9, 40), "open"),
            change("acme", "openai", at(10, 10), "half_open"),
            change("acme", "openai", at(10, 20), "closed"),
        ],
    );
    t.check(
        "every tenant's",
        since(None, at(10, 0)).await.into_iter().map(|row| (row.tenant_id, row.at_ms)).collect::<Vec<_>>(),
        vec![
            ("acme".into(), at(8, 0)),
            ("acme".into(), at(9, 30)),
            ("acme".into(), at(9, 40)),
            ("globex".into(), at(9, 50)),
            ("acme".into(), at(10, 10)),
            ("acme".into(), at(10, 20)),
        ],
    );
    t.check(
        "a window starting inside a run of one state",
        since(Some("acme"), at(9, 35)).await,
        vec![
            change("acme", "deepgram", at(8, 0), "closed"),
            change("acme", "openai", at(9, 30), "open"),
            change("acme", "openai", at(9, 40), "open"),
            change("acme", "openai", at(10, 10), "half_open"),
            change("acme", "openai", at(10, 20), "closed"),
        ],
    );
    t.check(
        "a window starting after the repeated state",
        since(Some("acme"), at(10, 15)).await,
        vec![
            change("acme", "deepgram", at(8, 0), "closed"),
            change("acme", "openai", at(10, 10), "half_open"),
            change("acme", "openai", at(10, 20), "closed"),
        ],
    );
    t
}

fn request(
    id: &str,
    tenant: &str,
    provider: &str,
    at_ms: i64,
    error: Option<&str>,
    latency_ms: Option<f64>,
) -> IngestEvent {
    let mut fields = json!({"provider": provider, "component": "llm", "ok": error.is_none()});
    if let Some(latency) = latency_ms {
        fields["latency_ms"] = json!(latency);
    }
    if let Some(error) = error.filter(|e| !e.is_empty()) {
        fields["error"] = json!(error);
    }
    event("provider.request", id, tenant, at_ms, fields)
}

fn minute(provider: &str, start_ms: i64, requests: u64, errors: u64) -> ProviderMinuteRow {
    ProviderMinuteRow { provider: provider.into(), start_ms, requests, errors }
}

fn errors(provider: &str, error: &str, count: u64) -> ProviderErrorCount {
    ProviderErrorCount { provider: provider.into(), error: error.into(), count }
}

/// The minutes of [`provider_batches`] from 10:00, every tenant's.
fn every_tenants_minutes() -> Vec<ProviderMinuteRow> {
    vec![
        minute("deepgram", at(10, 1), 1, 0),
        minute("openai", at(10, 0), 4, 2),
        minute("openai", at(10, 1), 2, 2),
        minute("openai", at(10, 2), 2, 2),
        minute("openai", at(10, 3), 1, 1),
    ]
}

/// The latency of [`provider_batches`] from 10:00 by provider, every tenant's.
fn every_providers_latency() -> Vec<(String, LatencySketch)> {
    vec![("deepgram".into(), sketch_of(&[80.0])), ("openai".into(), sketch_of(&[300.0, 5000.0, 250.0]))]
}

/// The errors of [`provider_batches`] from 10:00, every tenant's.
fn every_tenants_errors() -> Vec<ProviderErrorCount> {
    vec![
        errors("openai", "timeout", 4),
        errors("openai", "rate_limited", 2),
        errors("openai", "unspecified", 1),
    ]
}

/// Provider requests in two batches, both touching minute 10:00; heartbeats.
fn provider_batches() -> [Vec<IngestEvent>; 2] {
    let s = 1_000;
    let first = vec![
        request("r1", "acme", "openai", at(10, 0) + 10 * s, None, Some(300.0)),
        request("r2", "acme", "openai", at(10, 0) + 40 * s, Some("timeout"), Some(5000.0)),
        request("r3", "acme", "openai", at(10, 1) + 5 * s, Some("timeout"), None),
        request("r4", "acme", "openai", at(10, 1) + 30 * s, Some("rate_limited"), None),
        request("r5", "acme", "deepgram", at(10, 1) + 45 * s, None, Some(80.0)),
        heartbeat("h1", "acme", "w1", at(10, 0) + 30 * s, 10.0, 1),
    ];
    let second = vec![
        request("r6", "acme", "openai", at(10, 2), Some(""), None),
        request("r7", "acme", "openai", at(10, 2) + 30 * s, Some("rate_limited"), None),
        request("r8", "acme", "openai", at(10, 3), Some("timeout"), None),
        request("r9", "globex", "openai", at(10, 0) + 20 * s, None, Some(250.0)),
        request("r10", "globex", "openai", at(10, 0) + 50 * s, Some("timeout"), None),
        heartbeat("h2", "acme", "w1", at(10, 5), 20.0, 2),
    ];
    [first, second]
}

async fn write_provider_requests(store: &dyn Store) {
    for batch in provider_batches() {
        store.write_batch(batch).await.expect("the requests are stored");
    }
}

#[tokio::test]
async fn provider_requests_are_counted_per_minute_with_their_latency_and_errors() {
    on_both_backends(providers).await;
}

async fn providers(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    write_provider_requests(&*store).await;
    t.check(
        "every tenant's minutes, by provider and time",
        store.provider_minutes(None, at(10, 0)).await.unwrap(),
        every_tenants_minutes(),
    );
    t.check(
        "one tenant's",
        store.provider_minutes(Some("globex"), at(10, 0)).await.unwrap(),
        vec![minute("openai", at(10, 0), 2, 1)],
    );
    t.check(
        "minutes start at or after `since`",
        store.provider_minutes(Some("acme"), at(10, 2)).await.unwrap(),
        vec![minute("openai", at(10, 2), 2, 2), minute("openai", at(10, 3), 1, 1)],
    );
    t.check(
        "each provider's latency",
        store.provider_latency(None, at(10, 0)).await.unwrap(),
        every_providers_latency(),
    );
    t.check(
        "a provider with requests but no latency in the window",
        store.provider_latency(Some("acme"), at(10, 1)).await.unwrap(),
        vec![("deepgram".into(), sketch_of(&[80.0])), ("openai".into(), sketch_of(&[]))],
    );
    t.check(
        "errors by kind, most frequent first; a failure without a kind is `unspecified`",
        store.provider_errors(None, at(10, 0)).await.unwrap(),
        every_tenants_errors(),
    );
    t.check(
        "one tenant's errors",
        store.provider_errors(Some("acme"), at(10, 0)).await.unwrap(),
        vec![
            errors("openai", "timeout", 3),
            errors("openai", "rate_limited", 2),
            errors("openai", "unspecified", 1),
        ],
    );
    t
}

#[tokio::test]
async fn provider_reads_merge_unflushed_requests_with_flushed_ones_without_flushing() {
    on_both_backends(providers_half_flushed).await;
}

/// The first batch flushed, the second pending: each provider read adds the pending minutes
/// and errors to the flushed rows (minute 10:00 has rows in both), flushes nothing, and
/// answers the same once all is flushed.
async fn providers_half_flushed(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let [first, second] = provider_batches();
    store.write_batch(first).await.expect("stored");
    t.check("the first batch is flushed", store.flush_derived().await.expect("flushed") > 0, true);
    store.write_batch(second).await.expect("stored");
    let answers = || async {
        (
            store.provider_minutes(None, at(10, 0)).await.expect("read"),
            store.provider_minutes(Some("acme"), at(10, 2)).await.expect("read"),
            store.provider_latency(None, at(10, 0)).await.expect("read"),
            store.provider_errors(None, at(10, 0)).await.expect("read"),
        )
    };
    let before = answers().await;
    t.check(
        "minutes: flushed and pending requests of 10:00 summed",
        before.0.clone(),
        every_tenants_minutes(),
    );
    t.check(
        "one tenant's pending minutes from `since`",
        before.1.clone(),
        vec![minute("openai", at(10, 2), 2, 2), minute("openai", at(10, 3), 1, 1)],
    );
    t.check("latency: flushed and pending sketches merged", before.2.clone(), every_providers_latency());
    t.check(
        "errors: flushed and pending counts summed, most frequent first",
        before.3.clone(),
        every_tenants_errors(),
    );
    let flushed = store.flush_derived().await.expect("flushed");
    t.check("the reads flushed nothing", flushed > 0, true);
    t.check("the same answers after the flush", answers().await, before);
    t
}

#[tokio::test]
async fn health_samples_are_replaced_per_minute_and_pruned_with_old_facts() {
    on_both_backends(samples_and_pruning).await;
}

async fn samples_and_pruning(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    write_provider_requests(&*store).await;
    let put = |tenant: &'static str, minute_ms, sample: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store.put_health_sample(tenant, minute_ms, sample.into()).await.expect("the sample is stored")
        }
    };
    put("", at(10, 0), r#"{"status":"ok","workers":2}"#).await;
    put("", at(10, 1), r#"{"workers":3,"status":"ok"}"#).await;
    put("", at(10, 0), r#"{"status":"degraded","workers":1}"#).await;
    put("acme", at(10, 0), r#"{"status":"ok"}"#).await;
    let samples = |tenant: &'static str, from_ms, to_ms| {
        let store = Arc::clone(&store);
        async move { store.health_samples(tenant, range(from_ms, to_ms)).await.expect("samples read") }
    };
    t.check(
        "the platform's samples, oldest first, as they were stored",
        samples("", at(10, 0), at(10, 2)).await,
        vec![
            (at(10, 0), r#"{"status":"degraded","workers":1}"#.into()),
            (at(10, 1), r#"{"workers":3,"status":"ok"}"#.into()),
        ],
    );
    t.check(
        "a later range",
        samples("", at(10, 1), at(11, 0)).await,
        vec![(at(10, 1), r#"{"workers":3,"status":"ok"}"#.into())],
    );
    t.check(
        "a tenant's",
        samples("acme", at(10, 0), at(11, 0)).await,
        vec![(at(10, 0), r#"{"status":"ok"}"#.into())],
    );

    // Before 10:01: two samples, two provider minutes, two error rows, four requests, one heartbeat.
    t.check("pruning says how many rows went", store.prune_health(at(10, 1)).await.unwrap(), 11);
    t.check("old samples are gone", samples("", at(10, 0), at(11, 0)).await.len(), 1);
    t.check(
        "old provider minutes are gone",
        store.provider_minutes(None, 0).await.unwrap().first().map(|row| row.start_ms),
        Some(at(10, 1)),
    );
    t.check("pruning again removes nothing", store.prune_health(at(10, 1)).await.unwrap(), 0);
    t.check("workers are kept", store.workers(None).await.unwrap().len(), 1);
    t
}
