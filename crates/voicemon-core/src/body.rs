//! Ingest bodies: one event object, a JSON array of events, or NDJSON (one per line).
//!
//! A body that is not JSON at all is refused whole ([`BodyError`]); within a body that
//! is, each event stands or falls alone, so one bad event never costs the good ones.
//!
//! A body is read one event at a time ([`for_each_event`]), never as a list of all its
//! outcomes first, and [`parse_body`] keeps only the first [`LISTED_REJECTIONS`]
//! refusals in full and counts the rest by [`Reason`]: what a body costs in memory is
//! its valid events, whatever number of bad ones it holds.

use crate::event::Event;
use crate::validate::{parse_event, EventError, Reason};
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// How the caller framed the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Type: application/x-ndjson` (or `application/ndjson`, `application/jsonl`,
    /// `application/x-jsonlines`): one event a line.
    Ndjson,
    /// `Content-Type: application/json`: one JSON object, or a JSON array of them.
    /// Several objects separated by newlines are read as NDJSON too.
    Json,
}

/// The content types an ingest body may have (parameters such as `charset` aside).
pub const ACCEPTED_CONTENT_TYPES: [&str; 5] = [
    "application/json",
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
];

impl Framing {
    /// The framing of a content type; `None` for any other type, or none: a body of
    /// another type (`text/plain`, a form) is not read at all.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Framing> {
        let essence = content_type?.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/json" => Some(Framing::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Framing::Ndjson),
            _ => None,
        }
    }
}

/// A body refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is empty; send one event object, a JSON array of events, or NDJSON")]
    Empty,
    #[error("the body is not UTF-8 text")]
    NotUtf8,
    #[error(
        "the body is not JSON ({0}); send one event object, a JSON array of events, \
         or NDJSON (one event per line, Content-Type: application/x-ndjson)"
    )]
    NotJson(String),
}

/// How many refused events a [`ParsedBody`] lists in full; the others are only counted.
pub const LISTED_REJECTIONS: usize = 100;

/// One refused event: its index in the body, the field at fault, the kind and the why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rejection {
    pub index: usize,
    pub field: Option<String>,
    pub reason: Reason,
    pub error: String,
}

/// The refused events of a body: the first [`LISTED_REJECTIONS`] in full, all counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    /// The first refusals, in body order.
    pub listed: Vec<Rejection>,
    /// Every refusal, listed or not.
    pub total: usize,
    /// Every refusal by kind; the counts add up to `total`.
    pub by_reason: BTreeMap<Reason, usize>,
}

impl Rejections {
    /// A whole body that could not be read as events (empty, not UTF-8, not JSON), as one
    /// rejection at index 0: how the event bus reports a message that is no event at all.
    pub fn whole_body(error: &BodyError) -> Rejections {
        let reason = Reason::NotJson;
        let listed = vec![Rejection { index: 0, field: None, reason, error: error.to_string() }];
        Rejections { listed, total: 1, by_reason: BTreeMap::from([(reason, 1)]) }
    }

    fn push(&mut self, index: usize, error: EventError) {
        self.total += 1;
        *self.by_reason.entry(error.reason).or_default() += 1;
        if self.listed.len() < LISTED_REJECTIONS {
            let EventError { field, reason, message } = error;
            let field = field.map(Cow::into_owned);
            self.listed.push(Rejection { index, field, reason, error: message.into_owned() });
        }
    }
}

/// A body read: its valid events in order, and its refused ones.
#[derive(Debug, Default)]
pub struct ParsedBody {
    pub events: Vec<Event>,
    pub rejections: Rejections,
}

/// Splits and validates a body, keeping the valid events and a bounded account of the
/// refused ones. `now_ms` is voicemon's clock.
pub fn parse_body(body: &[u8], framing: Framing, now_ms: i64) -> Result<ParsedBody, BodyError> {
    let mut parsed = ParsedBody::default();
    let mut index = 0;
    for_each_event(body, framing, now_ms, |outcome| {
        match outcome {
            Ok(event) => parsed.events.push(event),
            Err(error) => parsed.rejections.push(index, error),
        }
        index += 1;
    })?;
    Ok(parsed)
}

/// Splits and validates a body, handing each event's outcome to `each` in body order as
/// it is read. On an error the body is refused whole: discard what `each` was given.
pub fn for_each_event(
    body: &[u8],
    framing: Framing,
    now_ms: i64,
    mut each: impl FnMut(Result<Event, EventError>),
) -> Result<(), BodyError> {
    let text = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    if framing == Framing::Ndjson {
        return for_each_line(trimmed, now_ms, each);
    }
    if trimmed.starts_with('[') {
        return for_each_element(trimmed, now_ms, each);
    }
    match serde_json::from_str::<&RawValue>(trimmed) {
        Ok(raw) => {
            each(parse_event(raw.get(), now_ms));
            Ok(())
        }
        // Several objects one per line without the NDJSON content type: read them as lines.
        Err(err) if err.is_syntax() && trimmed.starts_with('{') && trimmed.contains('\n') => {
            for_each_line(trimmed, now_ms, each)
        }
        Err(err) => Err(BodyError::NotJson(err.to_string())),
    }
}

/// Each element of a JSON array, read as the array is (never a list of all of them).
fn for_each_element(
    text: &str,
    now_ms: i64,
    each: impl FnMut(Result<Event, EventError>),
) -> Result<(), BodyError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let not_json = |err: serde_json::Error| BodyError::NotJson(err.to_string());
    deserializer.deserialize_seq(Elements { now_ms, each }).map_err(not_json)?;
    deserializer.end().map_err(not_json)
}

/// The visitor of [`for_each_element`]: each element's raw text, validated in turn.
struct Elements<F> {
    now_ms: i64,
    each: F,
}

impl<'de, F: FnMut(Result<Event, EventError>)> Visitor<'de> for Elements<F> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut elements: A) -> Result<(), A::Error> {
        while let Some(raw) = elements.next_element::<&'de RawValue>()? {
            (self.each)(parse_event(raw.get(), self.now_ms));
        }
        Ok(())
    }
}

/// One event a line; a body none of whose lines is JSON is refused whole.
fn for_each_line(
    text: &str,
    now_ms: i64,
    mut each: impl FnMut(Result<Event, EventError>),
) -> Result<(), BodyError> {
    let mut any_json = false;
    let mut first_not_json = None;
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let outcome = parse_event(line, now_ms);
        match &outcome {
            Err(err) if err.reason == Reason::NotJson => {
                first_not_json.get_or_insert_with(|| err.message.to_string());
            }
            _ => any_json = true,
        }
        each(outcome);
    }
    if !any_json {
        return Err(BodyError::NotJson(first_not_json.unwrap_or_default()));
    }
    Ok(())
}
