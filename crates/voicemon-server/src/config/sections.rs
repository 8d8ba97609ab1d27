//! What each section of the tree becomes once judged: a `TryFrom` per section, on top of
//! the defaults of the subsystem it configures. Each error names its key.

use crate::alerting::AlertingConfig;
use crate::bus::BusConfig;
use crate::config::file::{
    AlertingSection, CompressAfter, HealthSection, IngestSection, LimitsSection, NatsSection, OtlpSection,
    PostgresSection, PrometheusSection, ServerSection,
};
use crate::config::settings::{HealthConfig, PostgresSettings};
use crate::config::ConfigError;
use crate::connections::ConnectionLimits;
use crate::ingest::writer::WriterConfig;
use crate::limits::{LimitsConfig, MAX_PER_SECOND, MAX_REFUSAL_HOLD};
use crate::notify::{DeliveryConfig, Receiver, ReceiverKind, SecretUrl};
use crate::otlp::assemble::AssemblyConfig;
use crate::redis::RedisTarget;
use crate::telemetry::voice::{PrometheusLimits, MAX_LABEL_CAP};
use secrecy::ExposeSecret;
use std::num::NonZeroU32;
use std::time::Duration;
use voicemon_core::alerting::rules::rules_with;
use voicemon_core::alerting::silence::{InhibitRule, Matcher};
use voicemon_store::sqlite::Durability;

impl TryFrom<&ServerSection> for ConnectionLimits {
    type Error = ConfigError;

    fn try_from(section: &ServerSection) -> Result<ConnectionLimits, ConfigError> {
        let defaults = ConnectionLimits::default();
        let limits = ConnectionLimits {
            header_read_timeout: section.header_read_timeout.unwrap_or(defaults.header_read_timeout),
            idle_timeout: section.idle_timeout.unwrap_or(defaults.idle_timeout),
            max_connections: section.max_connections.unwrap_or(defaults.max_connections),
        };
        if limits.header_read_timeout.is_zero() {
            return Err(ConfigError::value("server.header_read_timeout", "must be above 0"));
        }
        if limits.idle_timeout.is_zero() {
            return Err(ConfigError::value("server.idle_timeout", "must be above 0"));
        }
        if limits.idle_timeout > limits.header_read_timeout {
            return Err(ConfigError::value(
                "server.idle_timeout",
                "must not be longer than header_read_timeout, which bounds the wait for a request anyway",
            ));
        }
        if limits.max_connections == 0 {
            return Err(ConfigError::value("server.max_connections", "must be above 0"));
        }
        Ok(limits)
    }
}

impl TryFrom<&IngestSection> for WriterConfig {
    type Error = ConfigError;

    fn try_from(section: &IngestSection) -> Result<WriterConfig, ConfigError> {
        let mut config = WriterConfig::default();
        if let Some(max) = section.batch_max_events {
            if max == 0 {
                return Err(ConfigError::value("ingest.batch_max_events", "must be above 0"));
            }
            config.max_events = max;
        }
        config.max_wait = section.flush_interval.unwrap_or(config.max_wait);
        config.linger = section.flush_linger.unwrap_or(config.linger);
        if let Some(every) = section.derived_flush_interval {
            if every.is_zero() {
                return Err(ConfigError::value("ingest.derived_flush_interval", "must be above 0"));
            }
            config.derived_flush = every;
        }
        Ok(config)
    }
}

impl IngestSection {
    /// The durability this section names, if any.
    pub fn durability(&self) -> Result<Option<Durability>, ConfigError> {
        self.durability.as_deref().map(parse_durability).transpose()
    }
}

/// `full` or `normal`, as `ingest.durability` and `--durability` take it.
pub fn parse_durability(text: &str) -> Result<Durability, ConfigError> {
    match text {
        "full" => Ok(Durability::Full),
        "normal" => Ok(Durability::Normal),
        other => {
            Err(ConfigError::value("ingest.durability", format!("`{other}` is not one of full, normal")))
        }
    }
}

impl TryFrom<&HealthSection> for HealthConfig {
    type Error = ConfigError;

