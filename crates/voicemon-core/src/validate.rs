//! Validation: one JSON event in the wire shape → a typed [`Event`], or an error naming
//! the field. Rejects what cannot be true (negative or > 10 min latencies, timestamps
//! far in the future, unknown types or fields, counts that contradict each other).

use crate::event::*;
use chrono::DateTime;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Latencies above this are taken to be in the wrong unit (µs, or seconds × 1000 twice).
pub const MAX_LATENCY_MS: f64 = 600_000.0;
/// How far ahead of voicemon's clock an event may be stamped (workers' clocks drift).
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;
/// Nothing before 2020-01-01T00:00:00Z is a real voice-agent event.
pub const MIN_TIMESTAMP_MS: i64 = 1_577_836_800_000;
/// A call or an audio usage line longer than a day is taken to be in the wrong unit.
pub const MAX_DURATION_S: f64 = 86_400.0;
pub const MAX_ID_LEN: usize = 128;
pub const MAX_TEXT_LEN: usize = 256;
pub const MAX_ATTRIBUTES: usize = 32;
/// No single request uses more tokens or characters than this (context windows are
/// a few million tokens); more is a unit or counting error.
pub const MAX_COUNT: u64 = 100_000_000;
/// CPU percent is of one core, as `top` shows it; 64 cores at most.
pub const MAX_CPU_PERCENT: f64 = 6_400.0;

/// The start of the message for an event that is not JSON at all.
pub const NOT_JSON: &str = "not valid JSON";

/// The longest field name an error echoes, in bytes; a longer one (an unknown field or
/// an attribute key of any length) is cut there and marked with `…`.
pub const MAX_ECHOED_FIELD: usize = 64;
/// The longest message an error carries, in bytes (serde quotes the offending value, of
/// any length); a longer one is cut there and marked with `…`.
pub const MAX_ECHOED_MESSAGE: usize = 512;

/// Why one event was refused, as a kind: a small closed set, so a caller (or a summary
/// of many refusals) can count by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = RejectionReason))]
pub enum Reason {
    /// The event is not JSON.
    NotJson,
    /// The event is JSON but not an object.
    NotAnObject,
    /// A field contract v1 does not have.
    UnknownField,
    /// A field given twice.
    DuplicateField,
    /// A field of the contract that this event type does not carry.
    NotForType,
    /// A value of the wrong JSON type (text for a number, …).
    WrongType,
    /// A required field is absent, null or empty.
    Missing,
    /// A value of the right type that cannot be true (out of range, unknown name, …).
    Invalid,
}

/// Why one event was refused. `field` is `None` when the event as a whole is wrong
/// (not an object, not JSON). Field names and messages are bounded
/// ([`MAX_ECHOED_FIELD`], [`MAX_ECHOED_MESSAGE`]), so an error never echoes a caller's
/// text of any length; the fixed ones (`type`, `is required`, …) are not allocated, so
/// refusing an event of a body full of them costs no memory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventError {
    pub field: Option<Cow<'static, str>>,
    pub reason: Reason,
    pub message: Cow<'static, str>,
}

impl EventError {
    /// A value that cannot be true ([`Reason::Invalid`]); see [`EventError::because`].
    pub fn field(field: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        EventError {
            field: Some(bounded(field.into(), MAX_ECHOED_FIELD)),
            reason: Reason::Invalid,
            message: bounded(message.into(), MAX_ECHOED_MESSAGE),
        }
    }

    /// The event as a whole is wrong: not JSON, or not an object.
    pub fn whole(reason: Reason, message: impl Into<Cow<'static, str>>) -> Self {
        EventError { field: None, reason, message: bounded(message.into(), MAX_ECHOED_MESSAGE) }
    }

    /// The same error, of another kind.
    pub fn because(self, reason: Reason) -> Self {
        EventError { reason, ..self }
    }
}

/// The longest start of `text` of at most `max` bytes that ends at a character boundary:
/// how caller-given text is bounded wherever voicemon echoes it.
pub fn prefix(text: &str, max: usize) -> &str {
    let cut = (0..=text.len().min(max)).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    &text[..cut]
}

