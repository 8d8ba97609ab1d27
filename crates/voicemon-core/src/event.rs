//! The event contract v1: the typed events voice workers send (see `docs/events.md`).
//!
//! Events arrive as JSON in a flat wire shape ([`crate::validate::WireEvent`]) and leave
//! validation as an [`Event`]: an [`Envelope`] common to every type plus a typed [`Body`].
//! Times are unix milliseconds (UTC) from here on.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fields every event carries, whatever its type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    /// Idempotency key: the same `id` twice for one tenant is stored once.
    pub id: String,
    /// When it happened, unix milliseconds UTC.
    pub timestamp_ms: i64,
    pub tenant_id: String,
    /// Present on every call-scoped type, optional on `provider.request`.
    pub call_id: Option<String>,
    pub trace_id: Option<String>,
    pub agent_id: Option<String>,
    pub objective: Option<String>,
    /// Free-form labels; kept with the raw fact for drill-down, never used as a dimension.
    pub attributes: BTreeMap<String, String>,
}

/// One validated event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub envelope: Envelope,
    pub body: Body,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }
}

/// The type-specific part of an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Body {
    CallStarted(CallStarted),
    CallEnded(CallEnded),
    TurnCompleted(TurnCompleted),
    SttUsage(SttUsage),
    LlmUsage(LlmUsage),
    TtsUsage(TtsUsage),
    ProviderRequest(ProviderRequest),
    CircuitBreakerChanged(CircuitBreakerChanged),
    WorkerHeartbeat(WorkerHeartbeat),
}

impl Body {
    pub fn kind(&self) -> EventKind {
        match self {
            Body::CallStarted(_) => EventKind::CallStarted,
            Body::CallEnded(_) => EventKind::CallEnded,
            Body::TurnCompleted(_) => EventKind::TurnCompleted,
            Body::SttUsage(_) => EventKind::SttUsage,
            Body::LlmUsage(_) => EventKind::LlmUsage,
            Body::TtsUsage(_) => EventKind::TtsUsage,
            Body::ProviderRequest(_) => EventKind::ProviderRequest,
            Body::CircuitBreakerChanged(_) => EventKind::CircuitBreakerChanged,
            Body::WorkerHeartbeat(_) => EventKind::WorkerHeartbeat,
        }
    }
}

