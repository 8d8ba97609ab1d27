//! A span as voicemon keeps it while its turn is assembled: ids as hex, times in unix
//! nanoseconds, the error if its status is one, and only the attributes a mapping reads
//! ([`KEPT`]), strings cut to [`MAX_VALUE_LEN`]. A framework's spans carry prompts,
//! transcripts and whole LLM contexts as attributes; none of that is held.

use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use voicemon_core::validate::prefix;

/// Longest string attribute kept, in bytes (what voicemon stores is shorter still).
pub const MAX_VALUE_LEN: usize = 256;

/// Longest JSON attribute kept (LiveKit's `lk.*_metrics`), which is read, not stored; a
/// longer one is dropped rather than cut into invalid JSON.
pub const MAX_JSON_LEN: usize = 4096;

/// The attributes any mapping reads; every other attribute is dropped on arrival.
pub const KEPT: &[&str] = &[
    // Pipecat
    "conversation.id",
    "turn.number",
    "turn.user_bot_latency_seconds",
    "turn.was_interrupted",
    "metrics.ttfb",
    "metrics.character_count",
    "metrics.audio_seconds",
    "gen_ai.system",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.response.time_to_first_chunk",
    "service.name",
    "voice_id",
    "model",
    // LiveKit Agents
    "lk.room_name",
    "room_id",
    "gen_ai.conversation.id",
    "lk.session_id",
    "lk.job_id",
    "lk.e2e_latency",
    "lk.end_of_turn_delay",
    "lk.transcription_delay",
    "lk.speech_id",
    "lk.interrupted",
    "lk.response.ttft",
    "lk.response.ttfb",
    "lk.tts_metrics",
    "lk.llm_metrics",
    "lk.stt_metrics",
    "lk.provider",
    "lk.model",
    "lk.eou.probability",
    "lk.eou.delay",
];

/// A kept attribute's value. Arrays and maps are never read, so never kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

/// Attributes by key, in arrival order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(Vec<(&'static str, Value)>);

impl Attributes {
    /// The kept ones of `pairs`.
    pub fn kept(pairs: &[KeyValue]) -> Attributes {
        let mut kept = Vec::new();
        for pair in pairs {
            let Some(key) = KEPT.iter().find(|k| **k == pair.key) else { continue };
            let Some(value) = pair.value.as_ref().and_then(|v| v.value.as_ref()) else { continue };
            let value = match value {
                ProtoValue::StringValue(s) if key.ends_with("_metrics") => {
                    if s.len() > MAX_JSON_LEN {
                        continue;
                    }
                    Value::Str(s.clone())
                }
                ProtoValue::StringValue(s) => Value::Str(prefix(s, MAX_VALUE_LEN).to_owned()),
                ProtoValue::IntValue(i) => Value::Int(*i),
                ProtoValue::DoubleValue(d) => Value::Double(*d),
                ProtoValue::BoolValue(b) => Value::Bool(*b),
                _ => continue,
            };
            kept.push((*key, value));
        }
        Attributes(kept)
    }

    /// Attributes as given (tests build spans without a protobuf message).
    #[cfg(test)]
    pub fn from_pairs(pairs: Vec<(&'static str, Value)>) -> Attributes {
        Attributes(pairs)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// A text value; numbers are not text.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) if !s.trim().is_empty() => Some(s.trim()),
            _ => None,
        }
    }

    /// A number, from a double, an integer or numeric text (some exporters send all
    /// attributes as strings).
    pub fn number(&self, key: &str) -> Option<f64> {
        let number = match self.get(key)? {
            Value::Double(d) => *d,
            Value::Int(i) => *i as f64,
            Value::Str(s) => s.trim().parse().ok()?,
            Value::Bool(_) => return None,
        };
        number.is_finite().then_some(number)
    }

    /// A count: a non-negative whole number.
    pub fn count(&self, key: &str) -> Option<u64> {
        let number = self.number(key)?;
        (number >= 0.0 && number.fract() == 0.0 && number < u64::MAX as f64).then_some(number as u64)
    }

    pub fn flag(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Seconds as milliseconds, for the latency attributes the frameworks send in seconds.
    pub fn seconds_as_ms(&self, key: &str) -> Option<f64> {
        self.number(key).filter(|s| *s >= 0.0).map(|s| s * 1000.0)
    }
}

/// One span, as held.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Set when the span's status is ERROR: its message, else the first exception
    /// event's type and message, else "error".
    pub error: Option<String>,
    pub attributes: Attributes,
}

/// Why a span cannot be read; it is counted as rejected in `partial_success`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpanError {
    #[error("trace id is not 16 bytes")]
    TraceId,
    #[error("span id is not 8 bytes")]
    SpanId,
    #[error("end time is before start time")]
    Times,
}

