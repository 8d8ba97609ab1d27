//! The configuration tree as serde reads it: `voicemon.toml`'s sections, with the
//! environment and flags layered over them ([`super::layers`]). Unknown keys are errors;
//! durations are humantime text ("250ms", "5s", "1h", "400d"). Nothing here is checked
//! beyond its type: [`super::settings`] turns the tree into validated settings.

use crate::config::ConfigError;
use serde::{Deserialize, Deserializer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use voicemon_core::alerting::rules::RuleText;
use voicemon_core::pricing::{PriceBook, PriceEntryText};

/// The whole tree. Every key may be written in `voicemon.toml` except the two that hold
/// credentials ([`ENVIRONMENT_ONLY`]), which only the environment or a flag may give.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[server]`: where the HTTP API listens and where the embedded store lives.
    #[serde(default)]
    pub server: ServerSection,
    /// `[ingest]`: group commits of the batch writer.
    #[serde(default)]
    pub ingest: IngestSection,
    /// `[pricing]`: entries added to the shipped price book.
    #[serde(default)]
    pub pricing: PricingSection,
    /// `[health]`: worker, provider and Redis health rules.
    #[serde(default)]
    pub health: HealthSection,
    /// `[alerting]`: rules, receivers and their timing.
    #[serde(default)]
    pub alerting: AlertingSection,
    /// `[postgres]`: how PostgreSQL is used when a database URL is given.
    #[serde(default)]
    pub postgres: PostgresSection,
    /// `[prometheus]`: label bounds of `GET /metrics`.
    #[serde(default)]
    pub prometheus: PrometheusSection,
    /// `[nats]`: events consumed from a NATS JetStream stream.
    #[serde(default)]
    pub nats: NatsSection,
    /// `[limits]`: per-caller rate limits of ingest and queries.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[otlp]`: how OpenTelemetry spans wait for their turn.
    #[serde(default)]
    pub otlp: OtlpSection,
}

/// Keys the file may not hold, because their values carry credentials (a database
/// password, Slack's secret path), with where they come from instead.
pub const ENVIRONMENT_ONLY: [(&str, &str); 2] = [
    ("postgres.database_url", "DATABASE_URL or --database-url"),
    ("alerting.slack_webhook_url", "SLACK_WEBHOOK_URL or --slack-webhook-url"),
];

/// `[server]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Port of the HTTP API (default 3001).
    pub port: Option<u16>,
    /// Address to listen on; loopback is forced while no API key exists.
    pub bind: Option<IpAddr>,
    /// Where the embedded store lives (default `./voicemon-data`).
    pub data_dir: Option<PathBuf>,
    /// Largest accepted ingest body in bytes (default 10 MiB).
    pub max_body_bytes: Option<usize>,
    /// Web origins (`https://grafana.example.com`) whose pages may call voicemon besides
    /// its own (the page at `/`): the live WebSocket checks `Origin` against them, and a
    /// server without keys refuses every other cross-origin request (default: none).
    pub allowed_origins: Option<Vec<String>>,
    /// A request head (request line and headers) must be complete within this long of the
    /// server starting to wait for it, on a new connection or after the previous answer;
    /// a slower client is disconnected (default "30s").
    #[serde(default, with = "humantime_serde")]
    pub header_read_timeout: Option<Duration>,
    /// A connection with no request in flight (silent since it opened, or kept alive
    /// between requests) is closed after this long (default "15s"; at most
    /// header_read_timeout, which bounds the wait for a request head anyway).
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// HTTP connections open at once, at most; more wait until one closes (default 10000,
    /// lowered at start to leave a quarter of the open-file limit, at most 256 files, free).
    pub max_connections: Option<usize>,
}

/// `[ingest]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// A group commit closes at this many events (default 5000; a request is never split).
    pub batch_max_events: Option<usize>,
    /// No event waits longer than this for its group (default "5s").
    #[serde(default, with = "humantime_serde")]
    pub flush_interval: Option<Duration>,
    /// How long to wait for a fuller group when the queue is empty (default "0s").
    #[serde(default, with = "humantime_serde")]
    pub flush_linger: Option<Duration>,
    /// How often derived data (rollups, provider minutes, call totals) is merged into its
    /// tables (default "5s"); queries merge or flush it first anyway.
    #[serde(default, with = "humantime_serde")]
    pub derived_flush_interval: Option<Duration>,
    /// "full" (default: commits survive power loss) or "normal" (survive a crash).
    pub durability: Option<String>,
}

