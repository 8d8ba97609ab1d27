//! Traffic simulator: realistic voice-agent traffic sent to a running voicemon.
//!
//! It owns two halves. [`TrafficModel`] is a pure, seeded discrete-event generator of
//! contract-v1 events (calls, turns, usage, provider requests, provider incidents with
//! circuit breakers, worker heartbeats); it never reads the wall clock, so it is tested
//! without a server. [`run`] drives the model against the wall clock (optionally after a
//! backfill of past history) and POSTs the events as NDJSON to `{base_url}/v1/events`,
//! with retries, progress reports and a final [`Summary`].

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use voicemon_core::clock::{Clock, SystemClock};
use voicemon_core::event::{BreakerState, CallStatus, EndedBy, EventKind, PipelineComponent};

// ---------------------------------------------------------------------------------------
// Public options, progress and outcome
// ---------------------------------------------------------------------------------------

/// What to simulate and where to send it.
#[derive(Clone)]
pub struct SimulateOptions {
    /// voicemon's base URL, e.g. `http://127.0.0.1:3001`; events go to `{base_url}/v1/events`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>`; the key needs the ingest role.
    pub api_key: Option<String>,
    /// Tenants `tenant-01`, `tenant-02`…; traffic is spread unevenly, as in real life.
    pub tenants: usize,
    /// Agents per tenant: `support-bot`, `sales-bot`, `booking-bot`…
    pub agents_per_tenant: usize,
    /// Call arrivals per minute over all tenants (a Poisson process).
    pub calls_per_minute: f64,
    /// How long `run` goes on, backfill included; `None` runs until `shutdown` turns true.
    pub duration: Option<Duration>,
    /// History to generate first, ending now, sent as fast as voicemon takes it.
    pub backfill: Option<Duration>,
    /// The same seed and start time give the same events; `None` picks one at random.
    pub seed: Option<u64>,
    /// Largest number of events in one POST.
    pub batch_max_events: usize,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        SimulateOptions {
            base_url: "http://127.0.0.1:3001".to_owned(),
            api_key: None,
            tenants: 5,
            agents_per_tenant: 3,
            calls_per_minute: 60.0,
            duration: None,
            backfill: None,
            seed: None,
            batch_max_events: 500,
        }
    }
}

/// Hand-written so the API key never reaches a log line.
impl std::fmt::Debug for SimulateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulateOptions")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("tenants", &self.tenants)
            .field("agents_per_tenant", &self.agents_per_tenant)
            .field("calls_per_minute", &self.calls_per_minute)
            .field("duration", &self.duration)
            .field("backfill", &self.backfill)
            .field("seed", &self.seed)
            .field("batch_max_events", &self.batch_max_events)
            .finish()
    }
}

/// Counters handed to the progress callback about once a second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Progress {
    /// Events handed to a POST (each counted once, however many retries it took).
    pub events_sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub calls_started: u64,
    pub calls_ended: u64,
    #[serde(serialize_with = "serialize_seconds")]
    pub elapsed: Duration,
    /// Batches given up on after retrying for [`RETRY_BUDGET`]; their events are lost.
    pub failed_requests: u64,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub events_sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub calls_started: u64,
    pub calls_ended: u64,
    /// Calls started but not ended when the run stopped (they get no `call.ended`).
    pub calls_active: u64,
    pub calls_completed: u64,
    pub calls_failed: u64,
    pub calls_abandoned: u64,
    pub calls_transferred: u64,
    /// `circuit_breaker.changed` events with state `open`.
    pub breaker_trips: u64,
    #[serde(serialize_with = "serialize_seconds")]
    pub elapsed: Duration,
    pub failed_requests: u64,
    /// The first rejection voicemon reported (`event N: field: error`), if any.
    pub first_rejection: Option<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "simulated for {:.1} s (seed {}): {} events sent, {} accepted, {} duplicates, \
             {} rejected, {} failed requests",
            self.elapsed.as_secs_f64(),
            self.seed,
            self.events_sent,
            self.accepted,
            self.duplicates,
            self.rejected,
            self.failed_requests
        )?;
        writeln!(
            f,
            "calls: {} started, {} ended ({} completed, {} failed, {} abandoned, \
             {} transferred), {} still active",
            self.calls_started,
            self.calls_ended,
            self.calls_completed,
            self.calls_failed,
            self.calls_abandoned,
            self.calls_transferred,
            self.calls_active
        )?;
        write!(f, "circuit breaker trips: {}", self.breaker_trips)?;
        if let Some(rejection) = &self.first_rejection {
            write!(f, "\nfirst rejection: {rejection}")?;
        }
        Ok(())
    }
}

fn serialize_seconds<S: serde::Serializer>(
    value: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(value.as_secs_f64())
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("invalid simulate options: {0}")]
    InvalidOptions(String),
    #[error("could not build the http client: {0}")]
    Client(String),
    #[error("voicemon is unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("voicemon refused the api key ({status}): {message}")]
    AuthRefused { status: u16, message: String },
    #[error("voicemon rejected all {count} events of a batch; first rejection: {first}")]
    Rejected { count: usize, first: String },
    #[error("voicemon answered {status} to POST {url}: {message}")]
    UnexpectedAnswer {
        status: u16,
        url: String,
        message: String,
    },
}

// ---------------------------------------------------------------------------------------
// The traffic model: a pure, seeded discrete-event generator
// ---------------------------------------------------------------------------------------

/// What the model generates. [`ModelConfig::new`] gives the defaults of [`SimulateOptions`].
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub seed: u64,
    /// Simulated time starts here (unix ms); nothing is stamped earlier.
    pub start_ms: i64,
    pub tenants: usize,
    pub agents_per_tenant: usize,
    pub calls_per_minute: f64,
    /// Mean quiet time between two provider incidents; `None` turns incidents off.
    /// The first incident starts 1–4 simulated minutes in.
    pub mean_incident_gap: Option<Duration>,
}

impl ModelConfig {
    pub fn new(seed: u64, start_ms: i64) -> Self {
        let defaults = SimulateOptions::default();
        ModelConfig {
            seed,
            start_ms,
            tenants: defaults.tenants,
            agents_per_tenant: defaults.agents_per_tenant,
            calls_per_minute: defaults.calls_per_minute,
            mean_incident_gap: Some(DEFAULT_INCIDENT_GAP),
        }
    }

    fn from_options(options: &SimulateOptions, seed: u64, start_ms: i64) -> Self {
        ModelConfig {
            tenants: options.tenants,
            agents_per_tenant: options.agents_per_tenant,
            calls_per_minute: options.calls_per_minute,
            ..ModelConfig::new(seed, start_ms)
        }
    }
}

/// What the model has generated so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ModelStats {
    pub events: u64,
    pub calls_started: u64,
    pub calls_ended: u64,
    pub completed: u64,
    pub failed: u64,
    pub abandoned: u64,
    pub transferred: u64,
    pub breaker_trips: u64,
}

const DEFAULT_INCIDENT_GAP: Duration = Duration::from_secs(10 * 60);
const HEARTBEAT_EVERY_MS: i64 = 10_000;
const MEMORY_LIMIT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;
/// Latencies are clamped here, well inside the contract's 10-minute bound.
const MAX_SIMULATED_LATENCY_MS: f64 = 60_000.0;
/// Spoken characters per second of synthesized speech.
const CHARACTERS_PER_SECOND: f64 = 15.0;

/// A kind of agent: its name and what its callers want.
struct AgentKind {
    name: &'static str,
    /// The main objective (80 % of calls) and a secondary one.
    objectives: [&'static str; 2],
    phone_share: f64,
}

const AGENT_KINDS: [AgentKind; 6] = [
    AgentKind {
        name: "support-bot",
        objectives: ["support", "billing_question"],
        phone_share: 0.75,
    },
    AgentKind {
        name: "sales-bot",
        objectives: ["sales_qualification", "demo_booking"],
        phone_share: 0.6,
    },
    AgentKind {
        name: "booking-bot",
        objectives: ["book_appointment", "reschedule_appointment"],
        phone_share: 0.8,
    },
    AgentKind {
        name: "billing-bot",
        objectives: ["payment_collection", "billing_question"],
        phone_share: 0.9,
    },
    AgentKind {
        name: "survey-bot",
        objectives: ["customer_survey", "support"],
        phone_share: 0.95,
    },
    AgentKind {
        name: "triage-bot",
        objectives: ["triage", "support"],
        phone_share: 0.5,
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Provider {
    Deepgram,
    AssemblyAi,
    OpenAi,
    Cartesia,
    ElevenLabs,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Deepgram => "deepgram",
            Provider::AssemblyAi => "assemblyai",
            Provider::OpenAi => "openai",
            Provider::Cartesia => "cartesia",
            Provider::ElevenLabs => "elevenlabs",
        }
    }

    fn component(self) -> PipelineComponent {
        match self {
            Provider::Deepgram | Provider::AssemblyAi => PipelineComponent::Stt,
            Provider::OpenAi => PipelineComponent::Llm,
            Provider::Cartesia | Provider::ElevenLabs => PipelineComponent::Tts,
        }
    }
}

/// One provider model as an agent uses it.
#[derive(Debug, Clone, Copy)]
struct Service {
    provider: Provider,
    model: &'static str,
    /// Multiplies this component's latency: some models are faster than others.
    speed: f64,
}

const STT_SERVICES: [Service; 2] = [
    Service {
        provider: Provider::Deepgram,
        model: "nova-3",
        speed: 0.95,
    },
    Service {
        provider: Provider::AssemblyAi,
        model: "universal-streaming",
        speed: 1.1,
    },
];
const LLM_SERVICES: [Service; 2] = [
    Service {
        provider: Provider::OpenAi,
        model: "gpt-4o",
        speed: 1.1,
    },
    Service {
        provider: Provider::OpenAi,
        model: "gpt-4o-mini",
        speed: 0.85,
    },
];
const TTS_SERVICES: [Service; 2] = [
    Service {
        provider: Provider::Cartesia,
        model: "sonic-2",
        speed: 0.9,
    },
    Service {
        provider: Provider::ElevenLabs,
        model: "eleven_flash_v2_5",
        speed: 1.15,
    },
];

/// The STT → LLM → TTS pipeline one agent runs.
#[derive(Debug, Clone, Copy)]
struct Stack {
    stt: Service,
    llm: Service,
    tts: Service,
}

impl Stack {
    fn providers(&self) -> [Provider; 3] {
        [self.stt.provider, self.llm.provider, self.tts.provider]
    }

