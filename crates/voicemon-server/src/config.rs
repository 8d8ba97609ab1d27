//! `voicemon.toml`: the optional configuration file. Unknown keys are errors.
//!
//! Precedence, highest first: command-line flag, environment variable, this file,
//! built-in default. The CLI merges them; this module only reads and checks the file.

use crate::alerting::AlertingConfig;
use crate::ingest::writer::WriterConfig;
use crate::notify::{DeliveryConfig, Receiver, ReceiverKind, SecretUrl};
use crate::redis::RedisTarget;
use crate::startup::HealthConfig;
use crate::telemetry::voice::{PrometheusLimits, MAX_LABEL_CAP};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use voicemon_core::alerting::rules::{rules_with, RuleText};
use voicemon_core::alerting::silence::{InhibitRule, Matcher};
use voicemon_core::pricing::{PriceBook, PriceEntryText, PricingError};
use voicemon_store::postgres::PostgresConfig;
use voicemon_store::sqlite::Durability;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub ingest: IngestSection,
    #[serde(default)]
    pub pricing: PricingSection,
    #[serde(default)]
    pub health: HealthSection,
    #[serde(default)]
    pub alerting: AlertingSection,
    #[serde(default)]
    pub postgres: PostgresSection,
    #[serde(default)]
    pub prometheus: PrometheusSection,
}

/// `[postgres]`: how the PostgreSQL store is used when `DATABASE_URL` is set. The URL
/// itself (it may hold a password) comes from the environment or `--database-url` only.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// Connections at most (default 16).
    pub pool_size: Option<usize>,
    /// How long a request waits for a connection before voicemon answers 503 (default "5s").
    pub connect_timeout: Option<String>,
    /// Raw facts and minute rollups older than this are dropped, a day at a time (default "400d").
    pub retention: Option<String>,
    /// Day partitions created ahead of today (default 3).
    pub partitions_ahead: Option<u32>,
    /// Group commits in flight at once, each on its own connection (default 2).
    pub concurrent_writes: Option<usize>,
    /// Use TimescaleDB hypertables when the extension is available (default true).
    pub timescaledb: Option<bool>,
    /// TimescaleDB: compress chunks older than this, or "off" (default "7d"; community licence).
    pub compress_after: Option<String>,
}

impl PostgresSection {
    /// The PostgreSQL configuration for `url` with this section's settings.
    pub fn postgres_config(&self, url: &str) -> Result<PostgresConfig, ConfigError> {
        let mut config = PostgresConfig::new(url);
        if let Some(size) = self.pool_size {
            if size < 2 {
                return Err(ConfigError::Value {
                    key: "postgres.pool_size",
                    message: "must be at least 2 (the writer holds one)".into(),
                });
            }
            config.pool_size = size;
        }
        if let Some(text) = &self.connect_timeout {
            config.connect_timeout = parse_duration("postgres.connect_timeout", text)?;
        }
        if let Some(text) = &self.retention {
            config.retention = parse_duration("postgres.retention", text)?;
            if config.retention < Duration::from_secs(86_400) {
                return Err(ConfigError::Value {
                    key: "postgres.retention",
                    message: "must be at least 1d".into(),
                });
            }
        }
        config.partitions_ahead = self.partitions_ahead.unwrap_or(config.partitions_ahead);
        if let Some(writes) = self.concurrent_writes {
            if writes == 0 || writes >= config.pool_size {
                return Err(ConfigError::Value {
                    key: "postgres.concurrent_writes",
                    message: format!("must be from 1 to pool_size - 1 ({})", config.pool_size - 1),
                });
            }
            config.concurrent_writes = writes;
        }
        config.timescaledb = self.timescaledb.unwrap_or(config.timescaledb);
        match self.compress_after.as_deref() {
            None => {}
            Some("off") => config.compress_after = None,
            Some(text) => config.compress_after = Some(parse_duration("postgres.compress_after", text)?),
        }
        Ok(config)
    }
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

impl PrometheusSection {
    /// The label bounds this section gives, on top of the defaults.
    pub fn limits(&self) -> Result<PrometheusLimits, ConfigError> {
        let defaults = PrometheusLimits::default();
        let cap = |key: &'static str, value: Option<usize>, default: usize| match value {
            Some(v) if v > MAX_LABEL_CAP => Err(ConfigError::Value {
                key,
                message: format!("{v} is above {MAX_LABEL_CAP}, too many series for one scrape"),
            }),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        Ok(PrometheusLimits {
            max_tenants: cap("prometheus.max_tenants", self.max_tenants, defaults.max_tenants)?,
            max_providers: cap("prometheus.max_providers", self.max_providers, defaults.max_providers)?,
        })
    }
}

/// `[alerting]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingSection {
    /// How often rules are evaluated (default "10s").
    pub evaluation_interval: Option<String>,
    /// How long a new alert waits for others of its rule to go out together (default "10s").
    pub group_wait: Option<String>,
    /// A firing alert is notified again at most this often (default "5m").
    pub repeat_interval: Option<String>,
    /// A message not delivered after this long is given up (default "1h").
    pub delivery_deadline: Option<String>,
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
}