/// `text` cut to at most `max` bytes (at a character boundary) and marked with `…`.
fn bounded(text: Cow<'static, str>, max: usize) -> Cow<'static, str> {
    if text.len() <= max {
        return text;
    }
    let mut cut = prefix(&text, max).to_owned();
    cut.push('…');
    Cow::Owned(cut)
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The flat wire shape of every event type: the envelope plus the union of all
/// type-specific fields. Unknown fields are refused (extra labels go in `attributes`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEvent {
    pub id: Option<String>,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<EventKind>))]
    pub kind: Option<String>,
    /// RFC 3339; not before 2020, at most 5 minutes ahead of voicemon's clock.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: Option<String>,
    pub tenant_id: Option<String>,
    pub call_id: Option<String>,
    pub trace_id: Option<String>,
    pub agent_id: Option<String>,
    pub objective: Option<String>,
    pub attributes: Option<BTreeMap<String, String>>,
    // call.started
    pub channel: Option<String>,
    // call.ended
    pub duration_s: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<CallStatus>))]
    pub status: Option<String>,
    pub ended_reason: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<EndedBy>))]
    pub ended_by: Option<String>,
    // turn.completed
    pub turn_index: Option<u32>,
    pub e2e_ms: Option<f64>,
    pub stt_ms: Option<f64>,
    pub eou_ms: Option<f64>,
    pub llm_ttft_ms: Option<f64>,
    pub tts_ttfb_ms: Option<f64>,
    pub interrupted: Option<bool>,
    pub tool_calls: Option<u32>,
    // usage events and provider.request
    pub provider: Option<String>,
    pub model: Option<String>,
    pub audio_seconds: Option<f64>,
    pub latency_ms: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub audio_input_tokens: Option<u64>,
    pub audio_output_tokens: Option<u64>,
    pub ttft_ms: Option<f64>,
    pub voice: Option<String>,
    pub characters: Option<u64>,
    pub ttfb_ms: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<PipelineComponent>))]
    pub component: Option<String>,
    pub ok: Option<bool>,
    pub error: Option<String>,
    // circuit_breaker.changed
    pub breaker: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BreakerState>))]
    pub state: Option<String>,
    // worker.heartbeat
    pub worker_id: Option<String>,
    pub memory_used_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_percent: Option<f64>,
    pub active_calls: Option<u32>,
}

impl WireEvent {
    /// The type-specific fields this event carries, by wire name.
    fn present_type_fields(&self) -> Vec<&'static str> {
        let fields: [(&'static str, bool); 36] = [
            ("channel", self.channel.is_some()),
            ("duration_s", self.duration_s.is_some()),
            ("status", self.status.is_some()),
            ("ended_reason", self.ended_reason.is_some()),
            ("ended_by", self.ended_by.is_some()),
            ("turn_index", self.turn_index.is_some()),
            ("e2e_ms", self.e2e_ms.is_some()),
            ("stt_ms", self.stt_ms.is_some()),
            ("eou_ms", self.eou_ms.is_some()),
            ("llm_ttft_ms", self.llm_ttft_ms.is_some()),
            ("tts_ttfb_ms", self.tts_ttfb_ms.is_some()),
            ("interrupted", self.interrupted.is_some()),
            ("tool_calls", self.tool_calls.is_some()),
            ("provider", self.provider.is_some()),
            ("model", self.model.is_some()),
            ("audio_seconds", self.audio_seconds.is_some()),
            ("latency_ms", self.latency_ms.is_some()),
            ("input_tokens", self.input_tokens.is_some()),
            ("output_tokens", self.output_tokens.is_some()),
            ("cached_input_tokens", self.cached_input_tokens.is_some()),
            ("audio_input_tokens", self.audio_input_tokens.is_some()),
            ("audio_output_tokens", self.audio_output_tokens.is_some()),
            ("ttft_ms", self.ttft_ms.is_some()),
            ("voice", self.voice.is_some()),
            ("characters", self.characters.is_some()),
            ("ttfb_ms", self.ttfb_ms.is_some()),
            ("component", self.component.is_some()),
            ("ok", self.ok.is_some()),
            ("error", self.error.is_some()),
            ("breaker", self.breaker.is_some()),
            ("state", self.state.is_some()),
            ("worker_id", self.worker_id.is_some()),
            ("memory_used_bytes", self.memory_used_bytes.is_some()),
            ("memory_limit_bytes", self.memory_limit_bytes.is_some()),
            ("cpu_percent", self.cpu_percent.is_some()),
            ("active_calls", self.active_calls.is_some()),
        ];
        fields.iter().filter(|(_, present)| *present).map(|(name, _)| *name).collect()
    }
}