    fn service_for(&self, component: PipelineComponent) -> Service {
        match component {
            PipelineComponent::Stt => self.stt,
            PipelineComponent::Llm => self.llm,
            PipelineComponent::Tts => self.tts,
        }
    }
}

struct AgentSim {
    agent_id: String,
    kind: &'static AgentKind,
    stack: Stack,
}

struct WorkerSim {
    worker_id: String,
    active_calls: u32,
    base_memory_bytes: f64,
}

struct TenantSim {
    tenant_id: String,
    agents: Vec<AgentSim>,
    agent_weights: Vec<f64>,
    workers: Vec<WorkerSim>,
}

/// Envelope fields an event inherits from where it happens.
#[derive(Debug, Clone)]
struct Scope {
    tenant_id: String,
    call_id: Option<String>,
    agent_id: Option<String>,
    objective: Option<&'static str>,
}

/// How a call is meant to end, decided when it starts (an incident may still fail it).
#[derive(Debug, Clone, Copy)]
struct CallPlan {
    status: CallStatus,
    ended_reason: &'static str,
    ended_by: EndedBy,
    /// The index of the turn at which the call ends (fails on, for failed calls).
    last_turn: u32,
}

struct CallSim {
    scope: Scope,
    tenant: usize,
    agent: usize,
    worker: usize,
    started_ms: i64,
    plan: CallPlan,
    /// Tokens of the conversation so far, the prefix the provider may have cached.
    context_tokens: u64,
}

/// Something that happens at a simulated instant and emits events.
#[derive(Debug, Clone, Copy)]
enum Happening {
    CallArrives,
    Turn {
        call: u64,
        turn_index: u32,
        user_speech_s: f64,
    },
    CallEnds {
        call: u64,
    },
    Heartbeat {
        tenant: usize,
        worker: usize,
    },
    IncidentStarts,
    BreakerChanges {
        tenant: usize,
        provider: Provider,
        state: BreakerState,
    },
    IncidentEnds,
}

struct Scheduled {
    at_ms: i64,
    seq: u64,
    happening: Happening,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Reversed, so the `BinaryHeap` pops the earliest happening first.
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

/// A provider that is slow right now, for every tenant.
#[derive(Debug, Clone, Copy)]
struct Slowdown {
    provider: Provider,
    factor: f64,
}

/// Latencies of one turn, milliseconds.
#[derive(Debug, Clone, Copy)]
struct TurnTiming {
    stt_ms: f64,
    eou_ms: f64,
    llm_ttft_ms: f64,
    tts_ttfb_ms: f64,
    e2e_ms: f64,
}

/// Tokens of one LLM request.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    input: u64,
    cached: u64,
    output: u64,
}

/// What an incident did to one turn.
enum IncidentEffect {
    None,
    /// The request failed, the retry went through; the turn completes.
    Retried,
    /// The request failed and the call with it.
    CallFails(Provider),
}

/// A seeded generator of realistic voice-agent traffic. It holds simulated time: each
/// [`TrafficModel::events_until`] moves it forward and returns what happened meanwhile.
pub struct TrafficModel {
    config: ModelConfig,
    rng: StdRng,
    /// `{seed}-{start unix seconds}`: ids are `sim-{run_tag}-{n}` and call ids
    /// `call-{run_tag}-{n}`, so a rerun with the same seed at another time does not
    /// collide with the first run's ids (voicemon would drop them as duplicates).
    run_tag: String,
    next_event: u64,
    next_call: u64,
    next_seq: u64,
    cursor_ms: i64,
    queue: BinaryHeap<Scheduled>,
    tenants: Vec<TenantSim>,
    tenant_weights: Vec<f64>,
    used_providers: Vec<Provider>,
    calls: BTreeMap<u64, CallSim>,
    slowdown: Option<Slowdown>,
    open_breakers: BTreeSet<(usize, Provider)>,
    stats: ModelStats,
    out: Vec<(i64, Value)>,
}

impl TrafficModel {
    pub fn new(config: ModelConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let tenant_weights = zipf_weights(config.tenants.max(1), 0.7);
        let tenants = build_tenants(&mut rng, &config, &tenant_weights);
        let used_providers = used_providers(&tenants);
        let run_tag = format!("{}-{}", config.seed, config.start_ms / 1000);
        let mut model = TrafficModel {
            cursor_ms: config.start_ms,
            config,
            rng,
            run_tag,
            next_event: 0,
            next_call: 0,
            next_seq: 0,
            queue: BinaryHeap::new(),
            tenants,
            tenant_weights,
            used_providers,
            calls: BTreeMap::new(),
            slowdown: None,
            open_breakers: BTreeSet::new(),
            stats: ModelStats::default(),
            out: Vec::new(),
        };
        model.schedule_start();
        model
    }

    /// Advances simulated time to `now_ms` and returns every event that happened up to
    /// then, oldest first. No event is stamped after `now_ms`.
    pub fn events_until(&mut self, now_ms: i64) -> Vec<Value> {
        while self.queue.peek().is_some_and(|next| next.at_ms <= now_ms) {
            if let Some(next) = self.queue.pop() {
                self.handle(next.at_ms, next.happening);
            }
        }
        self.cursor_ms = self.cursor_ms.max(now_ms);
        let mut out = std::mem::take(&mut self.out);
        out.sort_by_key(|(at_ms, _)| *at_ms);
        out.into_iter().map(|(_, event)| event).collect()
    }

    /// How far simulated time has gone (unix ms).
    pub fn cursor_ms(&self) -> i64 {
        self.cursor_ms
    }

    pub fn stats(&self) -> ModelStats {
        self.stats
    }

    /// Calls started and not yet ended.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    fn schedule_start(&mut self) {
        let start = self.config.start_ms;
        self.schedule_next_arrival(start);
        for tenant in 0..self.tenants.len() {
            for worker in 0..self.tenants[tenant].workers.len() {
                let offset = self.rng.random_range(0..HEARTBEAT_EVERY_MS);
                self.schedule(start + offset, Happening::Heartbeat { tenant, worker });
            }
        }
        if self.config.mean_incident_gap.is_some() {
            let first = seconds_ms(uniform(&mut self.rng, 60.0, 240.0));
            self.schedule(start + first, Happening::IncidentStarts);
        }
    }

    fn schedule(&mut self, at_ms: i64, happening: Happening) {
        self.next_seq += 1;
        self.queue.push(Scheduled {
            at_ms,
            seq: self.next_seq,
            happening,
        });
    }

    fn handle(&mut self, at_ms: i64, happening: Happening) {
        match happening {
            Happening::CallArrives => self.call_arrives(at_ms),
            Happening::Turn {
                call,
                turn_index,
                user_speech_s,
            } => self.turn(at_ms, call, turn_index, user_speech_s),
            Happening::CallEnds { call } => self.call_ends(at_ms, call),
            Happening::Heartbeat { tenant, worker } => self.heartbeat(at_ms, tenant, worker),
            Happening::IncidentStarts => self.incident_starts(at_ms),
            Happening::BreakerChanges {
                tenant,
                provider,
                state,
            } => self.breaker_changes(at_ms, tenant, provider, state),
            Happening::IncidentEnds => self.incident_ends(at_ms),
        }
    }

    // --- envelope and emission ---

    fn emit(&mut self, at_ms: i64, kind: EventKind, scope: &Scope, fields: Value) {
        let mut event = Map::new();
        event.insert(
            "id".into(),
            format!("sim-{}-{}", self.run_tag, self.next_event).into(),
        );
        event.insert("type".into(), kind.wire_name().into());
        event.insert("timestamp".into(), rfc3339_millis(at_ms).into());
        event.insert("tenant_id".into(), scope.tenant_id.clone().into());
        if let Some(call_id) = &scope.call_id {
            event.insert("call_id".into(), call_id.clone().into());
        }
        if let Some(agent_id) = &scope.agent_id {
            event.insert("agent_id".into(), agent_id.clone().into());
        }
        if let Some(objective) = scope.objective {
            event.insert("objective".into(), objective.into());
        }
        if let Value::Object(body) = fields {
            event.extend(body);
        }
        self.next_event += 1;
        self.stats.events += 1;
        self.out.push((at_ms, Value::Object(event)));
    }

    fn tenant_scope(&self, tenant: usize) -> Scope {
        Scope {
            tenant_id: self.tenants[tenant].tenant_id.clone(),
            call_id: None,
            agent_id: None,
            objective: None,
        }
    }

    fn emit_request(&mut self, at_ms: i64, scope: &Scope, provider: Provider, latency_ms: f64) {
        let fields = json!({
            "provider": provider.name(),
            "component": provider.component().as_str(),
            "ok": true,
            "latency_ms": round1(latency_ms),
        });
        self.emit(at_ms, EventKind::ProviderRequest, scope, fields);
    }

    fn emit_failed_request(&mut self, at_ms: i64, scope: &Scope, provider: Provider, error: &str) {
        let latency_ms = match error {
            "timeout" => uniform(&mut self.rng, 5_000.0, 10_000.0),
            _ => uniform(&mut self.rng, 20.0, 250.0),
        };
        let fields = json!({
            "provider": provider.name(),
            "component": provider.component().as_str(),
            "ok": false,
            "latency_ms": round1(latency_ms),
            "error": error,
        });
        self.emit(at_ms, EventKind::ProviderRequest, scope, fields);
    }

