//! OpenTelemetry traces from voice agent frameworks (Pipecat, LiveKit Agents) become
//! voicemon's own facts: `POST /v1/traces` (OTLP/HTTP, protobuf or JSON, gzip or not).
//!
//! - [`decode`]: bodies into the collector's messages, and the answers;
//! - [`span`]: a span as voicemon holds it (only the attributes a mapping reads);
//! - [`map`]: which span is a call, a turn, a service request, and the contract-v1
//!   events each becomes (`docs/otlp.md` is the same table in prose);
//! - [`assemble`]: turns put together across requests and out of order, in bounded memory.
//!
//! The events then take the path of `POST /v1/events`: validation, the price book, the
//! batch writer. An export is answered once the events it completed are durable; spans
//! still waiting for their turn are held in memory (and emitted at shutdown).

pub mod assemble;
pub mod decode;
pub mod map;
pub mod metrics;
pub mod span;

use crate::ingest::writer::BatchWriter;
use crate::telemetry::Telemetry;
use assemble::{Assembled, Assembler, AssemblyConfig};
use metrics::Counters;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use voicemon_core::clock::Clock;
use voicemon_core::pricing::PriceBook;
use voicemon_core::validate::{prefix, validate, WireEvent, MAX_ID_LEN};
use voicemon_store::{IngestEvent, StoreError};

/// The resource attribute that names the tenant, for a key that may write any tenant.
pub const TENANT_ATTRIBUTE: &str = "voicemon.tenant_id";

/// The resource attribute that names the agent; `service.name` when it is absent.
pub const AGENT_ATTRIBUTE: &str = "voicemon.agent_id";

/// Outcomes of a span (the `outcome` label of `voicemon_otlp_spans_total`).
pub const SPAN_OUTCOMES: [&str; 5] = ["assembled", "alone", "ignored", "repeated", "rejected"];

/// How often held spans are looked at for expiry.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// What an export came to.
#[derive(Debug, Default, PartialEq)]
pub struct ExportOutcome {
    /// Spans (or data points) refused: malformed, of a tenant the caller may not write,
    /// or naming no call.
    pub rejected: i64,
    /// Why, in a sentence (empty when nothing was refused).
    pub message: String,
}

/// The OTLP traces path: the assembler and where its events go.
#[derive(Clone)]
pub struct OtlpIngest {
    assembler: Arc<Mutex<Assembler>>,
    counters: Arc<Mutex<Counters>>,
    writer: BatchWriter,
    prices: Arc<PriceBook>,
    clock: Arc<dyn Clock>,
    telemetry: Telemetry,
}

impl OtlpIngest {
    pub fn new(
        config: AssemblyConfig,
        writer: BatchWriter,
        prices: Arc<PriceBook>,
        clock: Arc<dyn Clock>,
        telemetry: Telemetry,
    ) -> OtlpIngest {
        let assembler = Arc::new(Mutex::new(Assembler::new(config)));
        let counters = Arc::new(Mutex::new(Counters::new(clock.now_ms())));
        OtlpIngest { assembler, counters, writer, prices, clock, telemetry }
    }

    /// The spans of `request`, sent by a caller confined to `own_tenant` (if any).
    /// Returns an error only when storage is unavailable; the spans are then held, and
    /// a retry of the same export is harmless.
    pub async fn export(
        &self,
        own_tenant: Option<&str>,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportOutcome, StoreError> {
        let now_ms = self.clock.now_ms();
        let mut outcome = ExportOutcome::default();
        let mut assembled = Assembled::default();
        {
            let mut assembler = self.lock();
            for resource_spans in request.resource_spans {
                let attributes = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
                let spans = resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans);
                let (tenant, agent) = match resource_identity(&attributes, own_tenant) {
                    Ok(identity) => identity,
                    Err(why) => {
                        let count = spans.count() as i64;
                        refuse(&mut outcome, count, &why);
                        continue;
                    }
                };
                for proto in spans {
                    match span::Span::from_proto(&proto) {
                        Ok(span) => assembler.add(&tenant, agent.as_deref(), span, now_ms, &mut assembled),
                        Err(err) => {
                            let id = hex::encode(&proto.span_id[..proto.span_id.len().min(8)]);
                            refuse(&mut outcome, 1, &format!("span {id}: {err}"))
                        }
                    }
                }
            }
            self.telemetry.otlp_held(assembler.held());
        }
        self.telemetry.otlp_spans("rejected", outcome.rejected as u64);
        self.store(assembled).await?;
        Ok(outcome)
    }

    /// Stores `assembled`'s events; if they cannot be stored, its spans are held again
    /// for the next expiry round.
    async fn store(&self, mut assembled: Assembled) -> Result<(), StoreError> {
        self.telemetry.otlp_spans("ignored", assembled.ignored);
        self.telemetry.otlp_spans("repeated", assembled.repeated);
        match self.submit(std::mem::take(&mut assembled.events)).await {
            Ok(()) => {
                self.telemetry.otlp_spans("assembled", assembled.assembled);
                self.telemetry.otlp_spans("alone", assembled.alone);
                Ok(())
            }
            Err(err) => {
                let mut assembler = self.lock();
                assembler.restore(assembled);
                self.telemetry.otlp_held(assembler.held());
                Err(err)
            }
        }
    }

