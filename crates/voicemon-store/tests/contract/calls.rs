//! Calls: one row per call filled by call.started and call.ended in either order, in one
//! batch or across batches; started and ended counts by time and tenant.

use crate::backends::on_both_backends;
use crate::events::{at, call_ended, call_started, event, range, turn};
use crate::transcript::Transcript;
use serde_json::json;
use std::sync::Arc;
use voicemon_core::event::CallStatus;
use voicemon_store::{CallRef, CallTurns, CallWindow, EndedCall, Store};

#[tokio::test]
async fn a_call_is_one_row_whichever_of_start_and_end_comes_first() {
    on_both_backends(start_and_end_in_any_order).await;
}

async fn start_and_end_in_any_order(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let first = vec![
        // c1 starts now and ends in the next batch.
        event("call.started", "c1-s", "acme", at(10, 0), json!({"call_id": "c1", "objective": "booking"})),
        // c2's end arrives a batch before its start.
        event(
            "call.ended",
            "c2-e",
            "acme",
            at(10, 10),
            json!({"call_id": "c2", "status": "failed", "ended_reason": "stt_timeout", "duration_s": 480.0,
                   "objective": "support", "trace_id": "tr-2"}),
        ),
        // c3 ends and starts in one batch, the end listed first.
        call_ended("c3-e", "acme", "c3", at(10, 30), "abandoned", 12.5),
        call_started("c3-s", "acme", "c3", at(10, 29)),
        // c4 never ends; c5 is another tenant's.
        call_started("c4-s", "acme", "c4", at(10, 20)),
        call_started("c5-s", "globex", "c5", at(10, 15)),
        call_ended("c5-e", "globex", "c5", at(10, 16), "transferred", 60.0),
    ];
    store.write_batch(first).await.expect("the first batch is stored");
    let second = vec![
        call_ended("c1-e", "acme", "c1", at(10, 5), "completed", 300.25),
        event("call.started", "c2-s", "acme", at(10, 2), json!({"call_id": "c2", "objective": "sales"})),
    ];
    store.write_batch(second).await.expect("the second batch is stored");

    let hour = range(at(10, 0), at(11, 0));
    t.check(
        "acme started four calls, one still open",
        store.started_calls(Some("acme"), hour).await.unwrap(),
        (4, 1),
    );
    t.check("every tenant started five", store.started_calls(None, hour).await.unwrap(), (5, 1));
    t.check("globex started one", store.started_calls(Some("globex"), hour).await.unwrap(), (1, 0));
    t.check(
        "a start at the range's end is outside it",
        store.started_calls(Some("acme"), range(at(10, 2), at(10, 20))).await.unwrap(),
        (1, 0),
    );

    let ended =
        |ended_ms, status: &str, reason: Option<&str>, duration_s, objective: Option<&str>| EndedCall {
            ended_ms,
            status: CallStatus::parse(status).expect("a call status"),
            ended_reason: reason.map(Into::into),
            duration_s,
            objective: objective.map(Into::into),
        };
    t.check(
        "acme's ended calls, each with what its start and end said",
        by_end(store.ended_calls(Some("acme"), hour).await.unwrap()),
        vec![
            ended(at(10, 5), "completed", None, 300.25, Some("booking")),
            ended(at(10, 10), "failed", Some("stt_timeout"), 480.0, Some("sales")),
            ended(at(10, 30), "abandoned", None, 12.5, None),
        ],
    );
    t.check("every tenant's ended calls", by_end(store.ended_calls(None, hour).await.unwrap()).len(), 4);
    t.check(
        "an end at the range's end is outside it",
        by_end(store.ended_calls(None, range(at(10, 10), at(10, 30))).await.unwrap()).len(),
        2,
    );

    let c2 = store.call_cost(Some("acme"), &CallRef::CallId("c2".into())).await.unwrap().expect("c2 exists");
    t.check(
        "the late start kept what the end said",
        (c2.first_ms, c2.duration_s, c2.status.as_deref(), c2.trace_id.as_deref()),
        (Some(at(10, 2)), Some(480.0), Some("failed"), Some("tr-2")),
    );
    let c4 = store.call_cost(None, &CallRef::CallId("c4".into())).await.unwrap().expect("c4 exists");
    t.check("an open call has no status yet", (c4.duration_s, c4.status), (None, None));
    t
}