    // --- calls ---

    fn schedule_next_arrival(&mut self, after_ms: i64) {
        let per_minute = self.config.calls_per_minute;
        if !(per_minute.is_finite() && per_minute > 0.0) {
            return;
        }
        let gap_ms = exponential(&mut self.rng, 60_000.0 / per_minute).max(1.0);
        self.schedule(after_ms + gap_ms.round() as i64, Happening::CallArrives);
    }

    fn call_arrives(&mut self, at_ms: i64) {
        self.schedule_next_arrival(at_ms);
        let tenant = pick_weighted(&mut self.rng, &self.tenant_weights);
        let agent = pick_weighted(&mut self.rng, &self.tenants[tenant].agent_weights);
        let worker = least_loaded(&self.tenants[tenant].workers);
        let scope = self.call_scope(tenant, agent);
        let phone_share = self.tenants[tenant].agents[agent].kind.phone_share;
        let channel = if self.rng.random_bool(phone_share) {
            "phone"
        } else {
            "web"
        };
        self.emit(
            at_ms,
            EventKind::CallStarted,
            &scope,
            json!({ "channel": channel }),
        );
        let plan = plan_call(&mut self.rng);
        let key = self.next_call;
        self.next_call += 1;
        self.tenants[tenant].workers[worker].active_calls += 1;
        self.stats.calls_started += 1;
        let call = CallSim {
            scope,
            tenant,
            agent,
            worker,
            started_ms: at_ms,
            plan,
            context_tokens: 0,
        };
        self.calls.insert(key, call);
        self.schedule_turn(at_ms, key, 0);
    }

    fn call_scope(&mut self, tenant: usize, agent: usize) -> Scope {
        let objectives = self.tenants[tenant].agents[agent].kind.objectives;
        let objective = if self.rng.random_bool(0.8) {
            objectives[0]
        } else {
            objectives[1]
        };
        Scope {
            tenant_id: self.tenants[tenant].tenant_id.clone(),
            call_id: Some(format!("call-{}-{}", self.run_tag, self.next_call)),
            agent_id: Some(self.tenants[tenant].agents[agent].agent_id.clone()),
            objective: Some(objective),
        }
    }

    /// The next turn completes 3–12 s after the previous one (or after the greeting);
    /// the user spoke for 1–8 s of that gap.
    fn schedule_turn(&mut self, after_ms: i64, call: u64, turn_index: u32) {
        let gap_s = uniform(&mut self.rng, 3.0, 12.0);
        let user_speech_s = uniform(&mut self.rng, 1.0, (gap_s - 1.0).min(8.0));
        let happening = Happening::Turn {
            call,
            turn_index,
            user_speech_s,
        };
        self.schedule(after_ms + seconds_ms(gap_s), happening);
    }

    fn turn(&mut self, at_ms: i64, key: u64, turn_index: u32, user_speech_s: f64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (scope, plan, tenant) = (call.scope.clone(), call.plan, call.tenant);
        let stack = self.tenants[tenant].agents[call.agent].stack;
        if plan.status == CallStatus::Failed && turn_index == plan.last_turn {
            self.fail_turn(at_ms, key, &scope, &stack, plan.ended_reason);
            return;
        }
        if let IncidentEffect::CallFails(provider) =
            self.incident_effect(at_ms, tenant, &scope, &stack)
        {
            self.fail_call_on_incident(at_ms, key, provider);
            return;
        }
        let agent_speech_s =
            self.complete_turn(at_ms, key, turn_index, user_speech_s, &scope, &stack);
        if turn_index < plan.last_turn {
            self.schedule_turn(at_ms, key, turn_index + 1);
            return;
        }
        let after_s = match plan.status {
            CallStatus::Abandoned => uniform(&mut self.rng, 1.0, 4.0),
            _ => agent_speech_s + uniform(&mut self.rng, 0.5, 2.0),
        };
        self.schedule(
            at_ms + seconds_ms(after_s),
            Happening::CallEnds { call: key },
        );
    }

    /// A planned failure: the failing provider's request (if a provider is to blame),
    /// then the call ends a moment later.
    fn fail_turn(&mut self, at_ms: i64, key: u64, scope: &Scope, stack: &Stack, reason: &str) {
        if let Some((component, error)) = failure_cause(reason) {
            let provider = stack.service_for(component).provider;
            self.emit_failed_request(at_ms, scope, provider, error);
        }
        let after_ms = seconds_ms(uniform(&mut self.rng, 0.5, 3.0));
        self.schedule(at_ms + after_ms, Happening::CallEnds { call: key });
    }

    fn fail_call_on_incident(&mut self, at_ms: i64, key: u64, provider: Provider) {
        if let Some(call) = self.calls.get_mut(&key) {
            call.plan.status = CallStatus::Failed;
            call.plan.ended_reason = incident_reason(provider.component());
            call.plan.ended_by = EndedBy::Provider;
        }
        let after_ms = seconds_ms(uniform(&mut self.rng, 0.5, 2.0));
        self.schedule(at_ms + after_ms, Happening::CallEnds { call: key });
    }

    /// Emits one completed turn with its usage and provider requests; returns how long
    /// the agent then speaks, in seconds.
    fn complete_turn(
        &mut self,
        at_ms: i64,
        key: u64,
        turn_index: u32,
        user_speech_s: f64,
        scope: &Scope,
        stack: &Stack,
    ) -> f64 {
        let timing = self.sample_timing(stack);
        let context_tokens = self.calls.get(&key).map_or(0, |call| call.context_tokens);
        let tokens = self.sample_tokens(turn_index, context_tokens);
        if let Some(call) = self.calls.get_mut(&key) {
            call.context_tokens = tokens.input + tokens.output;
        }
        let characters = self.sample_characters(tokens.output);
        let user_stopped_ms = at_ms - timing.e2e_ms.round() as i64;
        self.emit_stt(
            user_stopped_ms + timing.stt_ms.round() as i64,
            scope,
            stack,
            &timing,
            user_speech_s,
        );
        let llm_at_ms = user_stopped_ms
            + (timing.eou_ms.max(timing.stt_ms) + timing.llm_ttft_ms).round() as i64;
        self.emit_llm(llm_at_ms.min(at_ms), scope, stack, &timing, tokens);
        self.emit_tts(at_ms, scope, stack, &timing, characters);
        self.emit_turn_completed(at_ms, scope, turn_index, &timing);
        characters as f64 / CHARACTERS_PER_SECOND
    }

    fn emit_stt(
        &mut self,
        at_ms: i64,
        scope: &Scope,
        stack: &Stack,
        timing: &TurnTiming,
        audio_s: f64,
    ) {
        let fields = json!({
            "provider": stack.stt.provider.name(),
            "model": stack.stt.model,
            "audio_seconds": round1(audio_s),
            "latency_ms": round1(timing.stt_ms),
        });
        self.emit(at_ms, EventKind::SttUsage, scope, fields);
        self.emit_request(at_ms, scope, stack.stt.provider, timing.stt_ms);
    }

    fn emit_llm(
        &mut self,
        at_ms: i64,
        scope: &Scope,
        stack: &Stack,
        timing: &TurnTiming,
        tokens: Tokens,
    ) {
        let fields = json!({
            "provider": stack.llm.provider.name(),
            "model": stack.llm.model,
            "input_tokens": tokens.input,
            "cached_input_tokens": tokens.cached,
            "output_tokens": tokens.output,
            "ttft_ms": round1(timing.llm_ttft_ms),
        });
        self.emit(at_ms, EventKind::LlmUsage, scope, fields);
        let per_token_ms = uniform(&mut self.rng, 8.0, 16.0);
        let request_ms = clamp_latency(timing.llm_ttft_ms + tokens.output as f64 * per_token_ms);
        self.emit_request(at_ms, scope, stack.llm.provider, request_ms);
    }

    fn emit_tts(
        &mut self,
        at_ms: i64,
        scope: &Scope,
        stack: &Stack,
        timing: &TurnTiming,
        characters: u64,
    ) {
        let fields = json!({
            "provider": stack.tts.provider.name(),
            "model": stack.tts.model,
            "characters": characters,
            "audio_seconds": round1(characters as f64 / CHARACTERS_PER_SECOND),
            "ttfb_ms": round1(timing.tts_ttfb_ms),
        });
        self.emit(at_ms, EventKind::TtsUsage, scope, fields);
        let per_character_ms = uniform(&mut self.rng, 0.5, 1.5);
        let request_ms = clamp_latency(timing.tts_ttfb_ms + characters as f64 * per_character_ms);
        self.emit_request(at_ms, scope, stack.tts.provider, request_ms);
    }

    fn emit_turn_completed(
        &mut self,
        at_ms: i64,
        scope: &Scope,
        turn_index: u32,
        timing: &TurnTiming,
    ) {
        let mut fields = json!({
            "turn_index": turn_index,
            "e2e_ms": round1(timing.e2e_ms),
            "stt_ms": round1(timing.stt_ms),
            "eou_ms": round1(timing.eou_ms),
            "llm_ttft_ms": round1(timing.llm_ttft_ms),
            "tts_ttfb_ms": round1(timing.tts_ttfb_ms),
            "interrupted": self.rng.random_bool(0.07),
        });
        let uses_tools = scope.objective.is_some_and(books_something);
        if uses_tools && self.rng.random_bool(0.3) {
            fields["tool_calls"] = json!(1);
        }
        self.emit(at_ms, EventKind::TurnCompleted, scope, fields);
    }

