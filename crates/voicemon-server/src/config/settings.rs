//! The validated configuration: [`ServeConfig`], what the application is built from, and
//! [`Settings`], which adds what `config check` shows of it. `TryFrom<Layers>` is the one
//! place the layered tree is judged; its errors name the key, or the flag or environment
//! variable that set it.

use crate::alerting::AlertingConfig;
use crate::bus::BusConfig;
use crate::config::layers::{Layers, Origins, DEFAULT_CONFIG};
use crate::config::ConfigError;
use crate::connections::ConnectionLimits;
use crate::ingest::writer::WriterConfig;
use crate::limits::LimitsConfig;
use crate::live::LiveConfig;
use crate::notify::DeliveryConfig;
use crate::origin::AllowedOrigins;
use crate::otlp::assemble::AssemblyConfig;
use crate::telemetry::voice::PrometheusLimits;
use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use voicemon_core::health::HealthRules;
use voicemon_core::pricing::PriceBook;
use voicemon_store::postgres::PostgresConfig;
use voicemon_store::sqlite::Durability;

/// Default body limit of `POST /v1/events`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Default port of the HTTP API (`METRICS_API_PORT`).
pub const DEFAULT_PORT: u16 = 3001;
/// Where the embedded store lives when nothing says otherwise.
pub const DEFAULT_DATA_DIR: &str = "./voicemon-data";

/// Everything the application is built from.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `None`: every interface when API keys exist, loopback when none do.
    pub bind: Option<IpAddr>,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Where the embedded store lives (unused with PostgreSQL).
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the embedded store in `data_dir` (`DATABASE_URL`).
    pub postgres: Option<PostgresConfig>,
    /// Largest accepted ingest body, so one request cannot hold the server's memory.
    pub max_body_bytes: usize,
    /// Web origins whose pages may call besides voicemon's own.
    pub allowed_origins: AllowedOrigins,
    /// Header-read and idle timeouts and the connection cap, so idle sockets cannot hold
    /// the server's file descriptors.
    pub connections: ConnectionLimits,
    /// Group commits of the batch writer.
    pub writer: WriterConfig,
    /// What a SQLite commit survives.
    pub durability: Durability,
    /// The shipped price book with the file's entries applied.
    pub prices: PriceBook,
    /// Health rules, the Redis to watch, health history.
    pub health: HealthConfig,
    /// Rules, receivers and their timing.
    pub alerting: AlertingConfig,
    /// Retries and deadlines of notification delivery.
    pub delivery: DeliveryConfig,
    /// Label bounds of the voice metrics at `/metrics`.
    pub prometheus: PrometheusLimits,
    /// Bounds of the live WebSocket feeds (not configurable from outside).
    pub live: LiveConfig,
    /// Events consumed from NATS JetStream; `None`: HTTP only.
    pub bus: Option<BusConfig>,
    /// Per-caller rate limits of ingest (events) and queries (requests).
    pub limits: LimitsConfig,
    /// How OTLP spans wait for their turn, and how many may.
    pub otlp: AssemblyConfig,
}

