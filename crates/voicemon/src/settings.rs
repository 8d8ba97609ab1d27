//! The command line as the top layer of the configuration. The flags of `serve` and
//! `config check` (with their environment variables, which clap reads) serialise to the
//! keys of `voicemon.toml` they override, so `voicemon_server::config::Layers` merges them
//! over the file in one place; [`Given`] names the flag or variable each value came from.

use anyhow::Result;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command};
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use voicemon_server::config::{Layers, Settings};

/// The settings `serve` takes from the command line and the environment; each one
/// overrides the file key it is serialised as. Absent values set nothing.
#[derive(Args, Debug, Serialize)]
pub struct SettingsArgs {
    /// Port of the HTTP API [default: 3001].
    #[arg(long, short, env = "METRICS_API_PORT")]
    #[serde(rename = "server.port")]
    port: Option<u16>,
    /// Address to listen on [default: 0.0.0.0 with API keys, 127.0.0.1 without].
    #[arg(long, env = "VOICEMON_BIND")]
    #[serde(rename = "server.bind")]
    bind: Option<IpAddr>,
    /// Where the embedded store lives [default: ./voicemon-data; ./voicemon-demo-data with --demo].
    #[arg(long, env = "VOICEMON_DATA_DIR")]
    #[serde(rename = "server.data_dir")]
    data_dir: Option<PathBuf>,
    /// Store in PostgreSQL instead: postgres://user:password@host:port/database
    /// (TimescaleDB hypertables when the extension is available).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = crate::secret)]
    #[serde(rename = "postgres.database_url", serialize_with = "exposed")]
    database_url: Option<SecretString>,
    /// A web origin (https://grafana.example.com) whose pages may call voicemon besides its
    /// own page; repeat the flag, or separate origins with commas in the variable.
    #[arg(long = "allowed-origin", env = "VOICEMON_ALLOWED_ORIGINS", value_delimiter = ',')]
    #[serde(rename = "server.allowed_origins")]
    allowed_origins: Option<Vec<String>>,
    /// Largest ingest body in bytes [default: 10485760].
    #[arg(long)]
    #[serde(rename = "server.max_body_bytes")]
    max_body_bytes: Option<usize>,
    /// A group commit closes at this many events; a request is never split [default: 5000].
    #[arg(long)]
    #[serde(rename = "ingest.batch_max_events")]
    batch_max_events: Option<usize>,
    /// No event waits longer than this for its group commit [default: 5s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(rename = "ingest.flush_interval", with = "humantime_serde")]
    flush_interval: Option<Duration>,
    /// Wait this long for a fuller group when nothing else is queued [default: 0s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(rename = "ingest.flush_linger", with = "humantime_serde")]
    flush_linger: Option<Duration>,
    /// Merge derived data (latency rollups, provider minutes, call totals) into its tables
    /// this often; queries merge or flush it first anyway [default: 5s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(rename = "ingest.derived_flush_interval", with = "humantime_serde")]
    derived_flush_interval: Option<Duration>,
    /// full: commits survive power loss; normal: they survive a crash of voicemon [default: full].
    #[arg(long)]
    #[serde(rename = "ingest.durability")]
    durability: Option<String>,
    /// The platform's Redis whose cache hit rate to watch (redis://host:port, or
    /// rediss://host:port for TLS).
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_parser = crate::secret)]
    #[serde(rename = "health.redis_url", serialize_with = "exposed")]
    redis_url: Option<SecretString>,
    /// Consume events from NATS JetStream too (nats://host:4222); the stream, subjects and
    /// consumer are in voicemon.toml's [nats].
    #[arg(long, env = "NATS_URL", hide_env_values = true, value_parser = crate::secret)]
    #[serde(rename = "nats.url", serialize_with = "exposed")]
    nats_url: Option<SecretString>,
    /// Slack incoming webhook to send alerts to (adds a receiver named "slack").
    #[arg(long, env = "SLACK_WEBHOOK_URL", hide_env_values = true, value_parser = crate::secret)]
    #[serde(rename = "alerting.slack_webhook_url", serialize_with = "exposed")]
    slack_webhook_url: Option<SecretString>,
}

/// Hands a secret to the configuration merge, which holds it in memory only and gives it
/// back as a `SecretString`.
pub fn exposed<S: Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    secret.as_ref().map(|secret| secret.expose_secret()).serialize(serializer)
}

/// What `--demo` changes below the file: the data directory, kept apart from real data.
#[derive(Serialize)]
struct DemoDefaults {
    #[serde(rename = "server.data_dir")]
    data_dir: &'static str,
}

/// The lowest layer: `--demo`'s data directory when asked for, else nothing.
pub fn demo_layer(demo: bool) -> Result<Layers> {
    let layers = Layers::new();
    if !demo {
        return Ok(layers);
    }
    Ok(layers.over(&DemoDefaults { data_dir: "./voicemon-demo-data" }, |_| "--demo".into())?)
}

/// The parsed command line, kept to tell where a value came from: the flag, or the
/// environment variable clap read when the flag was absent.
pub struct Given {
    /// Each command from the root to the one that runs, with its matches.
    path: Vec<(Command, ArgMatches)>,
}

impl Given {
    /// The path of subcommands `matches` took through `root`.
    pub fn new(root: Command, matches: &ArgMatches) -> Given {
        let mut path = vec![(root, matches.clone())];
        while let Some((name, sub_matches)) = path.last().and_then(|(_, m)| m.subcommand()) {
            let Some(sub) = path.last().and_then(|(command, _)| command.find_subcommand(name)).cloned()
            else {
                break;
            };
            let sub_matches = sub_matches.clone();
            path.push((sub, sub_matches));
        }
        Given { path }
    }

    /// `layers` with the command line's `flags` over them, judged.
    pub fn over(&self, layers: Layers, flags: &impl Serialize) -> Result<Settings> {
        let layers = layers.over(flags, |key| self.origin(key))?;
        Ok(Settings::try_from(layers)?)
    }

    /// The flag or environment variable that set `key` (its last part is the argument's
    /// id: `server.port` was set by the argument `port`).
    pub fn origin(&self, key: &str) -> String {
        let id = key.rsplit('.').next().unwrap_or(key);
        for (command, matches) in self.path.iter().rev() {
            let Some(arg) = command.get_arguments().find(|arg| arg.get_id() == id) else { continue };
            let env = arg.get_env().map(|name| name.to_string_lossy().into_owned());
            let flag = arg.get_long().map(|long| format!("--{long}"));
            match (matches.value_source(id), env, flag) {
                (Some(ValueSource::EnvVariable), Some(env), _) => return env,
                (Some(_), _, Some(flag)) => return flag,
                _ => continue,
            }
        }
        "the command line".to_owned()
    }
}
