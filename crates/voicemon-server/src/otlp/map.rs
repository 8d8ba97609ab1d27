//! What each framework's spans mean in voicemon's contract: which span is the call, which
//! is a turn, which carry usage; and the contract-v1 events a call, a turn (with the
//! spans under it) or a lone usage span become. `docs/otlp.md` is the same table in prose.
//!
//! Every event id derives from the trace and span ids, so an exporter's retry, or a span
//! that reaches voicemon twice, is stored once.

use crate::otlp::span::Span;
use chrono::{DateTime, SecondsFormat};
use std::collections::BTreeMap;
use voicemon_core::validate::WireEvent;

/// The frameworks whose span names voicemon knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    Pipecat,
    LiveKit,
    /// Spans of any other stack that follow the OpenTelemetry GenAI conventions.
    Generic,
}

/// What a span is to voicemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The whole conversation (Pipecat `conversation`, LiveKit `agent_session`).
    Call,
    /// One exchange, user speech to agent speech (Pipecat `turn`, LiveKit `agent_turn`).
    Turn,
    /// A service request with usage: STT, LLM or TTS.
    Service(Service),
    /// A span between a turn and its service requests whose attributes a turn reads
    /// (LiveKit `llm_node` for the time to first token, `tts_node` for the first byte).
    Node(Service),
    /// LiveKit's `user_turn`: the user's speech, a sibling of the `agent_turn` that
    /// answers it; it carries the transcription delay.
    UserTurn,
    /// One attempt of a service request (LiveKit `llm_request_run`, `tts_request_run`:
    /// a retried request has several), where LiveKit records a provider's errors.
    Attempt(Service),
    /// A span of another stack carrying GenAI token usage (`gen_ai.usage.*`): an LLM
    /// request, counted only in a trace with no Pipecat or LiveKit span (whose own spans
    /// would say the same).
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Stt,
    Llm,
    Tts,
}

impl Service {
    fn component(self) -> &'static str {
        match self {
            Service::Stt => "stt",
            Service::Llm => "llm",
            Service::Tts => "tts",
        }
    }
}

/// The framework and role of a span by its name; `None` for a span voicemon does not
/// read (it is not held).
pub fn classify(name: &str) -> Option<(Framework, Role)> {
    let pipecat = |role| Some((Framework::Pipecat, role));
    let livekit = |role| Some((Framework::LiveKit, role));
    match name {
        "conversation" => pipecat(Role::Call),
        "turn" => pipecat(Role::Turn),
        "agent_session" => livekit(Role::Call),
        "agent_turn" => livekit(Role::Turn),
        "user_turn" => livekit(Role::UserTurn),
        "llm_request" => livekit(Role::Service(Service::Llm)),
        "tts_request" => livekit(Role::Service(Service::Tts)),
        "stt_request" => livekit(Role::Service(Service::Stt)),
        "llm_request_run" => livekit(Role::Attempt(Service::Llm)),
        "tts_request_run" => livekit(Role::Attempt(Service::Tts)),
        "stt_request_run" => livekit(Role::Attempt(Service::Stt)),
        "llm_node" => livekit(Role::Node(Service::Llm)),
        "tts_node" => livekit(Role::Node(Service::Tts)),
        // Pipecat names its service spans `stt`, `llm`, `tts` (older releases appended the
        // service class: `llm_openaillmservice`).
        _ => {
            let service = match name.split('_').next()? {
                "stt" => Service::Stt,
                "llm" => Service::Llm,
                "tts" => Service::Tts,
                _ => return None,
            };
            (name.len() == 3 || name.as_bytes()[3] == b'_')
                .then_some((Framework::Pipecat, Role::Service(service)))
        }
    }
}

/// [`classify`] by name, else a span of any stack that carries GenAI token usage
/// (`gen_ai.usage.input_tokens` / `output_tokens`, the OpenTelemetry GenAI conventions).
pub fn classify_span(span: &Span) -> Option<(Framework, Role)> {
    classify(&span.name).or_else(|| {
        let attributes = &span.attributes;
        let usage = attributes.count("gen_ai.usage.input_tokens").is_some()
            || attributes.count("gen_ai.usage.output_tokens").is_some();
        usage.then_some((Framework::Generic, Role::Generic))
    })
}