/// The type-specific fields each type may carry (the envelope is allowed on all).
pub fn allowed_type_fields(kind: EventKind) -> &'static [&'static str] {
    match kind {
        EventKind::CallStarted => &["channel"],
        EventKind::CallEnded => &["duration_s", "status", "ended_reason", "ended_by"],
        EventKind::TurnCompleted => &[
            "turn_index",
            "e2e_ms",
            "stt_ms",
            "eou_ms",
            "llm_ttft_ms",
            "tts_ttfb_ms",
            "interrupted",
            "tool_calls",
        ],
        EventKind::SttUsage => &["provider", "model", "audio_seconds", "latency_ms"],
        EventKind::LlmUsage => &[
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "audio_input_tokens",
            "audio_output_tokens",
            "ttft_ms",
        ],
        EventKind::TtsUsage => &["provider", "model", "voice", "characters", "audio_seconds", "ttfb_ms"],
        EventKind::ProviderRequest => &["provider", "component", "ok", "latency_ms", "error"],
        EventKind::CircuitBreakerChanged => &["breaker", "state"],
        EventKind::WorkerHeartbeat => {
            &["worker_id", "memory_used_bytes", "memory_limit_bytes", "cpu_percent", "active_calls"]
        }
    }
}

/// Parses and validates one event from its JSON text. `now_ms` is voicemon's clock,
/// used to refuse timestamps far in the future.
pub fn parse_event(json: &str, now_ms: i64) -> Result<Event, EventError> {
    if !json.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(json) {
            Ok(_) => EventError::whole(Reason::NotAnObject, "an event must be a JSON object"),
            Err(err) => not_json(&err),
        });
    }
    // Most events are valid: read them without tracking the path (which costs on every
    // field), and read a failing one again with it, for the error's field name.
    if let Ok(wire) = WireEvent::deserialize(&mut serde_json::Deserializer::from_str(json)) {
        return validate(wire, now_ms);
    }
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let wire: WireEvent = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // serde reports the first problem it meets: a wrong type may hide broken JSON.
        if let Err(syntax) = serde_json::from_str::<serde::de::IgnoredAny>(json) {
            return not_json(&syntax);
        }
        wire_error(&path, &inner)
    })?;
    validate(wire, now_ms)
}

fn not_json(err: &serde_json::Error) -> EventError {
    EventError::whole(Reason::NotJson, format!("{NOT_JSON}: {}", strip_position(&err.to_string())))
}

fn wire_error(path: &str, err: &serde_json::Error) -> EventError {
    let message = err.to_string();
    let message = strip_position(&message);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return EventError::field(
            name.to_owned(),
            "unknown field; contract v1 has no such field (extra labels go in `attributes`)",
        )
        .because(Reason::UnknownField);
    }
    if let Some(rest) = message.strip_prefix("duplicate field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return EventError::field(name.to_owned(), "duplicate field: it appears twice in the event")
            .because(Reason::DuplicateField);
    }
    if err.is_syntax() || err.is_eof() {
        return EventError::whole(Reason::NotJson, format!("{NOT_JSON}: {message}"));
    }
    if path == "." || path.is_empty() {
        return EventError::whole(Reason::NotAnObject, format!("an event must be a JSON object: {message}"));
    }
    EventError::field(path.to_owned(), message.to_owned()).because(Reason::WrongType)
}

/// serde_json appends " at line L column C", meaningless to a caller of one event.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(cut) => &message[..cut],
        None => message,
    }
}