    fn try_from(section: &HealthSection) -> Result<HealthConfig, ConfigError> {
        let mut config = HealthConfig::default();
        let millis = |value: Option<Duration>, default: i64| value.map_or(default, |d| d.as_millis() as i64);
        let rules = &mut config.rules;
        rules.stale_after_ms = millis(section.stale_after, rules.stale_after_ms);
        rules.down_after_ms = millis(section.down_after, rules.down_after_ms);
        if rules.down_after_ms <= rules.stale_after_ms {
            return Err(ConfigError::value("health.down_after", "must be longer than stale_after"));
        }
        rules.degraded_error_ratio =
            ratio("health.degraded_error_ratio", section.degraded_error_ratio, rules.degraded_error_ratio)?;
        rules.down_error_ratio =
            ratio("health.down_error_ratio", section.down_error_ratio, rules.down_error_ratio)?;
        rules.min_requests = section.min_requests.unwrap_or(rules.min_requests);
        rules.worker_memory_percent = section.worker_memory_percent.unwrap_or(rules.worker_memory_percent);
        if let Some(url) = &section.redis_url {
            RedisTarget::parse(url.expose_secret())
                .map_err(|message| ConfigError::value("health.redis_url", message))?;
            config.redis_url = Some(url.clone());
        }
        config.redis_poll = section.redis_poll_interval.unwrap_or(config.redis_poll);
        config.retention = section.retention.unwrap_or(config.retention);
        Ok(config)
    }
}

/// A ratio between 0 and 1, or `default` when absent.
fn ratio(key: &'static str, value: Option<f64>, default: f64) -> Result<f64, ConfigError> {
    match value {
        Some(v) if !(0.0..=1.0).contains(&v) => {
            Err(ConfigError::value(key, format!("{v} is not a ratio between 0 and 1")))
        }
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

impl AlertingSection {
    /// The alerting and delivery configuration this section gives; `slack_webhook_url`
    /// (from `SLACK_WEBHOOK_URL`) adds a Slack receiver named "slack".
    pub fn alerting_config(&self) -> Result<(AlertingConfig, DeliveryConfig), ConfigError> {
        let mut config = AlertingConfig::default();
        let mut delivery = DeliveryConfig::default();
        config.rules =
            rules_with(&self.rule).map_err(|err| ConfigError::value("alerting.rule", err.to_string()))?;
        if let Some(every) = self.evaluation_interval {
            if every.is_zero() {
                return Err(ConfigError::value("alerting.evaluation_interval", "must be above 0"));
            }
            config.evaluation_interval = every;
        }
        if let Some(wait) = self.group_wait {
            config.policy.group_wait_ms = wait.as_millis() as i64;
        }
        if let Some(every) = self.repeat_interval {
            config.policy.repeat_interval_ms = every.as_millis() as i64;
        }
        delivery.deadline = self.delivery_deadline.unwrap_or(delivery.deadline);
        config.public_url = self.public_url.clone();
        config.receivers = self.receivers()?;
        check_receiver_names(&config)?;
        config.inhibit = self.inhibit_rules()?;
        Ok((config, delivery))
    }

    /// The file's receivers, then the one `SLACK_WEBHOOK_URL` gives (replacing a file
    /// receiver named "slack").
    fn receivers(&self) -> Result<Vec<Receiver>, ConfigError> {
        let mut receivers = Vec::with_capacity(self.receiver.len() + 1);
        for text in &self.receiver {
            let kind = ReceiverKind::parse(&text.kind).ok_or_else(|| {
                let message = format!(
                    "`{}`: kind `{}` is not one of slack, webhook, alertmanager",
                    text.name, text.kind
                );
                ConfigError::value("alerting.receiver", message)
            })?;
            check_url("alerting.receiver", text.url.expose_secret())?;
            receivers.push(Receiver {
                name: text.name.clone(),
                kind,
                url: SecretUrl::new(text.url.expose_secret()),
            });
        }
        let slack =
            self.slack_webhook_url.as_ref().map(|url| url.expose_secret()).filter(|u| !u.trim().is_empty());
        if let Some(url) = slack {
            check_url("alerting.slack_webhook_url", url)?;
            receivers.retain(|r| r.name != "slack");
            receivers.push(Receiver {
                name: "slack".into(),
                kind: ReceiverKind::Slack,
                url: SecretUrl::new(url),
            });
        }
        Ok(receivers)
    }

    fn inhibit_rules(&self) -> Result<Vec<InhibitRule>, ConfigError> {
        let parse = |list: &[String]| {
            list.iter()
                .map(|m| Matcher::parse(m))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| ConfigError::value("alerting.inhibit", message))
        };
        self.inhibit
            .iter()
            .map(|text| {
                Ok(InhibitRule {
                    source: parse(&text.source)?,
                    target: parse(&text.target)?,
                    equal: text.equal.clone(),
                })
            })
            .collect()
    }
}

/// Receiver names are unique, and every receiver a rule names exists.
fn check_receiver_names(config: &AlertingConfig) -> Result<(), ConfigError> {
    let names: Vec<&str> = config.receivers.iter().map(|r| r.name.as_str()).collect();
    if let Some(name) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)).map(|(_, n)| n) {
        return Err(ConfigError::value("alerting.receiver", format!("receiver `{name}` is defined twice")));
    }
    for rule in &config.rules {
        if let Some(missing) = rule.receivers.iter().find(|r| !names.contains(&r.as_str())) {
            let message = format!("rule `{}` names receiver `{missing}`, which is not defined", rule.name);
            return Err(ConfigError::value("alerting.rule", message));
        }
    }
    Ok(())
}