    /// The STT audio counters of `request` (see [`metrics`]), sent by a caller confined
    /// to `own_tenant` (if any). An error means nothing was stored, and a retry counts
    /// the same points again.
    pub async fn export_metrics(
        &self,
        own_tenant: Option<&str>,
        request: ExportMetricsServiceRequest,
    ) -> Result<ExportOutcome, StoreError> {
        let now_ms = self.clock.now_ms();
        let mut counted = self.counters.lock().unwrap_or_else(PoisonError::into_inner).count(
            &request,
            |attributes| resource_identity(attributes, own_tenant),
            now_ms,
        );
        let outcome =
            ExportOutcome { rejected: counted.rejected, message: std::mem::take(&mut counted.message) };
        if let Err(err) = self.submit(std::mem::take(&mut counted.events)).await {
            self.counters.lock().unwrap_or_else(PoisonError::into_inner).undo(counted);
            return Err(err);
        }
        Ok(outcome)
    }

    /// Validates, prices and stores `events` made of spans or points.
    async fn submit(&self, events: Vec<WireEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        let mut valid = Vec::with_capacity(events.len());
        let mut refused = 0;
        for wire in events {
            match validate(wire, now_ms) {
                Ok(event) => valid.push(IngestEvent { costing: self.prices.cost(&event), event }),
                Err(err) => {
                    refused += 1;
                    tracing::debug!(error = %err, "an event made of OTLP data was refused");
                }
            }
        }
        let written = self.writer.submit(valid).await?;
        self.telemetry.ingested(&written, refused);
        Ok(())
    }

    /// Emits what has waited long enough; called every [`EXPIRY_TICK`].
    async fn expire(&self) {
        let mut assembled = Assembled::default();
        {
            let mut assembler = self.lock();
            assembler.expire(self.clock.now_ms(), &mut assembled);
            self.telemetry.otlp_held(assembler.held());
        }
        if let Err(err) = self.store(assembled).await {
            tracing::warn!(error = %err, "spans that waited for their turn could not be stored; they are held for the next round");
        }
    }

    /// Emits everything held; at shutdown, before the writer stops.
    pub async fn drain(&self) {
        let mut assembled = Assembled::default();
        self.lock().drain(&mut assembled);
        let spans = assembled.assembled + assembled.alone;
        if let Err(err) = self.store(assembled).await {
            tracing::error!(error = %err, spans, "spans held for their turn could not be stored at shutdown");
        }
    }

    /// Runs the expiry rounds until `shutdown` turns true. The server drains what is
    /// left once its last request has finished ([`OtlpIngest::drain`]).
    pub fn spawn(&self, mut shutdown: watch::Receiver<bool>) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => this.expire().await,
                    _ = shutdown.changed() => return,
                }
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Assembler> {
        self.assembler.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn refuse(outcome: &mut ExportOutcome, count: i64, why: &str) {
    if count == 0 {
        return;
    }
    outcome.rejected += count;
    if outcome.message.is_empty() {
        outcome.message = why.to_owned();
    }
}

/// The tenant and agent of a resource's spans. The tenant is the caller's own when its
/// key is confined to one (a resource naming another is refused); otherwise the
/// resource must name it in [`TENANT_ATTRIBUTE`].
fn resource_identity(
    attributes: &[KeyValue],
    own_tenant: Option<&str>,
) -> Result<(String, Option<String>), String> {
    let text = |key: &str| span::string_attribute(attributes, key);
    let named = text(TENANT_ATTRIBUTE);
    let tenant = match (own_tenant, named) {
        (Some(own), Some(named)) if own != named => {
            return Err(format!(
                "this key writes tenant `{own}` only, not `{}` (resource attribute {TENANT_ATTRIBUTE})",
                prefix(named, 64)
            ))
        }
        (Some(own), _) => own,
        (None, Some(named)) => named,
        (None, None) => {
            return Err(format!(
                "name the tenant in the resource attribute {TENANT_ATTRIBUTE} \
                 (OTEL_RESOURCE_ATTRIBUTES={TENANT_ATTRIBUTE}=<tenant>), or send with a key of one tenant"
            ))
        }
    };
    if tenant.len() > MAX_ID_LEN {
        return Err(format!("{TENANT_ATTRIBUTE} is longer than {MAX_ID_LEN} bytes"));
    }
    let agent =
        text(AGENT_ATTRIBUTE).or_else(|| text("service.name")).map(|a| prefix(a, MAX_ID_LEN).to_owned());
    Ok((tenant.to_owned(), agent))
}
