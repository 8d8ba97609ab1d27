//! What `config check` prints: a summary of the settings, then the effective
//! configuration as TOML-like sections, each value with where it came from. Secrets never
//! show: database and Redis URLs lose their credentials, webhook URLs all but their host.

use crate::config::layers::Origin;
use crate::config::settings::Settings;
use crate::notify::ReceiverKind;
use crate::redis::RedisTarget;
use secrecy::{ExposeSecret, SecretString};
use std::fmt::Write as _;
use std::time::Duration;
use voicemon_core::pricing::PriceBook;

/// Where the comment of a value starts, so that origins line up.
const ORIGIN_COLUMN: usize = 44;

/// A database URL without its credentials or options (but its `sslmode`), for logs.
pub fn describe_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "(unparseable url)".into() };
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, query) = host.split_once('?').unwrap_or((host, ""));
    match query.split('&').find_map(|pair| pair.strip_prefix("sslmode=")) {
        Some(mode) => format!("{scheme}://{host} (sslmode={mode})"),
        None => format!("{scheme}://{host}"),
    }
}

/// A Redis URL as scheme and address, without user or password.
fn describe_redis(url: &SecretString) -> String {
    match RedisTarget::parse(url.expose_secret()) {
        Ok(target) => format!("{}://{}", if target.tls { "rediss" } else { "redis" }, target.address()),
        Err(_) => "(unparseable url)".into(),
    }
}

/// A duration as the file takes it, in the largest unit that keeps it exact ("400d", "250ms").
pub fn duration_text(duration: Duration) -> String {
    const UNITS: [(&str, u128); 6] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ];
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    match UNITS.iter().find(|(_, size)| nanos.is_multiple_of(*size)) {
        Some((unit, size)) => format!("{}{unit}", nanos / size),
        None => format!("{nanos}ns"),
    }
}

fn millis_text(millis: i64) -> String {
    duration_text(Duration::from_millis(millis.max(0) as u64))
}

fn quoted(text: impl std::fmt::Display) -> String {
    format!("\"{text}\"")
}

/// A TOML array of strings.
fn quoted_list(texts: &[String]) -> String {
    format!("[{}]", texts.iter().map(quoted).collect::<Vec<_>>().join(", "))
}

fn allowed_origins_text(origins: &[String]) -> String {
    match origins {
        [] => "none besides voicemon's own page".into(),
        origins => origins.join(", "),
    }
}

impl Settings {
    /// One line per subsystem: what `serve` will do, in words.
    pub fn summary(&self) -> Vec<String> {
        let serve = &self.serve;
        let health = &serve.health;
        let alerting = &serve.alerting;
        let postgres = &self.postgres;
        let bind =
            serve.bind.map_or_else(|| "0.0.0.0 with keys, 127.0.0.1 without".to_owned(), |ip| ip.to_string());
        let store = match &serve.postgres {
            Some(config) => format!(
                "PostgreSQL {} ({})",
                describe_url(config.url.expose_secret()),
                self.origin_of("postgres.database_url")
            ),
            None => "embedded SQLite in data_dir (DATABASE_URL is not set)".to_owned(),
        };
        let compress = postgres
            .compress_after
            .map_or_else(|| "off".to_owned(), |d| humantime::format_duration(d).to_string());
        let receivers = if alerting.receivers.is_empty() {
            "none (set SLACK_WEBHOOK_URL or [[alerting.receiver]])".to_owned()
        } else {
            alerting.receivers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
        };
        vec![
            format!("port:              {}", serve.port),
            format!("bind:              {bind}"),
            format!("data_dir:          {}", serve.data_dir.display()),
            format!("store:             {store}"),
            format!(
                "postgres:          used when DATABASE_URL is set; pool {}, {} concurrent group commits, retention {}, \
                 {} day partitions ahead, timescaledb {}, compress after {compress}",
                postgres.pool_size,
                postgres.concurrent_writes,
                humantime::format_duration(postgres.retention),
                postgres.partitions_ahead,
                if postgres.timescaledb { "when available" } else { "off" },
            ),
            format!("max_body_bytes:    {}", serve.max_body_bytes),
            format!("allowed_origins:   {}", allowed_origins_text(&serve.allowed_origins.texts())),
            format!(
                "connections:       at most {}, request heads within {}, idle ones closed after {}",
                serve.connections.max_connections,
                humantime::format_duration(serve.connections.header_read_timeout),
                humantime::format_duration(serve.connections.idle_timeout),
            ),
            format!("batch_max_events:  {}", serve.writer.max_events),
            format!("flush_interval:    {}", humantime::format_duration(serve.writer.max_wait)),
            format!("flush_linger:      {}", humantime::format_duration(serve.writer.linger)),
            format!("derived flush:     every {}", humantime::format_duration(serve.writer.derived_flush)),
            format!("durability:        {:?}", serve.durability),
            format!(
                "health:            stale after {}, down after {}, retention {}, redis {}",
                humantime::format_duration(Duration::from_millis(health.rules.stale_after_ms as u64)),
                humantime::format_duration(Duration::from_millis(health.rules.down_after_ms as u64)),
                humantime::format_duration(health.retention),
                if health.redis_url.is_some() { "watched" } else { "not watched" },
            ),
            match &serve.bus {
                Some(bus) => format!(
                    "event bus:         NATS JetStream stream {}, consumer {}, dead letters to {}",
                    bus.stream, bus.consumer, bus.dead_letter_subject
                ),
                None => "event bus:         none (NATS_URL unset)".to_owned(),
            },
            format!(
                "alerting:          {} rules ({}), evaluated every {}, receivers: {receivers}",
                alerting.rules.len(),
                alerting.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
                humantime::format_duration(alerting.evaluation_interval),
            ),
            format!(
                "prometheus:        max_tenants {}, max_providers {}: at most {} series at /metrics",
                serve.prometheus.max_tenants,
                serve.prometheus.max_providers,
                serve.prometheus.worst_case_series(),
            ),
            format!(
                "limits:            per key: ingest {} events/s (burst {}), queries {}/s (burst {}); 429 over them, held up to {}",
                serve.limits.ingest_events_per_second,
                serve.limits.ingest_burst,
                serve.limits.query_requests_per_second,
                serve.limits.query_burst,
                humantime::format_duration(serve.limits.refusal_hold),
            ),
            format!(
                "price book:        {} entries ({} shipped defaults, {} from this file); check them against your contracts",
                serve.prices.entries().len(),
                shipped_price_count(),
                self.price_entries,
            ),
        ]
    }