/// Validates the wire shape of one event into its typed form.
pub fn validate(wire: WireEvent, now_ms: i64) -> Result<Event, EventError> {
    let kind_name = required_text(&wire.kind, "type", MAX_TEXT_LEN)?;
    let kind = EventKind::from_wire_name(&kind_name).ok_or_else(|| {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.wire_name()).collect();
        EventError::field("type", format!("unknown type `{kind_name}`; expected one of {}", known.join(", ")))
    })?;
    let allowed = allowed_type_fields(kind);
    if let Some(stray) = wire.present_type_fields().into_iter().find(|f| !allowed.contains(f)) {
        return Err(EventError::field(stray, format!("does not belong to {}", kind.wire_name()))
            .because(Reason::NotForType));
    }
    let envelope = validate_envelope(&wire, kind, now_ms)?;
    let body = match kind {
        EventKind::CallStarted => Body::CallStarted(CallStarted {
            channel: optional_text(&wire.channel, "channel", MAX_TEXT_LEN)?.map(|c| c.to_ascii_lowercase()),
        }),
        EventKind::CallEnded => Body::CallEnded(call_ended(&wire)?),
        EventKind::TurnCompleted => Body::TurnCompleted(turn_completed(&wire)?),
        EventKind::SttUsage => Body::SttUsage(SttUsage {
            provider: provider(&wire.provider)?,
            model: optional_text(&wire.model, "model", MAX_TEXT_LEN)?,
            audio_seconds: duration_seconds(wire.audio_seconds, "audio_seconds")?,
            latency_ms: optional_latency(wire.latency_ms, "latency_ms")?,
        }),
        EventKind::LlmUsage => Body::LlmUsage(llm_usage(&wire)?),
        EventKind::TtsUsage => Body::TtsUsage(TtsUsage {
            provider: provider(&wire.provider)?,
            model: optional_text(&wire.model, "model", MAX_TEXT_LEN)?,
            voice: optional_text(&wire.voice, "voice", MAX_TEXT_LEN)?,
            characters: required(count(wire.characters, "characters")?, "characters")?,
            audio_seconds: match wire.audio_seconds {
                Some(_) => Some(duration_seconds(wire.audio_seconds, "audio_seconds")?),
                None => None,
            },
            ttfb_ms: optional_latency(wire.ttfb_ms, "ttfb_ms")?,
        }),
        EventKind::ProviderRequest => Body::ProviderRequest(provider_request(&wire)?),
        EventKind::CircuitBreakerChanged => Body::CircuitBreakerChanged(CircuitBreakerChanged {
            breaker: required_text(&wire.breaker, "breaker", MAX_TEXT_LEN)?,
            state: parse_enum(&wire.state, "state", BreakerState::parse, "closed, open, half_open")?,
        }),
        EventKind::WorkerHeartbeat => Body::WorkerHeartbeat(worker_heartbeat(&wire)?),
    };
    Ok(Event { envelope, body })
}

fn validate_envelope(wire: &WireEvent, kind: EventKind, now_ms: i64) -> Result<Envelope, EventError> {
    let id = required_text(&wire.id, "id", MAX_ID_LEN)?;
    let timestamp_text = required_text(&wire.timestamp, "timestamp", MAX_TEXT_LEN)?;
    let timestamp_ms = DateTime::parse_from_rfc3339(&timestamp_text)
        .map_err(|err| {
            EventError::field(
                "timestamp",
                format!(
                    "`{timestamp_text}` is not an RFC 3339 time such as 2026-11-27T10:15:00.250Z ({err})"
                ),
            )
        })?
        .timestamp_millis();
    if timestamp_ms > now_ms + MAX_FUTURE_SKEW_MS {
        return Err(EventError::field(
            "timestamp",
            format!("`{timestamp_text}` is more than 5 minutes ahead of voicemon's clock; check the worker's clock"),
        ));
    }
    if timestamp_ms < MIN_TIMESTAMP_MS {
        return Err(EventError::field("timestamp", format!("`{timestamp_text}` is before 2020")));
    }
    let tenant_id = required_text(&wire.tenant_id, "tenant_id", MAX_ID_LEN)?;
    let call_id = if kind.is_call_scoped() {
        Some(required_text(&wire.call_id, "call_id", MAX_ID_LEN)?)
    } else {
        optional_text(&wire.call_id, "call_id", MAX_ID_LEN)?
    };
    let attributes = wire.attributes.clone().unwrap_or_default();
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(EventError::field("attributes", format!("more than {MAX_ATTRIBUTES} entries")));
    }
    if let Some((key, _)) = attributes.iter().find(|(k, v)| k.len() > 64 || v.len() > MAX_TEXT_LEN) {
        return Err(EventError::field(
            format!("attributes.{key}"),
            format!("keys are at most 64 bytes and values at most {MAX_TEXT_LEN}"),
        ));
    }
    Ok(Envelope {
        id,
        timestamp_ms,
        tenant_id,
        call_id,
        trace_id: optional_text(&wire.trace_id, "trace_id", MAX_ID_LEN)?,
        agent_id: optional_text(&wire.agent_id, "agent_id", MAX_ID_LEN)?,
        objective: optional_text(&wire.objective, "objective", MAX_TEXT_LEN)?,
        attributes,
    })
}