/// The nine event types of contract v1, by their wire name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "call.started")]
    CallStarted,
    #[serde(rename = "call.ended")]
    CallEnded,
    #[serde(rename = "turn.completed")]
    TurnCompleted,
    #[serde(rename = "stt.usage")]
    SttUsage,
    #[serde(rename = "llm.usage")]
    LlmUsage,
    #[serde(rename = "tts.usage")]
    TtsUsage,
    #[serde(rename = "provider.request")]
    ProviderRequest,
    #[serde(rename = "circuit_breaker.changed")]
    CircuitBreakerChanged,
    #[serde(rename = "worker.heartbeat")]
    WorkerHeartbeat,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::CallStarted,
        EventKind::CallEnded,
        EventKind::TurnCompleted,
        EventKind::SttUsage,
        EventKind::LlmUsage,
        EventKind::TtsUsage,
        EventKind::ProviderRequest,
        EventKind::CircuitBreakerChanged,
        EventKind::WorkerHeartbeat,
    ];

    pub fn wire_name(self) -> &'static str {
        match self {
            EventKind::CallStarted => "call.started",
            EventKind::CallEnded => "call.ended",
            EventKind::TurnCompleted => "turn.completed",
            EventKind::SttUsage => "stt.usage",
            EventKind::LlmUsage => "llm.usage",
            EventKind::TtsUsage => "tts.usage",
            EventKind::ProviderRequest => "provider.request",
            EventKind::CircuitBreakerChanged => "circuit_breaker.changed",
            EventKind::WorkerHeartbeat => "worker.heartbeat",
        }
    }

    pub fn from_wire_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.wire_name() == name)
    }

    /// Whether `call_id` is required for this type.
    pub fn is_call_scoped(self) -> bool {
        !matches!(
            self,
            EventKind::ProviderRequest | EventKind::CircuitBreakerChanged | EventKind::WorkerHeartbeat
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallStarted {
    /// `phone`, `web`, `sip`… free text, lower-cased.
    pub channel: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Completed,
    Failed,
    Abandoned,
    Transferred,
}

impl CallStatus {
    pub const ALL: [CallStatus; 4] =
        [CallStatus::Completed, CallStatus::Failed, CallStatus::Abandoned, CallStatus::Transferred];

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Completed => "completed",
            CallStatus::Failed => "failed",
            CallStatus::Abandoned => "abandoned",
            CallStatus::Transferred => "transferred",
        }
    }

    pub fn parse(text: &str) -> Option<CallStatus> {
        CallStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// A call counts towards the success rate when it reached its end as intended:
    /// completed, or handed over to a person (`transferred`).
    pub fn is_success(self) -> bool {
        matches!(self, CallStatus::Completed | CallStatus::Transferred)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    User,
    Agent,
    System,
    Provider,
}

impl EndedBy {
    pub const ALL: [EndedBy; 4] = [EndedBy::User, EndedBy::Agent, EndedBy::System, EndedBy::Provider];

    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::User => "user",
            EndedBy::Agent => "agent",
            EndedBy::System => "system",
            EndedBy::Provider => "provider",
        }
    }

    pub fn parse(text: &str) -> Option<EndedBy> {
        EndedBy::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallEnded {
    pub duration_s: f64,
    pub status: CallStatus,
    pub ended_reason: Option<String>,
    pub ended_by: Option<EndedBy>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnCompleted {
    pub turn_index: u32,
    /// User stopped speaking → agent started speaking, as measured by the worker.
    pub e2e_ms: f64,
    pub stt_ms: Option<f64>,
    pub eou_ms: Option<f64>,
    pub llm_ttft_ms: Option<f64>,
    pub tts_ttfb_ms: Option<f64>,
    pub interrupted: Option<bool>,
    pub tool_calls: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SttUsage {
    pub provider: String,
    pub model: Option<String>,
    pub audio_seconds: f64,
    pub latency_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmUsage {
    pub provider: String,
    pub model: String,
    /// All input tokens of the request, cached ones included (OpenAI's `prompt_tokens`).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The part of `input_tokens` served from the provider's prompt cache.
    pub cached_input_tokens: Option<u64>,
    /// The part of `input_tokens` that was audio (realtime / audio models).
    pub audio_input_tokens: Option<u64>,
    /// The part of `output_tokens` that was audio.
    pub audio_output_tokens: Option<u64>,
    pub ttft_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TtsUsage {
    pub provider: String,
    pub model: Option<String>,
    pub voice: Option<String>,
    pub characters: u64,
    pub audio_seconds: Option<f64>,
    pub ttfb_ms: Option<f64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineComponent {
    Stt,
    Llm,
    Tts,
}

impl PipelineComponent {
    pub const ALL: [PipelineComponent; 3] =
        [PipelineComponent::Stt, PipelineComponent::Llm, PipelineComponent::Tts];

    pub fn as_str(self) -> &'static str {
        match self {
            PipelineComponent::Stt => "stt",
            PipelineComponent::Llm => "llm",
            PipelineComponent::Tts => "tts",
        }
    }

    pub fn parse(text: &str) -> Option<PipelineComponent> {
        PipelineComponent::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderRequest {
    pub provider: String,
    pub component: PipelineComponent,
    pub ok: bool,
    pub latency_ms: Option<f64>,
    /// Error kind as the worker names it (`timeout`, `http_429`, `connection_reset`…).
    pub error: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [BreakerState; 3] = [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen];

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    pub fn parse(text: &str) -> Option<BreakerState> {
        BreakerState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CircuitBreakerChanged {
    pub breaker: String,
    pub state: BreakerState,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerHeartbeat {
    pub worker_id: String,
    pub memory_used_bytes: u64,
    pub memory_limit_bytes: u64,
    pub cpu_percent: f64,
    pub active_calls: u32,
}