impl Span {
    pub fn from_proto(span: &ProtoSpan) -> Result<Span, SpanError> {
        if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
            return Err(SpanError::TraceId);
        }
        if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
            return Err(SpanError::SpanId);
        }
        if span.end_time_unix_nano < span.start_time_unix_nano {
            return Err(SpanError::Times);
        }
        let parent_id = (span.parent_span_id.len() == 8 && span.parent_span_id.iter().any(|b| *b != 0))
            .then(|| hex::encode(&span.parent_span_id));
        let error = span
            .status
            .as_ref()
            .filter(|status| status.code == StatusCode::Error as i32)
            .map(|status| error_text(&status.message, span));
        Ok(Span {
            trace_id: hex::encode(&span.trace_id),
            span_id: hex::encode(&span.span_id),
            parent_id,
            name: prefix(&span.name, MAX_VALUE_LEN).to_owned(),
            start_ns: span.start_time_unix_nano,
            end_ns: span.end_time_unix_nano,
            error,
            attributes: Attributes::kept(&span.attributes),
        })
    }

    pub fn start_ms(&self) -> i64 {
        (self.start_ns / 1_000_000) as i64
    }

    pub fn end_ms(&self) -> i64 {
        (self.end_ns / 1_000_000) as i64
    }

    /// Wall time of the span in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        (self.end_ns - self.start_ns) as f64 / 1e6
    }
}

/// The text of attribute `key` among `attributes` (the last if repeated), trimmed; `None`
/// when absent, empty or not a string.
pub fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().rev().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            ProtoValue::StringValue(s) if !s.trim().is_empty() => Some(s.trim()),
            _ => None,
        }
    })
}

/// What an ERROR status says: its message, else the exception event's type and message.
fn error_text(message: &str, span: &ProtoSpan) -> String {
    if !message.trim().is_empty() {
        return prefix(message.trim(), MAX_VALUE_LEN).to_owned();
    }
    let exception = span.events.iter().find(|event| event.name == "exception").map(|event| {
        let text = |key: &str| string_attribute(&event.attributes, key);
        match (text("exception.type"), text("exception.message")) {
            (Some(kind), Some(message)) => format!("{kind}: {message}"),
            (Some(one), None) | (None, Some(one)) => one.to_owned(),
            (None, None) => String::new(),
        }
    });
    match exception {
        Some(text) if !text.is_empty() => prefix(&text, MAX_VALUE_LEN).to_owned(),
        _ => "error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::Status;

    fn kv(key: &str, value: ProtoValue) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
    }

    fn span() -> ProtoSpan {
        ProtoSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "llm".into(),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_250_000_000,
            ..ProtoSpan::default()
        }
    }

    #[test]
    fn only_the_attributes_a_mapping_reads_are_kept() {
        let mut proto = span();
        proto.attributes = vec![
            kv("gen_ai.usage.input_tokens", ProtoValue::IntValue(120)),
            kv("metrics.ttfb", ProtoValue::DoubleValue(0.35)),
            kv("input", ProtoValue::StringValue("x".repeat(100_000))),
            kv("gen_ai.request.model", ProtoValue::StringValue("m".repeat(10_000))),
        ];
        let span = Span::from_proto(&proto).unwrap();
        assert_eq!(span.attributes.count("gen_ai.usage.input_tokens"), Some(120));
        assert_eq!(span.attributes.seconds_as_ms("metrics.ttfb"), Some(350.0));
        assert_eq!(span.attributes.text("input"), None);
        assert_eq!(span.attributes.text("gen_ai.request.model").unwrap().len(), MAX_VALUE_LEN);
        assert_eq!(span.parent_id, None);
        assert_eq!(span.duration_ms(), 250.0);
    }

    #[test]
    fn an_error_status_says_what_failed() {
        let mut proto = span();
        proto.status = Some(Status { code: StatusCode::Error as i32, message: String::new() });
        proto.events = vec![Event {
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", ProtoValue::StringValue("TimeoutError".into())),
                kv("exception.message", ProtoValue::StringValue("read timed out".into())),
            ],
            ..Event::default()
        }];
        assert_eq!(Span::from_proto(&proto).unwrap().error.as_deref(), Some("TimeoutError: read timed out"));
        proto.status = Some(Status { code: StatusCode::Ok as i32, message: String::new() });
        assert_eq!(Span::from_proto(&proto).unwrap().error, None);
    }

    #[test]
    fn malformed_ids_and_times_are_refused() {
        let mut proto = span();
        proto.trace_id = vec![0; 16];
        assert_eq!(Span::from_proto(&proto), Err(SpanError::TraceId));
        let mut proto = span();
        proto.span_id = vec![1; 4];
        assert_eq!(Span::from_proto(&proto), Err(SpanError::SpanId));
        let mut proto = span();
        proto.end_time_unix_nano = 1;
        assert_eq!(Span::from_proto(&proto), Err(SpanError::Times));
    }

    #[test]
    fn numbers_and_flags_may_arrive_as_text() {
        let attributes = Attributes::kept(&[
            kv("turn.number", ProtoValue::StringValue("4".into())),
            kv("turn.was_interrupted", ProtoValue::StringValue("true".into())),
            kv("metrics.ttfb", ProtoValue::StringValue("NaN".into())),
        ]);
        assert_eq!(attributes.count("turn.number"), Some(4));
        assert_eq!(attributes.flag("turn.was_interrupted"), Some(true));
        assert_eq!(attributes.number("metrics.ttfb"), None);
    }
}