fn call_ended(wire: &WireEvent) -> Result<CallEnded, EventError> {
    Ok(CallEnded {
        duration_s: duration_seconds(wire.duration_s, "duration_s")?,
        status: parse_enum(
            &wire.status,
            "status",
            CallStatus::parse,
            "completed, failed, abandoned, transferred",
        )?,
        ended_reason: optional_text(&wire.ended_reason, "ended_reason", MAX_TEXT_LEN)?,
        ended_by: match optional_text(&wire.ended_by, "ended_by", MAX_TEXT_LEN)? {
            Some(text) => Some(EndedBy::parse(&text).ok_or_else(|| {
                EventError::field("ended_by", format!("`{text}` is not one of user, agent, system, provider"))
            })?),
            None => None,
        },
    })
}

fn turn_completed(wire: &WireEvent) -> Result<TurnCompleted, EventError> {
    Ok(TurnCompleted {
        turn_index: required(wire.turn_index, "turn_index")?,
        e2e_ms: latency(required(wire.e2e_ms, "e2e_ms")?, "e2e_ms")?,
        stt_ms: optional_latency(wire.stt_ms, "stt_ms")?,
        eou_ms: optional_latency(wire.eou_ms, "eou_ms")?,
        llm_ttft_ms: optional_latency(wire.llm_ttft_ms, "llm_ttft_ms")?,
        tts_ttfb_ms: optional_latency(wire.tts_ttfb_ms, "tts_ttfb_ms")?,
        interrupted: wire.interrupted,
        tool_calls: wire.tool_calls,
    })
}

fn llm_usage(wire: &WireEvent) -> Result<LlmUsage, EventError> {
    let input_tokens = required(count(wire.input_tokens, "input_tokens")?, "input_tokens")?;
    let output_tokens = required(count(wire.output_tokens, "output_tokens")?, "output_tokens")?;
    let part_of = |value: Option<u64>, field: &'static str, whole: u64, whole_name: &str| match value {
        Some(part) if part > whole => Err(EventError::field(
            field,
            format!(
                "{part} exceeds {whole_name} {whole}; {whole_name} counts every token, this one included"
            ),
        )),
        _ => Ok(value),
    };
    Ok(LlmUsage {
        provider: provider(&wire.provider)?,
        model: required_text(&wire.model, "model", MAX_TEXT_LEN)?,
        input_tokens,
        output_tokens,
        cached_input_tokens: part_of(
            wire.cached_input_tokens,
            "cached_input_tokens",
            input_tokens,
            "input_tokens",
        )?,
        audio_input_tokens: part_of(
            wire.audio_input_tokens,
            "audio_input_tokens",
            input_tokens,
            "input_tokens",
        )?,
        audio_output_tokens: part_of(
            wire.audio_output_tokens,
            "audio_output_tokens",
            output_tokens,
            "output_tokens",
        )?,
        ttft_ms: optional_latency(wire.ttft_ms, "ttft_ms")?,
    })
}

fn provider_request(wire: &WireEvent) -> Result<ProviderRequest, EventError> {
    let ok = required(wire.ok, "ok")?;
    let error = optional_text(&wire.error, "error", MAX_TEXT_LEN)?;
    if ok && error.is_some() {
        return Err(EventError::field("error", "given on a request with ok: true"));
    }
    Ok(ProviderRequest {
        provider: provider(&wire.provider)?,
        component: parse_enum(&wire.component, "component", PipelineComponent::parse, "stt, llm, tts")?,
        ok,
        latency_ms: optional_latency(wire.latency_ms, "latency_ms")?,
        error,
    })
}

