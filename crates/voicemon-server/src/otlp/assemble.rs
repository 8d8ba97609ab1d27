//! Turns assembled from spans that arrive over several export requests, children before
//! their parents or after them, and sometimes twice.
//!
//! A span voicemon reads (see [`classify`]) is held until what it belongs to is known:
//! - a **turn** span is emitted with every held span under it as soon as it arrives, if
//!   anything under it has arrived already (exporters send a span when it ends, and
//!   children end first); if nothing has, it waits up to `turn_wait` for them;
//! - a **service** span (STT, LLM, TTS request) waits for its turn. One that arrives after
//!   its turn was emitted is emitted at once, as usage; one whose turn never comes is
//!   emitted as usage after `span_wait`;
//! - the **call** span (it ends last) ends the call at once.
//!
//! Memory is bounded: at most `max_held_spans` spans are held (the oldest are emitted
//! early when more arrive), each with only the attributes a mapping reads. A trace is
//! forgotten `trace_memory` after its last span (sooner beyond [`MAX_TRACES`]); a span of
//! it arriving later is emitted by the same rules, and its event ids make a repeat
//! harmless.

use crate::otlp::map::{call_id_of, classify_span, Envelope, Framework, Role, Service, UserSpeech};
use crate::otlp::span::Span;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use voicemon_core::validate::WireEvent;

/// How long spans wait, and how many may.
#[derive(Debug, Clone, PartialEq)]
pub struct AssemblyConfig {
    /// A service span waits this long for its turn (default 60 s).
    pub span_wait: Duration,
    /// A turn that arrives before anything under it waits this long for it (default 5 s).
    pub turn_wait: Duration,
    /// Spans held at most, over every tenant (default 100 000).
    pub max_held_spans: usize,
    /// A trace's ids and call id are kept this long after its last span (default 15 min).
    pub trace_memory: Duration,
}

impl Default for AssemblyConfig {
    fn default() -> Self {
        AssemblyConfig {
            span_wait: Duration::from_secs(60),
            turn_wait: Duration::from_secs(5),
            max_held_spans: 100_000,
            trace_memory: Duration::from_secs(15 * 60),
        }
    }
}

/// What became of the spans given to [`Assembler::add`] or [`Assembler::expire`].
#[derive(Debug, Default)]
pub struct Assembled {
    /// Contract-v1 events, not yet validated.
    pub events: Vec<WireEvent>,
    /// Spans that became events with their turn (or as the call).
    pub assembled: u64,
    /// Spans that became events without their turn: expired, evicted or late.
    pub alone: u64,
    /// Spans voicemon does not read (HTTP client spans, framework internals).
    pub ignored: u64,
    /// Spans already held or already emitted.
    pub repeated: u64,
    /// The spans `events` came from, to hold again if the events cannot be stored
    /// ([`Assembler::restore`]).
    consumed: Vec<Consumed>,
}

/// A span taken out of a trace to become events.
#[derive(Debug, Clone)]
struct Consumed {
    key: TraceKey,
    framework: Framework,
    agent_id: Option<String>,
    call_id: Option<String>,
    /// Whether its events included the trace's `call.started`.
    started: bool,
    held: Held,
}

/// The spans of one tenant's trace.
#[derive(Debug)]
struct Trace {
    framework: Framework,
    agent_id: Option<String>,
    call_id: Option<String>,
    /// Whether `call.started` was emitted.
    started: bool,
    first_start_ns: u64,
    held: HashMap<String, Held>,
    /// Spans emitted already (turns, what was under them, the call).
    done: HashSet<String>,
    turns: u32,
    /// The latest user speeches (LiveKit `user_turn`), for the agent turns that answer them.
    speech: Vec<UserSpeech>,
    touched_ms: i64,
}

/// Traces remembered at most (their ids and call id), besides those holding spans.
const MAX_TRACES: usize = 50_000;

/// User speeches remembered per trace.
const SPEECHES_KEPT: usize = 8;

impl Trace {
    fn new(framework: Framework, agent_id: Option<String>, start_ns: u64, now_ms: i64) -> Trace {
        Trace {
            framework,
            agent_id,
            call_id: None,
            started: false,
            first_start_ns: start_ns,
            held: HashMap::new(),
            done: HashSet::new(),
            turns: 0,
            speech: Vec::new(),
            touched_ms: now_ms,
        }
    }