/// The call id a span names, if it names one: Pipecat's `conversation.id`; LiveKit's
/// room (the room SID a job stamps on its spans as `room_id`, which is also its
/// `gen_ai.conversation.id`), or the room's name.
pub fn call_id_of(span: &Span) -> Option<&str> {
    let attributes = &span.attributes;
    attributes
        .text("conversation.id")
        .or_else(|| attributes.text("room_id"))
        .or_else(|| attributes.text("gen_ai.conversation.id"))
        .or_else(|| attributes.text("lk.room_name"))
}

/// What a LiveKit `user_turn` tells its agent turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserSpeech {
    pub end_ns: u64,
    /// `lk.transcription_delay`: end of speech → final transcript.
    pub stt_ms: Option<f64>,
    /// `lk.end_of_turn_delay`: end of speech → end of turn decided.
    pub eou_ms: Option<f64>,
}

impl UserSpeech {
    pub fn of(span: &Span) -> UserSpeech {
        UserSpeech {
            end_ns: span.end_ns,
            stt_ms: span.attributes.seconds_as_ms("lk.transcription_delay"),
            eou_ms: span.attributes.seconds_as_ms("lk.end_of_turn_delay"),
        }
    }
}

/// What every event of one trace shares.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub tenant_id: &'a str,
    pub call_id: &'a str,
    pub agent_id: Option<&'a str>,
    /// The trace the events come from (none for a metric's).
    pub trace_id: Option<&'a str>,
}