/// `[[alerting.receiver]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverText {
    pub name: String,
    /// slack | webhook | alertmanager
    pub kind: String,
    /// Never printed: Slack's carries its secret in the path.
    pub url: SecretString,
}

/// `[[alerting.inhibit]]`: matchers as `name=value` / `name!=value`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitText {
    pub source: Vec<String>,
    pub target: Vec<String>,
    #[serde(default)]
    pub equal: Vec<String>,
}

impl AlertingSection {
    /// The alerting and delivery configuration this section gives; `slack_webhook_url`
    /// (from `SLACK_WEBHOOK_URL`) adds a Slack receiver named "slack".
    pub fn alerting_config(
        &self,
        slack_webhook_url: Option<&str>,
    ) -> Result<(AlertingConfig, DeliveryConfig), ConfigError> {
        let mut config = AlertingConfig::default();
        let mut delivery = DeliveryConfig::default();
        let value = |key: &'static str, message: String| ConfigError::Value { key, message };
        config.rules = rules_with(&self.rule).map_err(|err| value("alerting.rule", err.to_string()))?;
        if let Some(text) = &self.evaluation_interval {
            config.evaluation_interval = parse_duration("alerting.evaluation_interval", text)?;
            if config.evaluation_interval.is_zero() {
                return Err(value("alerting.evaluation_interval", "must be above 0".into()));
            }
        }
        if let Some(text) = &self.group_wait {
            config.policy.group_wait_ms = parse_duration("alerting.group_wait", text)?.as_millis() as i64;
        }
        if let Some(text) = &self.repeat_interval {
            config.policy.repeat_interval_ms =
                parse_duration("alerting.repeat_interval", text)?.as_millis() as i64;
        }
        if let Some(text) = &self.delivery_deadline {
            delivery.deadline = parse_duration("alerting.delivery_deadline", text)?;
        }
        config.public_url = self.public_url.clone();
        for text in &self.receiver {
            let kind = ReceiverKind::parse(&text.kind).ok_or_else(|| {
                value(
                    "alerting.receiver",
                    format!(
                        "`{}`: kind `{}` is not one of slack, webhook, alertmanager",
                        text.name, text.kind
                    ),
                )
            })?;
            check_url("alerting.receiver", text.url.expose_secret())?;
            config.receivers.push(Receiver {
                name: text.name.clone(),
                kind,
                url: SecretUrl::new(text.url.expose_secret()),
            });
        }
        if let Some(url) = slack_webhook_url.filter(|u| !u.trim().is_empty()) {
            check_url("SLACK_WEBHOOK_URL", url)?;
            config.receivers.retain(|r| r.name != "slack");
            config.receivers.push(Receiver {
                name: "slack".into(),
                kind: ReceiverKind::Slack,
                url: SecretUrl::new(url),
            });
        }
        let names: Vec<&str> = config.receivers.iter().map(|r| r.name.as_str()).collect();
        if let Some(name) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)).map(|(_, n)| n) {
            return Err(value("alerting.receiver", format!("receiver `{name}` is defined twice")));
        }
        for rule in &config.rules {
            if let Some(missing) = rule.receivers.iter().find(|r| !names.contains(&r.as_str())) {
                return Err(value(
                    "alerting.rule",
                    format!("rule `{}` names receiver `{missing}`, which is not defined", rule.name),
                ));
            }
        }
        for text in &self.inhibit {
            let parse =
                |list: &[String]| list.iter().map(|m| Matcher::parse(m)).collect::<Result<Vec<_>, _>>();
            config.inhibit.push(InhibitRule {
                source: parse(&text.source).map_err(|e| value("alerting.inhibit", e))?,
                target: parse(&text.target).map_err(|e| value("alerting.inhibit", e))?,
                equal: text.equal.clone(),
            });
        }
        Ok((config, delivery))
    }
}

