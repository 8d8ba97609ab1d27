//! Ingest bodies: one event object, a JSON array of events, or NDJSON (one per line).
//!
//! A body that is not JSON at all is refused whole ([`BodyError`]); within a body that
//! is, each event stands or falls alone, so one bad event never costs the good ones.

use crate::event::Event;
use crate::validate::{parse_event, EventError, NOT_JSON};
use serde_json::value::RawValue;

/// How the caller framed the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Type: application/x-ndjson` (or `application/jsonl`): one event a line.
    Ndjson,
    /// Anything else: one JSON object, or a JSON array of them. Several objects
    /// separated by newlines are read as NDJSON too.
    Json,
}

impl Framing {
    pub fn from_content_type(content_type: Option<&str>) -> Framing {
        let essence = content_type.unwrap_or("").split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Framing::Ndjson,
            _ => Framing::Json,
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

/// Each event of a body, in order: its index in the body and its outcome.
pub type ParsedEvents = Vec<Result<Event, EventError>>;

/// Splits and validates a body. `now_ms` is voicemon's clock.
pub fn parse_body(body: &[u8], framing: Framing, now_ms: i64) -> Result<ParsedEvents, BodyError> {
    let text = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    if framing == Framing::Ndjson {
        return parse_lines(trimmed, now_ms);
    }
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(trimmed).map_err(|err| BodyError::NotJson(err.to_string()))?;
        return Ok(items.iter().map(|raw| parse_event(raw.get(), now_ms)).collect());
    }
    match serde_json::from_str::<&RawValue>(trimmed) {
        Ok(raw) => Ok(vec![parse_event(raw.get(), now_ms)]),
        // Several objects one per line without the NDJSON content type: read them as lines.
        Err(err) if err.is_syntax() && trimmed.starts_with('{') && trimmed.contains('\n') => {
            parse_lines(trimmed, now_ms)
        }
        Err(err) => Err(BodyError::NotJson(err.to_string())),
    }
}

/// One event a line; a body none of whose lines is JSON is refused whole.
fn parse_lines(text: &str, now_ms: i64) -> Result<ParsedEvents, BodyError> {
    let events: ParsedEvents = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| parse_event(line, now_ms))
        .collect();
    if events.iter().all(is_not_json) {
        let first = events.into_iter().next().and_then(Result::err);
        return Err(BodyError::NotJson(first.map(|e| e.message).unwrap_or_default()));
    }
    Ok(events)
}

fn is_not_json(outcome: &Result<Event, EventError>) -> bool {
    matches!(outcome, Err(err) if err.field.is_none() && err.message.starts_with(NOT_JSON))
}
