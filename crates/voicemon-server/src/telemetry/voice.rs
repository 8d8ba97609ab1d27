//! Voice metrics for `/metrics`: turn latency, calls, cost and provider health by tenant
//! and component.
//!
//! The batch writer takes a [`VoiceRecord`] from each event before the store consumes it
//! and records it once the group commit holding it is durable, only for the events the
//! store kept (a duplicate adds nothing; rejected events never reach the writer).
//! Tenant, provider and breaker label values are bounded by [`PrometheusLimits`]; the
//! resulting worst case is [`PrometheusLimits::worst_case_series`] (`docs/prometheus.md`).

use super::labels::{Admission, BoundedLabel, LabelValue, Slot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use voicemon_core::event::{BreakerState, CallStatus, PipelineComponent};
use voicemon_core::latency::Component;
use voicemon_core::pricing::Costing;
use voicemon_store::IngestEvent;

/// Upper bounds (seconds) of every latency histogram: dense around the 800 ms SLO.
pub const LATENCY_BUCKETS: [f64; 17] =
    [0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0];

/// Upper bounds (seconds) of the call duration histogram.
pub const CALL_DURATION_BUCKETS: [f64; 9] = [10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];

/// The largest cap `[prometheus]` accepts for one label: beyond it the bound stops
/// being one a Prometheus server is glad to hold.
pub const MAX_LABEL_CAP: usize = 10_000;

/// How many distinct values of the unbounded labels get their own series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrometheusLimits {
    /// Tenants with their own `tenant` label; later ones share `tenant="_other"`.
    pub max_tenants: usize,
    /// Provider names with their own `provider` label, and separately circuit breaker
    /// names with their own `breaker` label; later ones share `_other`.
    pub max_providers: usize,
}

impl Default for PrometheusLimits {
    fn default() -> Self {
        PrometheusLimits { max_tenants: 100, max_providers: 20 }
    }
}

/// Series of one histogram: its buckets, `+Inf`, `_sum` and `_count`.
const fn histogram_series(buckets: usize) -> usize {
    buckets + 3
}

impl PrometheusLimits {
    /// The most series the voice metrics can reach with these limits (the self-metrics
    /// add [`super::SELF_SERIES`]). The formula is documented in `docs/prometheus.md`.
    pub fn worst_case_voice_series(&self) -> usize {
        let tenants = self.max_tenants + 1;
        let providers = self.max_providers + 1;
        let latency = histogram_series(LATENCY_BUCKETS.len());
        let duration = histogram_series(CALL_DURATION_BUCKETS.len());
        let pipeline = PipelineComponent::ALL.len();
        let per_tenant = Component::ALL.len() * latency // turn latency
            + 1 // turn interruptions
            + 1 // calls started
            + CallStatus::ALL.len() // calls ended
            + duration // call duration
            + 2 * pipeline * providers; // cost and unpriced lines by component and provider
        let per_provider = pipeline * latency // usage latency
            + pipeline * 2 // provider requests by outcome
            + pipeline * latency; // provider request duration
        let per_breaker = BreakerState::ALL.len();
        let folded = 3; // one per bounded label
        tenants * per_tenant + providers * per_provider + providers * per_breaker + folded
    }

    /// The most series `/metrics` can hold with these limits, every metric counted.
    pub fn worst_case_series(&self) -> usize {
        self.worst_case_voice_series() + super::SELF_SERIES
    }
}

/// What a usage line costs, as the price book said at ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageCost {
    /// Integer nano-USD.
    Priced(u64),
    Unpriced,
}