#[tokio::test]
async fn a_calls_first_time_is_its_earliest_event_whatever_the_order_and_the_flushes() {
    on_both_backends(first_times).await;
}

/// A call's events arrive out of order across batches and flushes (a flush writes a first
/// time only where it moves earlier than the one the store is known to hold): its first
/// time is always its earliest event's, and cost ranges find it there.
async fn first_times(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let first_of = |call: &'static str| {
        let store = Arc::clone(&store);
        async move {
            let found = store.call_cost(Some("acme"), &CallRef::CallId(call.into())).await.expect("read");
            found.expect("the call exists").first_ms
        }
    };
    let mut n = 0;
    let mut write = |call: &str, minutes: &[i64]| {
        let batch: Vec<_> = minutes
            .iter()
            .map(|minute| {
                n += 1;
                turn(&format!("ft{n}"), "acme", call, at(10, *minute), 500.0)
            })
            .collect();
        let store = Arc::clone(&store);
        async move { store.write_batch(batch).await.expect("stored") }
    };
    write("f1", &[5]).await;
    store.flush_derived().await.expect("flushed");
    t.check("a new call starts at its event", first_of("f1").await, Some(at(10, 5)));
    write("f1", &[7]).await;
    store.flush_derived().await.expect("flushed");
    t.check("a later event leaves it", first_of("f1").await, Some(at(10, 5)));
    write("f1", &[3]).await;
    t.check("an earlier one moves it, before a flush", first_of("f1").await, Some(at(10, 3)));
    write("f1", &[4, 9]).await;
    store.flush_derived().await.expect("flushed");
    t.check("and it stays there", first_of("f1").await, Some(at(10, 3)));
    write("f2", &[20, 15, 18]).await;
    t.check("a new call's earliest event of its first batch", first_of("f2").await, Some(at(10, 15)));
    let ids = |calls: Vec<voicemon_store::CallCostTotal>| {
        let mut ids: Vec<String> = calls.into_iter().map(|call| call.call_id).collect();
        ids.sort();
        ids
    };
    t.check(
        "cost ranges find each call at its first time",
        (
            ids(store.call_costs(Some("acme"), range(at(10, 3), at(10, 4))).await.expect("read")),
            ids(store.call_costs(Some("acme"), range(at(10, 4), at(10, 16))).await.expect("read")),
        ),
        (vec!["f1".to_owned()], vec!["f2".to_owned()]),
    );
    t
}

/// Calls in end order (the contract does not order them).
fn by_end(mut calls: Vec<EndedCall>) -> Vec<EndedCall> {
    calls.sort_by(|a, b| (a.ended_ms, &a.status).cmp(&(b.ended_ms, &b.status)));
    calls
}

#[tokio::test]
async fn the_call_explorer_reads_a_window_of_calls_with_their_turns_and_one_call_whole() {
    on_both_backends(call_explorer).await;
}