    fn call_ends(&mut self, at_ms: i64, key: u64) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        if let Some(worker) = self.tenants[call.tenant].workers.get_mut(call.worker) {
            worker.active_calls = worker.active_calls.saturating_sub(1);
        }
        let duration_s = (at_ms - call.started_ms) as f64 / 1000.0;
        let fields = json!({
            "duration_s": duration_s,
            "status": call.plan.status.as_str(),
            "ended_reason": call.plan.ended_reason,
            "ended_by": call.plan.ended_by.as_str(),
        });
        self.emit(at_ms, EventKind::CallEnded, &call.scope, fields);
        self.count_ended(call.plan.status);
    }

    fn count_ended(&mut self, status: CallStatus) {
        self.stats.calls_ended += 1;
        match status {
            CallStatus::Completed => self.stats.completed += 1,
            CallStatus::Failed => self.stats.failed += 1,
            CallStatus::Abandoned => self.stats.abandoned += 1,
            CallStatus::Transferred => self.stats.transferred += 1,
        }
    }

    // --- sampling ---

    /// End-to-end latency is lognormal (median 650 ms, P95 ≈ 1.1 s) split into its
    /// parts; each part then scales with its model's speed and any slowdown, and the
    /// end-to-end figure is the sum the caller actually heard.
    fn sample_timing(&mut self, stack: &Stack) -> TurnTiming {
        let base_ms = lognormal(&mut self.rng, 650.0, 0.32);
        let shares = self.sample_shares([0.30, 0.45, 0.17, 0.08]);
        let eou_ms = clamp_latency(base_ms * shares[0]);
        let stt_raw = eou_ms * uniform(&mut self.rng, 0.5, 1.0) * self.scale(stack.stt);
        let stt_ms = clamp_latency(stt_raw);
        let llm_ttft_ms = clamp_latency(base_ms * shares[1] * self.scale(stack.llm));
        let tts_ttfb_ms = clamp_latency(base_ms * shares[2] * self.scale(stack.tts));
        let overhead_ms = base_ms * shares[3];
        let e2e_ms = clamp_latency(eou_ms.max(stt_ms) + llm_ttft_ms + tts_ttfb_ms + overhead_ms);
        TurnTiming {
            stt_ms,
            eou_ms,
            llm_ttft_ms,
            tts_ttfb_ms,
            e2e_ms,
        }
    }

    fn sample_shares(&mut self, base: [f64; 4]) -> [f64; 4] {
        let mut shares = base.map(|share| share * lognormal(&mut self.rng, 1.0, 0.25));
        let total: f64 = shares.iter().sum();
        shares.iter_mut().for_each(|share| *share /= total);
        shares
    }

    /// Latency multiplier of one service: its model's speed, times the slowdown factor
    /// while its provider has an incident.
    fn scale(&self, service: Service) -> f64 {
        match self.slowdown {
            Some(slow) if slow.provider == service.provider => service.speed * slow.factor,
            _ => service.speed,
        }
    }

    /// The prompt grows with the conversation (800 → 4000 tokens); after the first turn
    /// the provider usually serves the previous conversation from its prompt cache.
    fn sample_tokens(&mut self, turn_index: u32, context_tokens: u64) -> Tokens {
        let grown = 800.0 + 230.0 * f64::from(turn_index) + uniform(&mut self.rng, 0.0, 200.0);
        let input = (grown.round() as u64).clamp(800, 4000);
        let cache_hit = context_tokens >= 1024 && self.rng.random_bool(0.85);
        let cached = if cache_hit {
            (context_tokens / 128 * 128).min(input)
        } else {
            0
        };
        let output = (lognormal(&mut self.rng, 40.0, 0.5).round() as u64).clamp(20, 200);
        Tokens {
            input,
            cached,
            output,
        }
    }

    /// What the agent says is what the LLM wrote: about four characters per token.
    fn sample_characters(&mut self, output_tokens: u64) -> u64 {
        let per_token = uniform(&mut self.rng, 3.6, 4.4);
        ((output_tokens as f64 * per_token).round() as u64).clamp(40, 400)
    }

    // --- incidents and breakers ---

    /// A provider slows down ×3–5 for every tenant; 10–40 s later each tenant using it
    /// trips its breaker, which stays open 30–120 s, then half-open 10–30 s, then closes.
    fn incident_starts(&mut self, at_ms: i64) {
        if self.used_providers.is_empty() {
            return;
        }
        let provider = self.used_providers[self.rng.random_range(0..self.used_providers.len())];
        let factor = uniform(&mut self.rng, 3.0, 5.0);
        self.slowdown = Some(Slowdown { provider, factor });
        let open_at = at_ms + seconds_ms(uniform(&mut self.rng, 10.0, 40.0));
        let open_ms = seconds_ms(uniform(&mut self.rng, 30.0, 120.0));
        let half_open_ms = seconds_ms(uniform(&mut self.rng, 10.0, 30.0));
        let mut last_close = open_at;
        for tenant in self.tenants_using(provider) {
            let opened = open_at + self.rng.random_range(0..5_000);
            let closed = opened + open_ms + half_open_ms;
            self.schedule_breaker(opened, tenant, provider, BreakerState::Open);
            self.schedule_breaker(opened + open_ms, tenant, provider, BreakerState::HalfOpen);
            self.schedule_breaker(closed, tenant, provider, BreakerState::Closed);
            last_close = last_close.max(closed);
        }
        self.schedule(last_close + 1, Happening::IncidentEnds);
    }

    fn schedule_breaker(
        &mut self,
        at_ms: i64,
        tenant: usize,
        provider: Provider,
        state: BreakerState,
    ) {
        self.schedule(
            at_ms,
            Happening::BreakerChanges {
                tenant,
                provider,
                state,
            },
        );
    }

    fn tenants_using(&self, provider: Provider) -> Vec<usize> {
        let uses = |tenant: &TenantSim| {
            tenant
                .agents
                .iter()
                .any(|a| a.stack.providers().contains(&provider))
        };
        (0..self.tenants.len())
            .filter(|&t| uses(&self.tenants[t]))
            .collect()
    }

    fn breaker_changes(
        &mut self,
        at_ms: i64,
        tenant: usize,
        provider: Provider,
        state: BreakerState,
    ) {
        if state == BreakerState::Open {
            self.open_breakers.insert((tenant, provider));
            self.stats.breaker_trips += 1;
        } else {
            self.open_breakers.remove(&(tenant, provider));
        }
        let scope = self.tenant_scope(tenant);
        let fields = json!({ "breaker": provider.name(), "state": state.as_str() });
        self.emit(at_ms, EventKind::CircuitBreakerChanged, &scope, fields);
    }

    fn incident_ends(&mut self, at_ms: i64) {
        self.slowdown = None;
        if let Some(gap) = self.config.mean_incident_gap {
            let quiet_ms = exponential(&mut self.rng, gap.as_millis() as f64).max(60_000.0);
            self.schedule(at_ms + quiet_ms.round() as i64, Happening::IncidentStarts);
        }
    }

    /// While a provider the call uses is troubled, its requests fail: with the breaker
    /// open every turn sees a failure, which kills the call 2 % of the time (a retry or
    /// fallback saves the rest); while it is only slow, 15 % of turns see a failure that
    /// a retry absorbs.
    fn incident_effect(
        &mut self,
        at_ms: i64,
        tenant: usize,
        scope: &Scope,
        stack: &Stack,
    ) -> IncidentEffect {
        let open = stack
            .providers()
            .into_iter()
            .find(|p| self.open_breakers.contains(&(tenant, *p)));
        if let Some(provider) = open {
            let error = if self.rng.random_bool(0.6) {
                "timeout"
            } else {
                "http_503"
            };
            self.emit_failed_request(at_ms, scope, provider, error);
            if self.rng.random_bool(0.02) {
                return IncidentEffect::CallFails(provider);
            }
            return IncidentEffect::Retried;
        }
        let slow = self
            .slowdown
            .filter(|slow| stack.providers().contains(&slow.provider));
        if let Some(slow) = slow {
            if self.rng.random_bool(0.15) {
                self.emit_failed_request(at_ms, scope, slow.provider, "timeout");
                return IncidentEffect::Retried;
            }
        }
        IncidentEffect::None
    }

    // --- workers ---

    fn heartbeat(&mut self, at_ms: i64, tenant: usize, worker: usize) {
        self.schedule(
            at_ms + HEARTBEAT_EVERY_MS,
            Happening::Heartbeat { tenant, worker },
        );
        let (worker_id, active_calls, base_memory) = {
            let w = &self.tenants[tenant].workers[worker];
            (w.worker_id.clone(), w.active_calls, w.base_memory_bytes)
        };
        let per_call_mib = uniform(&mut self.rng, 25.0, 35.0);
        let memory = base_memory
            + f64::from(active_calls) * per_call_mib * MIB
            + uniform(&mut self.rng, -8.0, 8.0) * MIB;
        let memory_used_bytes = (memory.max(0.0) as u64).min(MEMORY_LIMIT_BYTES);
        let cpu = 3.0
            + f64::from(active_calls) * uniform(&mut self.rng, 5.0, 8.0)
            + uniform(&mut self.rng, 0.0, 4.0);
        let fields = json!({
            "worker_id": worker_id,
            "memory_used_bytes": memory_used_bytes,
            "memory_limit_bytes": MEMORY_LIMIT_BYTES,
            "cpu_percent": round1(cpu.clamp(0.0, 400.0)),
            "active_calls": active_calls,
        });
        let scope = self.tenant_scope(tenant);
        self.emit(at_ms, EventKind::WorkerHeartbeat, &scope, fields);
    }
}