impl Envelope<'_> {
    /// An event of type `kind` with the envelope's fields, `source = "otlp"` among its
    /// attributes.
    pub fn event(&self, kind: &str, id: String, at_ms: i64) -> WireEvent {
        WireEvent {
            id: Some(id),
            kind: Some(kind.to_owned()),
            timestamp: Some(rfc3339(at_ms)),
            tenant_id: Some(self.tenant_id.to_owned()),
            call_id: Some(self.call_id.to_owned()),
            trace_id: self.trace_id.map(str::to_owned),
            agent_id: self.agent_id.map(str::to_owned),
            attributes: Some(BTreeMap::from([("source".to_owned(), "otlp".to_owned())])),
            ..WireEvent::default()
        }
    }

    fn trace(&self) -> &str {
        self.trace_id.unwrap_or_default()
    }

    fn id(&self, span: &Span, what: &str) -> String {
        format!("otlp:{}:{}:{what}", self.trace(), span.span_id)
    }

    /// `call.started` at `start_ns`; its id is the trace's, so a trace starts one call.
    pub fn call_started(&self, start_ns: u64) -> WireEvent {
        let id = format!("otlp:{}:call.started", self.trace());
        self.event("call.started", id, (start_ns / 1_000_000) as i64)
    }

    /// `call.ended` from the call span: its duration, `failed` when its status is ERROR.
    pub fn call_ended(&self, call: &Span) -> WireEvent {
        let mut event = self.event("call.ended", format!("otlp:{}:call.ended", self.trace()), call.end_ms());
        event.duration_s = Some(call.duration_ms() / 1000.0);
        match &call.error {
            Some(error) => {
                event.status = Some("failed".into());
                event.ended_reason = Some(error.clone());
            }
            None => event.status = Some("completed".into()),
        }
        event
    }

    /// The events of one turn span and the spans found under it: `turn.completed` when the
    /// turn carries its end-to-end latency, then each service span's events.
    /// `ordinal` numbers a turn whose framework does not (LiveKit); `speech` is the
    /// user's speech it answers, when the framework reports it apart (LiveKit).
    pub fn turn(
        &self,
        framework: Framework,
        turn: &Span,
        under: &[(Role, &Span)],
        ordinal: u32,
        speech: Option<UserSpeech>,
    ) -> Vec<WireEvent> {
        let of = |wanted: Role| under.iter().filter(move |(role, _)| *role == wanted).map(|(_, span)| *span);
        // The first span of a kind that measured it (a failed request may not have).
        let first_ms = |wanted: Role, key: &str| {
            of(wanted)
                .filter_map(|span| span.attributes.seconds_as_ms(key).map(|ms| (span.start_ns, ms)))
                .min_by_key(|(start, _)| *start)
                .map(|(_, ms)| ms)
        };
        let first = |wanted: Role| of(wanted).min_by_key(|span| span.start_ns);
        let attributes = &turn.attributes;
        let mut event = self.event("turn.completed", self.id(turn, "turn"), turn.end_ms());
        match framework {
            Framework::Pipecat => {
                event.e2e_ms = attributes.seconds_as_ms("turn.user_bot_latency_seconds");
                event.turn_index = attributes.count("turn.number").and_then(|n| u32::try_from(n).ok());
                event.interrupted = attributes.flag("turn.was_interrupted");
                event.stt_ms = first_ms(Role::Service(Service::Stt), "metrics.ttfb");
                event.llm_ttft_ms = first_ms(Role::Service(Service::Llm), "metrics.ttfb");
                event.tts_ttfb_ms = first_ms(Role::Service(Service::Tts), "metrics.ttfb");
                // An LLM that calls a tool is asked again with the tool's result: each
                // answered request after the first is a tool call (a failed one is not).
                let answered = of(Role::Service(Service::Llm)).filter(|span| span.error.is_none()).count();
                event.tool_calls = (answered > 1).then(|| (answered - 1) as u32);
            }
            Framework::LiveKit => {
                event.e2e_ms = attributes.seconds_as_ms("lk.e2e_latency");
                event.eou_ms = attributes
                    .seconds_as_ms("lk.end_of_turn_delay")
                    .or_else(|| speech.and_then(|speech| speech.eou_ms));
                event.stt_ms = attributes
                    .seconds_as_ms("lk.transcription_delay")
                    .or_else(|| speech.and_then(|speech| speech.stt_ms));
                event.interrupted = attributes.flag("lk.interrupted");
                event.llm_ttft_ms = first_ms(Role::Node(Service::Llm), "lk.response.ttft").or_else(|| {
                    first(Role::Service(Service::Llm)).and_then(|s| metric_ms(s, "lk.llm_metrics", "ttft"))
                });
                event.tts_ttfb_ms = first_ms(Role::Node(Service::Tts), "lk.response.ttfb").or_else(|| {
                    first(Role::Service(Service::Tts)).and_then(|s| metric_ms(s, "lk.tts_metrics", "ttfb"))
                });
            }
            // No turn spans in the GenAI conventions: a turn is always Pipecat's or LiveKit's.
            Framework::Generic => {}
        }
        let mut events = Vec::new();
        if event.e2e_ms.is_some() {
            event.turn_index = event.turn_index.or(Some(ordinal));
            events.push(event);
        }
        for (role, span) in under {
            match role {
                Role::Service(service) => events.extend(self.service(framework, *service, span)),
                Role::Attempt(service) => events.push(self.attempt(*service, span)),
                _ => {}
            }
        }
        events
    }

    /// A LiveKit request attempt's `provider.request`: failed when its status is ERROR,
    /// its duration as latency.
    pub fn attempt(&self, service: Service, span: &Span) -> WireEvent {
        let mut request = self.event("provider.request", self.id(span, "request"), span.end_ms());
        request.provider = Some(provider_of(Framework::LiveKit, span));
        request.component = Some(service.component().to_owned());
        request.ok = Some(span.error.is_none());
        request.latency_ms = Some(span.duration_ms());
        request.error = span.error.clone();
        request
    }

    /// A service span's usage line (when it carries its usage) and, for Pipecat, its
    /// `provider.request` (LiveKit's come from its attempts, [`Envelope::attempt`]).
    pub fn service(&self, framework: Framework, service: Service, span: &Span) -> Vec<WireEvent> {
        let attributes = &span.attributes;
        let provider = provider_of(framework, span);
        let model = model_of(span);
        let latency_ms = match framework {
            Framework::Pipecat => attributes.seconds_as_ms("metrics.ttfb"),
            Framework::Generic => attributes.seconds_as_ms("gen_ai.response.time_to_first_chunk"),
            Framework::LiveKit => match service {
                Service::Llm => metric_ms(span, "lk.llm_metrics", "ttft"),
                Service::Tts => metric_ms(span, "lk.tts_metrics", "ttfb"),
                Service::Stt => None,
            },
        };
        let mut events = Vec::new();
        let at_ms = span.end_ms();
        match service {
            Service::Stt => {
                let audio = attributes
                    .number("metrics.audio_seconds")
                    .or_else(|| metric(span, "lk.stt_metrics", "audio_duration"));
                if let Some(audio_seconds) = audio {
                    let mut usage = self.event("stt.usage", self.id(span, "usage"), at_ms);
                    usage.provider = Some(provider.clone());
                    usage.model = model.clone();
                    usage.audio_seconds = Some(audio_seconds);
                    usage.latency_ms = latency_ms;
                    events.push(usage);
                }
            }
            Service::Llm => {
                let input = attributes.count("gen_ai.usage.input_tokens");
                let output = attributes.count("gen_ai.usage.output_tokens");
                if let (Some(input), Some(output)) = (input, output) {
                    let mut usage = self.event("llm.usage", self.id(span, "usage"), at_ms);
                    usage.provider = Some(provider.clone());
                    usage.model = Some(model.clone().unwrap_or_else(|| "unknown".into()));
                    usage.input_tokens = Some(input);
                    usage.output_tokens = Some(output);
                    usage.cached_input_tokens = attributes
                        .count("gen_ai.usage.cache_read.input_tokens")
                        .or_else(|| attributes.count("gen_ai.usage.cache_read_input_tokens"))
                        .filter(|cached| *cached > 0);
                    usage.ttft_ms = latency_ms;
                    events.push(usage);
                }
            }
            Service::Tts => {
                let characters = attributes
                    .count("metrics.character_count")
                    .or_else(|| metric(span, "lk.tts_metrics", "characters_count").map(|c| c as u64));
                if let Some(characters) = characters {
                    let mut usage = self.event("tts.usage", self.id(span, "usage"), at_ms);
                    usage.provider = Some(provider.clone());
                    usage.model = model.clone();
                    usage.voice = attributes.text("voice_id").map(str::to_owned);
                    usage.characters = Some(characters);
                    usage.ttfb_ms = latency_ms;
                    usage.audio_seconds = metric(span, "lk.tts_metrics", "audio_duration");
                    events.push(usage);
                }
            }
        }
        if framework == Framework::LiveKit {
            return events;
        }
        let mut request = self.event("provider.request", self.id(span, "request"), at_ms);
        request.provider = Some(provider);
        request.component = Some(service.component().to_owned());
        request.ok = Some(span.error.is_none());
        request.latency_ms = latency_ms.or(Some(span.duration_ms()));
        request.error = span.error.clone();
        events.push(request);
        events
    }
}

