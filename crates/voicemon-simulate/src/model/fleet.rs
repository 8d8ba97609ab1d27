//! The fleet: tenants, their agents with the STT → LLM → TTS stack each runs, and the
//! workers that host their calls. Built once, from the seed, when the model starts.

use super::random::zipf_weights;
use super::worker::{build_worker, WorkerSim};
use super::ModelConfig;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeSet;
use voicemon_core::event::PipelineComponent;

/// A kind of agent: its name and what its callers want.
pub(super) struct AgentKind {
    name: &'static str,
    /// The main objective (80 % of calls) and a secondary one.
    pub(super) objectives: [&'static str; 2],
    /// The share of its calls that come by phone; the rest come from the web.
    pub(super) phone_share: f64,
}

const AGENT_KINDS: [AgentKind; 6] = [
    AgentKind { name: "support-bot", objectives: ["support", "billing_question"], phone_share: 0.75 },
    AgentKind { name: "sales-bot", objectives: ["sales_qualification", "demo_booking"], phone_share: 0.6 },
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
    AgentKind { name: "survey-bot", objectives: ["customer_survey", "support"], phone_share: 0.95 },
    AgentKind { name: "triage-bot", objectives: ["triage", "support"], phone_share: 0.5 },
];

/// A company whose API serves one pipeline component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Provider {
    Deepgram,
    AssemblyAi,
    OpenAi,
    Cartesia,
    ElevenLabs,
}

impl Provider {
    pub(super) fn name(self) -> &'static str {
        match self {
            Provider::Deepgram => "deepgram",
            Provider::AssemblyAi => "assemblyai",
            Provider::OpenAi => "openai",
            Provider::Cartesia => "cartesia",
            Provider::ElevenLabs => "elevenlabs",
        }
    }

    pub(super) fn component(self) -> PipelineComponent {
        match self {
            Provider::Deepgram | Provider::AssemblyAi => PipelineComponent::Stt,
            Provider::OpenAi => PipelineComponent::Llm,
            Provider::Cartesia | Provider::ElevenLabs => PipelineComponent::Tts,
        }
    }
}

/// One provider model as an agent uses it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Service {
    pub(super) provider: Provider,
    pub(super) model: &'static str,
    /// Multiplies this component's latency: some models are faster than others.
    pub(super) speed: f64,
}

const STT_SERVICES: [Service; 2] = [
    Service { provider: Provider::Deepgram, model: "nova-3", speed: 0.95 },
    Service { provider: Provider::AssemblyAi, model: "universal-streaming", speed: 1.1 },
];
const LLM_SERVICES: [Service; 2] = [
    Service { provider: Provider::OpenAi, model: "gpt-4o", speed: 1.1 },
    Service { provider: Provider::OpenAi, model: "gpt-4o-mini", speed: 0.85 },
];
const TTS_SERVICES: [Service; 2] = [
    Service { provider: Provider::Cartesia, model: "sonic-2", speed: 0.9 },
    Service { provider: Provider::ElevenLabs, model: "eleven_flash_v2_5", speed: 1.15 },
];

/// The STT → LLM → TTS pipeline one agent runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stack {
    pub(super) stt: Service,
    pub(super) llm: Service,
    pub(super) tts: Service,
}

impl Stack {
    pub(super) fn providers(&self) -> [Provider; 3] {
        [self.stt.provider, self.llm.provider, self.tts.provider]
    }

    pub(super) fn service_for(&self, component: PipelineComponent) -> Service {
        match component {
            PipelineComponent::Stt => self.stt,
            PipelineComponent::Llm => self.llm,
            PipelineComponent::Tts => self.tts,
        }
    }
}

pub(super) struct AgentSim {
    pub(super) agent_id: String,
    pub(super) kind: &'static AgentKind,
    pub(super) stack: Stack,
}

pub(super) struct TenantSim {
    pub(super) tenant_id: String,
    pub(super) agents: Vec<AgentSim>,
    /// Some agents take more calls than others.
    pub(super) agent_weights: Vec<f64>,
    pub(super) workers: Vec<WorkerSim>,
}

/// Tenants with their agents and enough workers for their share of the traffic
/// (about ten concurrent calls per worker, two workers at least).
pub(super) fn build_tenants(rng: &mut StdRng, config: &ModelConfig, weights: &[f64]) -> Vec<TenantSim> {
    let agents_per_tenant = config.agents_per_tenant.max(1);
    let total_weight: f64 = weights.iter().sum();
    let mean_call_s = 60.0;
    weights
        .iter()
        .enumerate()
        .map(|(index, weight)| {
            let concurrent = config.calls_per_minute.max(0.0) * weight / total_weight * mean_call_s / 60.0;
            let workers = ((concurrent / 10.0).ceil() as usize).clamp(2, 32);
            TenantSim {
                tenant_id: format!("tenant-{:02}", index + 1),
                agents: (0..agents_per_tenant).map(|a| build_agent(rng, a)).collect(),
                agent_weights: zipf_weights(agents_per_tenant, 0.5),
                workers: (0..workers).map(|w| build_worker(rng, w)).collect(),
            }
        })
        .collect()
}

fn build_agent(rng: &mut StdRng, index: usize) -> AgentSim {
    let kind = &AGENT_KINDS[index % AGENT_KINDS.len()];
    let round = index / AGENT_KINDS.len();
    let agent_id = if round == 0 { kind.name.to_owned() } else { format!("{}-{}", kind.name, round + 1) };
    let stack = Stack {
        stt: STT_SERVICES[usize::from(!rng.random_bool(0.7))],
        llm: LLM_SERVICES[usize::from(!rng.random_bool(0.45))],
        tts: TTS_SERVICES[usize::from(!rng.random_bool(0.6))],
    };
    AgentSim { agent_id, kind, stack }
}

/// Every provider some agent uses, each once, in a fixed order.
pub(super) fn used_providers(tenants: &[TenantSim]) -> Vec<Provider> {
    let used: BTreeSet<Provider> =
        tenants.iter().flat_map(|t| t.agents.iter().flat_map(|a| a.stack.providers())).collect();
    used.into_iter().collect()
}