/// What one event adds to the voice metrics, taken from the event before the store
/// consumes it. Latencies are in seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum VoiceRecord {
    CallStarted {
        tenant: String,
    },
    CallEnded {
        tenant: String,
        status: CallStatus,
        duration_s: f64,
    },
    Turn {
        tenant: String,
        /// In the order of [`Component::ALL`]: turn_e2e, stt, eou, llm_ttft, tts_ttfb.
        latencies_s: [Option<f64>; 5],
        interrupted: bool,
    },
    Usage {
        tenant: String,
        component: PipelineComponent,
        provider: String,
        cost: UsageCost,
        /// STT latency, LLM time to first token or TTS time to first byte.
        latency_s: Option<f64>,
    },
    ProviderRequest {
        provider: String,
        component: PipelineComponent,
        ok: bool,
        latency_s: Option<f64>,
    },
    BreakerChanged {
        breaker: String,
        state: BreakerState,
    },
}

fn seconds(ms: Option<f64>) -> Option<f64> {
    ms.map(|ms| ms / 1000.0)
}

impl VoiceRecord {
    /// The record of `event`, or `None` for types that feed no voice metric (heartbeats).
    pub fn of(ingest: &IngestEvent) -> Option<VoiceRecord> {
        use voicemon_core::event::Body;
        let tenant = || ingest.event.envelope.tenant_id.clone();
        let usage = |component, provider: &str, latency_ms| VoiceRecord::Usage {
            tenant: tenant(),
            component,
            provider: provider.to_owned(),
            cost: match &ingest.costing {
                Costing::Priced(line) => UsageCost::Priced(u64::try_from(line.cost.0).unwrap_or(0)),
                Costing::Unpriced { .. } | Costing::NotUsage => UsageCost::Unpriced,
            },
            latency_s: seconds(latency_ms),
        };
        let record = match &ingest.event.body {
            Body::CallStarted(_) => VoiceRecord::CallStarted { tenant: tenant() },
            Body::CallEnded(ended) => VoiceRecord::CallEnded {
                tenant: tenant(),
                status: ended.status,
                duration_s: ended.duration_s,
            },
            Body::TurnCompleted(turn) => VoiceRecord::Turn {
                tenant: tenant(),
                latencies_s: [
                    Some(turn.e2e_ms / 1000.0),
                    seconds(turn.stt_ms),
                    seconds(turn.eou_ms),
                    seconds(turn.llm_ttft_ms),
                    seconds(turn.tts_ttfb_ms),
                ],
                interrupted: turn.interrupted == Some(true),
            },
            Body::SttUsage(u) => usage(PipelineComponent::Stt, &u.provider, u.latency_ms),
            Body::LlmUsage(u) => usage(PipelineComponent::Llm, &u.provider, u.ttft_ms),
            Body::TtsUsage(u) => usage(PipelineComponent::Tts, &u.provider, u.ttfb_ms),
            Body::ProviderRequest(request) => VoiceRecord::ProviderRequest {
                provider: request.provider.clone(),
                component: request.component,
                ok: request.ok,
                latency_s: seconds(request.latency_ms),
            },
            Body::CircuitBreakerChanged(changed) => {
                VoiceRecord::BreakerChanged { breaker: changed.breaker.clone(), state: changed.state }
            }
            Body::WorkerHeartbeat(_) => return None,
        };
        Some(record)
    }
}

/// The latency component a usage line's latency belongs to.
fn usage_latency_component(component: PipelineComponent) -> Component {
    match component {
        PipelineComponent::Stt => Component::Stt,
        PipelineComponent::Llm => Component::LlmTtft,
        PipelineComponent::Tts => Component::TtsTtfb,
    }
}

/// A money counter kept as integer nano-USD and exposed in USD, so its sum stays exact
/// however many lines it adds (a float counter would drift).
#[derive(Debug, Default)]
pub struct UsdCounter {
    nanos: AtomicU64,
}

