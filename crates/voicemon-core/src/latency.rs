//! Latency components and the observations each event contributes to them.

use crate::event::{Body, Envelope, Event};
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

/// A [`SeriesKey`] borrowed from an event. It hashes like the owned key (the same fields
/// in the same order, `&str` hashing as `String` does), so a map keyed by `SeriesKey` can
/// be searched with it and the owned key is built only for a series it does not hold yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesKeyRef<'a> {
    pub tenant_id: &'a str,
    pub component: Component,
    pub source: Source,
    /// Empty when the event named none.
    pub agent_id: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
}

impl<'a> SeriesKeyRef<'a> {
    fn of(
        envelope: &'a Envelope,
        component: Component,
        source: Source,
        provider: &'a str,
        model: Option<&'a str>,
    ) -> SeriesKeyRef<'a> {
        SeriesKeyRef {
            tenant_id: &envelope.tenant_id,
            component,
            source,
            agent_id: envelope.agent_id.as_deref().unwrap_or_default(),
            provider,
            model: model.unwrap_or_default(),
        }
    }

    pub fn to_key(&self) -> SeriesKey {
        SeriesKey {
            tenant_id: self.tenant_id.to_owned(),
            component: self.component,
            source: self.source,
            agent_id: self.agent_id.to_owned(),
            provider: self.provider.to_owned(),
            model: self.model.to_owned(),
        }
    }

    /// Whether `key` is this series.
    pub fn is(&self, key: &SeriesKey) -> bool {
        self.component == key.component
            && self.source == key.source
            && self.tenant_id == key.tenant_id
            && self.agent_id == key.agent_id
            && self.provider == key.provider
            && self.model == key.model
    }
}

/// One latency value at one time for one series, borrowed from its event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation<'a> {
    pub key: SeriesKeyRef<'a>,
    pub timestamp_ms: i64,
    pub value_ms: f64,
}

/// The latency observations an event contributes (none for most types), without copying
/// any of its text.
pub fn observations(event: &Event) -> impl Iterator<Item = Observation<'_>> {
    let envelope = &event.envelope;
    let make = |component, source, provider, model, value_ms| {
        observation(envelope, SeriesKeyRef::of(envelope, component, source, provider, model), value_ms)
    };
    let turn = |component, value| make(component, Source::Turn, "", None, value);
    // A usage line has one latency; the array keeps a turn's five.
    let usage = |component, provider, model, value| {
        [make(component, Source::Usage, provider, model, value), None, None, None, None]
    };
    let found = match &event.body {
        Body::TurnCompleted(t) => [
            turn(Component::TurnE2e, Some(t.e2e_ms)),
            turn(Component::Stt, t.stt_ms),
            turn(Component::Eou, t.eou_ms),
            turn(Component::LlmTtft, t.llm_ttft_ms),
            turn(Component::TtsTtfb, t.tts_ttfb_ms),
        ],
        Body::SttUsage(u) => usage(Component::Stt, &u.provider, u.model.as_deref(), u.latency_ms),
        Body::LlmUsage(u) => usage(Component::LlmTtft, &u.provider, Some(&u.model), u.ttft_ms),
        Body::TtsUsage(u) => usage(Component::TtsTtfb, &u.provider, u.model.as_deref(), u.ttfb_ms),
        _ => [None; 5],
    };
    found.into_iter().flatten()
}

fn observation<'a>(
    envelope: &Envelope,
    key: SeriesKeyRef<'a>,
    value_ms: Option<f64>,
) -> Option<Observation<'a>> {
    Some(Observation { key, timestamp_ms: envelope.timestamp_ms, value_ms: value_ms? })
}
