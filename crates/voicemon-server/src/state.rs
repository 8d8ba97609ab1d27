//! What every handler shares.

use crate::alerting::AlertingConfig;
use crate::auth::KeyRing;
use crate::ingest::writer::BatchWriter;
use crate::limits::RateLimits;
use crate::live::LiveHub;
use crate::origin::AllowedOrigins;
use crate::otlp::OtlpIngest;
use crate::redis::RedisMonitor;
use crate::telemetry::Telemetry;
use std::sync::Arc;
use voicemon_core::clock::Clock;
use voicemon_core::health::HealthRules;
use voicemon_core::pricing::PriceBook;
use voicemon_store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub writer: BatchWriter,
    pub keys: KeyRing,
    pub clock: Arc<dyn Clock>,
    pub telemetry: Telemetry,
    pub max_body_bytes: usize,
    /// Web origins whose pages may call besides voicemon's own (`[server] allowed_origins`).
    pub allowed_origins: Arc<AllowedOrigins>,
    /// The price book usage events are costed with at ingest.
    pub prices: Arc<PriceBook>,
    pub redis: RedisMonitor,
    pub health_rules: HealthRules,
    pub alerting: Arc<AlertingConfig>,
    /// Live feeds of `/metrics/stream`; also carries alert changes from the engine.
    pub live: LiveHub,
    /// Per-caller token buckets of ingest and queries.
    pub limits: RateLimits,
    /// OTLP traces → events (`POST /v1/traces`).
    pub otlp: OtlpIngest,
}