impl UsdCounter {
    pub fn add_nanos(&self, nanos: u64) {
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn nanos(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

impl TypedMetric for UsdCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for UsdCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let usd = self.nanos() as f64 / 1e9;
        encoder.encode_counter::<NoLabelSet, _, u64>(&usd, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TurnLabels {
    tenant: LabelValue,
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallEndLabels {
    tenant: LabelValue,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    tenant: LabelValue,
    component: &'static str,
    provider: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: LabelValue,
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    provider: LabelValue,
    component: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    breaker: LabelValue,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FoldLabels {
    label: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn call_duration_histogram() -> Histogram {
    Histogram::new(CALL_DURATION_BUCKETS)
}

/// A metric family that stays out of the exposition until it has a series. A family
/// with metadata and no samples is valid OpenMetrics, but the reference validator and
/// other parsers refuse it, so voicemon never sends one.
#[derive(Debug)]
struct Shown<F> {
    name: &'static str,
    help: &'static str,
    family: F,
    used: AtomicBool,
}

impl<S, M, C> Shown<Family<S, M, C>>
where
    S: Clone + std::hash::Hash + Eq,
    C: MetricConstructor<M>,
{
    fn new(name: &'static str, help: &'static str, family: Family<S, M, C>) -> Self {
        Shown { name, help, family, used: AtomicBool::new(false) }
    }

    /// A handle on the series of `labels` (created if new) to keep and record through.
    fn handle(&self, labels: &S) -> M
    where
        M: Clone,
    {
        let handle = self.family.get_or_create(labels).clone();
        self.used.store(true, Ordering::Release);
        handle
    }

    /// The series of `labels`, created if new.
    fn series(&self, labels: &S) -> impl std::ops::Deref<Target = M> + '_ {
        let series = self.family.get_or_create(labels);
        // Set after the series exists, so a scrape that sees the flag sees a series.
        self.used.store(true, Ordering::Release);
        series
    }
}

impl<F: EncodeMetric> Shown<F> {
    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.used.load(Ordering::Acquire) {
            return Ok(());
        }
        let metric = encoder.encode_descriptor(self.name, self.help, None, self.family.metric_type())?;
        self.family.encode(metric)
    }
}

/// Handles to every voice metric.
#[derive(Debug)]
pub struct VoiceMetrics {
    tenants: BoundedLabel<TenantSeries>,
    providers: BoundedLabel<ProviderSeries>,
    breakers: BoundedLabel,
    turn_latency: Shown<HistogramFamily<TurnLabels>>,
    turn_interruptions: Shown<Family<TenantLabels, Counter>>,
    calls_started: Shown<Family<TenantLabels, Counter>>,
    calls_ended: Shown<Family<CallEndLabels, Counter>>,
    call_duration: Shown<HistogramFamily<TenantLabels>>,
    cost: Shown<Family<CostLabels, UsdCounter>>,
    unpriced: Shown<Family<CostLabels, Counter>>,
    usage_latency: Shown<HistogramFamily<ProviderLabels>>,
    provider_requests: Shown<Family<RequestLabels, Counter>>,
    provider_request_duration: Shown<HistogramFamily<ProviderLabels>>,
    breaker_changes: Shown<Family<BreakerLabels, Counter>>,
    folded: Shown<Family<FoldLabels, Counter>>,
}

impl VoiceMetrics {
    pub fn new(limits: PrometheusLimits) -> VoiceMetrics {
        VoiceMetrics {
            tenants: BoundedLabel::new(limits.max_tenants),
            providers: BoundedLabel::new(limits.max_providers),
            breakers: BoundedLabel::new(limits.max_providers),
            turn_latency: Shown::new(
                "voicemon_turn_latency_seconds",
                "Turn latency as the caller hears it (turn_e2e) and its parts (stt, eou, llm_ttft, \
                 tts_ttfb), from turn.completed",
                Family::new_with_constructor(latency_histogram),
            ),
            turn_interruptions: Shown::new(
                "voicemon_turn_interruptions",
                "Turns the caller interrupted (turn.completed with interrupted = true)",
                Family::default(),
            ),
            calls_started: Shown::new("voicemon_calls_started", "Calls started (call.started)", Family::default()),
            calls_ended: Shown::new(
                "voicemon_calls_ended",
                "Calls ended by status: completed, failed, abandoned, transferred (call.ended)",
                Family::default(),
            ),
            call_duration: Shown::new(
                "voicemon_call_duration_seconds",
                "Duration of ended calls (call.ended duration_s)",
                Family::new_with_constructor(call_duration_histogram),
            ),
            cost: Shown::new(
                "voicemon_cost_usd",
                "Cost of priced usage lines in USD, summed from integer nano-USD at ingest prices",
                Family::default(),
            ),
            unpriced: Shown::new(
                "voicemon_usage_unpriced",
                "Usage lines no price covers: stored and counted here, never costed at zero",
                Family::default(),
            ),
            usage_latency: Shown::new(
                "voicemon_usage_latency_seconds",
                "Latency the usage events report: stt latency, llm_ttft, tts_ttfb",
                Family::new_with_constructor(latency_histogram),
            ),
            provider_requests: Shown::new(
                "voicemon_provider_requests",
                "Provider requests by outcome: ok, error (provider.request)",
                Family::default(),
            ),
            provider_request_duration: Shown::new(
                "voicemon_provider_request_duration_seconds",
                "Provider request latency (provider.request latency_ms)",
                Family::new_with_constructor(latency_histogram),
            ),
            breaker_changes: Shown::new(
                "voicemon_circuit_breaker_changes",
                "Circuit breaker state changes by the state entered: closed, open, half_open",
                Family::default(),
            ),
            folded: Shown::new(
                "voicemon_prometheus_label_folded",
                "Events recorded under `_other` because their label (tenant, provider, breaker) reached its cap",
                Family::default(),
            ),
        }
    }

    /// Records the events of one durable group commit that the store kept:
    /// `records[i]` counts only when `stored[i]` (a duplicate adds nothing).
    pub fn record_stored(&self, records: &[Option<VoiceRecord>], stored: &[bool]) {
        for (record, stored) in records.iter().zip(stored) {
            if let (Some(record), true) = (record, *stored) {
                self.record(record);
            }
        }
    }

    /// Records one stored event.
    pub fn record(&self, record: &VoiceRecord) {
        match record {
            VoiceRecord::CallStarted { tenant } => {
                let slot = self.tenant(tenant);
                let labels = || TenantLabels { tenant: slot.value.clone() };
                slot.series.calls_started.get_or_init(|| self.calls_started.handle(&labels())).inc();
            }
            VoiceRecord::CallEnded { tenant, status, duration_s } => {
                let slot = self.tenant(tenant);
                let status_labels = || CallEndLabels { tenant: slot.value.clone(), status: status.as_str() };
                let ended = &slot.series.calls_ended[index_of(&CallStatus::ALL, *status)];
                ended.get_or_init(|| self.calls_ended.handle(&status_labels())).inc();
                let labels = || TenantLabels { tenant: slot.value.clone() };
                let duration = slot.series.call_duration.get_or_init(|| self.call_duration.handle(&labels()));
                duration.observe(*duration_s);
            }
            VoiceRecord::Turn { tenant, latencies_s, interrupted } => {
                let slot = self.tenant(tenant);
                for ((component, value), cell) in
                    Component::ALL.into_iter().zip(latencies_s).zip(&slot.series.turn_latency)
                {
                    if let Some(value) = value {
                        let labels =
                            || TurnLabels { tenant: slot.value.clone(), component: component.as_str() };
                        cell.get_or_init(|| self.turn_latency.handle(&labels())).observe(*value);
                    }
                }
                if *interrupted {
                    let labels = || TenantLabels { tenant: slot.value.clone() };
                    slot.series
                        .turn_interruptions
                        .get_or_init(|| self.turn_interruptions.handle(&labels()))
                        .inc();
                }
            }
            VoiceRecord::Usage { tenant, component, provider, cost, latency_s } => {
                let provider = self.provider(provider);
                let labels = CostLabels {
                    tenant: self.tenant(tenant).value.clone(),
                    component: component.as_str(),
                    provider: provider.value.clone(),
                };
                match cost {
                    UsageCost::Priced(nanos) => self.cost.series(&labels).add_nanos(*nanos),
                    UsageCost::Unpriced => {
                        self.unpriced.series(&labels).inc();
                    }
                }
                if let Some(latency) = latency_s {
                    let latency_component = usage_latency_component(*component).as_str();
                    let labels =
                        || ProviderLabels { provider: provider.value.clone(), component: latency_component };
                    let cell = &provider.series.usage_latency[index_of(&PipelineComponent::ALL, *component)];
                    cell.get_or_init(|| self.usage_latency.handle(&labels())).observe(*latency);
                }
            }
            VoiceRecord::ProviderRequest { provider, component, ok, latency_s } => {
                let slot = self.provider(provider);
                let at = index_of(&PipelineComponent::ALL, *component);
                let component = component.as_str();
                let (outcome, outcome_at) = if *ok { ("ok", 0) } else { ("error", 1) };
                let labels = || RequestLabels { provider: slot.value.clone(), component, outcome };
                let requests = &slot.series.requests[at][outcome_at];
                requests.get_or_init(|| self.provider_requests.handle(&labels())).inc();
                if let Some(latency) = latency_s {
                    let labels = || ProviderLabels { provider: slot.value.clone(), component };
                    let cell = &slot.series.request_duration[at];
                    cell.get_or_init(|| self.provider_request_duration.handle(&labels())).observe(*latency);
                }
            }
            VoiceRecord::BreakerChanged { breaker, state } => {
                let breaker = self.bounded("breaker", self.breakers.admit(breaker));
                let labels = BreakerLabels { breaker: breaker.value.clone(), state: state.as_str() };
                self.breaker_changes.series(&labels).inc();
            }
        }
    }

    fn tenant(&self, raw: &str) -> Arc<Slot<TenantSeries>> {
        self.bounded("tenant", self.tenants.admit(raw))
    }

    fn provider(&self, raw: &str) -> Arc<Slot<ProviderSeries>> {
        self.bounded("provider", self.providers.admit(raw))
    }

    fn bounded<T>(&self, label: &'static str, admission: Admission<T>) -> Arc<Slot<T>> {
        if admission.is_folded() {
            self.folded.series(&FoldLabels { label }).inc();
        }
        admission.slot()
    }
}

/// Where `item` is in `all` (one of the `ALL` lists of the event contract).
fn index_of<T: PartialEq + Copy>(all: &[T], item: T) -> usize {
    all.iter().position(|candidate| *candidate == item).expect("an ALL list names every variant")
}

/// The handles of one tenant's series, made on first use (a series exists only once
/// something is recorded in it), so recording a turn is five histogram observations
/// rather than five family lookups.
#[derive(Debug, Default)]
struct TenantSeries {
    /// In the order of [`Component::ALL`].
    turn_latency: [OnceLock<Histogram>; 5],
    turn_interruptions: OnceLock<Counter>,
    calls_started: OnceLock<Counter>,
    /// In the order of [`CallStatus::ALL`].
    calls_ended: [OnceLock<Counter>; 4],
    call_duration: OnceLock<Histogram>,
}

/// The handles of one provider's series, by [`PipelineComponent::ALL`] (and outcome).
#[derive(Debug, Default)]
struct ProviderSeries {
    usage_latency: [OnceLock<Histogram>; 3],
    /// `[component][ok, error]`.
    requests: [[OnceLock<Counter>; 2]; 3],
    request_duration: [OnceLock<Histogram>; 3],
}

/// Encodes the voice metrics that have a series, at each scrape.
#[derive(Debug)]
pub struct VoiceCollector(pub Arc<VoiceMetrics>);

impl Collector for VoiceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = &self.0;
        metrics.turn_latency.encode(&mut encoder)?;
        metrics.turn_interruptions.encode(&mut encoder)?;
        metrics.calls_started.encode(&mut encoder)?;
        metrics.calls_ended.encode(&mut encoder)?;
        metrics.call_duration.encode(&mut encoder)?;
        metrics.cost.encode(&mut encoder)?;
        metrics.unpriced.encode(&mut encoder)?;
        metrics.usage_latency.encode(&mut encoder)?;
        metrics.provider_requests.encode(&mut encoder)?;
        metrics.provider_request_duration.encode(&mut encoder)?;
        metrics.breaker_changes.encode(&mut encoder)?;
        metrics.folded.encode(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Telemetry;
    use std::time::Duration;
    use voicemon_store::PoolStats;

    fn pool() -> PoolStats {
        PoolStats {
            backend: "sqlite",
            size: 3,
            in_use: 1,
            idle: 2,
            waiting: 0,
            last_error: None,
            last_error_ms: None,
            fault: None,
        }
    }

    /// Sample lines of the exposition: every line that is not metadata or `# EOF`.
    fn series(text: &str) -> usize {
        text.lines().filter(|line| !line.starts_with('#')).count()
    }

    /// Records every label combination the metrics can take, with one more tenant,
    /// provider and breaker than the limits admit.
    fn saturate(telemetry: &Telemetry, limits: PrometheusLimits) {
        let tenants: Vec<String> = (0..=limits.max_tenants).map(|n| format!("tenant-{n}")).collect();
        let providers: Vec<String> = (0..=limits.max_providers).map(|n| format!("provider-{n}")).collect();
        let mut records = Vec::new();
        for tenant in &tenants {
            records.push(VoiceRecord::CallStarted { tenant: tenant.clone() });
            records.push(VoiceRecord::Turn {
                tenant: tenant.clone(),
                latencies_s: [Some(0.7), Some(0.1), Some(0.2), Some(0.3), Some(0.1)],
                interrupted: true,
            });
            for status in CallStatus::ALL {
                records.push(VoiceRecord::CallEnded { tenant: tenant.clone(), status, duration_s: 90.0 });
            }
            for provider in &providers {
                for component in PipelineComponent::ALL {
                    for cost in [UsageCost::Priced(1_234), UsageCost::Unpriced] {
                        let provider = provider.clone();
                        let latency_s = Some(0.4);
                        records.push(VoiceRecord::Usage {
                            tenant: tenant.clone(),
                            component,
                            provider,
                            cost,
                            latency_s,
                        });
                    }
                }
            }
        }
        for provider in &providers {
            for component in PipelineComponent::ALL {
                for ok in [true, false] {
                    let provider = provider.clone();
                    records.push(VoiceRecord::ProviderRequest {
                        provider,
                        component,
                        ok,
                        latency_s: Some(0.2),
                    });
                }
            }
            for state in BreakerState::ALL {
                records.push(VoiceRecord::BreakerChanged { breaker: provider.clone(), state });
            }
        }
        let stored = vec![true; records.len()];
        let records: Vec<Option<VoiceRecord>> = records.into_iter().map(Some).collect();
        telemetry.voice_stored(&records, &stored);
        telemetry.events("accepted", 1);
        telemetry.flush(true, 10, Duration::from_millis(3));
        telemetry.flush(false, 10, Duration::from_millis(3));
    }

    #[test]
    fn the_documented_worst_case_is_exactly_the_series_a_saturated_exposition_holds() {
        for limits in [
            PrometheusLimits { max_tenants: 2, max_providers: 3 },
            PrometheusLimits { max_tenants: 0, max_providers: 0 },
            PrometheusLimits { max_tenants: 5, max_providers: 1 },
        ] {
            let telemetry = Telemetry::new(limits);
            saturate(&telemetry, limits);
            let text = telemetry.encode(&pool());
            assert_eq!(series(&text), limits.worst_case_series(), "{limits:?}\n{text}");
            openmetrics_parser::openmetrics::parse_openmetrics(&text)
                .unwrap_or_else(|err| panic!("{limits:?}: {err:?}\n{text}"));
            // Saturating twice adds no series: everything beyond the caps is `_other`.
            saturate(&telemetry, limits);
            assert_eq!(series(&telemetry.encode(&pool())), limits.worst_case_series(), "{limits:?}");
        }
    }

    #[test]
    fn docs_prometheus_md_names_every_metric_of_the_exposition_as_it_is_scraped() {
        use openmetrics_parser::OpenMetricsType;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/prometheus.md");
        let docs = std::fs::read_to_string(path).expect("docs/prometheus.md exists");
        let limits = PrometheusLimits { max_tenants: 1, max_providers: 1 };
        let telemetry = Telemetry::new(limits);
        saturate(&telemetry, limits);
        let exposition = openmetrics_parser::openmetrics::parse_openmetrics(&telemetry.encode(&pool()))
            .expect("the exposition parses");
        assert!(exposition.families.len() >= 19, "{:?}", exposition.families.keys());
        for (name, family) in &exposition.families {
            let scraped = match family.family_type {
                OpenMetricsType::Counter => format!("`{name}_total`"),
                OpenMetricsType::Info => format!("`{name}_info`"),
                _ => format!("`{name}`"),
            };
            assert!(docs.contains(&scraped), "docs/prometheus.md does not describe {scraped}");
        }
    }

    #[test]
    fn the_default_limits_bound_the_exposition_below_thirty_thousand_series() {
        // The figure docs/prometheus.md states for the defaults.
        assert_eq!(PrometheusLimits::default().worst_case_series(), 27_450);
    }

    #[test]
    fn a_fresh_exposition_holds_only_the_self_metrics_and_parses() {
        let text = Telemetry::default().encode(&pool());
        assert!(!text.contains("voicemon_turn_latency_seconds"), "no empty families: {text}");
        openmetrics_parser::openmetrics::parse_openmetrics(&text)
            .unwrap_or_else(|err| panic!("{err:?}\n{text}"));
    }

    #[test]
    fn a_duplicate_records_nothing() {
        let telemetry = Telemetry::default();
        let turn = VoiceRecord::Turn {
            tenant: "acme".into(),
            latencies_s: [Some(0.5), None, None, None, None],
            interrupted: false,
        };
        telemetry.voice_stored(&[Some(turn.clone()), Some(turn), None], &[true, false, true]);
        let text = telemetry.encode(&pool());
        let count = text
            .lines()
            .find(|line| line.starts_with("voicemon_turn_latency_seconds_count{"))
            .unwrap_or_else(|| panic!("a turn latency count in {text}"));
        assert!(count.ends_with(" 1"), "{count}");
    }

    #[test]
    fn cost_is_summed_in_integer_nano_usd_and_exposed_in_usd() {
        let counter = UsdCounter::default();
        for _ in 0..10 {
            counter.add_nanos(100_000_001);
        }
        assert_eq!(counter.nanos(), 1_000_000_010);
        let telemetry = Telemetry::default();
        let usage = |nanos| VoiceRecord::Usage {
            tenant: "acme".into(),
            component: PipelineComponent::Stt,
            provider: "deepgram".into(),
            cost: UsageCost::Priced(nanos),
            latency_s: None,
        };
        telemetry.voice_stored(&[Some(usage(7_700_000)), Some(usage(2_900_001))], &[true, true]);
        let text = telemetry.encode(&pool());
        let line =
            r#"voicemon_cost_usd_total{tenant="acme",component="stt",provider="deepgram"} 0.010600001"#;
        assert!(text.contains(line), "{text}");
    }
}