    /// The user speech an agent turn starting at `start_ns` answers: the last to end
    /// before it (a second of clock skew allowed).
    fn speech_before(&self, start_ns: u64) -> Option<UserSpeech> {
        let limit = start_ns.saturating_add(1_000_000_000);
        self.speech.iter().filter(|speech| speech.end_ns <= limit).max_by_key(|speech| speech.end_ns).copied()
    }
}

#[derive(Debug, Clone)]
struct Held {
    role: Role,
    span: Span,
    arrived_ms: i64,
}

/// Where a span's chain of held parents leads.
enum Anchor {
    /// A held turn: the span goes out with it.
    Turn(String),
    /// Something emitted already: the span goes out alone, now.
    Done,
    /// Nothing known yet.
    Unknown,
}

type TraceKey = (String, String);

/// The spans held, by tenant and trace.
#[derive(Debug, Default)]
pub struct Assembler {
    config: AssemblyConfig,
    traces: HashMap<TraceKey, Trace>,
    held: usize,
}

impl Assembler {
    pub fn new(config: AssemblyConfig) -> Assembler {
        Assembler { config, traces: HashMap::new(), held: 0 }
    }

    /// Spans held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// One span of `tenant_id`'s, arrived at `now_ms`; `agent_id` is its resource's.
    pub fn add(
        &mut self,
        tenant_id: &str,
        agent_id: Option<&str>,
        span: Span,
        now_ms: i64,
        out: &mut Assembled,
    ) {
        let Some((framework, role)) = classify_span(&span) else {
            out.ignored += 1;
            return;
        };
        let key = (tenant_id.to_owned(), span.trace_id.clone());
        let trace = self
            .traces
            .entry(key.clone())
            .or_insert_with(|| Trace::new(framework, agent_id.map(str::to_owned), span.start_ns, now_ms));
        trace.touched_ms = now_ms;
        trace.first_start_ns = trace.first_start_ns.min(span.start_ns);
        if trace.call_id.is_none() {
            trace.call_id = call_id_of(&span).map(str::to_owned);
        }
        if trace.done.contains(&span.span_id) || trace.held.contains_key(&span.span_id) {
            out.repeated += 1;
            return;
        }
        if framework == Framework::Generic && trace.framework != Framework::Generic {
            // Pipecat's or LiveKit's own spans count this trace's usage.
            out.ignored += 1;
            return;
        }
        if framework != Framework::Generic && trace.framework == Framework::Generic {
            // A framework's trace after all: the GenAI spans held so far repeat its own.
            trace.framework = framework;
            let before = trace.held.len();
            trace.held.retain(|_, held| held.role != Role::Generic);
            let dropped = before - trace.held.len();
            self.held -= dropped;
            out.ignored += dropped as u64;
        }
        let held = Held { role, span, arrived_ms: now_ms };
        match role {
            Role::Call => {
                emit_alone(&key, trace, held, out);
                // Spans left under the call itself (a TTS that began after its turn closed)
                // have nothing more to wait for.
                let settled: HashSet<String> = trace
                    .held
                    .iter()
                    .filter(|(_, held)| {
                        held.role != Role::Turn && matches!(anchor(trace, &held.span), Anchor::Done)
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                self.held -= release(&key, trace, |held| settled.contains(&held.span.span_id), out);
            }
            Role::UserTurn => {
                trace.done.insert(held.span.span_id.clone());
                trace.speech.push(UserSpeech::of(&held.span));
                if trace.speech.len() > SPEECHES_KEPT {
                    trace.speech.remove(0);
                }
                out.assembled += 1;
            }
            Role::Turn => {
                let turn_id = held.span.span_id.clone();
                trace.held.insert(turn_id.clone(), held);
                self.held += 1;
                let waited_for = trace
                    .held
                    .values()
                    .any(|held| matches!(anchor(trace, &held.span), Anchor::Turn(id) if id == turn_id));
                if waited_for {
                    self.held -= emit_turn(&key, trace, &turn_id, out);
                }
            }
            Role::Service(_) | Role::Node(_) | Role::Attempt(_) | Role::Generic => {
                match anchor(trace, &held.span) {
                    Anchor::Done => emit_alone(&key, trace, held, out),
                    Anchor::Turn(_) | Anchor::Unknown => {
                        trace.held.insert(held.span.span_id.clone(), held);
                        self.held += 1;
                    }
                }
            }
        }
        if self.held > self.config.max_held_spans {
            self.evict_oldest(out);
        }
    }

    /// Emits what has waited long enough, and forgets idle traces.
    pub fn expire(&mut self, now_ms: i64, out: &mut Assembled) {
        let turn_wait = self.config.turn_wait.as_millis() as i64;
        let span_wait = self.config.span_wait.as_millis() as i64;
        let memory = self.config.trace_memory.as_millis() as i64;
        let mut released = 0;
        for (key, trace) in &mut self.traces {
            let due = |held: &Held| {
                let wait = match held.role {
                    Role::Turn => turn_wait,
                    // A call span held again after a failed write: due at once.
                    Role::Call => 0,
                    Role::Service(_) | Role::Node(_) | Role::Attempt(_) | Role::Generic | Role::UserTurn => {
                        span_wait
                    }
                };
                held.arrived_ms + wait <= now_ms
            };
            released += release(key, trace, due, out);
        }
        self.held -= released;
        self.traces.retain(|_, trace| !trace.held.is_empty() || trace.touched_ms + memory > now_ms);
        if self.traces.len() > MAX_TRACES {
            // The ids of many short calls: forget the longest idle of those holding nothing.
            let mut idle: Vec<i64> = self
                .traces
                .values()
                .filter(|trace| trace.held.is_empty())
                .map(|trace| trace.touched_ms)
                .collect();
            let cut = (self.traces.len() - MAX_TRACES).min(idle.len());
            if cut > 0 {
                let (_, oldest, _) = idle.select_nth_unstable(cut - 1);
                let before = *oldest;
                self.traces.retain(|_, trace| !trace.held.is_empty() || trace.touched_ms > before);
            }
        }
    }

    /// Emits everything held (at shutdown).
    pub fn drain(&mut self, out: &mut Assembled) {
        for (key, trace) in &mut self.traces {
            release(key, trace, |_| true, out);
        }
        self.held = 0;
    }

    /// Holds again the spans whose events `out` could not store, as they were before, so
    /// that the next expiry emits them again (their event ids keep a repeat harmless).
    pub fn restore(&mut self, out: Assembled) {
        for consumed in out.consumed {
            let Consumed { key, framework, agent_id, call_id, started, held } = consumed;
            let trace = self
                .traces
                .entry(key)
                .or_insert_with(|| Trace::new(framework, agent_id, held.span.start_ns, held.arrived_ms));
            trace.call_id = trace.call_id.take().or(call_id);
            trace.first_start_ns = trace.first_start_ns.min(held.span.start_ns);
            if started {
                trace.started = false;
            }
            trace.done.remove(&held.span.span_id);
            if held.role == Role::Turn {
                trace.turns = trace.turns.saturating_sub(1);
            }
            if trace.held.insert(held.span.span_id.clone(), held).is_none() {
                self.held += 1;
            }
        }
    }

    /// Emits the oldest tenth of what is held, to make room.
    fn evict_oldest(&mut self, out: &mut Assembled) {
        let mut arrivals: Vec<i64> =
            self.traces.values().flat_map(|trace| trace.held.values().map(|held| held.arrived_ms)).collect();
        let cut = (arrivals.len() / 10).max(1);
        let (_, oldest, _) = arrivals.select_nth_unstable(cut - 1);
        let before = *oldest;
        let mut released = 0;
        for (key, trace) in &mut self.traces {
            released += release(key, trace, |held| held.arrived_ms <= before, out);
        }
        self.held -= released;
    }
}

/// Emits the held spans `due` says are due: turns with what is under them, then the rest
/// alone. Returns how many spans left the trace.
fn release(key: &TraceKey, trace: &mut Trace, due: impl Fn(&Held) -> bool, out: &mut Assembled) -> usize {
    let before = trace.held.len();
    let turns: Vec<String> = trace
        .held
        .iter()
        .filter(|(_, held)| held.role == Role::Turn && due(held))
        .map(|(id, _)| id.clone())
        .collect();
    for turn in turns {
        emit_turn(key, trace, &turn, out);
    }
    let alone: Vec<String> =
        trace.held.iter().filter(|(_, held)| due(held)).map(|(id, _)| id.clone()).collect();
    for id in alone {
        if let Some(held) = trace.held.remove(&id) {
            emit_alone(key, trace, held, out);
        }
    }
    before - trace.held.len()
}

/// Emits the held turn `turn_id` with every held span under it; returns how many spans
/// that took out of the trace.
fn emit_turn(key: &TraceKey, trace: &mut Trace, turn_id: &str, out: &mut Assembled) -> usize {
    let under_ids: Vec<String> = trace
        .held
        .iter()
        .filter(|(id, held)| {
            id.as_str() != turn_id && matches!(anchor(trace, &held.span), Anchor::Turn(t) if t == turn_id)
        })
        .map(|(id, _)| id.clone())
        .collect();
    let Some(turn) = trace.held.remove(turn_id) else { return 0 };
    let mut under: Vec<Held> = under_ids.iter().filter_map(|id| trace.held.remove(id)).collect();
    under.sort_by(|a, b| (a.span.start_ns, &a.span.span_id).cmp(&(b.span.start_ns, &b.span.span_id)));
    trace.turns += 1;
    let started = start(key, trace, out);
    let pairs: Vec<(Role, &Span)> = under.iter().map(|held| (held.role, &held.span)).collect();
    let speech = trace.speech_before(turn.span.start_ns);
    out.events.extend(envelope(key, trace).turn(trace.framework, &turn.span, &pairs, trace.turns, speech));
    let taken = 1 + under.len();
    out.assembled += taken as u64;
    consumed(key, trace, turn, started, out);
    for held in under {
        consumed(key, trace, held, false, out);
    }
    taken
}

/// Emits one span without its turn: the call span's end; a service span's usage and
/// request; a node carries nothing of its own.
fn emit_alone(key: &TraceKey, trace: &mut Trace, held: Held, out: &mut Assembled) {
    let started = match held.role {
        Role::Call => {
            out.assembled += 1;
            // The call span's own start is the call's, if nothing was emitted before it.
            trace.first_start_ns = trace.first_start_ns.min(held.span.start_ns);
            let started = start(key, trace, out);
            out.events.push(envelope(key, trace).call_ended(&held.span));
            started
        }
        Role::Service(service) => {
            out.alone += 1;
            let started = start(key, trace, out);
            out.events.extend(envelope(key, trace).service(trace.framework, service, &held.span));
            started
        }
        Role::Generic if trace.framework == Framework::Generic => {
            out.alone += 1;
            let started = start(key, trace, out);
            out.events.extend(envelope(key, trace).service(Framework::Generic, Service::Llm, &held.span));
            started
        }
        Role::Generic => {
            out.ignored += 1;
            false
        }
        Role::Attempt(service) => {
            out.alone += 1;
            let started = start(key, trace, out);
            out.events.push(envelope(key, trace).attempt(service, &held.span));
            started
        }
        Role::Node(_) | Role::Turn | Role::UserTurn => {
            out.alone += 1;
            false
        }
    };
    consumed(key, trace, held, started, out);
}

/// Marks `held` emitted, and notes it in `out` to be held again if its events cannot be
/// stored.
fn consumed(key: &TraceKey, trace: &mut Trace, held: Held, started: bool, out: &mut Assembled) {
    trace.done.insert(held.span.span_id.clone());
    out.consumed.push(Consumed {
        key: key.clone(),
        framework: trace.framework,
        agent_id: trace.agent_id.clone(),
        call_id: trace.call_id.clone(),
        started,
        held,
    });
}

/// `call.started` the first time anything of the trace is emitted, at the earliest span
/// start seen (the call span itself ends last); whether it was emitted now.
fn start(key: &TraceKey, trace: &mut Trace, out: &mut Assembled) -> bool {
    if trace.started {
        return false;
    }
    trace.started = true;
    out.events.push(envelope(key, trace).call_started(trace.first_start_ns));
    true
}

fn envelope<'a>(key: &'a TraceKey, trace: &'a Trace) -> Envelope<'a> {
    Envelope {
        tenant_id: &key.0,
        call_id: trace.call_id.as_deref().unwrap_or(&key.1),
        agent_id: trace.agent_id.as_deref(),
        trace_id: Some(&key.1),
    }
}

/// Follows `span`'s parents through the held spans.
fn anchor(trace: &Trace, span: &Span) -> Anchor {
    let mut parent = span.parent_id.as_deref();
    // A chain is as long as the spans held; the bound only guards against a cycle.
    for _ in 0..=trace.held.len() {
        let Some(id) = parent else { return Anchor::Unknown };
        if trace.done.contains(id) {
            return Anchor::Done;
        }
        match trace.held.get(id) {
            Some(held) if held.role == Role::Turn => return Anchor::Turn(id.to_owned()),
            Some(held) => parent = held.span.parent_id.as_deref(),
            None => return Anchor::Unknown,
        }
    }
    Anchor::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::span::{Attributes, Value};

    const T0: u64 = 1_796_630_300_000_000_000;
    const TRACE: &str = "a9126bf1795f9ab94ceaa5e889813a36";

    fn span(
        id: &str,
        parent: Option<&str>,
        name: &str,
        at_s: u64,
        attributes: &[(&'static str, Value)],
    ) -> Span {
        Span {
            trace_id: TRACE.into(),
            span_id: format!("{id:0>16}"),
            parent_id: parent.map(|p| format!("{p:0>16}")),
            name: name.into(),
            start_ns: T0 + at_s * 1_000_000_000,
            end_ns: T0 + (at_s + 1) * 1_000_000_000,
            error: None,
            attributes: Attributes::from_pairs(attributes.to_vec()),
        }
    }

    /// A Pipecat turn: `turn` (id t<n>) over stt, llm and tts (ids s<n>, l<n>, v<n>).
    fn pipecat_turn(n: u64) -> (Span, Vec<Span>) {
        let turn_id = format!("7{n}");
        let at = n * 10;
        let turn = span(
            &turn_id,
            Some("c"),
            "turn",
            at,
            &[
                ("conversation.id", Value::Str("conv-1".into())),
                ("turn.number", Value::Int(n as i64)),
                ("turn.user_bot_latency_seconds", Value::Double(1.1)),
                ("turn.was_interrupted", Value::Bool(false)),
            ],
        );
        let children = vec![
            span(
                &format!("1{n}"),
                Some(&turn_id),
                "stt",
                at,
                &[
                    ("gen_ai.provider.name", Value::Str("openai".into())),
                    ("gen_ai.request.model", Value::Str("whisper-1".into())),
                    ("metrics.ttfb", Value::Double(0.37)),
                    ("metrics.audio_seconds", Value::Double(1.5)),
                ],
            ),
            span(
                &format!("2{n}"),
                Some(&turn_id),
                "llm",
                at,
                &[
                    ("gen_ai.provider.name", Value::Str("openai".into())),
                    ("gen_ai.request.model", Value::Str("gpt-4o-mini-2024-07-18".into())),
                    ("gen_ai.usage.input_tokens", Value::Int(64)),
                    ("gen_ai.usage.output_tokens", Value::Int(16)),
                    ("metrics.ttfb", Value::Double(0.45)),
                ],
            ),
            span(
                &format!("3{n}"),
                Some(&turn_id),
                "tts",
                at,
                &[
                    ("gen_ai.provider.name", Value::Str("openai".into())),
                    ("metrics.character_count", Value::Int(63)),
                    ("metrics.ttfb", Value::Double(0.2)),
                ],
            ),
        ];
        (turn, children)
    }

    fn kinds(out: &Assembled) -> Vec<&str> {
        out.events.iter().map(|e| e.kind.as_deref().unwrap()).collect()
    }

    fn assembler() -> Assembler {
        Assembler::new(AssemblyConfig::default())
    }

    #[test]
    fn children_then_their_turn_make_one_turn_with_its_components_and_usage() {
        let mut assembler = assembler();
        let mut out = Assembled::default();
        let (turn, children) = pipecat_turn(1);
        for child in children {
            assembler.add("t1", Some("bot"), child, 0, &mut out);
        }
        assert!(out.events.is_empty(), "children wait for their turn");
        assert_eq!(assembler.held(), 3);
        assembler.add("t1", Some("bot"), turn, 0, &mut out);
        assert_eq!(assembler.held(), 0);
        assert_eq!(
            kinds(&out),
            [
                "call.started",
                "turn.completed",
                "stt.usage",
                "provider.request",
                "llm.usage",
                "provider.request",
                "tts.usage",
                "provider.request"
            ]
        );
        let turn = &out.events[1];
        assert_eq!(turn.call_id.as_deref(), Some("conv-1"));
        assert_eq!(turn.agent_id.as_deref(), Some("bot"));
        assert_eq!(
            (turn.e2e_ms, turn.stt_ms, turn.llm_ttft_ms, turn.tts_ttfb_ms),
            (Some(1100.0), Some(370.0), Some(450.0), Some(200.0))
        );
        assert_eq!((turn.turn_index, turn.interrupted, turn.tool_calls), (Some(1), Some(false), None));
        let llm = &out.events[4];
        assert_eq!(
            (llm.provider.as_deref(), llm.model.as_deref()),
            (Some("openai"), Some("gpt-4o-mini-2024-07-18"))
        );
        assert_eq!((llm.input_tokens, llm.output_tokens), (Some(64), Some(16)));
        assert_eq!(out.events[2].audio_seconds, Some(1.5));
        assert_eq!(out.events[6].characters, Some(63));
        assert_eq!(out.assembled, 4);
        // Every id derives from the trace and the span.
        assert_eq!(
            out.events[4].id.as_deref(),
            Some(format!("otlp:{TRACE}:0000000000000021:usage").as_str())
        );
    }

    #[test]
    fn a_turn_that_comes_first_waits_for_its_children() {
        let mut assembler = assembler();
        let mut out = Assembled::default();
        let (turn, children) = pipecat_turn(1);
        assembler.add("t1", None, turn, 0, &mut out);
        for child in children {
            assembler.add("t1", None, child, 1_000, &mut out);
        }
        assert!(out.events.is_empty());
        assembler.expire(4_999, &mut out);
        assert!(out.events.is_empty(), "turn_wait is 5 s");
        assembler.expire(5_000, &mut out);
        let turn = out.events.iter().find(|e| e.kind.as_deref() == Some("turn.completed")).unwrap();
        assert_eq!(turn.tts_ttfb_ms, Some(200.0));
        assert_eq!(out.events.len(), 8);
        assert_eq!(assembler.held(), 0);
    }

    #[test]
    fn a_retried_export_adds_nothing_and_a_late_child_goes_out_alone() {
        let mut assembler = assembler();
        let mut out = Assembled::default();
        let (turn, mut children) = pipecat_turn(1);
        let late = children.pop().unwrap();
        for child in children.clone() {
            assembler.add("t1", None, child, 0, &mut out);
        }
        assembler.add("t1", None, turn.clone(), 0, &mut out);
        let first = out.events.len();
        // The exporter sends the same request again.
        for child in children {
            assembler.add("t1", None, child, 10, &mut out);
        }
        assembler.add("t1", None, turn, 10, &mut out);
        assert_eq!((out.events.len(), out.repeated), (first, 3));
        // The TTS span arrives after its turn went out: its usage goes out at once.
        assembler.add("t1", None, late, 20, &mut out);
        assert_eq!(kinds(&out)[first..], ["tts.usage", "provider.request"]);
        assert_eq!(out.alone, 1);
        assert_eq!(assembler.held(), 0);
    }

    #[test]
    fn an_orphan_counts_as_usage_after_span_wait_and_under_the_trace_id() {
        let mut assembler = assembler();
        let mut out = Assembled::default();
        let (_, children) = pipecat_turn(1);
        assembler.add("t1", None, children[1].clone(), 0, &mut out);
        assembler.expire(59_999, &mut out);
        assert!(out.events.is_empty());
        assembler.expire(60_000, &mut out);
        assert_eq!(kinds(&out), ["call.started", "llm.usage", "provider.request"]);
        assert_eq!(out.events[1].call_id.as_deref(), Some(TRACE), "no span named the conversation");
    }

    #[test]
    fn the_call_span_ends_the_call_and_releases_what_hung_under_it() {
        let mut assembler = assembler();
        let mut out = Assembled::default();
        let (turn, children) = pipecat_turn(1);
        for child in children {
            assembler.add("t1", None, child, 0, &mut out);
        }
        assembler.add("t1", None, turn, 0, &mut out);
        // A TTS that began after its turn closed hangs under the conversation.
        let (_, mut stray) = pipecat_turn(2);
        let mut tts = stray.pop().unwrap();
        tts.parent_id = Some(format!("{:0>16}", "c"));
        assembler.add("t1", None, tts, 0, &mut out);
        assert_eq!(assembler.held(), 1);
        let mut conversation =
            span("c", None, "conversation", 0, &[("conversation.id", Value::Str("conv-1".into()))]);
        conversation.end_ns = T0 + 95 * 1_000_000_000;
        let before = out.events.len();
        assembler.add("t1", None, conversation, 0, &mut out);
        assert_eq!(kinds(&out)[before..], ["call.ended", "tts.usage", "provider.request"]);
        let ended = &out.events[before];
        assert_eq!((ended.duration_s, ended.status.as_deref()), (Some(95.0), Some("completed")));
        assert_eq!(assembler.held(), 0);
    }

    #[test]
    fn spans_that_could_not_be_stored_are_held_again() {
        let mut assembler = assembler();
        let mut out = Assembled::default();
        let (turn, children) = pipecat_turn(1);
        for child in children.clone() {
            assembler.add("t1", None, child, 0, &mut out);
        }
        assembler.add("t1", None, turn.clone(), 0, &mut out);
        let events = out.events.len();
        assembler.restore(out);
        assert_eq!(assembler.held(), 4);
        // The exporter's retry is harmless; the next expiry round emits them again.
        let mut retry = Assembled::default();
        assembler.add("t1", None, turn, 100, &mut retry);
        assert!(retry.events.is_empty());
        let mut again = Assembled::default();
        assembler.expire(5_000, &mut again);
        assert_eq!(again.events.len(), events);
        assert_eq!(again.events[0].kind.as_deref(), Some("call.started"));
        assert_eq!(assembler.held(), 0);
    }

    #[test]
    fn tenants_never_share_a_trace_and_memory_is_bounded() {
        let config = AssemblyConfig { max_held_spans: 10, ..AssemblyConfig::default() };
        let mut assembler = Assembler::new(config);
        let mut out = Assembled::default();
        let (_, children) = pipecat_turn(1);
        assembler.add("t1", None, children[0].clone(), 0, &mut out);
        assembler.add("t2", None, children[0].clone(), 0, &mut out);
        assert_eq!((assembler.held(), out.repeated), (2, 0));
        for n in 0..20 {
            let orphan = span(&format!("9{n}"), Some("77"), "llm", 0, &[]);
            assembler.add("t1", None, orphan, n, &mut out);
        }
        assert!(assembler.held() <= 10, "held {}", assembler.held());
        assert!(out.alone >= 12);
    }

    #[test]
    fn a_livekit_turn_reads_its_nodes_and_the_user_speech_before_it() {
        let mut assembler = assembler();
        let mut out = Assembled::default();
        let add =
            |assembler: &mut Assembler, out: &mut Assembled, span| assembler.add("t1", None, span, 0, out);
        let user = span(
            "u1",
            Some("5e"),
            "user_turn",
            0,
            &[("lk.transcription_delay", Value::Double(0.12)), ("room_id", Value::Str("RM_1".into()))],
        );
        add(&mut assembler, &mut out, user);
        let tts_metrics = r#"{"characters_count": 42, "ttfb": 0.31, "audio_duration": 2.5}"#;
        add(
            &mut assembler,
            &mut out,
            span(
                "b1",
                Some("4a"),
                "llm_request",
                2,
                &[
                    ("gen_ai.provider.name", Value::Str("openai".into())),
                    ("gen_ai.request.model", Value::Str("gpt-4o-mini-2024-07-18".into())),
                    ("gen_ai.usage.input_tokens", Value::Int(300)),
                    ("gen_ai.usage.output_tokens", Value::Int(20)),
                ],
            ),
        );
        add(
            &mut assembler,
            &mut out,
            span("4a", Some("a1"), "llm_node", 2, &[("lk.response.ttft", Value::Double(0.4))]),
        );
        // The request was retried: a failed attempt, then one that answered.
        let openai = [("gen_ai.provider.name", Value::Str("openai".into()))];
        let mut failed = span("c1", Some("b1"), "llm_request_run", 2, &openai);
        failed.error = Some("APIStatusError: 429".into());
        add(&mut assembler, &mut out, failed);
        add(&mut assembler, &mut out, span("c2", Some("b1"), "llm_request_run", 3, &openai));
        add(
            &mut assembler,
            &mut out,
            span(
                "b2",
                Some("4b"),
                "tts_request",
                2,
                &[
                    ("gen_ai.provider.name", Value::Str("openai".into())),
                    ("lk.tts_metrics", Value::Str(tts_metrics.into())),
                ],
            ),
        );
        add(
            &mut assembler,
            &mut out,
            span("4b", Some("a1"), "tts_node", 2, &[("lk.response.ttfb", Value::Double(0.3))]),
        );
        assert!(out.events.is_empty());
        add(
            &mut assembler,
            &mut out,
            span(
                "a1",
                Some("5e"),
                "agent_turn",
                1,
                &[
                    ("lk.e2e_latency", Value::Double(1.13)),
                    ("lk.end_of_turn_delay", Value::Double(0.55)),
                    ("lk.interrupted", Value::Bool(false)),
                ],
            ),
        );
        assert_eq!(
            kinds(&out),
            [
                "call.started",
                "turn.completed",
                "llm.usage",
                "tts.usage",
                "provider.request",
                "provider.request"
            ]
        );
        let requests: Vec<_> =
            out.events[4..].iter().map(|e| (e.ok, e.error.clone(), e.component.clone())).collect();
        assert_eq!(
            requests,
            [
                (Some(false), Some("APIStatusError: 429".into()), Some("llm".into())),
                (Some(true), None, Some("llm".into()))
            ],
            "each attempt is a provider request; the usage spans are not"
        );
        let turn = &out.events[1];
        assert_eq!(turn.call_id.as_deref(), Some("RM_1"));
        assert_eq!((turn.e2e_ms, turn.eou_ms, turn.stt_ms), (Some(1130.0), Some(550.0), Some(120.0)));
        assert_eq!(
            (turn.llm_ttft_ms, turn.tts_ttfb_ms, turn.turn_index),
            (Some(400.0), Some(300.0), Some(1))
        );
        let tts = &out.events[3];
        assert_eq!((tts.characters, tts.audio_seconds, tts.ttfb_ms), (Some(42), Some(2.5), Some(310.0)));
        assert_eq!(assembler.held(), 0);
    }

    #[test]
    fn genai_spans_of_other_stacks_count_as_llm_usage_unless_a_framework_counts_them() {
        let mut assembler = assembler();
        let mut out = Assembled::default();
        let usage = [
            ("gen_ai.system", Value::Str("openai".into())),
            ("gen_ai.request.model", Value::Str("gpt-4o-mini".into())),
            ("gen_ai.usage.input_tokens", Value::Int(900)),
            ("gen_ai.usage.output_tokens", Value::Int(40)),
            ("gen_ai.conversation.id", Value::Str("chat-7".into())),
        ];
        assembler.add("t1", None, span("91", None, "chat gpt-4o-mini", 0, &usage), 0, &mut out);
        assembler.expire(60_000, &mut out);
        assert_eq!(kinds(&out), ["call.started", "llm.usage", "provider.request"]);
        assert_eq!(
            (out.events[1].call_id.as_deref(), out.events[1].input_tokens),
            (Some("chat-7"), Some(900))
        );

        // Inside a Pipecat trace, an instrumented client's span repeats Pipecat's own.
        let mut other = Assembler::new(AssemblyConfig::default());
        let mut out = Assembled::default();
        let (turn, children) = pipecat_turn(1);
        let mut client = span("92", Some("21"), "chat gpt-4o-mini", 0, &usage);
        client.trace_id = turn.trace_id.clone();
        other.add("t1", None, client, 0, &mut out);
        for child in children {
            other.add("t1", None, child, 0, &mut out);
        }
        other.add("t1", None, turn, 0, &mut out);
        other.expire(120_000, &mut out);
        assert_eq!(
            out.events.iter().filter(|e| e.kind.as_deref() == Some("llm.usage")).count(),
            1,
            "{:?}",
            kinds(&out)
        );
        assert_eq!((other.held(), out.ignored), (0, 1));
    }
}
