//! Ingest bodies: one object, a JSON array, or NDJSON; each event stands or falls alone,
//! and only a body that is not JSON at all (or is empty) is refused whole.

use voicemon_core::body::{for_each_event, parse_body, BodyError, Framing, LISTED_REJECTIONS};
use voicemon_core::event::{Event, EventKind};
use voicemon_core::validate::{EventError, Reason, NOT_JSON};

/// 2026-11-27T12:00:00Z.
const NOW_MS: i64 = 1_795_780_800_000;

const CALL_STARTED: &str = r#"{"id":"e1","type":"call.started","timestamp":"2026-11-27T11:59:00Z","tenant_id":"acme","call_id":"c1"}"#;
const TURN: &str = r#"{"id":"e2","type":"turn.completed","timestamp":"2026-11-27T11:59:05Z","tenant_id":"acme","call_id":"c1","turn_index":0,"e2e_ms":850}"#;
const HEARTBEAT: &str = r#"{"id":"e3","type":"worker.heartbeat","timestamp":"2026-11-27T11:59:10Z","tenant_id":"acme","worker_id":"w1","memory_used_bytes":1,"memory_limit_bytes":2,"cpu_percent":5,"active_calls":0}"#;
/// Valid JSON, invalid event: a negative latency.
const NEGATIVE_TURN: &str = r#"{"id":"e4","type":"turn.completed","timestamp":"2026-11-27T11:59:15Z","tenant_id":"acme","call_id":"c1","turn_index":1,"e2e_ms":-5}"#;
/// Valid JSON, invalid event: no call_id on a call-scoped type.
const TURN_WITHOUT_CALL: &str = r#"{"id":"e5","type":"turn.completed","timestamp":"2026-11-27T11:59:20Z","tenant_id":"acme","turn_index":2,"e2e_ms":700}"#;

/// What one event of a body came to: accepted as a kind, or rejected naming a field
/// (`None`: the event as a whole).
#[derive(Debug, PartialEq)]
enum Outcome {
    Accepted(EventKind),
    Rejected(Option<String>),
}
use Outcome::*;

/// Every event's outcome, in body order.
fn parse_all(body: &[u8], framing: Framing) -> Result<Vec<Result<Event, EventError>>, BodyError> {
    let mut all = Vec::new();
    for_each_event(body, framing, NOW_MS, |outcome| all.push(outcome))?;
    Ok(all)
}

fn outcomes(body: &str, framing: Framing) -> Result<Vec<Outcome>, BodyError> {
    let events = parse_all(body.as_bytes(), framing)?;
    Ok(events
        .into_iter()
        .map(|outcome| match outcome {
            Ok(event) => Accepted(event.kind()),
            Err(error) => {
                assert!(!error.message.is_empty());
                Rejected(error.field.map(std::borrow::Cow::into_owned))
            }
        })
        .collect())
}

fn check(body: &str, framing: Framing, expected: Vec<Outcome>) {
    match outcomes(body, framing) {
        Ok(actual) => assert_eq!(actual, expected, "{framing:?} body:\n{body}"),
        Err(error) => panic!("{framing:?} body refused whole ({error}):\n{body}"),
    }
}

fn check_refused(body: &[u8], framing: Framing, expected: fn(&BodyError) -> bool) {
    match parse_all(body, framing) {
        Err(error) if expected(&error) => {}
        other => panic!("{framing:?} body {:?}: unexpected {other:?}", String::from_utf8_lossy(body)),
    }
}

fn lines(events: &[&str]) -> String {
    events.join("\n")
}

// ---------------------------------------------------------------------------------------
// Shapes.

#[test]
fn a_single_object_is_one_event() {
    check(TURN, Framing::Json, vec![Accepted(EventKind::TurnCompleted)]);
}

#[test]
fn a_pretty_printed_object_is_one_event() {
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(TURN).unwrap()).unwrap();
    assert!(pretty.contains('\n'));
    check(&pretty, Framing::Json, vec![Accepted(EventKind::TurnCompleted)]);
}

#[test]
fn a_json_array_is_one_event_per_element_in_order() {
    let body = format!("[{CALL_STARTED}, {TURN}, {HEARTBEAT}]");
    check(
        &body,
        Framing::Json,
        vec![
            Accepted(EventKind::CallStarted),
            Accepted(EventKind::TurnCompleted),
            Accepted(EventKind::WorkerHeartbeat),
        ],
    );
}

#[test]
fn a_pretty_printed_array_is_one_event_per_element() {
    let body = format!("[\n  {CALL_STARTED},\n  {TURN}\n]\n");
    check(&body, Framing::Json, vec![Accepted(EventKind::CallStarted), Accepted(EventKind::TurnCompleted)]);
}

#[test]
fn an_empty_array_is_no_events() {
    check("[]", Framing::Json, vec![]);
}