/// `[pricing]`: entries added to (or replacing) the shipped price book.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingSection {
    /// `[[pricing.price]]` entries, the same fields as `pricing/default.toml`.
    #[serde(default)]
    pub price: Vec<PriceEntryText>,
}

/// `[health]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    /// A worker silent this long is stale (default "30s").
    #[serde(default, with = "humantime_serde")]
    pub stale_after: Option<Duration>,
    /// A worker silent this long is down (default "2m").
    #[serde(default, with = "humantime_serde")]
    pub down_after: Option<Duration>,
    /// Error ratio over the last minute from which a provider is degraded (default 0.05).
    pub degraded_error_ratio: Option<f64>,
    /// … and down (default 0.5).
    pub down_error_ratio: Option<f64>,
    /// Requests in the last minute before the ratio counts (default 5).
    pub min_requests: Option<u64>,
    /// Worker memory percent that degrades the verdict (default 80).
    pub worker_memory_percent: Option<f64>,
    /// The platform's Redis to watch; `REDIS_URL` takes precedence. It may hold a password.
    pub redis_url: Option<secrecy::SecretString>,
    /// How often Redis is polled (default "10s").
    #[serde(default, with = "humantime_serde")]
    pub redis_poll_interval: Option<Duration>,
    /// How long health samples and provider minutes are kept (default "30d").
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
}

/// `[alerting]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingSection {
    /// How often rules are evaluated (default "10s").
    #[serde(default, with = "humantime_serde")]
    pub evaluation_interval: Option<Duration>,
    /// How long a new alert waits for others of its rule to go out together (default "10s").
    #[serde(default, with = "humantime_serde")]
    pub group_wait: Option<Duration>,
    /// A firing alert is notified again at most this often (default "5m").
    #[serde(default, with = "humantime_serde")]
    pub repeat_interval: Option<Duration>,
    /// A message not delivered after this long is given up (default "1h").
    #[serde(default, with = "humantime_serde")]
    pub delivery_deadline: Option<Duration>,
    /// Base URL of this voicemon in links (default http://<listen address>).
    pub public_url: Option<String>,
    /// Rules: a name of a shipped rule overrides it (or `enabled = false` turns it off).
    #[serde(default)]
    pub rule: Vec<RuleText>,
    /// Receivers; `SLACK_WEBHOOK_URL` adds one named "slack".
    #[serde(default)]
    pub receiver: Vec<ReceiverText>,
    /// Inhibition rules added to the shipped one (provider down mutes its latency alerts).
    #[serde(default)]
    pub inhibit: Vec<InhibitText>,
    /// A Slack incoming webhook added as the receiver "slack", replacing a file receiver
    /// of that name (`SLACK_WEBHOOK_URL`, `--slack-webhook-url`; never from the file: its
    /// path is its secret).
    pub slack_webhook_url: Option<secrecy::SecretString>,
}

/// `[[alerting.receiver]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverText {
    /// What rules name in their `receivers`.
    pub name: String,
    /// slack | webhook | alertmanager
    pub kind: String,
    /// Never printed: Slack's carries its secret in the path.
    pub url: secrecy::SecretString,
}

/// `[[alerting.inhibit]]`: matchers as `name=value` / `name!=value`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitText {
    /// An alert matching all of these, while firing…
    pub source: Vec<String>,
    /// …mutes the notifications of alerts matching all of these…
    pub target: Vec<String>,
    /// …when both have the same values of these labels.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// `[postgres]`: how the PostgreSQL store is used when a database URL is given.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// PostgreSQL instead of the embedded store (`DATABASE_URL`, `--database-url`; never
    /// from the file, it may hold a password).
    pub database_url: Option<secrecy::SecretString>,
    /// Connections at most (default 16).
    pub pool_size: Option<usize>,
    /// How long a request waits for a connection before voicemon answers 503 (default "5s").
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Raw facts and minute rollups older than this are dropped, a day at a time (default "400d").
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// Day partitions created ahead of today (default 3).
    pub partitions_ahead: Option<u32>,
    /// Group commits in flight at once, each on its own connection (default 2).
    pub concurrent_writes: Option<usize>,
    /// Use TimescaleDB hypertables when the extension is available (default true).
    pub timescaledb: Option<bool>,
    /// TimescaleDB: compress chunks older than this, or "off" (default "7d"; community licence).
    #[serde(default, deserialize_with = "duration_or_off")]
    pub compress_after: Option<CompressAfter>,
}