fn check_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::value(key, "a receiver URL must start with http:// or https://"))
    }
}

impl TryFrom<&PostgresSection> for PostgresSettings {
    type Error = ConfigError;

    fn try_from(section: &PostgresSection) -> Result<PostgresSettings, ConfigError> {
        let mut settings = PostgresSettings::default();
        if let Some(size) = section.pool_size {
            if size < 2 {
                return Err(ConfigError::value(
                    "postgres.pool_size",
                    "must be at least 2 (the writer holds one)",
                ));
            }
            settings.pool_size = size;
        }
        settings.connect_timeout = section.connect_timeout.unwrap_or(settings.connect_timeout);
        if let Some(retention) = section.retention {
            if retention < Duration::from_secs(86_400) {
                return Err(ConfigError::value("postgres.retention", "must be at least 1d"));
            }
            settings.retention = retention;
        }
        settings.partitions_ahead = section.partitions_ahead.unwrap_or(settings.partitions_ahead);
        if let Some(writes) = section.concurrent_writes {
            if writes == 0 || writes >= settings.pool_size {
                let message = format!("must be from 1 to pool_size - 1 ({})", settings.pool_size - 1);
                return Err(ConfigError::value("postgres.concurrent_writes", message));
            }
            settings.concurrent_writes = writes;
        }
        settings.timescaledb = section.timescaledb.unwrap_or(settings.timescaledb);
        match section.compress_after {
            None => {}
            Some(CompressAfter::Off) => settings.compress_after = None,
            Some(CompressAfter::After(after)) => settings.compress_after = Some(after),
        }
        Ok(settings)
    }
}

impl TryFrom<&PrometheusSection> for PrometheusLimits {
    type Error = ConfigError;

    fn try_from(section: &PrometheusSection) -> Result<PrometheusLimits, ConfigError> {
        let defaults = PrometheusLimits::default();
        Ok(PrometheusLimits {
            max_tenants: label_cap("prometheus.max_tenants", section.max_tenants, defaults.max_tenants)?,
            max_providers: label_cap(
                "prometheus.max_providers",
                section.max_providers,
                defaults.max_providers,
            )?,
        })
    }
}

impl PrometheusSection {
    /// The label bounds this section gives, on top of the defaults.
    pub fn limits(&self) -> Result<PrometheusLimits, ConfigError> {
        PrometheusLimits::try_from(self)
    }
}