/// Tenants with their agents and enough workers for their share of the traffic
/// (about ten concurrent calls per worker, two workers at least).
fn build_tenants(rng: &mut StdRng, config: &ModelConfig, weights: &[f64]) -> Vec<TenantSim> {
    let agents_per_tenant = config.agents_per_tenant.max(1);
    let total_weight: f64 = weights.iter().sum();
    let mean_call_s = 60.0;
    weights
        .iter()
        .enumerate()
        .map(|(index, weight)| {
            let concurrent =
                config.calls_per_minute.max(0.0) * weight / total_weight * mean_call_s / 60.0;
            let workers = ((concurrent / 10.0).ceil() as usize).clamp(2, 32);
            TenantSim {
                tenant_id: format!("tenant-{:02}", index + 1),
                agents: (0..agents_per_tenant)
                    .map(|a| build_agent(rng, a))
                    .collect(),
                agent_weights: zipf_weights(agents_per_tenant, 0.5),
                workers: (0..workers).map(|w| build_worker(rng, w)).collect(),
            }
        })
        .collect()
}

fn build_agent(rng: &mut StdRng, index: usize) -> AgentSim {
    let kind = &AGENT_KINDS[index % AGENT_KINDS.len()];
    let round = index / AGENT_KINDS.len();
    let agent_id = if round == 0 {
        kind.name.to_owned()
    } else {
        format!("{}-{}", kind.name, round + 1)
    };
    let stack = Stack {
        stt: STT_SERVICES[usize::from(!rng.random_bool(0.7))],
        llm: LLM_SERVICES[usize::from(!rng.random_bool(0.45))],
        tts: TTS_SERVICES[usize::from(!rng.random_bool(0.6))],
    };
    AgentSim {
        agent_id,
        kind,
        stack,
    }
}

fn build_worker(rng: &mut StdRng, index: usize) -> WorkerSim {
    WorkerSim {
        worker_id: format!("worker-{}", index + 1),
        active_calls: 0,
        base_memory_bytes: uniform(rng, 280.0, 420.0) * MIB,
    }
}

fn used_providers(tenants: &[TenantSim]) -> Vec<Provider> {
    let used: BTreeSet<Provider> = tenants
        .iter()
        .flat_map(|t| t.agents.iter().flat_map(|a| a.stack.providers()))
        .collect();
    used.into_iter().collect()
}

fn least_loaded(workers: &[WorkerSim]) -> usize {
    (0..workers.len())
        .min_by_key(|&w| (workers[w].active_calls, w))
        .unwrap_or(0)
}

/// Completed 88 %, failed 5 %, abandoned 5 %, transferred 2 %; 3–15 turns.
fn plan_call(rng: &mut StdRng) -> CallPlan {
    let turns = rng.random_range(3..=15u32);
    let roll: f64 = rng.random();
    let plan = |status, ended_reason, ended_by, last_turn| CallPlan {
        status,
        ended_reason,
        ended_by,
        last_turn,
    };
    if roll < 0.88 {
        let (reason, by) = if rng.random_bool(0.55) {
            ("user_goodbye", EndedBy::User)
        } else {
            ("objective_met", EndedBy::Agent)
        };
        return plan(CallStatus::Completed, reason, by, turns - 1);
    }
    if roll < 0.93 {
        let reason = [
            "llm_timeout",
            "llm_timeout",
            "stt_error",
            "tts_error",
            "pipeline_error",
        ][rng.random_range(0..5)];
        let by = if reason == "pipeline_error" {
            EndedBy::System
        } else {
            EndedBy::Provider
        };
        return plan(CallStatus::Failed, reason, by, rng.random_range(0..turns));
    }
    if roll < 0.98 {
        return plan(
            CallStatus::Abandoned,
            "user_hangup",
            EndedBy::User,
            rng.random_range(0..turns.min(5)),
        );
    }
    plan(
        CallStatus::Transferred,
        "transfer_to_human",
        EndedBy::Agent,
        turns - 1,
    )
}

/// Booking objectives call a calendar tool now and then.
fn books_something(objective: &str) -> bool {
    objective.contains("appointment") || objective.contains("booking")
}

/// The component and provider error behind a planned failure; `None` when no provider
/// is to blame.
fn failure_cause(reason: &str) -> Option<(PipelineComponent, &'static str)> {
    match reason {
        "llm_timeout" => Some((PipelineComponent::Llm, "timeout")),
        "stt_error" => Some((PipelineComponent::Stt, "connection_reset")),
        "tts_error" => Some((PipelineComponent::Tts, "http_500")),
        _ => None,
    }
}

fn incident_reason(component: PipelineComponent) -> &'static str {
    match component {
        PipelineComponent::Stt => "stt_error",
        PipelineComponent::Llm => "llm_timeout",
        PipelineComponent::Tts => "tts_error",
    }
}

fn zipf_weights(count: usize, exponent: f64) -> Vec<f64> {
    (1..=count)
        .map(|rank| 1.0 / (rank as f64).powf(exponent))
        .collect()
}

fn pick_weighted(rng: &mut StdRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = rng.random::<f64>() * total;
    for (index, weight) in weights.iter().enumerate() {
        if target < *weight {
            return index;
        }
        target -= weight;
    }
    weights.len().saturating_sub(1)
}

fn uniform(rng: &mut StdRng, low: f64, high: f64) -> f64 {
    low + (high - low) * rng.random::<f64>()
}

/// Box–Muller: one standard normal draw.
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn lognormal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    median * (sigma * standard_normal(rng)).exp()
}