async fn call_explorer(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let turn = |id: &str, call: &str, at_ms: i64, index: u32, e2e: f64, llm: f64| {
        event(
            "turn.completed",
            id,
            "acme",
            at_ms,
            json!({"call_id": call, "agent_id": "support-bot", "turn_index": index, "e2e_ms": e2e,
                   "stt_ms": 210.5, "llm_ttft_ms": llm, "tts_ttfb_ms": 150.0, "interrupted": index == 1,
                   "tool_calls": 1}),
        )
    };
    let batch = vec![
        event(
            "call.started",
            "s1",
            "acme",
            at(10, 0),
            json!({"call_id": "slow", "agent_id": "support-bot", "objective": "booking"}),
        ),
        // Out of order: turn 1 before turn 0.
        turn("t1", "slow", at(10, 2), 1, 2400.0, 1900.0),
        turn("t0", "slow", at(10, 1), 0, 700.0, 300.0),
        event(
            "llm.usage",
            "u1",
            "acme",
            at(10, 2),
            json!({"call_id": "slow", "provider": "openai", "model": "gpt-4o-mini",
              "input_tokens": 1000, "output_tokens": 100}),
        ),
        event(
            "provider.request",
            "r1",
            "acme",
            at(10, 2),
            json!({"call_id": "slow", "provider": "openai", "component": "llm",
              "ok": false, "latency_ms": 1900.0, "error": "timeout"}),
        ),
        call_ended("e1", "acme", "slow", at(10, 4), "failed", 240.0),
        // A call without turns, one of another agent, one outside the window, another tenant's.
        event(
            "call.started",
            "s2",
            "acme",
            at(10, 10),
            json!({"call_id": "quiet", "agent_id": "support-bot"}),
        ),
        event("call.started", "s3", "acme", at(10, 20), json!({"call_id": "sales", "agent_id": "sales-bot"})),
        event(
            "call.started",
            "s4",
            "acme",
            at(11, 30),
            json!({"call_id": "later", "agent_id": "support-bot"}),
        ),
        event("call.started", "s5", "globex", at(10, 5), json!({"call_id": "theirs"})),
    ];
    store.write_batch(batch).await.expect("stored");

    let window = |agent: Option<&str>, provider: Option<&str>, limit: usize| CallWindow {
        tenant_id: "acme".into(),
        range: range(at(10, 0), at(11, 0)),
        agent_id: agent.map(Into::into),
        objective: None,
        provider: provider.map(Into::into),
        limit,
    };
    let ids =
        |calls: &[CallTurns]| calls.iter().map(|c| c.call_id.clone()).collect::<Vec<String>>().join(",");
    let all = store.window_calls(window(None, None, 100)).await.unwrap();
    t.check("acme's calls of the hour, oldest first", ids(&all), "slow,quiet,sales".to_owned());
    let slow = &all[0];
    t.check(
        "a call's facts",
        (slow.agent_id.as_deref(), slow.objective.as_deref(), slow.status, slow.duration_s, slow.first_ms),
        (Some("support-bot"), Some("booking"), Some(CallStatus::Failed), Some(240.0), at(10, 0)),
    );
    t.check("its cost, after the flush", (slow.cost_nano > 0, slow.unpriced_lines), (true, 0));
    let turns: Vec<_> = slow
        .turns
        .iter()
        .map(|turn| (turn.turn_index, turn.e2e_ms, turn.llm_ttft_ms, turn.interrupted))
        .collect();
    t.check(
        "its turns in order, with their components",
        turns,
        vec![(0, 700.0, Some(300.0), Some(false)), (1, 2400.0, Some(1900.0), Some(true))],
    );
    t.check(
        "a turn's other components",
        (slow.turns[0].stt_ms, slow.turns[0].eou_ms, slow.turns[0].tts_ttfb_ms, slow.turns[0].tool_calls),
        (Some(210.5), None, Some(150.0), Some(1)),
    );
    t.check("a call without turns has none", all[1].turns.len(), 0);
    t.check(
        "one agent's",
        ids(&store.window_calls(window(Some("sales-bot"), None, 100)).await.unwrap()),
        "sales".to_owned(),
    );
    t.check(
        "the calls that used a provider",
        ids(&store.window_calls(window(None, Some("openai"), 100)).await.unwrap()),
        "slow".to_owned(),
    );
    t.check(
        "at most `limit`",
        ids(&store.window_calls(window(None, None, 2)).await.unwrap()),
        "slow,quiet".to_owned(),
    );

    let (call, requests) = store.call_record("acme", "slow").await.unwrap().expect("the call");
    t.check("one call whole: its turns", call.turns.len(), 2);
    t.check(
        "and its provider requests",
        requests
            .iter()
            .map(|r| (r.provider.clone(), r.ok, r.latency_ms, r.error.clone()))
            .collect::<Vec<_>>(),
        vec![("openai".to_owned(), false, Some(1900.0), Some("timeout".to_owned()))],
    );
    t.check(
        "another tenant's call is not found",
        store.call_record("acme", "theirs").await.unwrap().is_none(),
        true,
    );
    t
}