#[test]
fn ndjson_is_one_event_per_line() {
    check(
        &lines(&[CALL_STARTED, TURN, HEARTBEAT]),
        Framing::Ndjson,
        vec![
            Accepted(EventKind::CallStarted),
            Accepted(EventKind::TurnCompleted),
            Accepted(EventKind::WorkerHeartbeat),
        ],
    );
}

#[test]
fn ndjson_ignores_blank_lines_crlf_and_a_trailing_newline() {
    let body = format!("\r\n{CALL_STARTED}\r\n\r\n   \n{TURN}\r\n");
    check(&body, Framing::Ndjson, vec![Accepted(EventKind::CallStarted), Accepted(EventKind::TurnCompleted)]);
}

#[test]
fn a_single_object_with_ndjson_framing_is_one_event() {
    check(TURN, Framing::Ndjson, vec![Accepted(EventKind::TurnCompleted)]);
}

#[test]
fn newline_separated_objects_without_ndjson_framing_are_read_as_lines() {
    check(
        &format!("{}\n", lines(&[CALL_STARTED, TURN, HEARTBEAT])),
        Framing::Json,
        vec![
            Accepted(EventKind::CallStarted),
            Accepted(EventKind::TurnCompleted),
            Accepted(EventKind::WorkerHeartbeat),
        ],
    );
}

#[test]
fn a_byte_order_mark_before_the_body_is_ignored() {
    let body = format!("\u{feff}{TURN}");
    check(&body, Framing::Json, vec![Accepted(EventKind::TurnCompleted)]);
    check(&body, Framing::Ndjson, vec![Accepted(EventKind::TurnCompleted)]);
}

// ---------------------------------------------------------------------------------------
// One bad event never costs the good ones.

#[test]
fn a_mixed_array_rejects_bad_events_at_their_index_and_keeps_the_rest() {
    let body = format!("[{CALL_STARTED}, {NEGATIVE_TURN}, {TURN}, {TURN_WITHOUT_CALL}]");
    check(
        &body,
        Framing::Json,
        vec![
            Accepted(EventKind::CallStarted),
            Rejected(Some("e2e_ms".into())),
            Accepted(EventKind::TurnCompleted),
            Rejected(Some("call_id".into())),
        ],
    );
}

#[test]
fn mixed_ndjson_rejects_bad_lines_at_their_index_and_keeps_the_rest() {
    let body = lines(&[NEGATIVE_TURN, CALL_STARTED, "{not json", TURN_WITHOUT_CALL, HEARTBEAT]);
    let expected = || {
        vec![
            Rejected(Some("e2e_ms".into())),
            Accepted(EventKind::CallStarted),
            Rejected(None),
            Rejected(Some("call_id".into())),
            Accepted(EventKind::WorkerHeartbeat),
        ]
    };
    check(&body, Framing::Ndjson, expected());
    check(&body, Framing::Json, expected());
}

#[test]
fn a_line_that_is_not_json_is_rejected_saying_so() {
    let events = parse_all(lines(&[TURN, "{\"id\": oops}"]).as_bytes(), Framing::Ndjson).unwrap();
    assert!(events[0].is_ok());
    let error = events[1].as_ref().unwrap_err();
    assert_eq!(error.field, None);
    assert!(error.message.starts_with(NOT_JSON), "{error:?}");
}

#[test]
fn an_array_element_that_is_not_an_object_is_rejected_at_its_index_only() {
    let body = format!("[{TURN}, 42, {CALL_STARTED}, \"hello\", null]");
    check(
        &body,
        Framing::Json,
        vec![
            Accepted(EventKind::TurnCompleted),
            Rejected(None),
            Accepted(EventKind::CallStarted),
            Rejected(None),
            Rejected(None),
        ],
    );
    let events = parse_all(body.as_bytes(), Framing::Json).unwrap();
    let error = events[1].as_ref().unwrap_err();
    assert!(error.message.contains("JSON object"), "{error:?}");
    assert_eq!(error.reason, Reason::NotAnObject);
}

#[test]
fn a_single_invalid_event_is_a_body_of_one_rejection_not_a_refused_body() {
    check(NEGATIVE_TURN, Framing::Json, vec![Rejected(Some("e2e_ms".into()))]);
    check(NEGATIVE_TURN, Framing::Ndjson, vec![Rejected(Some("e2e_ms".into()))]);
}

// ---------------------------------------------------------------------------------------
// Refused whole.

#[test]
fn a_body_that_is_not_json_at_all_is_refused_whole_in_both_framings() {
    for body in [
        "hello world",
        "<html><body>502</body></html>",
        "id=e1&type=turn.completed",
        "{oops",
        "{\"id\": \"e1\"",
    ] {
        for framing in [Framing::Json, Framing::Ndjson] {
            check_refused(body.as_bytes(), framing, |e| matches!(e, BodyError::NotJson(_)));
        }
    }
}

#[test]
fn malformed_json_whose_first_problem_is_a_wrong_type_is_still_refused_as_not_json() {
    // serde reports the first problem it meets; a wrong type met before the syntax error
    // must not make a body that is not JSON look like JSON with one bad event.
    for body in ["[1, 2", "{\"id\": 5, oops", "[{}, {}"] {
        check_refused(body.as_bytes(), Framing::Ndjson, |e| matches!(e, BodyError::NotJson(_)));
    }
}

