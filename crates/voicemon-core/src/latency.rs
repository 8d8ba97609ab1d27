//! Latency components and the observations each event contributes to them.

use crate::event::{Body, Event};
use serde::Serialize;

/// A latency the API answers for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// User stopped speaking → agent started speaking, as the caller hears it.
    TurnE2e,
    Stt,
    /// End-of-utterance decision.
    Eou,
    LlmTtft,
    TtsTtfb,
}

impl Component {
    pub const ALL: [Component; 5] =
        [Component::TurnE2e, Component::Stt, Component::Eou, Component::LlmTtft, Component::TtsTtfb];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::TurnE2e => "turn_e2e",
            Component::Stt => "stt",
            Component::Eou => "eou",
            Component::LlmTtft => "llm_ttft",
            Component::TtsTtfb => "tts_ttfb",
        }
    }

    pub fn parse(text: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Where an observation came from. `turn.completed` measures each component of one turn;
/// usage events measure one provider request and carry the provider and model.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Turn,
    Usage,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Turn => "turn",
            Source::Usage => "usage",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        [Source::Turn, Source::Usage].into_iter().find(|s| s.as_str() == text)
    }
}

/// The dimensions a latency rollup is kept by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub tenant_id: String,
    pub component: Component,
    pub source: Source,
    /// Empty when the event named none.
    pub agent_id: String,
    pub provider: String,
    pub model: String,
}

/// One latency value at one time for one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub key: SeriesKey,
    pub timestamp_ms: i64,
    pub value_ms: f64,
}

/// The latency observations an event contributes (none for most types).
pub fn observations(event: &Event) -> Vec<Observation> {
    let envelope = &event.envelope;
    let make = |component, source, provider: &str, model: Option<&str>, value_ms| Observation {
        key: SeriesKey {
            tenant_id: envelope.tenant_id.clone(),
            component,
            source,
            agent_id: envelope.agent_id.clone().unwrap_or_default(),
            provider: provider.to_owned(),
            model: model.unwrap_or_default().to_owned(),
        },
        timestamp_ms: envelope.timestamp_ms,
        value_ms,
    };
    match &event.body {
        Body::TurnCompleted(turn) => [
            (Component::TurnE2e, Some(turn.e2e_ms)),
            (Component::Stt, turn.stt_ms),
            (Component::Eou, turn.eou_ms),
            (Component::LlmTtft, turn.llm_ttft_ms),
            (Component::TtsTtfb, turn.tts_ttfb_ms),
        ]
        .into_iter()
        .filter_map(|(component, value)| Some(make(component, Source::Turn, "", None, value?)))
        .collect(),
        Body::SttUsage(usage) => usage
            .latency_ms
            .map(|v| make(Component::Stt, Source::Usage, &usage.provider, usage.model.as_deref(), v))
            .into_iter()
            .collect(),
        Body::LlmUsage(usage) => usage
            .ttft_ms
            .map(|v| make(Component::LlmTtft, Source::Usage, &usage.provider, Some(&usage.model), v))
            .into_iter()
            .collect(),
        Body::TtsUsage(usage) => usage
            .ttfb_ms
            .map(|v| make(Component::TtsTtfb, Source::Usage, &usage.provider, usage.model.as_deref(), v))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}