#[tokio::test]
async fn the_call_explorer_and_one_calls_cost_merge_unflushed_call_totals_without_flushing() {
    on_both_backends(explorer_half_flushed).await;
}

/// The first batch flushed, the second pending. Pending events add cost to a flushed call
/// (c1), move a call's first event into the hour (c2) or out of it (c3), and make a call
/// of its own (c4). The explorer's window, one call whole and one call's cost merge all of
/// it, flush nothing, and answer the same once all is flushed.
async fn explorer_half_flushed(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let llm = |id: &str, call: &str, at_ms: i64| {
        let fields = json!({"call_id": call, "provider": "openai", "model": "gpt-4o-mini",
            "input_tokens": 1000, "output_tokens": 100});
        event("llm.usage", id, "acme", at_ms, fields)
    };
    let tts = |id: &str, call: &str, at_ms: i64| {
        let fields = json!({"call_id": call, "provider": "cartesia", "model": "sonic-2", "characters": 300});
        event("tts.usage", id, "acme", at_ms, fields)
    };
    let first = vec![
        turn("f1", "acme", "c1", at(10, 5), 700.0),
        llm("f2", "c1", at(10, 6)),
        turn("f3", "acme", "c2", at(11, 10), 800.0),
        llm("f4", "c2", at(11, 10)),
        turn("f5", "acme", "c3", at(10, 30), 900.0),
        llm("f6", "c3", at(10, 30)),
    ];
    let second = vec![
        tts("s1", "c1", at(10, 20)),
        turn("s2", "acme", "c2", at(10, 40), 1000.0),
        llm("s3", "c3", at(9, 50)),
        turn("s4", "acme", "c4", at(10, 50), 1100.0),
        tts("s5", "c4", at(10, 50)),
        turn("s6", "globex", "g1", at(10, 15), 1200.0),
    ];
    let (line, voice) = (crate::cost::nanos(&first[1]), crate::cost::nanos(&second[0]));
    store.write_batch(first).await.expect("stored");
    t.check("the first batch is flushed", store.flush_derived().await.expect("flushed") > 0, true);
    store.write_batch(second).await.expect("stored");

    let window = |limit: usize| CallWindow {
        tenant_id: "acme".into(),
        range: range(at(10, 0), at(11, 0)),
        agent_id: None,
        objective: None,
        provider: None,
        limit,
    };
    let summary = |call: &CallTurns| {
        let turns: Vec<f64> = call.turns.iter().map(|turn| turn.e2e_ms).collect();
        (call.call_id.clone(), call.first_ms, call.cost_nano, turns)
    };
    let answers = || async {
        let all = store.window_calls(window(100)).await.expect("a window read");
        let two = store.window_calls(window(2)).await.expect("a window read");
        let whole = |call: &'static str| {
            let store = Arc::clone(&store);
            async move {
                let (call, _) = store.call_record("acme", call).await.expect("read").expect("the call");
                summary(&call)
            }
        };
        let cost_first = |tenant: Option<&'static str>, call: &'static str| {
            let store = Arc::clone(&store);
            async move {
                let found = store.call_cost(tenant, &CallRef::CallId(call.into())).await.expect("read");
                found.map(|cost| (cost.first_ms, cost.lines.len()))
            }
        };
        (
            all.iter().map(summary).collect::<Vec<_>>(),
            two.iter().map(|call| call.call_id.clone()).collect::<Vec<_>>(),
            (whole("c3").await, whole("c4").await),
            (cost_first(Some("acme"), "c4").await, cost_first(None, "c3").await),
        )
    };
    let before = answers().await;
    t.check(
        "the window: pending cost added, first times moved in and out of the hour, a new call",
        before.0.clone(),
        vec![
            ("c1".to_owned(), at(10, 5), line + voice, vec![700.0]),
            ("c2".to_owned(), at(10, 40), line, vec![1000.0, 800.0]),
            ("c4".to_owned(), at(10, 50), voice, vec![1100.0]),
        ],
    );
    t.check("at most `limit`, by merged first time", before.1.clone(), vec!["c1".to_owned(), "c2".into()]);
    t.check(
        "one call whole: a flushed call moved earlier, a call only pending",
        before.2.clone(),
        (
            ("c3".to_owned(), at(9, 50), 2 * line, vec![900.0]),
            ("c4".to_owned(), at(10, 50), voice, vec![1100.0]),
        ),
    );
    t.check(
        "one call's cost: its merged first time and its lines",
        before.3,
        (Some((Some(at(10, 50)), 1)), Some((Some(at(9, 50)), 2))),
    );
    t.check("the reads flushed nothing", store.flush_derived().await.expect("flushed") > 0, true);
    t.check("the same answers after the flush", answers().await, before);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_during_group_commits_never_sees_raw_facts_without_their_derived_data() {
    on_both_backends(reads_during_commits).await;
}