/// `[postgres] compress_after`: a duration, or "off".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressAfter {
    /// Chunks are never compressed.
    Off,
    /// Chunks older than this are compressed.
    After(Duration),
}

/// "off", or a duration read by humantime-serde.
fn duration_or_off<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<CompressAfter>, D::Error> {
    use serde::de::IntoDeserializer;
    let text = String::deserialize(deserializer)?;
    if text == "off" {
        return Ok(Some(CompressAfter::Off));
    }
    let text: serde::de::value::StringDeserializer<D::Error> = text.into_deserializer();
    humantime_serde::deserialize(text).map(|after| Some(CompressAfter::After(after)))
}

/// `[prometheus]`: the label bounds of `GET /metrics` (see `docs/prometheus.md`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSection {
    /// Tenants with their own `tenant` label, first come first served; later tenants
    /// share `tenant="_other"` (default 100, at most 10000; 0 folds every tenant).
    pub max_tenants: Option<usize>,
    /// Provider names with their own `provider` label, and circuit breaker names with
    /// their own `breaker` label; later ones share `_other` (default 20, at most 10000).
    pub max_providers: Option<usize>,
}

/// `[nats]`: the event bus. Nothing is consumed unless a URL is given.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSection {
    /// `nats://host:4222` (`tls://…` for TLS); `NATS_URL` takes precedence. It may hold
    /// credentials.
    pub url: Option<secrecy::SecretString>,
    /// The JetStream stream, created with `subjects` when missing (default "VOICEMON_EVENTS").
    pub stream: Option<String>,
    /// Subjects the consumer reads (default ["voicemon.events.>"]).
    pub subjects: Option<Vec<String>>,
    /// The durable pull consumer every instance shares (default "voicemon").
    pub consumer: Option<String>,
    /// Where messages that can never be stored are published (default "voicemon.dead").
    pub dead_letter_subject: Option<String>,
    /// Messages one instance stores at once (default 1024).
    pub max_in_flight: Option<usize>,
}

/// `[limits]`: a token bucket per API key (one shared bucket on an open server), for
/// ingest in events and for queries in requests; over it, 429 with `Retry-After`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Events a second one caller may send, sustained (default 25000, at most 1000000).
    pub ingest_events_per_second: Option<u32>,
    /// Events one caller may send at once; also the most one body may hold (default 125000).
    pub ingest_burst: Option<u32>,
    /// Query requests a second one caller may make, sustained (default 20, at most 1000000).
    pub query_requests_per_second: Option<u32>,
    /// Query requests one caller may make at once (default 100).
    pub query_burst: Option<u32>,
    /// How long a 429 is held at most: until the caller's bucket could admit the request,
    /// up to this (default "1s"; "0s" answers at once, at most "10s").
    #[serde(default, with = "humantime_serde")]
    pub refusal_hold: Option<Duration>,
}

/// `[otlp]`: spans of `POST /v1/traces` held while their turn is assembled (docs/otlp.md).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpSection {
    /// How long an STT, LLM or TTS span waits for its turn before it counts as usage
    /// alone (default "60s").
    #[serde(default, with = "humantime_serde")]
    pub span_wait: Option<Duration>,
    /// How long a turn that arrives before its STT, LLM and TTS spans waits for them
    /// (default "5s").
    #[serde(default, with = "humantime_serde")]
    pub turn_wait: Option<Duration>,
    /// Spans held at most over every tenant; beyond it the oldest go out early
    /// (default 100000).
    pub max_held_spans: Option<usize>,
}

impl FileConfig {
    /// Reads a configuration file and checks it as `serve` would, without the
    /// environment or flags.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let layers = super::Layers::new().file(path)?;
        let tree = layers.tree()?;
        super::Settings::try_from(layers)?;
        Ok(tree)
    }

    /// The shipped price book with this file's `[[pricing.price]]` entries applied.
    pub fn price_book(&self, path: &Path) -> Result<PriceBook, ConfigError> {
        let origin = format!("{} [[pricing.price]]", path.display());
        Ok(PriceBook::with_overrides(&self.pricing.price, &origin)?)
    }
}