/// Health settings.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// When workers are stale or down and providers degraded or down.
    pub rules: HealthRules,
    /// `redis://…` or `rediss://…` of the platform's Redis to watch (`REDIS_URL`); `None`:
    /// not watched. It may hold a password.
    pub redis_url: Option<SecretString>,
    /// How often Redis is polled.
    pub redis_poll: Duration,
    /// How often a health sample is stored.
    pub sample_every: Duration,
    /// Health samples and provider minutes older than this are deleted.
    pub retention: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            rules: HealthRules::default(),
            redis_url: None,
            redis_poll: Duration::from_secs(10),
            sample_every: Duration::from_secs(60),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl ServeConfig {
    /// Defaults, with the shipped price book.
    pub fn new(data_dir: PathBuf) -> ServeConfig {
        ServeConfig {
            bind: None,
            port: DEFAULT_PORT,
            data_dir,
            postgres: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allowed_origins: AllowedOrigins::default(),
            connections: ConnectionLimits::default(),
            writer: WriterConfig::default(),
            durability: Durability::Full,
            prices: PriceBook::with_overrides(&[], "").expect("the shipped price book is valid (tested)"),
            health: HealthConfig::default(),
            alerting: AlertingConfig::default(),
            delivery: DeliveryConfig::default(),
            prometheus: PrometheusLimits::default(),
            live: LiveConfig::default(),
            bus: None,
            otlp: AssemblyConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

/// `[postgres]` validated, whether or not a database URL is given: `config check` shows
/// it either way, and a URL given later completes it ([`PostgresSettings::with_url`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PostgresSettings {
    /// Connections at most.
    pub pool_size: usize,
    /// How long a caller waits for a connection.
    pub connect_timeout: Duration,
    /// Raw facts and minute rollups older than this are dropped.
    pub retention: Duration,
    /// Day partitions created ahead of today.
    pub partitions_ahead: u32,
    /// Group commits in flight at once.
    pub concurrent_writes: usize,
    /// Use TimescaleDB when the extension can be created.
    pub timescaledb: bool,
    /// Compress hypertable chunks older than this; `None`: never.
    pub compress_after: Option<Duration>,
}

impl Default for PostgresSettings {
    /// The store's own defaults (the URL of the configuration they are read from is dropped).
    fn default() -> Self {
        let store = PostgresConfig::new(String::new());
        PostgresSettings {
            pool_size: store.pool_size,
            connect_timeout: store.connect_timeout,
            retention: store.retention,
            partitions_ahead: store.partitions_ahead,
            concurrent_writes: store.concurrent_writes,
            timescaledb: store.timescaledb,
            compress_after: store.compress_after,
        }
    }
}

impl PostgresSettings {
    /// The store's configuration for `url` with these settings.
    pub fn with_url(&self, url: &SecretString) -> PostgresConfig {
        PostgresConfig {
            url: url.clone(),
            pool_size: self.pool_size,
            connect_timeout: self.connect_timeout,
            retention: self.retention,
            partitions_ahead: self.partitions_ahead,
            concurrent_writes: self.concurrent_writes,
            timescaledb: self.timescaledb,
            compress_after: self.compress_after,
        }
    }
}

/// The validated configuration and what `config check` says about where it came from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What `serve` runs with.
    pub serve: ServeConfig,
    /// `[postgres]`, also when no database URL is given.
    pub postgres: PostgresSettings,
    /// Where each key that a layer set came from; a key not here has its default.
    pub origins: Origins,
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    /// How many `[[pricing.price]]` entries the file gave.
    pub price_entries: usize,
}

impl TryFrom<Layers> for Settings {
    type Error = ConfigError;

    fn try_from(layers: Layers) -> Result<Settings, ConfigError> {
        let tree = layers.tree()?;
        let (origins, file) = layers.into_parts();
        let price_origin = file.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let (serve, postgres) = serve_config(&tree, &price_origin).map_err(|err| err.located(&origins))?;
        Ok(Settings { serve, postgres, origins, file, price_entries: tree.pricing.price.len() })
    }
}

/// The tree judged section by section, in the order of the file's sections.
fn serve_config(
    tree: &super::FileConfig,
    price_origin: &Path,
) -> Result<(ServeConfig, PostgresSettings), ConfigError> {
    let server = &tree.server;
    let mut config = ServeConfig::new(server.data_dir.clone().unwrap_or_else(|| DEFAULT_DATA_DIR.into()));
    config.port = server.port.unwrap_or(DEFAULT_PORT);
    config.bind = server.bind;
    config.max_body_bytes = match server.max_body_bytes {
        Some(0) => return Err(ConfigError::value("server.max_body_bytes", "must be above 0")),
        Some(bytes) => bytes,
        None => DEFAULT_MAX_BODY_BYTES,
    };
    let origins = server.allowed_origins.iter().flatten().map(String::as_str);
    config.allowed_origins = AllowedOrigins::parse(origins)
        .map_err(|err| ConfigError::value("server.allowed_origins", err.to_string()))?;
    config.connections = ConnectionLimits::try_from(server)?;
    config.writer = WriterConfig::try_from(&tree.ingest)?;
    config.durability = tree.ingest.durability()?.unwrap_or(Durability::Full);
    config.prices = tree.price_book(price_origin)?;
    config.health = HealthConfig::try_from(&tree.health)?;
    (config.alerting, config.delivery) = tree.alerting.alerting_config()?;
    let postgres = PostgresSettings::try_from(&tree.postgres)?;
    config.postgres = match &tree.postgres.database_url {
        Some(url) => Some(database(url, &postgres)?),
        None => None,
    };
    config.prometheus = PrometheusLimits::try_from(&tree.prometheus)?;
    config.bus = tree.nats.bus_config()?;
    config.limits = LimitsConfig::try_from(&tree.limits)?;
    config.otlp = AssemblyConfig::try_from(&tree.otlp)?;
    Ok((config, postgres))
}

/// The PostgreSQL configuration for a database URL: a PostgreSQL URL whose TLS options
/// (a bad `sslmode`, an unreadable root certificate) are checked now, so that a mistake is
/// reported before any connection is tried. Errors never quote the URL.
fn database(url: &SecretString, settings: &PostgresSettings) -> Result<PostgresConfig, ConfigError> {
    const KEY: &str = "postgres.database_url";
    let text = url.expose_secret();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        let message =
            format!("must start with postgres:// or postgresql:// (got {})", super::describe_url(text));
        return Err(ConfigError::value(KEY, message));
    }
    let (_, tls) = voicemon_store::postgres::tls::split_url(text)
        .map_err(|err| ConfigError::value(KEY, err.to_string()))?;
    tls.connector().map_err(|err| ConfigError::value(KEY, err.to_string()))?;
    Ok(settings.with_url(url))
}