    /// The effective configuration as TOML-like sections: every key `serve` reads, its
    /// value after merging, and where that value came from.
    pub fn effective(&self) -> String {
        let mut text = String::new();
        for (section, values) in self.sections() {
            let _ = writeln!(text, "[{section}]");
            for (key, value) in values {
                let line = format!("{key} = {value}");
                let origin = self.origin_of(&format!("{section}.{key}"));
                let _ = writeln!(text, "{line:<width$}  # {origin}", width = ORIGIN_COLUMN - 2);
            }
            text.push('\n');
        }
        text
    }

    /// Where the value of a dotted key came from: the file, a flag, a variable, or "default".
    pub fn origin_of(&self, key: &str) -> String {
        match self.origins.get(key) {
            Some(Origin::File(path)) => path.display().to_string(),
            Some(Origin::Given(label)) => label.clone(),
            None => "default".to_owned(),
        }
    }

    /// Each section and its `key = value` pairs, values written as the file writes them
    /// (or described when they cannot be: unset values, secrets).
    fn sections(&self) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
        vec![
            ("server", self.server_values()),
            ("ingest", self.ingest_values()),
            ("postgres", self.postgres_values()),
            ("health", self.health_values()),
            ("alerting", self.alerting_values()),
            ("prometheus", self.prometheus_values()),
            ("nats", self.nats_values()),
            ("limits", self.limits_values()),
            ("otlp", self.otlp_values()),
            ("pricing", self.pricing_values()),
        ]
    }

    fn server_values(&self) -> Vec<(&'static str, String)> {
        let serve = &self.serve;
        vec![
            ("port", serve.port.to_string()),
            (
                "bind",
                serve.bind.map_or_else(|| "unset: 0.0.0.0 with API keys, 127.0.0.1 without".into(), quoted),
            ),
            ("data_dir", quoted(serve.data_dir.display())),
            ("max_body_bytes", serve.max_body_bytes.to_string()),
            ("allowed_origins", quoted_list(&serve.allowed_origins.texts())),
            ("header_read_timeout", quoted(duration_text(serve.connections.header_read_timeout))),
            ("idle_timeout", quoted(duration_text(serve.connections.idle_timeout))),
            (
                "max_connections",
                format!(
                    "{} (lowered at start if the open-file limit needs it)",
                    serve.connections.max_connections
                ),
            ),
        ]
    }

    fn ingest_values(&self) -> Vec<(&'static str, String)> {
        let writer = &self.serve.writer;
        let durability = match self.serve.durability {
            voicemon_store::sqlite::Durability::Full => "full",
            voicemon_store::sqlite::Durability::Normal => "normal",
        };
        vec![
            ("batch_max_events", writer.max_events.to_string()),
            ("flush_interval", quoted(duration_text(writer.max_wait))),
            ("flush_linger", quoted(duration_text(writer.linger))),
            ("derived_flush_interval", quoted(duration_text(writer.derived_flush))),
            ("durability", quoted(durability)),
        ]
    }

    fn postgres_values(&self) -> Vec<(&'static str, String)> {
        let postgres = &self.postgres;
        let url = match &self.serve.postgres {
            Some(config) => quoted(describe_url(config.url.expose_secret())) + " (credentials redacted)",
            None => "unset: the embedded SQLite store in data_dir".to_owned(),
        };
        vec![
            ("database_url", url),
            ("pool_size", postgres.pool_size.to_string()),
            ("connect_timeout", quoted(duration_text(postgres.connect_timeout))),
            ("retention", quoted(duration_text(postgres.retention))),
            ("partitions_ahead", postgres.partitions_ahead.to_string()),
            ("concurrent_writes", postgres.concurrent_writes.to_string()),
            ("timescaledb", postgres.timescaledb.to_string()),
            ("compress_after", quoted(postgres.compress_after.map_or_else(|| "off".into(), duration_text))),
        ]
    }

    fn health_values(&self) -> Vec<(&'static str, String)> {
        let health = &self.serve.health;
        let redis = match &health.redis_url {
            Some(url) => quoted(describe_redis(url)) + " (credentials redacted)",
            None => "unset: not watched".to_owned(),
        };
        vec![
            ("stale_after", quoted(millis_text(health.rules.stale_after_ms))),
            ("down_after", quoted(millis_text(health.rules.down_after_ms))),
            ("degraded_error_ratio", health.rules.degraded_error_ratio.to_string()),
            ("down_error_ratio", health.rules.down_error_ratio.to_string()),
            ("min_requests", health.rules.min_requests.to_string()),
            ("worker_memory_percent", health.rules.worker_memory_percent.to_string()),
            ("redis_url", redis),
            ("redis_poll_interval", quoted(duration_text(health.redis_poll))),
            ("retention", quoted(duration_text(health.retention))),
        ]
    }

    fn alerting_values(&self) -> Vec<(&'static str, String)> {
        let alerting = &self.serve.alerting;
        let list = |items: Vec<String>| format!("[{}]", items.join(", "));
        let rules = alerting.rules.iter().map(|rule| quoted(&rule.name)).collect();
        let receivers = alerting
            .receivers
            .iter()
            .map(|r| quoted(format!("{} ({}, {})", r.name, kind_name(r.kind), r.url.redacted())))
            .collect();
        let slack = match &self.serve.alerting.receivers.iter().find(|r| r.name == "slack") {
            Some(receiver) if self.origins.contains_key("alerting.slack_webhook_url") => {
                quoted(receiver.url.redacted()) + " (path redacted)"
            }
            _ => "unset".to_owned(),
        };
        vec![
            ("evaluation_interval", quoted(duration_text(alerting.evaluation_interval))),
            ("group_wait", quoted(millis_text(alerting.policy.group_wait_ms))),
            ("repeat_interval", quoted(millis_text(alerting.policy.repeat_interval_ms))),
            ("delivery_deadline", quoted(duration_text(self.serve.delivery.deadline))),
            (
                "public_url",
                alerting.public_url.as_ref().map_or_else(|| "unset: http://<listen address>".into(), quoted),
            ),
            ("slack_webhook_url", slack),
            ("rule", list(rules)),
            ("receiver", list(receivers)),
            ("inhibit", format!("{} added to the shipped one", alerting.inhibit.len())),
        ]
    }

    fn prometheus_values(&self) -> Vec<(&'static str, String)> {
        let limits = &self.serve.prometheus;
        vec![
            ("max_tenants", limits.max_tenants.to_string()),
            ("max_providers", limits.max_providers.to_string()),
        ]
    }

    fn nats_values(&self) -> Vec<(&'static str, String)> {
        let Some(bus) = &self.serve.bus else {
            return vec![("url", "unset: events come over HTTP only".to_owned())];
        };
        let subjects = bus.subjects.iter().map(quoted).collect::<Vec<_>>().join(", ");
        vec![
            ("url", quoted(describe_url(bus.url.expose_secret())) + " (credentials redacted)"),
            ("stream", quoted(&bus.stream)),
            ("subjects", format!("[{subjects}]")),
            ("consumer", quoted(&bus.consumer)),
            ("dead_letter_subject", quoted(&bus.dead_letter_subject)),
            ("max_in_flight", bus.max_in_flight.to_string()),
        ]
    }

    fn limits_values(&self) -> Vec<(&'static str, String)> {
        let limits = &self.serve.limits;
        vec![
            ("ingest_events_per_second", limits.ingest_events_per_second.to_string()),
            ("ingest_burst", limits.ingest_burst.to_string()),
            ("query_requests_per_second", limits.query_requests_per_second.to_string()),
            ("query_burst", limits.query_burst.to_string()),
            ("refusal_hold", quoted(duration_text(limits.refusal_hold))),
        ]
    }

    fn otlp_values(&self) -> Vec<(&'static str, String)> {
        let otlp = &self.serve.otlp;
        vec![
            ("span_wait", quoted(duration_text(otlp.span_wait))),
            ("turn_wait", quoted(duration_text(otlp.turn_wait))),
            ("max_held_spans", otlp.max_held_spans.to_string()),
        ]
    }

    fn pricing_values(&self) -> Vec<(&'static str, String)> {
        let entries = format!(
            "{} entries in force: {} shipped, {} from the file",
            self.serve.prices.entries().len(),
            shipped_price_count(),
            self.price_entries
        );
        vec![("price", entries)]
    }
}

fn kind_name(kind: ReceiverKind) -> &'static str {
    match kind {
        ReceiverKind::Slack => "slack",
        ReceiverKind::Webhook => "webhook",
        ReceiverKind::Alertmanager => "alertmanager",
    }
}

/// The shipped price book's size, to tell the file's entries from the defaults.
fn shipped_price_count() -> usize {
    PriceBook::with_overrides(&[], "").map(|book| book.entries().len()).unwrap_or(0)
}