fn exponential(rng: &mut StdRng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

fn seconds_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn clamp_latency(ms: f64) -> f64 {
    ms.clamp(0.0, MAX_SIMULATED_LATENCY_MS)
}

/// `2026-11-27T10:15:00.250Z`.
fn rfc3339_millis(at_ms: i64) -> String {
    let time = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------
// Sending: NDJSON batches over HTTP with retries
// ---------------------------------------------------------------------------------------

/// How long one batch is retried (503, 5xx, connection errors) before it counts as failed.
pub const RETRY_BUDGET: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const REACHABILITY_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Backfill is generated in steps of this much simulated time.
const BACKFILL_STEP_MS: i64 = 10_000;
const MAX_BACKFILL: Duration = Duration::from_secs(366 * 24 * 3600);

/// voicemon's answer to `POST /v1/events`.
#[derive(Debug, Default, Deserialize)]
struct IngestAnswer {
    #[serde(default)]
    accepted: u64,
    #[serde(default)]
    duplicates: u64,
    #[serde(default)]
    rejected: Vec<RejectedEvent>,
}

#[derive(Debug, Deserialize)]
struct RejectedEvent {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    field: Option<String>,
    #[serde(default, alias = "message")]
    error: String,
}

impl RejectedEvent {
    fn describe(&self) -> String {
        match &self.field {
            Some(field) => format!("event {}: {field}: {}", self.index, self.error),
            None => format!("event {}: {}", self.index, self.error),
        }
    }
}

/// voicemon's error body: `{error: {code, message}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// How one batch went, once retries are over.
enum Delivery {
    Answered {
        answer: IngestAnswer,
        all_rejected: bool,
    },
    GaveUp {
        reason: String,
    },
}

/// How one attempt went.
enum Attempt {
    Answered {
        answer: IngestAnswer,
        all_rejected: bool,
    },
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Fatal(SimulateError),
}

struct Sender {
    client: reqwest::Client,
    events_url: String,
    health_url: String,
    api_key: Option<String>,
}

impl Sender {
    fn new(options: &SimulateOptions) -> Result<Self, SimulateError> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|err| SimulateError::Client(err.to_string()))?;
        let base = options.base_url.trim_end_matches('/');
        Ok(Sender {
            client,
            events_url: format!("{base}/v1/events"),
            health_url: format!("{base}/healthz"),
            api_key: options.api_key.clone(),
        })
    }

    /// Any HTTP answer from `/healthz` will do: it only proves something listens.
    async fn check_reachable(&self) -> Result<(), SimulateError> {
        let request = self
            .client
            .get(&self.health_url)
            .timeout(REACHABILITY_TIMEOUT);
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) => Err(SimulateError::Unreachable {
                url: self.health_url.clone(),
                reason: error_chain(&err),
            }),
        }
    }

    /// POSTs one batch, retrying transient failures for [`RETRY_BUDGET`]. A batch that
    /// got an answer is never sent again.
    async fn deliver(&self, lines: &[String]) -> Result<Delivery, SimulateError> {
        let mut body = lines.join("\n");
        body.push('\n');
        let give_up_at = Instant::now() + RETRY_BUDGET;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (after, reason) = match self.attempt(&body).await {
                Attempt::Answered {
                    answer,
                    all_rejected,
                } => {
                    return Ok(Delivery::Answered {
                        answer,
                        all_rejected,
                    })
                }
                Attempt::Fatal(err) => return Err(err),
                Attempt::Retry { after, reason } => (after, reason),
            };
            let wait = after.unwrap_or(backoff);
            if Instant::now() + wait > give_up_at {
                return Ok(Delivery::GaveUp { reason });
            }
            let wait_ms = wait.as_millis() as u64;
            tracing::warn!(%reason, wait_ms, "simulate: batch not taken, retrying");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn attempt(&self, body: &str) -> Attempt {
        let mut request = self
            .client
            .post(&self.events_url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body.to_owned());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        match request.send().await {
            Ok(response) => self.classify(response).await,
            Err(err) => Attempt::Retry {
                after: None,
                reason: error_chain(&err),
            },
        }
    }

    async fn classify(&self, response: reqwest::Response) -> Attempt {
        let status = response.status().as_u16();
        let retry_after = retry_after(&response);
        let text = match response.text().await {
            Ok(text) => text,
            Err(err) => {
                return Attempt::Retry {
                    after: None,
                    reason: error_chain(&err),
                }
            }
        };
        match status {
            200..=299 | 422 => self.read_answer(status, &text),
            401 | 403 => Attempt::Fatal(SimulateError::AuthRefused {
                status,
                message: error_message(&text),
            }),
            429 | 500 | 502 | 503 | 504 => Attempt::Retry {
                after: retry_after,
                reason: format!("{status}: {}", error_message(&text)),
            },
            413 => {
                let message = format!("{}; lower batch_max_events", error_message(&text));
                Attempt::Fatal(self.unexpected(status, message))
            }
            _ => Attempt::Fatal(self.unexpected(status, error_message(&text))),
        }
    }

    fn read_answer(&self, status: u16, text: &str) -> Attempt {
        match serde_json::from_str::<IngestAnswer>(text) {
            Ok(answer) => Attempt::Answered {
                answer,
                all_rejected: status == 422,
            },
            Err(err) => Attempt::Fatal(self.unexpected(
                status,
                format!("not an ingest answer ({err}): {}", excerpt(text)),
            )),
        }
    }

    fn unexpected(&self, status: u16, message: String) -> SimulateError {
        SimulateError::UnexpectedAnswer {
            status,
            url: self.events_url.clone(),
            message,
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The message of a `{error: {code, message}}` body, or the start of the raw body.
fn error_message(text: &str) -> String {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) if body.error.code.is_empty() => body.error.message,
        Ok(body) => format!("{}: {}", body.error.code, body.error.message),
        Err(_) => excerpt(text),
    }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// reqwest's top-level message hides the cause ("error sending request"); add the chain.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

// ---------------------------------------------------------------------------------------
// The run: backfill, then live, then flush
// ---------------------------------------------------------------------------------------

/// Generates traffic and sends it to voicemon until `duration` has elapsed (backfill
/// included) or `shutdown` turns true; then sends what was generated and returns the
/// summary. `on_progress` is called about once a second.
pub async fn run(
    options: SimulateOptions,
    mut shutdown: watch::Receiver<bool>,
    on_progress: impl FnMut(&Progress) + Send,
) -> Result<Summary, SimulateError> {
    check_options(&options)?;
    let sender = Sender::new(&options)?;
    sender.check_reachable().await?;
    let clock = SystemClock;
    let now_ms = clock.now_ms();
    let backfill_ms = options.backfill.map_or(0, |b| b.as_millis() as i64);
    let seed = options.seed.unwrap_or_else(rand::random);
    let model = TrafficModel::new(ModelConfig::from_options(
        &options,
        seed,
        now_ms - backfill_ms,
    ));
    tracing::info!(seed, url = %sender.events_url, ?options, "simulate: starting");
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let mut session = Session::new(model, sender, seed, options.batch_max_events, on_progress);
    let backfilled = backfill_ms == 0 || session.backfill(now_ms, &shutdown).await?;
    if backfilled {
        session.live(deadline, &mut shutdown).await?;
        session.send_due_events().await?;
    }
    session.report(true);
    Ok(session.summary())
}

fn check_options(options: &SimulateOptions) -> Result<(), SimulateError> {
    let invalid = |message: &str| Err(SimulateError::InvalidOptions(message.to_owned()));
    if !(options.base_url.starts_with("http://") || options.base_url.starts_with("https://")) {
        return invalid("base_url must start with http:// or https://");
    }
    if options.tenants == 0 || options.agents_per_tenant == 0 {
        return invalid("tenants and agents_per_tenant must be at least 1");
    }
    if !(options.calls_per_minute.is_finite() && options.calls_per_minute >= 0.0) {
        return invalid("calls_per_minute must be a number ≥ 0");
    }
    if options.batch_max_events == 0 {
        return invalid("batch_max_events must be at least 1");
    }
    if options.backfill.is_some_and(|b| b > MAX_BACKFILL) {
        return invalid("backfill is at most 366 days");
    }
    Ok(())
}

/// The state of one run: the model, the sender and the counters.
struct Session<F> {
    model: TrafficModel,
    sender: Sender,
    clock: SystemClock,
    seed: u64,
    batch_max_events: usize,
    on_progress: F,
    progress: Progress,
    first_rejection: Option<String>,
    started: Instant,
    last_report: Instant,
}

impl<F: FnMut(&Progress) + Send> Session<F> {
    fn new(
        model: TrafficModel,
        sender: Sender,
        seed: u64,
        batch_max_events: usize,
        on_progress: F,
    ) -> Self {
        let now = Instant::now();
        Session {
            model,
            sender,
            clock: SystemClock,
            seed,
            batch_max_events,
            on_progress,
            progress: Progress::default(),
            first_rejection: None,
            started: now,
            last_report: now,
        }
    }

    /// Generates the history up to `end_ms` step by step and sends it in full batches
    /// as fast as voicemon answers. Returns false if `shutdown` cut it short (what was
    /// generated is still sent).
    async fn backfill(
        &mut self,
        end_ms: i64,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<bool, SimulateError> {
        let mut pending: Vec<String> = Vec::new();
        while self.model.cursor_ms() < end_ms && !*shutdown.borrow() {
            let step_end = (self.model.cursor_ms() + BACKFILL_STEP_MS).min(end_ms);
            pending.extend(
                self.model
                    .events_until(step_end)
                    .iter()
                    .map(Value::to_string),
            );
            while pending.len() >= self.batch_max_events {
                let batch: Vec<String> = pending.drain(..self.batch_max_events).collect();
                self.send_batch(&batch).await?;
            }
        }
        self.send_lines(&pending).await?;
        Ok(self.model.cursor_ms() >= end_ms)
    }

    /// Every second, sends what happened since the last tick.
    async fn live(
        &mut self,
        deadline: Option<Instant>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), SimulateError> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(());
            }
            tokio::select! {
                _ = tick.tick() => {}
                _ = wait_for_stop(shutdown) => return Ok(()),
                _ = sleep_until(deadline) => return Ok(()),
            }
            self.send_due_events().await?;
            self.report(true);
        }
    }

    /// Sends every event whose time has come by the wall clock.
    async fn send_due_events(&mut self) -> Result<(), SimulateError> {
        let lines: Vec<String> = self
            .model
            .events_until(self.clock.now_ms())
            .iter()
            .map(Value::to_string)
            .collect();
        self.send_lines(&lines).await
    }

    async fn send_lines(&mut self, lines: &[String]) -> Result<(), SimulateError> {
        for batch in lines.chunks(self.batch_max_events) {
            self.send_batch(batch).await?;
        }
        Ok(())
    }

    async fn send_batch(&mut self, batch: &[String]) -> Result<(), SimulateError> {
        self.progress.events_sent += batch.len() as u64;
        match self.sender.deliver(batch).await? {
            Delivery::Answered {
                answer,
                all_rejected,
            } => self.count_answer(answer, all_rejected, batch.len())?,
            Delivery::GaveUp { reason } => {
                self.progress.failed_requests += 1;
                tracing::warn!(%reason, events = batch.len(), "simulate: gave up on a batch");
            }
        }
        self.report(false);
        Ok(())
    }

    fn count_answer(
        &mut self,
        answer: IngestAnswer,
        all_rejected: bool,
        sent: usize,
    ) -> Result<(), SimulateError> {
        let first = answer.rejected.first().map(RejectedEvent::describe);
        if all_rejected {
            let first = first.unwrap_or_else(|| "voicemon gave no reason".to_owned());
            return Err(SimulateError::Rejected { count: sent, first });
        }
        self.progress.accepted += answer.accepted;
        self.progress.duplicates += answer.duplicates;
        self.progress.rejected += answer.rejected.len() as u64;
        if self.first_rejection.is_none() {
            if let Some(first) = first {
                tracing::warn!(rejection = %first, "simulate: voicemon rejected generated events");
                self.first_rejection = Some(first);
            }
        }
        Ok(())
    }

    /// Calls `on_progress` if forced or if a second has passed since the last call.
    fn report(&mut self, force: bool) {
        if !force && self.last_report.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_report = Instant::now();
        let stats = self.model.stats();
        self.progress.calls_started = stats.calls_started;
        self.progress.calls_ended = stats.calls_ended;
        self.progress.elapsed = self.started.elapsed();
        (self.on_progress)(&self.progress);
    }

    fn summary(&self) -> Summary {
        let stats = self.model.stats();
        let progress = &self.progress;
        Summary {
            seed: self.seed,
            events_sent: progress.events_sent,
            accepted: progress.accepted,
            duplicates: progress.duplicates,
            rejected: progress.rejected,
            calls_started: stats.calls_started,
            calls_ended: stats.calls_ended,
            calls_active: self.model.active_calls() as u64,
            calls_completed: stats.completed,
            calls_failed: stats.failed,
            calls_abandoned: stats.abandoned,
            calls_transferred: stats.transferred,
            breaker_trips: stats.breaker_trips,
            elapsed: self.started.elapsed(),
            failed_requests: progress.failed_requests,
            first_rejection: self.first_rejection.clone(),
        }
    }
}