#[test]
fn ndjson_whose_every_line_is_not_json_is_refused_whole() {
    check_refused(b"hello\nworld\n", Framing::Ndjson, |e| matches!(e, BodyError::NotJson(_)));
    check_refused(b"{oops\n{oops", Framing::Ndjson, |e| matches!(e, BodyError::NotJson(_)));
}

#[test]
fn lines_of_broken_objects_without_ndjson_framing_are_refused_whole_too() {
    // The same body is refused whole with NDJSON framing; it is no more JSON without it.
    check_refused(b"{oops\n{oops", Framing::Json, |e| matches!(e, BodyError::NotJson(_)));
}

#[test]
fn the_not_json_refusal_explains_the_accepted_shapes() {
    let error = parse_all(b"hello", Framing::Json).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("NDJSON") && message.contains("array"), "{message}");
}

#[test]
fn an_empty_body_is_refused_whole_in_both_framings() {
    for body in ["", "   ", "\n\n", "\r\n \t", "\u{feff}", "\u{feff}  \n"] {
        for framing in [Framing::Json, Framing::Ndjson] {
            check_refused(body.as_bytes(), framing, |e| *e == BodyError::Empty);
        }
    }
}

#[test]
fn a_body_that_is_not_utf8_is_refused_whole() {
    for framing in [Framing::Json, Framing::Ndjson] {
        check_refused(&[0x7b, 0xff, 0xfe, 0x7d], framing, |e| *e == BodyError::NotUtf8);
    }
}

// ---------------------------------------------------------------------------------------
// Framing from the content type.

#[test]
fn json_and_ndjson_content_types_select_their_framing_and_no_other_type_is_read() {
    let cases = [
        (Some("application/x-ndjson"), Some(Framing::Ndjson)),
        (Some("application/ndjson"), Some(Framing::Ndjson)),
        (Some("application/jsonl"), Some(Framing::Ndjson)),
        (Some("application/x-jsonlines"), Some(Framing::Ndjson)),
        (Some("Application/X-NDJSON; charset=utf-8"), Some(Framing::Ndjson)),
        (Some("  application/x-ndjson ;charset=utf-8"), Some(Framing::Ndjson)),
        (Some("application/json"), Some(Framing::Json)),
        (Some("application/json; charset=utf-8"), Some(Framing::Json)),
        (Some("text/plain"), None),
        (Some("application/x-www-form-urlencoded"), None),
        (Some("multipart/form-data; boundary=x"), None),
        (Some(""), None),
        (None, None),
    ];
    for (content_type, framing) in cases {
        assert_eq!(Framing::from_content_type(content_type), framing, "{content_type:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Bounded accounts of refusals.

#[test]
fn a_body_lists_its_first_refusals_in_full_and_counts_every_one_by_reason() {
    let mut body: String = (0..LISTED_REJECTIONS + 50).map(|_| "1\n").collect();
    body.push_str(&format!("{TURN}\n"));
    body.push_str(&"{}\n".repeat(30));
    let parsed = parse_body(body.as_bytes(), Framing::Ndjson, NOW_MS).expect("the body is JSON lines");
    assert_eq!(parsed.events.len(), 1);
    let rejections = &parsed.rejections;
    assert_eq!(rejections.total, LISTED_REJECTIONS + 80);
    assert_eq!(rejections.listed.len(), LISTED_REJECTIONS);
    let indexes: Vec<usize> = rejections.listed.iter().map(|r| r.index).collect();
    assert_eq!(indexes, (0..LISTED_REJECTIONS).collect::<Vec<_>>(), "the first ones, at their index");
    let by_reason: Vec<(Reason, usize)> = rejections.by_reason.iter().map(|(r, n)| (*r, *n)).collect();
    assert_eq!(by_reason, vec![(Reason::NotAnObject, LISTED_REJECTIONS + 50), (Reason::Missing, 30)]);
}

#[test]
fn an_array_is_read_element_by_element_and_refusals_are_bounded_too() {
    let elements: Vec<&str> = std::iter::repeat_n("1", 2 * LISTED_REJECTIONS).chain([TURN]).collect();
    let body = format!("[{}]", elements.join(","));
    let parsed = parse_body(body.as_bytes(), Framing::Json, NOW_MS).expect("the body is an array");
    assert_eq!(parsed.events.len(), 1);
    assert_eq!(parsed.rejections.total, 2 * LISTED_REJECTIONS);
    assert_eq!(parsed.rejections.listed.len(), LISTED_REJECTIONS);
}

#[test]
fn an_array_broken_after_good_elements_is_still_refused_whole() {
    for body in [format!("[{TURN}, {TURN}"), format!("[{TURN}] trailing"), format!("[{TURN},]")] {
        check_refused(body.as_bytes(), Framing::Json, |e| matches!(e, BodyError::NotJson(_)));
    }
}