/// At most [`MAX_LABEL_CAP`] label values, so one scrape stays bounded.
fn label_cap(key: &'static str, value: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match value {
        Some(v) if v > MAX_LABEL_CAP => Err(ConfigError::value(
            key,
            format!("{v} is above {MAX_LABEL_CAP}, too many series for one scrape"),
        )),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// A JetStream stream or consumer name: not empty, no `.`, wildcard or space.
fn nats_name(key: &'static str, what: &str, name: &str) -> Result<String, ConfigError> {
    if name.is_empty() || name.contains(['.', ' ', '*', '>']) {
        return Err(ConfigError::value(key, format!("`{name}` is not a {what} name (no . * > or spaces)")));
    }
    Ok(name.to_owned())
}

impl NatsSection {
    /// The event bus this section configures, or `None` without a URL.
    pub fn bus_config(&self) -> Result<Option<BusConfig>, ConfigError> {
        let Some(url) = &self.url else { return Ok(None) };
        let text = url.expose_secret();
        if !["nats://", "tls://", "ws://", "wss://"].iter().any(|scheme| text.starts_with(scheme)) {
            return Err(ConfigError::value("nats.url", "must start with nats://, tls://, ws:// or wss://"));
        }
        let mut config = BusConfig::new(url.clone());
        if let Some(stream) = &self.stream {
            config.stream = nats_name("nats.stream", "stream", stream)?;
        }
        if let Some(subjects) = &self.subjects {
            if subjects.is_empty() || subjects.iter().any(|s| s.is_empty() || s.contains(' ')) {
                return Err(ConfigError::value(
                    "nats.subjects",
                    "must be one or more subjects without spaces",
                ));
            }
            config.subjects = subjects.clone();
        }
        if let Some(consumer) = &self.consumer {
            config.consumer = nats_name("nats.consumer", "consumer", consumer)?;
        }
        if let Some(subject) = &self.dead_letter_subject {
            if subject.is_empty() || subject.contains([' ', '*', '>']) {
                return Err(ConfigError::value(
                    "nats.dead_letter_subject",
                    "must be one subject without wildcards",
                ));
            }
            config.dead_letter_subject = subject.clone();
        }
        match self.max_in_flight {
            Some(0) => return Err(ConfigError::value("nats.max_in_flight", "must be above 0")),
            Some(count) => config.max_in_flight = count,
            None => {}
        }
        Ok(Some(config))
    }
}

impl TryFrom<&OtlpSection> for AssemblyConfig {
    type Error = ConfigError;

    fn try_from(section: &OtlpSection) -> Result<AssemblyConfig, ConfigError> {
        let mut config = AssemblyConfig::default();
        let hour = Duration::from_secs(3600);
        if let Some(wait) = section.span_wait {
            if wait.is_zero() || wait > hour {
                return Err(ConfigError::value("otlp.span_wait", "must be above 0 and at most 1h"));
            }
            config.span_wait = wait;
        }
        if let Some(wait) = section.turn_wait {
            if wait > hour {
                return Err(ConfigError::value("otlp.turn_wait", "must be at most 1h"));
            }
            config.turn_wait = wait;
        }
        match section.max_held_spans {
            Some(0) => return Err(ConfigError::value("otlp.max_held_spans", "must be above 0")),
            Some(max) if max > 10_000_000 => {
                return Err(ConfigError::value("otlp.max_held_spans", "must be at most 10000000"))
            }
            Some(max) => config.max_held_spans = max,
            None => {}
        }
        Ok(config)
    }
}

impl TryFrom<&LimitsSection> for LimitsConfig {
    type Error = ConfigError;

    fn try_from(section: &LimitsSection) -> Result<LimitsConfig, ConfigError> {
        let defaults = LimitsConfig::default();
        Ok(LimitsConfig {
            ingest_events_per_second: rate(
                "limits.ingest_events_per_second",
                section.ingest_events_per_second,
                defaults.ingest_events_per_second,
            )?,
            ingest_burst: burst("limits.ingest_burst", section.ingest_burst, defaults.ingest_burst)?,
            query_requests_per_second: rate(
                "limits.query_requests_per_second",
                section.query_requests_per_second,
                defaults.query_requests_per_second,
            )?,
            query_burst: burst("limits.query_burst", section.query_burst, defaults.query_burst)?,
            refusal_hold: match section.refusal_hold {
                Some(hold) if hold > MAX_REFUSAL_HOLD => {
                    return Err(ConfigError::value("limits.refusal_hold", "must be at most 10s"))
                }
                Some(hold) => hold,
                None => defaults.refusal_hold,
            },
        })
    }
}

/// A rate from 1 to [`MAX_PER_SECOND`], or `default` when absent.
fn rate(key: &'static str, value: Option<u32>, default: NonZeroU32) -> Result<NonZeroU32, ConfigError> {
    match value {
        Some(v) if v > MAX_PER_SECOND => {
            Err(ConfigError::value(key, format!("{v} is above {MAX_PER_SECOND} a second")))
        }
        Some(v) => NonZeroU32::new(v).ok_or_else(|| ConfigError::value(key, "must be above 0")),
        None => Ok(default),
    }
}

/// A burst of at least 1, or `default` when absent.
fn burst(key: &'static str, value: Option<u32>, default: NonZeroU32) -> Result<NonZeroU32, ConfigError> {
    match value {
        Some(v) => NonZeroU32::new(v).ok_or_else(|| ConfigError::value(key, "must be above 0")),
        None => Ok(default),
    }
}
