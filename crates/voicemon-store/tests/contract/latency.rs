//! Latency rollups: minute and hour sketches per series, merged whatever order events
//! arrive in; every filter; an hour always equals the merge of its minutes.

use crate::backends::on_both_backends;
use crate::events::{at, event, range, turns};
use crate::transcript::Transcript;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use voicemon_core::latency::{Component, Source};
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::{hour_of, minute_of, HOUR_MS};
use voicemon_store::{IngestEvent, LatencyFilter, Resolution, Store};

pub fn sketch_of(values: &[f64]) -> LatencySketch {
    let mut sketch = LatencySketch::new();
    values.iter().for_each(|&value| sketch.add(value));
    sketch
}

pub fn merged(rows: &[(i64, LatencySketch)]) -> LatencySketch {
    let mut sketch = LatencySketch::new();
    rows.iter().for_each(|(_, row)| sketch.merge(row));
    sketch
}

pub fn turn_e2e(tenant: Option<&str>) -> LatencyFilter {
    LatencyFilter {
        tenant_id: tenant.map(Into::into),
        component: Component::TurnE2e,
        source: Source::Turn,
        agent_id: None,
        provider: None,
        model: None,
    }
}

fn usage_filter(
    component: Component,
    tenant: Option<&str>,
    provider: &str,
    model: Option<&str>,
) -> LatencyFilter {
    LatencyFilter {
        tenant_id: tenant.map(Into::into),
        component,
        source: Source::Usage,
        agent_id: None,
        provider: Some(provider.into()),
        model: model.map(Into::into),
    }
}

/// Rows in a stable order (the contract does not order them), sketches encoded.
fn ordered(rows: &[(i64, LatencySketch)]) -> Vec<(i64, Vec<u8>)> {
    let mut rows: Vec<(i64, Vec<u8>)> = rows.iter().map(|(at, sketch)| (*at, sketch.encode())).collect();
    rows.sort();
    rows
}

/// A turn the latency cases send: tenant, agent, minute of the day, e2e ms.
type Turn = (&'static str, &'static str, i64, f64);

const TURNS: &[Turn] = &[
    ("acme", "receptionist", 9 * 60 + 5, 620.0),
    ("acme", "receptionist", 9 * 60 + 40, 900.0),
    ("acme", "receptionist", 10 * 60, 700.0),
    ("acme", "receptionist", 10 * 60 + 30, 1500.0),
    ("acme", "receptionist", 11 * 60 + 5, 450.0),
    ("acme", "receptionist", 11 * 60 + 20, 820.0),
    ("acme", "sales", 9 * 60 + 10, 300.0),
    ("acme", "sales", 10 * 60 + 10, 2500.0),
    ("acme", "sales", 10 * 60 + 59, 333.0),
    ("acme", "sales", 11 * 60 + 10, 777.0),
    ("globex", "receptionist", 10 * 60 + 15, 5000.0),
];

/// Sent last, into minutes that already hold values (one below the sketch's zero bucket).
const LATE_TURNS: &[Turn] = &[
    ("acme", "receptionist", 10 * 60, 710.0),
    ("acme", "receptionist", 10 * 60 + 30, 1490.0),
    ("acme", "receptionist", 9 * 60 + 5, 0.004),
];

fn all_turns() -> impl Iterator<Item = &'static Turn> {
    TURNS.iter().chain(LATE_TURNS)
}

fn turn_events(batch: &str, sent: &[Turn]) -> Vec<IngestEvent> {
    sent.iter()
        .enumerate()
        .flat_map(|(index, &(tenant, agent, minute, e2e))| {
            // Seconds into the minute vary, so a minute is rolled up from several instants.
            let at_ms = at(0, minute) + (index as i64 * 7_919) % 60_000;
            turns(tenant, &format!("{batch}-{index}"), agent, &[(at_ms, e2e)])
        })
        .collect()
}

/// The e2e values of the turns `select` picks by tenant, agent and time.
fn values(select: impl Fn(&str, &str, i64) -> bool) -> Vec<f64> {
    all_turns()
        .filter(|(tenant, agent, minute, _)| select(tenant, agent, at(0, *minute)))
        .map(|t| t.3)
        .collect()
}

