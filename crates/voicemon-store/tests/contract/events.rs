//! Events as workers send them: contract-v1 JSON, validated by the core and costed under
//! the shipped price book, exactly as the ingest path hands them to a store.

use serde_json::{json, Value};
use std::sync::OnceLock;
use voicemon_core::pricing::PriceBook;
use voicemon_core::validate::parse_event;
use voicemon_core::window::{format_time, TimeRange, HOUR_MS, MINUTE_MS};
use voicemon_store::IngestEvent;

/// voicemon's clock in every case: 2026-11-27T12:00:00Z.
pub const NOW_MS: i64 = 1_795_780_800_000;
/// 2026-11-27T00:00:00Z, the day most cases happen on.
pub const TODAY_MS: i64 = 1_795_737_600_000;

/// `hh:mm` on 2026-11-27, in unix ms.
pub fn at(hour: i64, minute: i64) -> i64 {
    TODAY_MS + hour * HOUR_MS + minute * MINUTE_MS
}

pub fn range(from_ms: i64, to_ms: i64) -> TimeRange {
    TimeRange { from_ms, to_ms }
}

pub fn price_book() -> &'static PriceBook {
    static BOOK: OnceLock<PriceBook> = OnceLock::new();
    BOOK.get_or_init(|| PriceBook::with_overrides(&[], "").expect("the shipped price book is valid"))
}

/// An event of `kind` with the envelope given and `fields` (type fields and optional
/// envelope fields such as `call_id`, `agent_id`, `trace_id`).
pub fn event(kind: &str, id: &str, tenant: &str, at_ms: i64, fields: Value) -> IngestEvent {
    let mut json = json!({"id": id, "type": kind, "timestamp": format_time(at_ms), "tenant_id": tenant});
    let (Value::Object(object), Value::Object(fields)) = (&mut json, fields) else {
        panic!("fields must be a JSON object")
    };
    object.extend(fields);
    let event = parse_event(&json.to_string(), NOW_MS).unwrap_or_else(|err| panic!("{json}: {err:?}"));
    let costing = price_book().cost(&event);
    IngestEvent { event, costing }
}

pub fn call_started(id: &str, tenant: &str, call: &str, at_ms: i64) -> IngestEvent {
    event("call.started", id, tenant, at_ms, json!({"call_id": call}))
}

pub fn call_ended(
    id: &str,
    tenant: &str,
    call: &str,
    at_ms: i64,
    status: &str,
    duration_s: f64,
) -> IngestEvent {
    event(
        "call.ended",
        id,
        tenant,
        at_ms,
        json!({"call_id": call, "status": status, "duration_s": duration_s}),
    )
}

pub fn turn(id: &str, tenant: &str, call: &str, at_ms: i64, e2e_ms: f64) -> IngestEvent {
    event("turn.completed", id, tenant, at_ms, json!({"call_id": call, "turn_index": 0, "e2e_ms": e2e_ms}))
}

/// One turn per `(time, e2e_ms)`, with ids unique to the tenant, call and position.
pub fn turns(tenant: &str, call: &str, agent: &str, values: &[(i64, f64)]) -> Vec<IngestEvent> {
    values
        .iter()
        .enumerate()
        .map(|(index, &(at_ms, e2e_ms))| {
            event(
                "turn.completed",
                &format!("{tenant}-{call}-turn-{index}-{at_ms}"),
                tenant,
                at_ms,
                json!({"call_id": call, "agent_id": agent, "turn_index": index, "e2e_ms": e2e_ms}),
            )
        })
        .collect()
}