fn worker_heartbeat(wire: &WireEvent) -> Result<WorkerHeartbeat, EventError> {
    let memory_limit_bytes = required(wire.memory_limit_bytes, "memory_limit_bytes")?;
    if memory_limit_bytes == 0 {
        return Err(EventError::field("memory_limit_bytes", "must be above 0"));
    }
    let cpu_percent = required(wire.cpu_percent, "cpu_percent")?;
    if !(0.0..=MAX_CPU_PERCENT).contains(&cpu_percent) {
        return Err(EventError::field(
            "cpu_percent",
            format!("{cpu_percent} is outside 0..{MAX_CPU_PERCENT} (percent of one core)"),
        ));
    }
    Ok(WorkerHeartbeat {
        worker_id: required_text(&wire.worker_id, "worker_id", MAX_ID_LEN)?,
        memory_used_bytes: required(wire.memory_used_bytes, "memory_used_bytes")?,
        memory_limit_bytes,
        cpu_percent,
        active_calls: required(wire.active_calls, "active_calls")?,
    })
}

/// A token or character count: at most [`MAX_COUNT`].
fn count(value: Option<u64>, field: &'static str) -> Result<Option<u64>, EventError> {
    match value {
        Some(n) if n > MAX_COUNT => Err(EventError::field(
            field,
            format!("{n} is more than {MAX_COUNT} for one request; check the count"),
        )),
        _ => Ok(value),
    }
}

/// Provider names are compared without case: `Deepgram` and `deepgram` are one provider.
fn provider(value: &Option<String>) -> Result<String, EventError> {
    Ok(required_text(value, "provider", MAX_TEXT_LEN)?.to_ascii_lowercase())
}

fn required<T: Copy>(value: Option<T>, field: &'static str) -> Result<T, EventError> {
    value.ok_or_else(|| EventError::field(field, "is required").because(Reason::Missing))
}

fn required_text(value: &Option<String>, field: &'static str, max_len: usize) -> Result<String, EventError> {
    optional_text(value, field, max_len)?
        .ok_or_else(|| EventError::field(field, "is required").because(Reason::Missing))
}

/// Text fields are trimmed; empty counts as absent; control characters are refused.
fn optional_text(
    value: &Option<String>,
    field: &'static str,
    max_len: usize,
) -> Result<Option<String>, EventError> {
    let Some(text) = value else { return Ok(None) };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > max_len {
        return Err(EventError::field(field, format!("is longer than {max_len} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(EventError::field(field, "contains control characters"));
    }
    Ok(Some(text.to_owned()))
}

fn parse_enum<T>(
    value: &Option<String>,
    field: &'static str,
    parse: fn(&str) -> Option<T>,
    expected: &str,
) -> Result<T, EventError> {
    let text = required_text(value, field, MAX_TEXT_LEN)?;
    parse(&text).ok_or_else(|| EventError::field(field, format!("`{text}` is not one of {expected}")))
}

fn latency(value: f64, field: &'static str) -> Result<f64, EventError> {
    if !value.is_finite() || value < 0.0 {
        return Err(EventError::field(field, format!("{value} is negative; latencies are milliseconds ≥ 0")));
    }
    if value > MAX_LATENCY_MS {
        return Err(EventError::field(
            field,
            format!("{value} is over 10 minutes; voicemon expects milliseconds (microseconds?)"),
        ));
    }
    Ok(value)
}

fn optional_latency(value: Option<f64>, field: &'static str) -> Result<Option<f64>, EventError> {
    value.map(|v| latency(v, field)).transpose()
}

fn duration_seconds(value: Option<f64>, field: &'static str) -> Result<f64, EventError> {
    let value = required(value, field)?;
    if !value.is_finite() || value < 0.0 {
        return Err(EventError::field(field, format!("{value} is negative; durations are seconds ≥ 0")));
    }
    if value > MAX_DURATION_S {
        return Err(EventError::field(
            field,
            format!("{value} is over 24 hours; voicemon expects seconds (milliseconds?)"),
        ));
    }
    Ok(value)
}
