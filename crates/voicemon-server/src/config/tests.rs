use super::*;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Writes `text` as a configuration file in a fresh directory.
fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("voicemon.toml");
    std::fs::write(&path, text).expect("the file is written");
    (dir, path)
}

fn settings(text: &str) -> Result<Settings, ConfigError> {
    let (_dir, path) = file(text);
    Settings::try_from(Layers::new().file(&path)?)
}

/// A layer as the command line gives it: flat, dotted keys, absent values unset.
#[derive(Serialize, Default)]
struct Given {
    #[serde(rename = "server.port", skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(
        rename = "ingest.flush_interval",
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    flush_interval: Option<Duration>,
    #[serde(rename = "health.redis_url", skip_serializing_if = "Option::is_none")]
    redis_url: Option<String>,
    #[serde(rename = "ingest.batch_max_events", skip_serializing_if = "Option::is_none")]
    batch_max_events: Option<usize>,
}

fn layered(path: &Path, environment: &Given, flags: &Given) -> Settings {
    let layers = Layers::new()
        .file(path)
        .and_then(|layers| layers.over(environment, |key| format!("env:{key}")))
        .and_then(|layers| layers.over(flags, |key| format!("flag:{key}")))
        .expect("the layers merge");
    Settings::try_from(layers).expect("valid settings")
}

fn redis_password(settings: &Settings) -> String {
    let url = settings.serve.health.redis_url.as_ref().expect("a Redis to watch");
    let target = crate::redis::RedisTarget::parse(url.expose_secret()).expect("a Redis URL");
    target.password().unwrap_or_default().to_owned()
}

#[test]
fn a_number_a_duration_and_a_secret_come_from_the_file_below_the_environment_below_a_flag() {
    let (_dir, path) = file(
        "[server]\nport = 4000\n[ingest]\nflush_interval = \"2s\"\n[health]\nredis_url = \"redis://:file@127.0.0.1:6379\"\n",
    );
    let nothing = Given::default();
    let environment = Given {
        port: Some(4001),
        flush_interval: Some(Duration::from_millis(250)),
        redis_url: Some("redis://:environment@127.0.0.1:6379".into()),
        ..Given::default()
    };
    let flags = Given {
        port: Some(4002),
        flush_interval: Some(Duration::from_secs(3600)),
        redis_url: Some("redis://:flag@127.0.0.1:6379".into()),
        ..Given::default()
    };

    let from_file = layered(&path, &nothing, &nothing);
    assert_eq!(from_file.serve.port, 4000);
    assert_eq!(from_file.serve.writer.max_wait, Duration::from_secs(2));
    assert_eq!(redis_password(&from_file), "file");
    assert_eq!(from_file.origin_of("server.port"), path.display().to_string());

    let from_environment = layered(&path, &environment, &nothing);
    assert_eq!(from_environment.serve.port, 4001);
    assert_eq!(from_environment.serve.writer.max_wait, Duration::from_millis(250));
    assert_eq!(redis_password(&from_environment), "environment");
    assert_eq!(from_environment.origin_of("health.redis_url"), "env:health.redis_url");

    let from_flags = layered(&path, &environment, &flags);
    assert_eq!(from_flags.serve.port, 4002);
    assert_eq!(from_flags.serve.writer.max_wait, Duration::from_secs(3600));
    assert_eq!(redis_password(&from_flags), "flag");
    assert_eq!(from_flags.origin_of("ingest.flush_interval"), "flag:ingest.flush_interval");
    // What no layer sets keeps its default.
    assert_eq!(from_flags.serve.writer.linger, Duration::ZERO);
    assert_eq!(from_flags.origin_of("ingest.flush_linger"), "default");
}