/// A number inside one of LiveKit's `lk.*_metrics` JSON attributes.
fn metric(span: &Span, attribute: &str, field: &str) -> Option<f64> {
    let json: serde_json::Value = serde_json::from_str(span.attributes.text(attribute)?).ok()?;
    json.get(field)?.as_f64().filter(|n| n.is_finite() && *n >= 0.0)
}

/// Seconds inside a LiveKit metrics attribute, as milliseconds.
fn metric_ms(span: &Span, attribute: &str, field: &str) -> Option<f64> {
    metric(span, attribute, field).map(|s| s * 1000.0)
}

/// The model a service span names, lowercased: `gen_ai.request.model`, else the model
/// the provider answered with, else LiveKit's metrics metadata. Dated snapshots stay as
/// sent: the price book matches `gpt-4o-mini-2024-07-18` to `gpt-4o-mini`.
fn model_of(span: &Span) -> Option<String> {
    let attributes = &span.attributes;
    let named = attributes
        .text("gen_ai.request.model")
        .or_else(|| attributes.text("gen_ai.response.model"))
        .or_else(|| attributes.text("model"))
        .or_else(|| attributes.text("lk.model"))
        .map(str::to_owned)
        .or_else(|| metadata_text(span, "model_name"));
    named.map(|model| model.to_ascii_lowercase())
}

/// The provider a service span names, normalised to the price book's names.
fn provider_of(framework: Framework, span: &Span) -> String {
    let attributes = &span.attributes;
    let named = attributes
        .text("gen_ai.provider.name")
        .or_else(|| attributes.text("gen_ai.system"))
        .or_else(|| attributes.text("lk.provider"))
        .map(str::to_owned)
        .or_else(|| metadata_text(span, "model_provider"));
    match named {
        Some(name) => normalise_provider(&name),
        None => match framework {
            Framework::Pipecat => "pipecat".into(),
            Framework::LiveKit => "livekit".into(),
            Framework::Generic => "unknown".into(),
        },
    }
}

/// `metadata.<field>` of a LiveKit metrics attribute (LLM, TTS or STT).
fn metadata_text(span: &Span, field: &str) -> Option<String> {
    ["lk.llm_metrics", "lk.tts_metrics", "lk.stt_metrics"].iter().find_map(|attribute| {
        let json: serde_json::Value = serde_json::from_str(span.attributes.text(attribute)?).ok()?;
        let text = json.get("metadata")?.get(field)?.as_str()?.trim();
        (!text.is_empty()).then(|| text.to_owned())
    })
}