fn usage_events() -> Vec<IngestEvent> {
    let usage = |kind: &str, id: &str, tenant: &str, minute: i64, mut fields: serde_json::Value| {
        fields["call_id"] = json!("call-u");
        event(kind, id, tenant, at(10, minute), fields)
    };
    vec![
        usage(
            "stt.usage",
            "u1",
            "acme",
            5,
            json!({"provider": "deepgram", "model": "nova-3", "audio_seconds": 3.0, "latency_ms": 120.0}),
        ),
        usage(
            "stt.usage",
            "u2",
            "acme",
            6,
            json!({"provider": "deepgram", "model": "nova-2", "audio_seconds": 2.0, "latency_ms": 200.0}),
        ),
        usage(
            "stt.usage",
            "u3",
            "acme",
            7,
            json!({"provider": "assemblyai", "audio_seconds": 2.0, "latency_ms": 150.0}),
        ),
        usage(
            "llm.usage",
            "u4",
            "acme",
            8,
            json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 900, "output_tokens": 40,
                   "ttft_ms": 400.0}),
        ),
        usage(
            "tts.usage",
            "u5",
            "acme",
            9,
            json!({"provider": "cartesia", "model": "sonic-2", "characters": 120, "ttfb_ms": 90.0}),
        ),
        usage(
            "stt.usage",
            "u6",
            "globex",
            9,
            json!({"provider": "deepgram", "model": "nova-3", "audio_seconds": 1.0, "latency_ms": 130.0}),
        ),
    ]
}

/// Hour 11 first, then hours 9 and 10, then usage, then the late turns: each a batch.
async fn write_out_of_order(store: &dyn Store) {
    let (eleven, earlier): (Vec<Turn>, Vec<Turn>) = TURNS.iter().partition(|turn| turn.2 >= 11 * 60);
    let batches = [
        turn_events("eleven", &eleven),
        turn_events("earlier", &earlier),
        usage_events(),
        turn_events("late", LATE_TURNS),
    ];
    for batch in batches {
        store.write_batch(batch).await.expect("the batch is stored");
    }
}

#[tokio::test]
async fn minute_rollups_hold_every_value_of_their_minute_whatever_the_arrival_order() {
    on_both_backends(minute_rollups).await;
}

async fn minute_rollups(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    write_out_of_order(&*store).await;
    let morning = range(at(9, 0), at(12, 0));
    let read = |filter: LatencyFilter, range| {
        let store = Arc::clone(&store);
        async move { store.latency_sketches(&filter, range, Resolution::Minute).await.expect("rollups read") }
    };

    let acme = read(turn_e2e(Some("acme")), morning).await;
    let expected_rows: Vec<i64> = {
        let series: BTreeSet<(i64, &str)> = all_turns()
            .filter(|turn| turn.0 == "acme")
            .map(|turn| (minute_of(at(0, turn.2)), turn.1))
            .collect();
        series.into_iter().map(|(minute, _)| minute).collect()
    };
    t.check(
        "one row per minute and agent",
        ordered(&acme).into_iter().map(|row| row.0).collect::<Vec<_>>(),
        expected_rows,
    );
    t.note("acme's minute rows", ordered(&acme));
    t.check(
        "acme's minutes merge to all its turns",
        merged(&acme),
        sketch_of(&values(|tenant, _, _| tenant == "acme")),
    );

    let mut sales = turn_e2e(Some("acme"));
    sales.agent_id = Some("sales".into());
    let sales_rows = read(sales, morning).await;
    t.check("the agent filter", merged(&sales_rows), sketch_of(&values(|_, agent, _| agent == "sales")));
    t.check(
        "no tenant reads every tenant",
        merged(&read(turn_e2e(None), morning).await),
        sketch_of(&values(|_, _, _| true)),
    );
    t.check(
        "the range is half-open",
        merged(&read(turn_e2e(Some("acme")), range(at(9, 5), at(10, 0))).await),
        sketch_of(&values(|tenant, _, time| tenant == "acme" && (at(9, 5)..at(10, 0)).contains(&time))),
    );
    t.check("an unknown tenant has no rows", read(turn_e2e(Some("initech")), morning).await, Vec::new());

    let usage =
        |component, tenant, provider, model| read(usage_filter(component, tenant, provider, model), morning);
    t.check(
        "one provider",
        merged(&usage(Component::Stt, Some("acme"), "deepgram", None).await),
        sketch_of(&[120.0, 200.0]),
    );
    t.check(
        "one provider's model",
        merged(&usage(Component::Stt, Some("acme"), "deepgram", Some("nova-3")).await),
        sketch_of(&[120.0]),
    );
    t.check(
        "one provider across tenants",
        merged(&usage(Component::Stt, None, "deepgram", Some("nova-3")).await),
        sketch_of(&[120.0, 130.0]),
    );
    t.check(
        "a provider without a model",
        merged(&usage(Component::Stt, Some("acme"), "assemblyai", Some("")).await),
        sketch_of(&[150.0]),
    );
    t.check(
        "llm ttft",
        merged(&usage(Component::LlmTtft, None, "openai", Some("gpt-4o")).await),
        sketch_of(&[400.0]),
    );
    t.check("tts ttfb", merged(&usage(Component::TtsTtfb, None, "cartesia", None).await), sketch_of(&[90.0]));
    t.check("turns have no provider", usage(Component::TurnE2e, None, "deepgram", None).await, Vec::new());
    t
}