#[test]
fn a_layer_replaces_only_the_keys_it_sets() {
    let (_dir, path) = file("[ingest]\nbatch_max_events = 500\nflush_interval = \"2s\"\n");
    let flags = Given { flush_interval: Some(Duration::from_secs(9)), ..Given::default() };
    let settings = layered(&path, &Given::default(), &flags);
    assert_eq!(settings.serve.writer.max_events, 500);
    assert_eq!(settings.serve.writer.max_wait, Duration::from_secs(9));
}

#[test]
fn every_duration_key_takes_humantime_text() {
    let settings = settings(
        "[ingest]\nflush_interval = \"250ms\"\nflush_linger = \"5ms\"\nderived_flush_interval = \"2s\"\n\
         [health]\nstale_after = \"45s\"\ndown_after = \"5m\"\nredis_poll_interval = \"1m\"\nretention = \"7d\"\n\
         [alerting]\nevaluation_interval = \"1s\"\ngroup_wait = \"30s\"\nrepeat_interval = \"1h\"\ndelivery_deadline = \"2h\"\n\
         [postgres]\nconnect_timeout = \"2s\"\nretention = \"90d\"\ncompress_after = \"1d\"\n",
    )
    .expect("valid");
    let serve = &settings.serve;
    assert_eq!(serve.writer.max_wait, Duration::from_millis(250));
    assert_eq!(serve.writer.linger, Duration::from_millis(5));
    assert_eq!(serve.writer.derived_flush, Duration::from_secs(2));
    assert_eq!((serve.health.rules.stale_after_ms, serve.health.rules.down_after_ms), (45_000, 300_000));
    assert_eq!(serve.health.redis_poll, Duration::from_secs(60));
    assert_eq!(serve.health.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(serve.alerting.evaluation_interval, Duration::from_secs(1));
    assert_eq!(serve.alerting.policy.group_wait_ms, 30_000);
    assert_eq!(serve.alerting.policy.repeat_interval_ms, 3_600_000);
    assert_eq!(serve.delivery.deadline, Duration::from_secs(7200));
    assert_eq!(settings.postgres.connect_timeout, Duration::from_secs(2));
    assert_eq!(settings.postgres.retention, Duration::from_secs(90 * 86_400));
    assert_eq!(settings.postgres.compress_after, Some(Duration::from_secs(86_400)));
}

#[test]
fn a_wrong_duration_is_refused_naming_its_key_and_its_text() {
    for key in [
        "ingest.flush_interval",
        "ingest.flush_linger",
        "ingest.derived_flush_interval",
        "health.stale_after",
        "health.redis_poll_interval",
        "alerting.group_wait",
        "alerting.delivery_deadline",
        "postgres.connect_timeout",
        "postgres.compress_after",
    ] {
        let (section, name) = key.split_once('.').expect("a dotted key");
        let message = settings(&format!("[{section}]\n{name} = \"soon\"\n")).expect_err(key).to_string();
        assert!(message.contains(key), "{key}: {message}");
        assert!(message.contains("\"soon\"") && message.contains("expected a duration"), "{key}: {message}");
    }
}

#[test]
fn a_value_a_flag_gave_is_refused_naming_the_flag() {
    let (_dir, path) = file("");
    let flags = Given { batch_max_events: Some(0), ..Given::default() };
    let layers = Layers::new().file(&path).and_then(|l| l.over(&flags, |_| "--batch-max-events".into()));
    let message = Settings::try_from(layers.expect("merged")).expect_err("refused").to_string();
    assert_eq!(message, "--batch-max-events must be above 0");
    let from_file = settings("[ingest]\nbatch_max_events = 0\n").expect_err("refused").to_string();
    assert_eq!(from_file, "ingest.batch_max_events: must be above 0");
}

#[test]
fn the_file_may_not_hold_a_database_url_or_a_slack_webhook() {
    for (text, key) in [
        ("[postgres]\ndatabase_url = \"postgres://u:pw@db/x\"\n", "postgres.database_url"),
        (
            "[alerting]\nslack_webhook_url = \"https://hooks.slack.com/services/x\"\n",
            "alerting.slack_webhook_url",
        ),
    ] {
        let message = settings(text).expect_err(key).to_string();
        assert!(message.contains(key) && message.contains("not read from a file"), "{message}");
        assert!(!message.contains("pw@") && !message.contains("services/x"), "{message}");
    }
}

#[test]
fn layers_never_debug_print_the_values_they_hold() {
    let flags = Given { redis_url: Some("redis://:hunter2@cache:6379".into()), ..Given::default() };
    let layers = Layers::new().over(&flags, |_| "REDIS_URL".into()).expect("merged");
    let printed = format!("{layers:?}");
    assert!(printed.contains("health.redis_url") && printed.contains("REDIS_URL"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn a_database_url_is_checked_without_connecting_and_never_quoted() {
    #[derive(Serialize)]
    struct Url {
        #[serde(rename = "postgres.database_url")]
        url: String,
    }
    let build = |url: &str| {
        let layers = Layers::new().over(&Url { url: url.into() }, |_| "DATABASE_URL".into()).expect("merged");
        Settings::try_from(layers)
    };
    let message = build("mysql://u:hunter2@db/x").expect_err("refused").to_string();
    assert!(message.starts_with("DATABASE_URL must start with postgres://"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    let settings = build("postgres://u:hunter2@db:5432/x?sslmode=disable").expect("valid");
    let postgres = settings.serve.postgres.expect("PostgreSQL is used");
    assert_eq!(postgres.pool_size, settings.postgres.pool_size);
    assert_eq!(postgres.url.expose_secret(), "postgres://u:hunter2@db:5432/x?sslmode=disable");
}

#[test]
fn the_effective_configuration_shows_every_section_with_origins_and_no_secret() {
    let (_dir, path) = file(
        "[server]\nport = 4000\n[health]\nredis_url = \"rediss://watcher:hunter2@cache:6380\"\n\
         [[alerting.receiver]]\nname = \"pager\"\nkind = \"webhook\"\nurl = \"https://on:call-secret@hooks.example/x\"\n",
    );
    #[derive(Serialize)]
    struct Secrets {
        #[serde(rename = "postgres.database_url")]
        database: SecretText,
        #[serde(rename = "alerting.slack_webhook_url")]
        slack: SecretText,
    }
    #[derive(Serialize)]
    struct SecretText(String);
    let secrets = Secrets {
        database: SecretText("postgres://vm:dbsecret@db:5432/metrics?sslmode=disable".into()),
        slack: SecretText("https://hooks.slack.com/services/T1/B2/slacksecret".into()),
    };
    let origin = |key: &str| match key {
        "postgres.database_url" => "DATABASE_URL".to_owned(),
        _ => "SLACK_WEBHOOK_URL".to_owned(),
    };
    let layers = Layers::new().file(&path).and_then(|l| l.over(&secrets, origin)).expect("merged");
    let settings = Settings::try_from(layers).expect("valid");
    let text = settings.effective();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} in {text}"))
    };
    for section in [
        "[server]",
        "[ingest]",
        "[postgres]",
        "[health]",
        "[alerting]",
        "[prometheus]",
        "[nats]",
        "[limits]",
        "[otlp]",
        "[pricing]",
    ] {
        assert!(text.contains(section), "{section} in {text}");
    }
    assert!(line("port").contains("4000") && line("port").ends_with(&format!("# {}", path.display())));
    assert!(line("flush_interval").contains("\"5s\"") && line("flush_interval").ends_with("# default"));
    assert!(
        line("database_url").contains("postgres://db:5432/metrics")
            && line("database_url").ends_with("# DATABASE_URL")
    );
    assert!(line("redis_url").contains("rediss://cache:6380"), "{text}");
    assert!(line("slack_webhook_url").contains("https://hooks.slack.com/…"), "{text}");
    assert!(line("retention").contains("\"400d\""), "[postgres] first: {text}");
    for secret in ["dbsecret", "hunter2", "watcher", "call-secret", "slacksecret", "T1/B2"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
        assert!(!settings.summary().join("\n").contains(secret), "{secret} in the summary");
    }
}

#[test]
fn durations_are_shown_as_the_file_writes_them() {
    for (duration, text) in [
        (Duration::ZERO, "0s"),
        (Duration::from_millis(250), "250ms"),
        (Duration::from_secs(90), "90s"),
        (Duration::from_secs(120), "2m"),
        (Duration::from_secs(400 * 86_400), "400d"),
        (Duration::from_micros(1500), "1500us"),
    ] {
        assert_eq!(effective::duration_text(duration), text);
        assert_eq!(humantime::parse_duration(text).ok(), Some(duration), "{text} reads back");
    }
}

fn postgres(text: &str) -> Result<PostgresSettings, ConfigError> {
    let file: FileConfig = toml::from_str(text).expect("valid TOML");
    PostgresSettings::try_from(&file.postgres)
}

#[test]
fn the_postgres_section_sets_pool_retention_partitions_and_concurrent_writes() {
    let config = postgres(
        "[postgres]\npool_size = 8\nconnect_timeout = \"2s\"\nretention = \"90d\"\npartitions_ahead = 7\n\
         concurrent_writes = 3\ntimescaledb = false\ncompress_after = \"off\"\n",
    )
    .expect("a valid section");
    assert_eq!((config.pool_size, config.partitions_ahead, config.concurrent_writes), (8, 7, 3));
    assert_eq!(config.connect_timeout, Duration::from_secs(2));
    assert_eq!(config.retention, Duration::from_secs(90 * 86_400));
    assert!(!config.timescaledb);
    assert_eq!(config.compress_after, None);
    let url = SecretString::from("postgres://db/voicemon".to_owned());
    assert_eq!(config.with_url(&url).url.expose_secret(), "postgres://db/voicemon");
}

#[test]
fn the_postgres_section_refuses_settings_that_cannot_work() {
    for (text, key) in [
        ("pool_size = 1", "postgres.pool_size"),
        ("retention = \"1h\"", "postgres.retention"),
        ("concurrent_writes = 0", "postgres.concurrent_writes"),
        ("concurrent_writes = 16", "postgres.concurrent_writes"),
    ] {
        match postgres(&format!("[postgres]\n{text}\n")) {
            Err(ConfigError::Value { key: found, .. }) => assert_eq!(found, key, "{text}"),
            other => panic!("{text} was not refused: {other:?}"),
        }
    }
    let message = settings("[postgres]\ncompress_after = \"soon\"\n").expect_err("refused").to_string();
    assert!(message.contains("postgres.compress_after"), "{message}");
}

#[test]
fn a_described_database_url_names_the_server_and_database_without_credentials_or_options() {
    assert_eq!(
        describe_url("postgres://voicemon:s3cret@db.internal:5432/metrics?options=-csearch_path%3Dvm"),
        "postgres://db.internal:5432/metrics"
    );
    assert_eq!(describe_url("postgresql://db/metrics"), "postgresql://db/metrics");
    assert_eq!(describe_url("not a url"), "(unparseable url)");
}

#[test]
fn allowed_origins_come_from_the_file_below_a_flag_and_show_in_the_effective_configuration() {
    let (_dir, path) = file("[server]\nallowed_origins = [\"https://grafana.example.com/\"]\n");
    let from_file = Settings::try_from(Layers::new().file(&path).expect("read")).expect("valid");
    assert_eq!(from_file.serve.allowed_origins.texts(), vec!["https://grafana.example.com".to_owned()]);
    #[derive(Serialize)]
    struct Flag {
        #[serde(rename = "server.allowed_origins")]
        allowed_origins: Vec<String>,
    }
    let flag = Flag { allowed_origins: vec!["https://a.example".into(), "http://b.example:8080".into()] };
    let layers = Layers::new().file(&path).and_then(|l| l.over(&flag, |_| "--allowed-origin".into()));
    let settings = Settings::try_from(layers.expect("merged")).expect("valid");
    assert_eq!(
        settings.serve.allowed_origins.texts(),
        vec!["https://a.example".to_owned(), "http://b.example:8080".to_owned()]
    );
    let text = settings.effective();
    let line = text.lines().find(|l| l.starts_with("allowed_origins = ")).expect("the key is shown");
    assert!(
        line.contains("[\"https://a.example\", \"http://b.example:8080\"]")
            && line.ends_with("# --allowed-origin"),
        "{line}"
    );
}

#[test]
fn an_allowed_origin_that_is_not_an_origin_is_refused_naming_the_key() {
    let message = settings("[server]\nallowed_origins = [\"https://a.example/dashboards\"]\n")
        .expect_err("a path is not part of an origin")
        .to_string();
    assert!(
        message.starts_with("server.allowed_origins: `https://a.example/dashboards` is not an origin"),
        "{message}"
    );
}

#[test]
fn the_connection_limits_come_from_the_server_section_and_config_check_shows_them() {
    let (_dir, path) =
        file("[server]\nheader_read_timeout = \"5s\"\nidle_timeout = \"2s\"\nmax_connections = 500\n");
    let settings = Settings::try_from(Layers::new().file(&path).expect("read")).expect("valid");
    let limits = settings.serve.connections;
    let text = settings.effective();

    assert_eq!(limits.header_read_timeout, Duration::from_secs(5));
    assert_eq!(limits.idle_timeout, Duration::from_secs(2));
    assert_eq!(limits.max_connections, 500);
    let origin = format!("# {}", path.display());
    for (key, value) in
        [("header_read_timeout", "\"5s\""), ("idle_timeout", "\"2s\""), ("max_connections", "500")]
    {
        let line = text.lines().find(|l| l.starts_with(&format!("{key} = "))).expect(key);
        assert!(line.contains(value) && line.ends_with(&origin), "{line}");
    }
}

#[test]
fn the_connection_limits_have_defaults_and_refuse_values_that_cannot_work() {
    let defaults = settings("").expect("valid").serve.connections;
    assert_eq!(
        (defaults.header_read_timeout, defaults.idle_timeout, defaults.max_connections),
        (Duration::from_secs(30), Duration::from_secs(15), 10_000)
    );
    let refused = |text: &str| settings(text).expect_err("refused").to_string();
    assert_eq!(
        refused("[server]\nidle_timeout = \"1m\"\n"),
        "server.idle_timeout: must not be longer than header_read_timeout, which bounds the wait for a request anyway"
    );
    assert_eq!(
        refused("[server]\nheader_read_timeout = \"0s\"\n"),
        "server.header_read_timeout: must be above 0"
    );
    assert_eq!(refused("[server]\nmax_connections = 0\n"), "server.max_connections: must be above 0");
}

#[test]
fn the_nats_section_configures_the_event_bus_and_config_check_hides_its_credentials() {
    let text = "[nats]\nurl = \"nats://bus:s3cret@nats.internal:4222\"\nstream = \"EVENTS\"\n\
                subjects = [\"platform.voice.>\"]\nconsumer = \"vm\"\nmax_in_flight = 64\n";
    let configured = settings(text).expect("valid");
    let bus = configured.serve.bus.as_ref().expect("a bus is configured");
    assert_eq!((bus.stream.as_str(), bus.consumer.as_str(), bus.max_in_flight), ("EVENTS", "vm", 64));
    assert_eq!(bus.subjects, vec!["platform.voice.>".to_owned()]);
    assert_eq!(bus.dead_letter_subject, "voicemon.dead", "the default");
    let effective = configured.effective();
    assert!(!effective.contains("s3cret"), "{effective}");
    assert!(effective.contains("url = \"nats://nats.internal:4222\" (credentials redacted)"), "{effective}");
    assert!(settings("").expect("valid").serve.bus.is_none(), "no URL, no bus");
}

#[test]
fn a_nats_section_that_cannot_work_is_refused_naming_the_key() {
    let refused = |text: &str| settings(text).expect_err("refused").to_string();
    assert_eq!(
        refused("[nats]\nurl = \"http://nats:4222\"\n"),
        "nats.url: must start with nats://, tls://, ws:// or wss://"
    );
    assert!(refused("[nats]\nurl = \"nats://n:4222\"\nstream = \"a.b\"\n").starts_with("nats.stream: "));
    assert!(refused("[nats]\nurl = \"nats://n:4222\"\nsubjects = []\n").starts_with("nats.subjects: "));
    assert_eq!(
        refused("[nats]\nurl = \"nats://n:4222\"\nmax_in_flight = 0\n"),
        "nats.max_in_flight: must be above 0"
    );
}

#[test]
fn the_limits_section_sets_each_rate_and_burst_and_leaves_the_rest_at_their_defaults() {
    let limits =
        settings("[limits]\ningest_events_per_second = 500\nquery_burst = 7\nrefusal_hold = \"250ms\"\n")
            .expect("valid")
            .serve
            .limits;
    assert_eq!(limits.ingest_events_per_second.get(), 500);
    assert_eq!(limits.query_burst.get(), 7);
    assert_eq!(limits.refusal_hold, Duration::from_millis(250));
    let defaults = crate::limits::LimitsConfig::default();
    assert_eq!(limits.ingest_burst, defaults.ingest_burst);
    assert_eq!(limits.query_requests_per_second, defaults.query_requests_per_second);
}

#[test]
fn the_limits_section_refuses_a_zero_and_a_rate_above_a_million_naming_the_key() {
    for (text, key) in [
        ("ingest_events_per_second = 0", "limits.ingest_events_per_second"),
        ("ingest_burst = 0", "limits.ingest_burst"),
        ("query_requests_per_second = 1000001", "limits.query_requests_per_second"),
        ("query_burst = 0", "limits.query_burst"),
        ("refusal_hold = \"11s\"", "limits.refusal_hold"),
    ] {
        match settings(&format!("[limits]\n{text}\n")) {
            Err(ConfigError::Value { key: found, .. }) => assert_eq!(found, key, "{text}"),
            other => panic!("{text} was not refused: {other:?}"),
        }
    }
    let message = settings("[limits]\nquery_burst = -1\n").expect_err("refused").to_string();
    assert!(message.contains("limits.query_burst"), "{message}");
}

#[test]
fn the_otlp_section_sets_how_spans_wait_and_refuses_what_cannot_work() {
    let otlp = settings("[otlp]\nspan_wait = \"2m\"\nturn_wait = \"0s\"\nmax_held_spans = 500\n")
        .expect("valid")
        .serve
        .otlp;
    assert_eq!(
        (otlp.span_wait, otlp.turn_wait, otlp.max_held_spans),
        (Duration::from_secs(120), Duration::ZERO, 500)
    );
    assert_eq!(settings("").expect("valid").serve.otlp, crate::otlp::assemble::AssemblyConfig::default());
    for (text, key) in [
        ("span_wait = \"0s\"", "otlp.span_wait"),
        ("span_wait = \"2h\"", "otlp.span_wait"),
        ("turn_wait = \"2h\"", "otlp.turn_wait"),
        ("max_held_spans = 0", "otlp.max_held_spans"),
    ] {
        match settings(&format!("[otlp]\n{text}\n")) {
            Err(ConfigError::Value { key: found, .. }) => assert_eq!(found, key, "{text}"),
            other => panic!("{text} was not refused: {other:?}"),
        }
    }
}