fn check_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::Value { key, message: "a receiver URL must start with http:// or https://".into() })
    }
}

/// `[health]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    /// A worker silent this long is stale (default "30s").
    pub stale_after: Option<String>,
    /// A worker silent this long is down (default "2m").
    pub down_after: Option<String>,
    /// Error ratio over the last minute from which a provider is degraded (default 0.05).
    pub degraded_error_ratio: Option<f64>,
    /// … and down (default 0.5).
    pub down_error_ratio: Option<f64>,
    /// Requests in the last minute before the ratio counts (default 5).
    pub min_requests: Option<u64>,
    /// Worker memory percent that degrades the verdict (default 80).
    pub worker_memory_percent: Option<f64>,
    /// The platform's Redis to watch; `REDIS_URL` takes precedence. It may hold a password.
    pub redis_url: Option<SecretString>,
    /// How often Redis is polled (default "10s").
    pub redis_poll_interval: Option<String>,
    /// How long health samples and provider minutes are kept (default "30d").
    pub retention: Option<String>,
}

impl HealthSection {
    /// The health configuration this section gives, on top of the defaults.
    pub fn health_config(&self) -> Result<HealthConfig, ConfigError> {
        let mut config = HealthConfig::default();
        let millis = |key, text: &Option<String>, default: i64| -> Result<i64, ConfigError> {
            text.as_deref()
                .map(|t| parse_duration(key, t).map(|d| d.as_millis() as i64))
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let rules = &mut config.rules;
        rules.stale_after_ms = millis("health.stale_after", &self.stale_after, rules.stale_after_ms)?;
        rules.down_after_ms = millis("health.down_after", &self.down_after, rules.down_after_ms)?;
        if rules.down_after_ms <= rules.stale_after_ms {
            return Err(ConfigError::Value {
                key: "health.down_after",
                message: "must be longer than stale_after".into(),
            });
        }
        let ratio = |key, value: Option<f64>, default: f64| match value {
            Some(v) if !(0.0..=1.0).contains(&v) => {
                Err(ConfigError::Value { key, message: format!("{v} is not a ratio between 0 and 1") })
            }
            Some(v) => Ok(v),
            None => Ok(default),
        };
        rules.degraded_error_ratio =
            ratio("health.degraded_error_ratio", self.degraded_error_ratio, rules.degraded_error_ratio)?;
        rules.down_error_ratio =
            ratio("health.down_error_ratio", self.down_error_ratio, rules.down_error_ratio)?;
        rules.min_requests = self.min_requests.unwrap_or(rules.min_requests);
        rules.worker_memory_percent = self.worker_memory_percent.unwrap_or(rules.worker_memory_percent);
        if let Some(url) = &self.redis_url {
            RedisTarget::parse(url.expose_secret())
                .map_err(|message| ConfigError::Value { key: "health.redis_url", message })?;
            config.redis_url = Some(url.clone());
        }
        if let Some(text) = &self.redis_poll_interval {
            config.redis_poll = parse_duration("health.redis_poll_interval", text)?;
        }
        if let Some(text) = &self.retention {
            config.retention = parse_duration("health.retention", text)?;
        }
        Ok(config)
    }
}

/// `[pricing]`: entries added to (or replacing) the shipped price book.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingSection {
    /// `[[pricing.price]]` entries, the same fields as `pricing/default.toml`.
    #[serde(default)]
    pub price: Vec<PriceEntryText>,
}

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
}

/// `[ingest]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// A group commit closes at this many events (default 5000; a request is never split).
    pub batch_max_events: Option<usize>,
    /// No event waits longer than this for its group (default "5s").
    pub flush_interval: Option<String>,
    /// How long to wait for a fuller group when the queue is empty (default "0s").
    pub flush_linger: Option<String>,
    /// How often derived data (rollups, provider minutes, call totals) is merged into its
    /// tables (default "1s"); queries merge it first anyway.
    pub derived_flush_interval: Option<String>,
    /// "full" (default: commits survive power loss) or "normal" (survive a crash).
    pub durability: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Value { key: &'static str, message: String },
    #[error(transparent)]
    Pricing(#[from] PricingError),
}

impl FileConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let config: FileConfig = toml::from_str(&text)
            .map_err(|err| ConfigError::Invalid { path: path.to_owned(), message: err.to_string() })?;
        config.ingest.writer_config(&WriterConfig::default())?;
        config.ingest.durability()?;
        config.price_book(path)?;
        config.health.health_config()?;
        config.alerting.alerting_config(None)?;
        config.postgres.postgres_config("postgres://localhost")?;
        config.prometheus.limits()?;
        if config.server.max_body_bytes == Some(0) {
            return Err(ConfigError::Value {
                key: "server.max_body_bytes",
                message: "must be above 0".into(),
            });
        }
        Ok(config)
    }
}

