//! Calls: one row per call filled by call.started and call.ended in either order, in one
//! batch or across batches; started and ended counts by time and tenant.

use crate::backends::on_both_backends;
use crate::events::{at, call_ended, call_started, event, range};
use crate::transcript::Transcript;
use serde_json::json;
use std::sync::Arc;
use voicemon_core::event::CallStatus;
use voicemon_store::{CallRef, EndedCall, Store};

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

/// Calls in end order (the contract does not order them).
fn by_end(mut calls: Vec<EndedCall>) -> Vec<EndedCall> {
    calls.sort_by(|a, b| (a.ended_ms, &a.status).cmp(&(b.ended_ms, &b.status)));
    calls
}