#[tokio::test]
async fn an_hour_rollup_equals_the_merge_of_its_minutes() {
    on_both_backends(hour_rollups).await;
}

async fn hour_rollups(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    write_out_of_order(&*store).await;
    let read = |range, resolution| {
        let store = Arc::clone(&store);
        async move { store.latency_sketches(&turn_e2e(None), range, resolution).await.expect("rollups read") }
    };
    let hours = read(range(at(9, 0), at(12, 0)), Resolution::Hour).await;
    t.check(
        "whole hours are read from hour rows",
        ordered(&hours).into_iter().map(|row| row.0).collect::<BTreeSet<_>>(),
        BTreeSet::from([at(9, 0), at(10, 0), at(11, 0)]),
    );
    t.note("hour rows", ordered(&hours));
    for hour in [at(9, 0), at(10, 0), at(11, 0)] {
        let of_hour: Vec<_> = hours.iter().filter(|row| row.0 == hour).cloned().collect();
        let minutes = read(range(hour, hour + HOUR_MS), Resolution::Minute).await;
        t.check(&format!("hour {hour} is the merge of its minutes"), merged(&of_hour), merged(&minutes));
        t.check(
            &format!("hour {hour} holds its turns"),
            merged(&of_hour),
            sketch_of(&values(|_, _, time| hour_of(time) == hour)),
        );
    }

    let ragged = read(range(at(9, 30), at(11, 15)), Resolution::Hour).await;
    let minute_rows = |from, to| {
        let series: BTreeSet<(i64, &str, &str)> = all_turns()
            .filter(|turn| (from..to).contains(&at(0, turn.2)))
            .map(|turn| (minute_of(at(0, turn.2)), turn.0, turn.1))
            .collect();
        series.into_iter().map(|row| row.0).collect::<Vec<_>>()
    };
    let mut expected_starts = minute_rows(at(9, 30), at(10, 0));
    expected_starts.extend([at(10, 0); 3]); // acme receptionist, acme sales, globex receptionist
    expected_starts.extend(minute_rows(at(11, 0), at(11, 15)));
    t.check(
        "a ragged range reads minutes at its edges and hours between",
        ordered(&ragged).into_iter().map(|row| row.0).collect::<Vec<_>>(),
        expected_starts,
    );
    t.check(
        "and merges to the same as minutes alone",
        merged(&ragged),
        merged(&read(range(at(9, 30), at(11, 15)), Resolution::Minute).await),
    );
    t.check(
        "a range within one hour reads minutes only",
        ordered(&read(range(at(10, 15), at(10, 45)), Resolution::Hour).await),
        ordered(&read(range(at(10, 15), at(10, 45)), Resolution::Minute).await),
    );
    t
}

#[tokio::test]
async fn latency_by_tenant_merges_each_tenant_or_each_tenant_and_provider() {
    on_both_backends(latency_by_tenant).await;
}

async fn latency_by_tenant(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    write_out_of_order(&*store).await;
    let morning = range(at(9, 0), at(12, 0));
    t.check(
        "per tenant, from turns",
        store.latency_by_tenant(Component::TurnE2e, morning, false).await.unwrap(),
        vec![
            ("acme".into(), String::new(), sketch_of(&values(|tenant, _, _| tenant == "acme"))),
            ("globex".into(), String::new(), sketch_of(&values(|tenant, _, _| tenant == "globex"))),
        ],
    );
    t.check(
        "per tenant and provider, from usage",
        store.latency_by_tenant(Component::Stt, morning, true).await.unwrap(),
        vec![
            ("acme".into(), "assemblyai".into(), sketch_of(&[150.0])),
            ("acme".into(), "deepgram".into(), sketch_of(&[120.0, 200.0])),
            ("globex".into(), "deepgram".into(), sketch_of(&[130.0])),
        ],
    );
    t.check(
        "only the minutes of the range",
        store.latency_by_tenant(Component::TurnE2e, range(at(11, 0), at(12, 0)), false).await.unwrap(),
        vec![("acme".into(), String::new(), sketch_of(&values(|_, _, time| time >= at(11, 0))))],
    );
    t
}