/// A provider as the price book names it: lowercase, without the class-name suffixes
/// a framework derives names from (`DeepgramSTTService` → `deepgram`), the API host a
/// LiveKit plugin reports (`api.openai.com` → `openai`), the module path
/// (`livekit.plugins.openai` → `openai`), or the GenAI semantic conventions' system ids
/// (`azure.ai.openai` → `azure_openai`, `gcp.gemini` → `google`).
pub fn normalise_provider(raw: &str) -> String {
    let lower = raw.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix("livekit.plugins.").unwrap_or(&lower);
    match lower {
        "azure.ai.openai" | "az.ai.openai" => return "azure_openai".into(),
        "gcp.gemini" | "gcp.vertex_ai" | "gcp.gen_ai" => return "google".into(),
        "aws.bedrock" => return "aws_bedrock".into(),
        _ => {}
    }
    let labels: Vec<&str> = lower.split('.').filter(|label| !label.is_empty()).collect();
    const TOP_LEVEL: [&str; 8] = ["com", "io", "ai", "net", "org", "co", "dev", "app"];
    let label = match labels.as_slice() {
        // A host: the label before the top-level domain, past `api.` or `www.`.
        [.., name, top] if TOP_LEVEL.contains(top) && !["api", "www"].contains(name) => name,
        [.., last] => last,
        [] => lower,
    };
    let mut name = (*label).to_owned();
    const SUFFIXES: [&str; 9] =
        ["service", "http", "websocket", "realtime", "stt", "tts", "llm", "multimodal", "beta"];
    while let Some(suffix) =
        SUFFIXES.iter().find(|suffix| name.len() > suffix.len() && name.ends_with(*suffix))
    {
        name.truncate(name.len() - suffix.len());
        name = name.trim_end_matches(['_', '-']).to_owned();
    }
    if name.is_empty() {
        lower.to_owned()
    } else {
        name
    }
}

/// Unix milliseconds as RFC 3339 with milliseconds, UTC.
pub fn rfc3339(at_ms: i64) -> String {
    DateTime::from_timestamp_millis(at_ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::span::{Attributes, Value};

    #[test]
    fn span_names_say_framework_and_role() {
        assert_eq!(classify("turn"), Some((Framework::Pipecat, Role::Turn)));
        assert_eq!(classify("llm"), Some((Framework::Pipecat, Role::Service(Service::Llm))));
        assert_eq!(
            classify("tts_cartesiattsservice"),
            Some((Framework::Pipecat, Role::Service(Service::Tts)))
        );
        assert_eq!(classify("sttx"), None);
        assert_eq!(classify("llm_node"), Some((Framework::LiveKit, Role::Node(Service::Llm))));
        assert_eq!(classify("agent_turn"), Some((Framework::LiveKit, Role::Turn)));
        assert_eq!(classify("llm_request_run"), Some((Framework::LiveKit, Role::Attempt(Service::Llm))));
        assert_eq!(classify("POST /v1/chat/completions"), None);
        let generic = |attributes| Span {
            trace_id: "0".repeat(32),
            span_id: "1".repeat(16),
            parent_id: None,
            name: "chat gpt-4o".into(),
            start_ns: 0,
            end_ns: 0,
            error: None,
            attributes,
        };
        let usage = Attributes::from_pairs(vec![("gen_ai.usage.input_tokens", Value::Int(10))]);
        assert_eq!(classify_span(&generic(usage)), Some((Framework::Generic, Role::Generic)));
        assert_eq!(classify_span(&generic(Attributes::default())), None, "no usage, nothing to count");
    }

    #[test]
    fn provider_names_match_the_price_book() {
        assert_eq!(normalise_provider("DeepgramSTTService"), "deepgram");
        assert_eq!(normalise_provider("CartesiaTTSService"), "cartesia");
        assert_eq!(normalise_provider("ElevenLabsHttpTTSService"), "elevenlabs");
        assert_eq!(normalise_provider("OpenAILLMService"), "openai");
        assert_eq!(normalise_provider("OpenAIRealtimeBetaLLMService"), "openai");
        assert_eq!(normalise_provider("openai"), "openai");
        assert_eq!(normalise_provider("livekit.plugins.deepgram"), "deepgram");
        assert_eq!(normalise_provider("azure.ai.openai"), "azure_openai");
        assert_eq!(normalise_provider("api.openai.com"), "openai");
        assert_eq!(normalise_provider("api.elevenlabs.io"), "elevenlabs");
        assert_eq!(normalise_provider("gcp.gemini"), "google");
        assert_eq!(normalise_provider("STT"), "stt");
    }
}