/// Two writers commit batches of 20 calls (a turn and a priced LLM line of one call in
/// each batch, ten batches a call) while a reader lists the calls again and again: every
/// call it sees has exactly the cost of the turns it sees (a turn is raw, written by its
/// commit; cost is derived, merged from what is pending).
async fn reads_during_commits(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    const BATCHES: usize = 200;
    const CALLS: usize = 20;
    let batch = |n: usize| {
        let call = format!("c{}", n % CALLS);
        vec![
            event(
                "turn.completed",
                &format!("t{n}"),
                "acme",
                at(10, 0) + n as i64,
                json!({"call_id": call, "turn_index": n / CALLS, "e2e_ms": 900.0}),
            ),
            event(
                "llm.usage",
                &format!("u{n}"),
                "acme",
                at(10, 0) + n as i64,
                json!({"call_id": call, "provider": "openai", "model": "gpt-4o-mini",
                       "input_tokens": 1000, "output_tokens": 100}),
            ),
        ]
    };
    let line = crate::cost::nanos(&batch(0)[1]);
    let writer = |offset: usize| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for n in (offset..BATCHES).step_by(2) {
                store.write_batch(batch(n)).await.expect("stored");
            }
        })
    };
    let writers = [writer(0), writer(1)];
    let window = CallWindow {
        tenant_id: "acme".into(),
        range: range(at(10, 0), at(11, 0)),
        agent_id: None,
        objective: None,
        provider: None,
        limit: 1000,
    };
    let mut reads = 0;
    let mut torn = Vec::new();
    while writers.iter().any(|w| !w.is_finished()) || reads == 0 {
        let calls = store.window_calls(window.clone()).await.expect("read");
        torn.extend(
            calls
                .iter()
                .filter(|c| c.cost_nano != line * c.turns.len() as i64)
                .map(|c| (c.call_id.clone(), c.turns.len(), c.cost_nano / line)),
        );
        reads += 1;
    }
    for writer in writers {
        writer.await.expect("the writer ends");
    }
    t.check("calls seen with turns and cost that disagree", torn, Vec::new());
    let calls = store.window_calls(window).await.expect("read");
    t.check(
        "every call stored, each with its ten turns and their cost",
        calls.iter().filter(|c| c.turns.len() == 10 && c.cost_nano == 10 * line).count(),
        CALLS,
    );
    t
}