#[tokio::test]
async fn a_latency_read_counts_unflushed_data_without_waiting_for_a_flush() {
    on_both_backends(unflushed_reads).await;
}

/// Turns in hours 9 to 11, read at minute and hour resolution and by tenant before any
/// flush, then flushed and read again: the same answers, and the reads left the derived
/// data pending (the flush after them still had rows to write).
async fn unflushed_reads(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    write_out_of_order(&*store).await;
    let morning = range(at(9, 30), at(12, 0));
    let answers = || async {
        let minutes =
            store.latency_sketches(&turn_e2e(Some("acme")), morning, Resolution::Minute).await.expect("read");
        let hours = store.latency_sketches(&turn_e2e(None), morning, Resolution::Hour).await.expect("read");
        let tenants = store.latency_by_tenant(Component::TurnE2e, morning, false).await.expect("read");
        let tenants: Vec<_> =
            tenants.into_iter().map(|(tenant, _, sketch)| (tenant, sketch.encode())).collect();
        (merged(&minutes).encode(), merged(&hours).encode(), tenants)
    };
    let before = answers().await;
    t.check(
        "acme's minutes before a flush hold every turn of theirs",
        before.0.clone(),
        sketch_of(&values(|tenant, _, at_ms| tenant == "acme" && morning.contains(at_ms))).encode(),
    );
    t.check(
        "every tenant's hours before a flush",
        before.1.clone(),
        sketch_of(&values(|_, _, at_ms| morning.contains(at_ms))).encode(),
    );
    let flushed = store.flush_derived().await.expect("flushed");
    t.check("the reads flushed nothing", flushed > 0, true);
    t.check("the same answers after the flush", answers().await, before);
    t
}

#[tokio::test]
async fn latency_reads_during_commits_and_flushes_count_every_acknowledged_turn_once() {
    on_both_backends(reads_during_flushes).await;
}

/// A writer commits one turn a batch and flushes every few batches while a reader reads
/// the count again and again: each read counts at least the turns acknowledged before it
/// began and at most those whose commit had begun when it ended (a flush racing a read
/// must neither hide a commit from it nor show it twice).
async fn reads_during_flushes(store: Arc<dyn Store>) -> Transcript {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut t = Transcript::of(&*store);
    const TURNS: usize = 300;
    let (begun, acknowledged) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let writer = {
        let (store, begun, acknowledged) =
            (Arc::clone(&store), Arc::clone(&begun), Arc::clone(&acknowledged));
        tokio::spawn(async move {
            for n in 0..TURNS {
                let at_ms = at(10, (n % 90) as i64);
                begun.fetch_add(1, Ordering::SeqCst);
                store
                    .write_batch(turns("acme", &format!("c{n}"), "a", &[(at_ms, 500.0)]))
                    .await
                    .expect("stored");
                acknowledged.fetch_add(1, Ordering::SeqCst);
                if n % 7 == 6 {
                    store.flush_derived().await.expect("flushed");
                }
            }
        })
    };
    let whole = range(at(9, 0), at(12, 0));
    let mut out_of_bounds = Vec::new();
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let at_least = acknowledged.load(Ordering::SeqCst);
        let hours =
            store.latency_sketches(&turn_e2e(Some("acme")), whole, Resolution::Hour).await.expect("read");
        let tenants = store.latency_by_tenant(Component::TurnE2e, whole, false).await.expect("read");
        let at_most = begun.load(Ordering::SeqCst);
        let counts =
            [merged(&hours).count() as usize, tenants.iter().map(|row| row.2.count() as usize).sum()];
        out_of_bounds.extend(counts.into_iter().filter(|count| !(at_least..=at_most).contains(count)).map(
            |count| format!("read {count} turns while {at_least} were acknowledged and {at_most} begun"),
        ));
        reads += 1;
    }
    writer.await.expect("the writer ends");
    t.check("reads that counted a turn twice or missed one", out_of_bounds, Vec::<String>::new());
    let hours = store.latency_sketches(&turn_e2e(Some("acme")), whole, Resolution::Hour).await.expect("read");
    t.check("every turn counted at the end", merged(&hours).count() as usize, TURNS);
    t
}