/// Resolves once `shutdown` is true; never, if its sender is gone.
async fn wait_for_stop(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};
    use tokio::net::{TcpListener, TcpStream};
    use voicemon_core::event::Body;
    use voicemon_core::validate::parse_event;

    /// 2026-01-01T00:00:00Z.
    const START_MS: i64 = 1_767_225_600_000;
    const MINUTE_MS: i64 = 60_000;

    fn model(seed: u64) -> TrafficModel {
        TrafficModel::new(ModelConfig::new(seed, START_MS))
    }

    fn lines_of(events: &[Value]) -> Vec<String> {
        events.iter().map(Value::to_string).collect()
    }

    fn count_type(events: &[Value], kind: &str) -> usize {
        events.iter().filter(|e| e["type"] == kind).count()
    }

    #[test]
    fn the_same_seed_and_start_give_the_same_events() {
        let first = model(7).events_until(START_MS + 5 * MINUTE_MS);
        let second = model(7).events_until(START_MS + 5 * MINUTE_MS);
        assert!(
            first.len() > 1_000,
            "only {} events in 5 minutes",
            first.len()
        );
        assert_eq!(first, second);
    }

    #[test]
    fn different_seeds_give_different_events() {
        let first = model(7).events_until(START_MS + MINUTE_MS);
        let second = model(8).events_until(START_MS + MINUTE_MS);
        assert_ne!(lines_of(&first), lines_of(&second));
    }

    #[test]
    fn stepping_in_small_increments_gives_the_same_events_as_one_big_step() {
        let whole = model(3).events_until(START_MS + 3 * MINUTE_MS);
        let mut stepped_model = model(3);
        let mut stepped = Vec::new();
        for second in 1..=180 {
            stepped.extend(stepped_model.events_until(START_MS + second * 1000));
        }
        let sorted = |events: &[Value]| {
            let mut lines = lines_of(events);
            lines.sort();
            lines
        };
        assert_eq!(sorted(&whole), sorted(&stepped));
    }

    #[test]
    fn every_event_of_twenty_minutes_with_an_incident_passes_validation() {
        let mut model = model(11);
        let mut events = Vec::new();
        for minute in 1..=20 {
            let now_ms = START_MS + minute * MINUTE_MS;
            for event in model.events_until(now_ms) {
                let parsed = parse_event(&event.to_string(), now_ms)
                    .unwrap_or_else(|err| panic!("{event} is invalid: {err}"));
                assert!(
                    parsed.envelope.timestamp_ms <= now_ms,
                    "{event} is in the future"
                );
                assert!(
                    parsed.envelope.timestamp_ms >= START_MS,
                    "{event} is before the start"
                );
                events.push(parsed);
            }
        }
        let breaker_states: Vec<BreakerState> = events
            .iter()
            .filter_map(|e| match &e.body {
                Body::CircuitBreakerChanged(change) => Some(change.state),
                _ => None,
            })
            .collect();
        for state in BreakerState::ALL {
            assert!(
                breaker_states.contains(&state),
                "no breaker went {state:?} in 20 minutes"
            );
        }
        let failed_request = |e: &voicemon_core::event::Event| match &e.body {
            Body::ProviderRequest(request) => !request.ok && request.error.is_some(),
            _ => false,
        };
        assert!(
            events.iter().any(failed_request),
            "no failed provider request during the incident"
        );
        assert!(model.stats().breaker_trips > 0);
    }

    #[test]
    fn call_scoped_events_carry_agent_and_objective() {
        let events = model(5).events_until(START_MS + 3 * MINUTE_MS);
        for event in events.iter().filter(|e| e.get("call_id").is_some()) {
            assert!(event["agent_id"].is_string(), "{event} has no agent_id");
            assert!(event["objective"].is_string(), "{event} has no objective");
        }
        let tenants: HashSet<&str> = events
            .iter()
            .filter_map(|e| e["tenant_id"].as_str())
            .collect();
        assert!(
            tenants.contains("tenant-01") && tenants.contains("tenant-05"),
            "{tenants:?}"
        );
    }

    #[test]
    fn event_ids_are_unique() {
        let events = model(13).events_until(START_MS + 10 * MINUTE_MS);
        let ids: HashSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
        assert_eq!(ids.len(), events.len());
    }

    #[test]
    fn ended_plus_active_calls_equal_started_calls() {
        let mut model = model(17);
        let events = model.events_until(START_MS + 10 * MINUTE_MS);
        let started = count_type(&events, "call.started");
        let ended = count_type(&events, "call.ended");
        assert!(
            started > 400,
            "only {started} calls in 10 minutes at 60 a minute"
        );
        assert_eq!(ended + model.active_calls(), started);
        assert_eq!(model.stats().calls_started as usize, started);
        assert_eq!(model.stats().calls_ended as usize, ended);
    }

    #[test]
    fn heartbeats_report_each_workers_own_active_calls() {
        let mut model = model(19);
        let events = model.events_until(START_MS + 5 * MINUTE_MS);
        let heartbeats: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "worker.heartbeat")
            .collect();
        let workers: HashSet<(String, String)> = heartbeats
            .iter()
            .map(|e| (e["tenant_id"].to_string(), e["worker_id"].to_string()))
            .collect();
        // Every worker beats every 10 s: 30 beats each in 5 minutes.
        assert_eq!(heartbeats.len(), workers.len() * 30);
        let busiest = heartbeats
            .iter()
            .filter_map(|e| e["active_calls"].as_u64())
            .max();
        assert!(busiest.is_some_and(|calls| calls > 0));
        let total_active: u32 = model
            .tenants
            .iter()
            .flat_map(|t| &t.workers)
            .map(|w| w.active_calls)
            .sum();
        assert_eq!(total_active as usize, model.active_calls());
    }

    /// Statuses of the calls started in the first 4 minutes, all ended 4 minutes later
    /// (no call outlasts 4 minutes), with incidents off so only the plan decides.
    #[test]
    fn call_status_mix_is_roughly_as_planned() {
        let config = ModelConfig {
            calls_per_minute: 500.0,
            mean_incident_gap: None,
            ..ModelConfig::new(23, START_MS)
        };
        let mut model = TrafficModel::new(config);
        let events = model.events_until(START_MS + 8 * MINUTE_MS);
        let early_calls: HashSet<&str> = events
            .iter()
            .filter(|e| e["type"] == "call.started" && timestamp_ms(e) < START_MS + 4 * MINUTE_MS)
            .filter_map(|e| e["call_id"].as_str())
            .collect();
        let mut statuses: HashMap<&str, usize> = HashMap::new();
        for event in events.iter().filter(|e| e["type"] == "call.ended") {
            if early_calls.contains(event["call_id"].as_str().unwrap_or_default()) {
                *statuses
                    .entry(event["status"].as_str().unwrap_or_default())
                    .or_default() += 1;
            }
        }
        let total: usize = statuses.values().sum();
        assert_eq!(total, early_calls.len(), "some early calls never ended");
        assert!(total > 1_500, "only {total} calls");
        let share = |status: &str| statuses.get(status).copied().unwrap_or(0) as f64 / total as f64;
        assert!((share("completed") - 0.88).abs() < 0.025, "{statuses:?}");
        assert!((share("failed") - 0.05).abs() < 0.017, "{statuses:?}");
        assert!((share("abandoned") - 0.05).abs() < 0.017, "{statuses:?}");
        assert!((share("transferred") - 0.02).abs() < 0.011, "{statuses:?}");
    }

    #[test]
    fn turn_latency_has_a_realistic_median_and_p95() {
        let config = ModelConfig {
            mean_incident_gap: None,
            ..ModelConfig::new(29, START_MS)
        };
        let events = TrafficModel::new(config).events_until(START_MS + 30 * MINUTE_MS);
        let mut e2e: Vec<f64> = events
            .iter()
            .filter(|e| e["type"] == "turn.completed")
            .filter_map(|e| e["e2e_ms"].as_f64())
            .collect();
        e2e.sort_by(f64::total_cmp);
        let quantile = |q: f64| e2e[((e2e.len() - 1) as f64 * q) as usize];
        assert!(e2e.len() > 5_000);
        assert!(
            (580.0..720.0).contains(&quantile(0.5)),
            "median {}",
            quantile(0.5)
        );
        assert!(
            (950.0..1_300.0).contains(&quantile(0.95)),
            "p95 {}",
            quantile(0.95)
        );
    }

    #[test]
    fn call_duration_covers_its_turns() {
        let events = model(31).events_until(START_MS + 10 * MINUTE_MS);
        let mut started: HashMap<&str, i64> = HashMap::new();
        let mut last_turn: HashMap<&str, i64> = HashMap::new();
        for event in &events {
            let call = event["call_id"].as_str().unwrap_or_default();
            match event["type"].as_str() {
                Some("call.started") => drop(started.insert(call, timestamp_ms(event))),
                Some("turn.completed") => drop(last_turn.insert(call, timestamp_ms(event))),
                Some("call.ended") => {
                    let duration_ms =
                        (event["duration_s"].as_f64().unwrap_or(-1.0) * 1000.0).round() as i64;
                    assert_eq!(started[call] + duration_ms, timestamp_ms(event), "{event}");
                    if let Some(turn) = last_turn.get(call) {
                        assert!(*turn <= timestamp_ms(event), "{event}");
                    }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn llm_cached_tokens_never_exceed_input_and_input_grows() {
        let events = model(37).events_until(START_MS + 5 * MINUTE_MS);
        let usage: Vec<&Value> = events.iter().filter(|e| e["type"] == "llm.usage").collect();
        assert!(usage
            .iter()
            .all(|e| e["cached_input_tokens"].as_u64() <= e["input_tokens"].as_u64()));
        assert!(usage
            .iter()
            .any(|e| e["cached_input_tokens"].as_u64() > Some(0)));
        let max_input = usage
            .iter()
            .filter_map(|e| e["input_tokens"].as_u64())
            .max();
        assert!(max_input > Some(2_500), "{max_input:?}");
    }

    #[test]
    fn no_calls_per_minute_means_only_heartbeats() {
        let config = ModelConfig {
            calls_per_minute: 0.0,
            mean_incident_gap: None,
            ..ModelConfig::new(1, START_MS)
        };
        let events = TrafficModel::new(config).events_until(START_MS + MINUTE_MS);
        assert!(!events.is_empty());
        assert!(events.iter().all(|e| e["type"] == "worker.heartbeat"));
    }

    #[test]
    fn summary_display_is_short_and_lowercase() {
        let summary = Summary {
            seed: 1,
            events_sent: 10,
            accepted: 9,
            duplicates: 1,
            rejected: 0,
            calls_started: 2,
            calls_ended: 1,
            calls_active: 1,
            calls_completed: 1,
            calls_failed: 0,
            calls_abandoned: 0,
            calls_transferred: 0,
            breaker_trips: 0,
            elapsed: Duration::from_millis(1500),
            failed_requests: 0,
            first_rejection: None,
        };
        let text = summary.to_string();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.starts_with("simulated for 1.5 s (seed 1): 10 events sent"),
            "{text}"
        );
    }

    #[test]
    fn options_debug_hides_the_api_key() {
        let options = SimulateOptions {
            api_key: Some("vm_secret".into()),
            ..SimulateOptions::default()
        };
        assert!(!format!("{options:?}").contains("vm_secret"));
    }

    #[test]
    fn run_is_send_so_it_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let (_stop, shutdown) = watch::channel(false);
        let future = run(SimulateOptions::default(), shutdown, |_| {});
        assert_send(&future);
    }

    fn timestamp_ms(event: &Value) -> i64 {
        let text = event["timestamp"].as_str().unwrap_or_default();
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .unwrap_or(i64::MIN)
    }

    // --- run against a stand-in voicemon ---

    /// What the stand-in saw and how it should answer POSTs.
    #[derive(Default)]
    struct StandIn {
        /// Status codes for the first POSTs, in order; 202 after that.
        script: Vec<u16>,
        posts: usize,
        /// Lines of the POSTs answered 202, and how many of them validated.
        lines: usize,
        valid: usize,
        call_started: usize,
        content_types: HashSet<String>,
        authorizations: HashSet<String>,
    }

    /// A tiny HTTP/1.1 server: answers `GET` with 200 and `POST /v1/events` like voicemon,
    /// validating each NDJSON line with the real contract code.
    async fn start_stand_in(script: Vec<u16>) -> (String, Arc<Mutex<StandIn>>) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let state = Arc::new(Mutex::new(StandIn {
            script,
            ..StandIn::default()
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move { serve_one(stream, &shared).await });
            }
        });
        (url, state)
    }

    async fn serve_one(stream: TcpStream, state: &Mutex<StandIn>) {
        let Some((head, body)) = read_request(&stream).await else {
            return;
        };
        let response = if head.starts_with("POST /v1/events ") {
            answer_post(&head, &body, &mut state.lock().expect("stand-in state"))
        } else {
            http_response(200, "", "ok")
        };
        write_all(&stream, response.as_bytes()).await;
    }

    fn answer_post(head: &str, body: &[u8], state: &mut StandIn) -> String {
        state.posts += 1;
        for name in ["content-type", "authorization"] {
            if let Some(value) = header(head, name) {
                let set = if name == "content-type" {
                    &mut state.content_types
                } else {
                    &mut state.authorizations
                };
                set.insert(value);
            }
        }
        let status = state.script.get(state.posts - 1).copied().unwrap_or(202);
        match status {
            202 => {}
            401 => {
                return http_response(
                    401,
                    "",
                    r#"{"error":{"code":"unauthorized","message":"unknown api key"}}"#,
                )
            }
            503 => {
                return http_response(
                    503,
                    "Retry-After: 1\r\n",
                    r#"{"error":{"code":"unavailable","message":"storage is unavailable"}}"#,
                )
            }
            other => return http_response(other, "", "{}"),
        }
        let now_ms = SystemClock.now_ms();
        let text = String::from_utf8_lossy(body);
        let mut rejected = Vec::new();
        for (index, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            state.lines += 1;
            state.call_started += usize::from(line.contains(r#""type":"call.started""#));
            match parse_event(line, now_ms) {
                Ok(_) => state.valid += 1,
                Err(err) => rejected
                    .push(json!({ "index": index, "field": err.field, "error": err.message })),
            }
        }
        let accepted = text.lines().filter(|l| !l.trim().is_empty()).count() - rejected.len();
        let answer = json!({ "accepted": accepted, "duplicates": 0, "rejected": rejected });
        http_response(202, "", &answer.to_string())
    }

    fn header(head: &str, name: &str) -> Option<String> {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    fn http_response(status: u16, extra_headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n{extra_headers}\r\n{body}",
            body.len()
        )
    }

    /// Reads one request (head and `Content-Length` body) without tokio's io-util.
    async fn read_request(stream: &TcpStream) -> Option<(String, Vec<u8>)> {
        let mut buffer = Vec::new();
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                let length: usize = header(&head, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    return Some((head, buffer[end + 4..end + 4 + length].to_vec()));
                }
            }
            stream.readable().await.ok()?;
            let mut chunk = [0u8; 64 * 1024];
            match stream.try_read(&mut chunk) {
                Ok(0) => return None,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return None,
            }
        }
    }

    async fn write_all(stream: &TcpStream, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if stream.writable().await.is_err() {
                return;
            }
            match stream.try_write(bytes) {
                Ok(written) => bytes = &bytes[written..],
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
    }

    fn options_for(url: &str) -> SimulateOptions {
        SimulateOptions {
            base_url: url.to_owned(),
            api_key: Some("vm_test_key".to_owned()),
            duration: Some(Duration::from_secs(1)),
            backfill: Some(Duration::from_secs(3 * 60)),
            seed: Some(42),
            batch_max_events: 200,
            ..SimulateOptions::default()
        }
    }

    #[tokio::test]
    async fn run_with_backfill_reports_exactly_what_the_server_received() {
        let (url, state) = start_stand_in(Vec::new()).await;
        let (_stop, shutdown) = watch::channel(false);
        let mut reports = 0;
        let summary = run(options_for(&url), shutdown, |_| reports += 1)
            .await
            .expect("run succeeds");
        let seen = state.lock().expect("stand-in state");
        assert!(
            seen.posts >= 10,
            "only {} posts for 3 minutes of backfill",
            seen.posts
        );
        assert_eq!(summary.events_sent, seen.lines as u64);
        assert_eq!(summary.accepted, seen.valid as u64);
        assert_eq!(
            summary.accepted, summary.events_sent,
            "first rejection: {:?}",
            summary.first_rejection
        );
        assert_eq!((summary.rejected, summary.failed_requests), (0, 0));
        assert_eq!(summary.calls_started, seen.call_started as u64);
        assert!(summary.calls_started > 100, "{summary}");
        assert_eq!(
            summary.calls_ended + summary.calls_active,
            summary.calls_started
        );
        assert!(reports >= 1);
        assert_eq!(
            seen.content_types,
            HashSet::from(["application/x-ndjson".to_owned()])
        );
        assert_eq!(
            seen.authorizations,
            HashSet::from(["Bearer vm_test_key".to_owned()])
        );
    }

    #[tokio::test]
    async fn a_503_is_retried_after_retry_after_and_nothing_is_lost() {
        let (url, state) = start_stand_in(vec![503]).await;
        let (_stop, shutdown) = watch::channel(false);
        let options = SimulateOptions {
            backfill: Some(Duration::from_secs(60)),
            duration: Some(Duration::ZERO),
            ..options_for(&url)
        };
        let started = std::time::Instant::now();
        let summary = run(options, shutdown, |_| {}).await.expect("run succeeds");
        let seen = state.lock().expect("stand-in state");
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "retry-after was not honoured"
        );
        assert_eq!(summary.failed_requests, 0);
        assert_eq!(summary.events_sent, seen.lines as u64);
        assert_eq!(summary.accepted, seen.lines as u64);
    }

    #[tokio::test]
    async fn a_refused_api_key_stops_the_run_with_a_clear_error() {
        let (url, _state) = start_stand_in(vec![401]).await;
        let (_stop, shutdown) = watch::channel(false);
        let error = run(options_for(&url), shutdown, |_| {})
            .await
            .expect_err("401 stops the run");
        assert!(
            matches!(error, SimulateError::AuthRefused { status: 401, .. }),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "voicemon refused the api key (401): unauthorized: unknown api key"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_at_start() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        drop(listener);
        let (_stop, shutdown) = watch::channel(false);
        let error = run(options_for(&url), shutdown, |_| {})
            .await
            .expect_err("nothing listens");
        assert!(
            matches!(error, SimulateError::Unreachable { .. }),
            "{error}"
        );
        assert!(error
            .to_string()
            .starts_with("voicemon is unreachable at http://127.0.0.1:"));
    }

    #[tokio::test]
    async fn shutdown_stops_an_endless_run_and_flushes() {
        let (url, state) = start_stand_in(Vec::new()).await;
        let (stop, shutdown) = watch::channel(false);
        let options = SimulateOptions {
            duration: None,
            backfill: Some(Duration::from_secs(30)),
            ..options_for(&url)
        };
        let handle = tokio::spawn(run(options, shutdown, |_| {}));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.send(true).expect("the run still listens");
        let summary = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("run stops soon after shutdown")
            .expect("run task does not panic")
            .expect("run succeeds");
        let seen = state.lock().expect("stand-in state");
        assert!(summary.events_sent > 0);
        assert_eq!(summary.events_sent, seen.lines as u64);
    }

    #[tokio::test]
    async fn shutdown_during_backfill_sends_only_what_was_generated() {
        let (url, state) = start_stand_in(Vec::new()).await;
        let (stop, shutdown) = watch::channel(false);
        let options = SimulateOptions {
            duration: None,
            backfill: Some(Duration::from_secs(24 * 3600)),
            batch_max_events: 50,
            ..options_for(&url)
        };
        let handle = tokio::spawn(run(options, shutdown, |_| {}));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.send(true).expect("the run still listens");
        let summary = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("run stops soon after shutdown")
            .expect("run task does not panic")
            .expect("run succeeds");
        let seen = state.lock().expect("stand-in state");
        assert_eq!(summary.events_sent, seen.lines as u64);
        // A day of history is about five million events; only a sliver was generated.
        assert!(summary.events_sent < 500_000, "{summary}");
    }

    #[test]
    fn invalid_options_are_refused_before_anything_is_sent() {
        let options = SimulateOptions {
            batch_max_events: 0,
            ..SimulateOptions::default()
        };
        let error = check_options(&options).expect_err("zero batch size");
        assert_eq!(
            error.to_string(),
            "invalid simulate options: batch_max_events must be at least 1"
        );
    }
}