impl FileConfig {
    /// The shipped price book with this file's `[[pricing.price]]` entries applied.
    pub fn price_book(&self, path: &Path) -> Result<PriceBook, ConfigError> {
        let origin = format!("{} [[pricing.price]]", path.display());
        Ok(PriceBook::with_overrides(&self.pricing.price, &origin)?)
    }
}

pub fn parse_duration(key: &'static str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text)
        .map_err(|err| ConfigError::Value { key, message: format!("`{text}` is not a duration ({err})") })
}

impl IngestSection {
    /// The writer configuration this section gives, on top of `base`.
    pub fn writer_config(&self, base: &WriterConfig) -> Result<WriterConfig, ConfigError> {
        let mut config = *base;
        if let Some(max) = self.batch_max_events {
            if max == 0 {
                return Err(ConfigError::Value {
                    key: "ingest.batch_max_events",
                    message: "must be above 0".into(),
                });
            }
            config.max_events = max;
        }
        if let Some(text) = &self.flush_interval {
            config.max_wait = parse_duration("ingest.flush_interval", text)?;
        }
        if let Some(text) = &self.flush_linger {
            config.linger = parse_duration("ingest.flush_linger", text)?;
        }
        if let Some(text) = &self.derived_flush_interval {
            config.derived_flush = parse_duration("ingest.derived_flush_interval", text)?;
            if config.derived_flush.is_zero() {
                return Err(ConfigError::Value {
                    key: "ingest.derived_flush_interval",
                    message: "must be above 0".into(),
                });
            }
        }
        Ok(config)
    }

    pub fn durability(&self) -> Result<Option<Durability>, ConfigError> {
        self.durability.as_deref().map(parse_durability).transpose()
    }
}

pub fn parse_durability(text: &str) -> Result<Durability, ConfigError> {
    match text {
        "full" => Ok(Durability::Full),
        "normal" => Ok(Durability::Normal),
        other => Err(ConfigError::Value {
            key: "ingest.durability",
            message: format!("`{other}` is not one of full, normal"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postgres(text: &str) -> Result<PostgresConfig, ConfigError> {
        let file: FileConfig = toml::from_str(text).expect("valid TOML");
        file.postgres.postgres_config("postgres://db/voicemon")
    }

    #[test]
    fn the_postgres_section_sets_pool_retention_partitions_and_concurrent_writes() {
        let config = postgres(
            "[postgres]\npool_size = 8\nconnect_timeout = \"2s\"\nretention = \"90d\"\npartitions_ahead = 7\n\
             concurrent_writes = 3\ntimescaledb = false\ncompress_after = \"off\"\n",
        )
        .expect("a valid section");
        assert_eq!(config.url.expose_secret(), "postgres://db/voicemon");
        assert_eq!((config.pool_size, config.partitions_ahead, config.concurrent_writes), (8, 7, 3));
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.retention, Duration::from_secs(90 * 86_400));
        assert!(!config.timescaledb);
        assert_eq!(config.compress_after, None);
    }

    #[test]
    fn the_postgres_section_refuses_settings_that_cannot_work() {
        for (text, key) in [
            ("pool_size = 1", "postgres.pool_size"),
            ("retention = \"1h\"", "postgres.retention"),
            ("concurrent_writes = 0", "postgres.concurrent_writes"),
            ("concurrent_writes = 16", "postgres.concurrent_writes"),
            ("compress_after = \"soon\"", "postgres.compress_after"),
        ] {
            match postgres(&format!("[postgres]\n{text}\n")) {
                Err(ConfigError::Value { key: found, .. }) => assert_eq!(found, key, "{text}"),
                other => panic!("{text} was not refused: {other:?}"),
            }
        }
    }
}
