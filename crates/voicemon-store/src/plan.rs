//! The write plan: the raw-fact row one stored event becomes, built once from the event
//! and its costing whatever the backend. SQLite binds each row to a prepared statement;
//! PostgreSQL streams rows into a binary `COPY` per table. What the event adds to derived
//! data is [`crate::derived`]'s part.

use voicemon_core::event::{Body, Envelope, Event};
use voicemon_core::pricing::Costing;

/// The row (or row update) one event writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact<'e> {
    /// Sets the call's start and, where given, its descriptive fields.
    CallStarted(CallStartedRow<'e>),
    /// Sets the call's end, outcome and, where given, its descriptive fields.
    CallEnded(CallEndedRow<'e>),
    Turn(TurnRow<'e>),
    Usage(UsageRow<'e>),
    Request(RequestRow<'e>),
    BreakerChange(BreakerChangeRow<'e>),
    Heartbeat(HeartbeatRow<'e>),
}

/// Fields of the call's row that an event names; `None` keeps what the row has.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFields<'e> {
    pub agent_id: Option<&'e str>,
    pub objective: Option<&'e str>,
    pub trace_id: Option<&'e str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallStartedRow<'e> {
    pub at_ms: i64,
    pub channel: Option<&'e str>,
    pub fields: CallFields<'e>,
    /// The envelope's attributes as a JSON object, when it has any.
    pub attributes: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallEndedRow<'e> {
    pub at_ms: i64,
    pub duration_s: f64,
    pub status: &'static str,
    pub ended_reason: Option<&'e str>,
    pub ended_by: Option<&'static str>,
    pub fields: CallFields<'e>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TurnRow<'e> {
    pub at_ms: i64,
    pub turn_index: u32,
    /// End to end, then STT, end of utterance, LLM first token, TTS first byte (ms).
    pub e2e_ms: f64,
    pub components_ms: [Option<f64>; 4],
    pub interrupted: Option<bool>,
    pub tool_calls: Option<u32>,
    pub agent_id: Option<&'e str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow<'e> {
    pub at_ms: i64,
    /// stt | llm | tts
    pub component: &'static str,
    pub provider: &'e str,
    pub model: Option<&'e str>,
    pub voice: Option<&'e str>,
    pub audio_seconds: Option<f64>,
    /// Input, output, cached input, audio input, audio output.
    pub tokens: [Option<u64>; 5],
    pub characters: Option<u64>,
    pub latency_ms: Option<f64>,
    /// `None`: unpriced.
    pub cost_nano: Option<i64>,
    /// The cost note it is filed under: (price entry, unit prices), or ("", why unpriced).
    pub note: (&'e str, &'e str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow<'e> {
    pub at_ms: i64,
    pub provider: &'e str,
    pub component: &'static str,
    pub ok: bool,
    pub latency_ms: Option<f64>,
    pub error: Option<&'e str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerChangeRow<'e> {
    pub at_ms: i64,
    pub breaker: &'e str,
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRow<'e> {
    pub at_ms: i64,
    pub worker_id: &'e str,
    pub memory_used_bytes: i64,
    pub memory_limit_bytes: i64,
    pub cpu_percent: f64,
    pub active_calls: u32,
}

impl<'e> Fact<'e> {
    /// The row `event` writes; usage rows carry the cost `costing` gives.
    pub fn of(event: &'e Event, costing: &'e Costing) -> Fact<'e> {
        let envelope = &event.envelope;
        let at_ms = envelope.timestamp_ms;
        let usage = |component, provider: &'e str, model: Option<&'e str>| UsageRow {
            at_ms,
            component,
            provider,
            model,
            voice: None,
            audio_seconds: None,
            tokens: [None; 5],
            characters: None,
            latency_ms: None,
            cost_nano: match costing {
                Costing::Priced(line) => Some(line.cost.0),
                _ => None,
            },
            note: note_of(costing),
        };
        match &event.body {
            Body::CallStarted(started) => Fact::CallStarted(CallStartedRow {
                at_ms,
                channel: started.channel.as_deref(),
                fields: call_fields(envelope),
                attributes: (!envelope.attributes.is_empty())
                    .then(|| serde_json::to_string(&envelope.attributes).unwrap_or_default()),
            }),
            Body::CallEnded(ended) => Fact::CallEnded(CallEndedRow {
                at_ms,
                duration_s: ended.duration_s,
                status: ended.status.as_str(),
                ended_reason: ended.ended_reason.as_deref(),
                ended_by: ended.ended_by.map(|by| by.as_str()),
                fields: call_fields(envelope),
            }),
            Body::TurnCompleted(turn) => Fact::Turn(TurnRow {
                at_ms,
                turn_index: turn.turn_index,
                e2e_ms: turn.e2e_ms,
                components_ms: [turn.stt_ms, turn.eou_ms, turn.llm_ttft_ms, turn.tts_ttfb_ms],
                interrupted: turn.interrupted,
                tool_calls: turn.tool_calls,
                agent_id: envelope.agent_id.as_deref(),
            }),
            Body::SttUsage(u) => Fact::Usage(UsageRow {
                audio_seconds: Some(u.audio_seconds),
                latency_ms: u.latency_ms,
                ..usage("stt", &u.provider, u.model.as_deref())
            }),
            Body::LlmUsage(u) => Fact::Usage(UsageRow {
                tokens: [
                    Some(u.input_tokens),
                    Some(u.output_tokens),
                    u.cached_input_tokens,
                    u.audio_input_tokens,
                    u.audio_output_tokens,
                ],
                latency_ms: u.ttft_ms,
                ..usage("llm", &u.provider, Some(&u.model))
            }),
            Body::TtsUsage(u) => Fact::Usage(UsageRow {
                voice: u.voice.as_deref(),
                audio_seconds: u.audio_seconds,
                characters: Some(u.characters),
                latency_ms: u.ttfb_ms,
                ..usage("tts", &u.provider, u.model.as_deref())
            }),
            Body::ProviderRequest(request) => Fact::Request(RequestRow {
                at_ms,
                provider: &request.provider,
                component: request.component.as_str(),
                ok: request.ok,
                latency_ms: request.latency_ms,
                error: request.error.as_deref(),
            }),
            Body::CircuitBreakerChanged(change) => Fact::BreakerChange(BreakerChangeRow {
                at_ms,
                breaker: &change.breaker,
                state: change.state.as_str(),
            }),
            Body::WorkerHeartbeat(beat) => Fact::Heartbeat(HeartbeatRow {
                at_ms,
                worker_id: &beat.worker_id,
                memory_used_bytes: beat.memory_used_bytes as i64,
                memory_limit_bytes: beat.memory_limit_bytes as i64,
                cpu_percent: beat.cpu_percent,
                active_calls: beat.active_calls,
            }),
        }
    }
}

fn call_fields(envelope: &Envelope) -> CallFields<'_> {
    CallFields {
        agent_id: envelope.agent_id.as_deref(),
        objective: envelope.objective.as_deref(),
        trace_id: envelope.trace_id.as_deref(),
    }
}

/// The cost note a usage line is filed under: (price entry, unit prices) when priced,
/// ("", the reason) when not; ("", "") for events that are not usage.
pub fn note_of(costing: &Costing) -> (&str, &str) {
    match costing {
        Costing::Priced(line) => (line.price_ref.as_str(), line.unit_price.as_str()),
        Costing::Unpriced { reason } => ("", reason.as_str()),
        Costing::NotUsage => ("", ""),
    }
}
