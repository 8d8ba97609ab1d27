//! The `voicemon` binary: a thin command line over voicemon-server and voicemon-store.

mod alerts;
mod keys;
mod storage;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use voicemon_core::clock::SystemClock;
use voicemon_server::config::{parse_durability, FileConfig};
use voicemon_server::simulate::{self, SimulateOptions};
use voicemon_server::startup::{Application, ServeConfig};

/// Production monitoring for voice AI agents: turn latency as the caller hears it,
/// calls, and more, from the events your voice workers send.
#[derive(Parser, Debug)]
#[command(name = "voicemon", version, propagate_version = true)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "VOICEMON_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: ingest, store, API.
    Serve(ServeArgs),
    /// Send realistic voice-agent traffic to a running voicemon.
    Simulate(SimulateArgs),
    /// Check the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage API keys (stored hashed in the store).
    Keys(keys::KeysArgs),
    /// Apply the store's pending schema migrations and exit (`serve` also applies them).
    Migrate(storage::StoreArgs),
    /// Recompute the stored cost of usage after the price book changed.
    Reprice(RepriceArgs),
    /// Alerts of a running voicemon: list, silence, unsilence, history.
    Alerts(alerts::AlertsArgs),
}

#[derive(Args, Debug)]
struct RepriceArgs {
    /// Start of the range of usage to re-price (RFC 3339, YYYY-MM-DD or unix seconds).
    #[arg(long)]
    from: String,
    /// End of the range, exclusive [default: now].
    #[arg(long)]
    to: Option<String>,
    /// Only this tenant's usage.
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    store: storage::StoreArgs,
    /// The configuration file whose [[pricing.price]] entries apply [default: ./voicemon.toml if present].
    #[arg(long, short, env = "VOICEMON_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate voicemon.toml and print the settings it gives.
    Check {
        /// The configuration file.
        #[arg(long, short, env = "VOICEMON_CONFIG", default_value = "voicemon.toml")]
        config: PathBuf,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Port of the HTTP API [default: 3001].
    #[arg(long, short, env = "METRICS_API_PORT")]
    port: Option<u16>,
    /// Address to listen on [default: 0.0.0.0 with API keys, 127.0.0.1 without].
    #[arg(long, env = "VOICEMON_BIND")]
    bind: Option<IpAddr>,
    /// Where the embedded store lives [default: ./voicemon-data; ./voicemon-demo-data with --demo].
    #[arg(long, env = "VOICEMON_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Store in PostgreSQL instead: postgres://user:password@host:port/database
    /// (TimescaleDB hypertables when the extension is available).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = secret)]
    database_url: Option<SecretString>,
    /// Configuration file; flags and environment take precedence over it
    /// [default: ./voicemon.toml if present]. A file named here must exist.
    #[arg(long, short, env = "VOICEMON_CONFIG")]
    config: Option<PathBuf>,
    /// Largest ingest body in bytes [default: 10485760].
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// A group commit closes at this many events; a request is never split [default: 5000].
    #[arg(long)]
    batch_max_events: Option<usize>,
    /// No event waits longer than this for its group commit [default: 5s].
    #[arg(long, value_parser = humantime::parse_duration)]
    flush_interval: Option<Duration>,
    /// Wait this long for a fuller group when nothing else is queued [default: 0s].
    #[arg(long, value_parser = humantime::parse_duration)]
    flush_linger: Option<Duration>,
    /// Merge derived data (latency rollups, provider minutes, call totals) into its tables
    /// this often; queries merge it first anyway [default: 1s].
    #[arg(long, value_parser = humantime::parse_duration)]
    derived_flush_interval: Option<Duration>,
    /// full: commits survive power loss; normal: they survive a crash of voicemon.
    #[arg(long)]
    durability: Option<String>,
    /// The platform's Redis whose cache hit rate to watch (redis://host:port, or
    /// rediss://host:port for TLS).
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_parser = secret)]
    redis_url: Option<SecretString>,
    /// Slack incoming webhook to send alerts to (adds a receiver named "slack").
    #[arg(long, env = "SLACK_WEBHOOK_URL", hide_env_values = true, value_parser = secret)]
    slack_webhook_url: Option<SecretString>,
    /// Also run the traffic simulator in-process, so numbers show at once.
    #[arg(long)]
    demo: bool,
}

#[derive(Args, Debug)]
struct SimulateArgs {
    /// Base URL of the voicemon to send to.
    #[arg(long, env = "VOICEMON_URL", default_value = "http://127.0.0.1:3001")]
    url: String,
    /// An ingest or admin key, when the server has keys.
    #[arg(long, env = "VOICEMON_API_KEY", hide_env_values = true, value_parser = secret)]
    api_key: Option<SecretString>,
    /// How many tenants.
    #[arg(long, default_value_t = 5)]
    tenants: usize,
    /// Calls started per minute, over all tenants.
    #[arg(long, default_value_t = 60.0)]
    calls_per_minute: f64,
    /// Stop after this long (e.g. 10m); runs until Ctrl-C when absent.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// First send this much history (e.g. 1h), as fast as the server takes it.
    #[arg(long, value_parser = humantime::parse_duration)]
    backfill: Option<Duration>,
    /// Seed for reproducible traffic.
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Simulate(args) => simulate_command(args).await,
            Command::Config { command: ConfigCommand::Check { config } } => config_check(&config),
            Command::Keys(args) => keys::run(args).await,
            Command::Migrate(args) => migrate_command(args).await,
            Command::Reprice(args) => reprice_command(args).await,
            Command::Alerts(args) => alerts::run(args).await,
        }
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // tokio_postgres logs every server NOTICE at info ("… already exists, skipping").
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A command-line or environment value that must never be printed (URLs with
/// passwords or secret paths, API keys).
pub(crate) fn secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text.to_owned()))
}

/// The file configuration is read from when none is named.
const DEFAULT_CONFIG: &str = "voicemon.toml";

/// Reads the named configuration file (which must exist), or `./voicemon.toml` when
/// none is named and it exists; returns the path used for messages.
pub(crate) fn load_file_config(named: Option<&Path>) -> Result<(FileConfig, PathBuf)> {
    let path = named.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    if named.is_none() && !path.exists() {
        return Ok((FileConfig::default(), path));
    }
    Ok((FileConfig::load(&path)?, path))
}

fn serve_config(args: &ServeArgs, file: &FileConfig, config_path: &Path) -> Result<ServeConfig> {
    let default_dir = if args.demo { "./voicemon-demo-data" } else { "./voicemon-data" };
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.server.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(default_dir));
    let mut config = ServeConfig::new(data_dir);
    config.postgres = args
        .database_url
        .as_ref()
        .map(|url| storage::postgres_config(url.expose_secret(), file))
        .transpose()?;
    config.port = args.port.or(file.server.port).unwrap_or(config.port);
    config.bind = args.bind.or(file.server.bind);
    config.max_body_bytes =
        args.max_body_bytes.or(file.server.max_body_bytes).unwrap_or(config.max_body_bytes);
    config.writer = file.ingest.writer_config(&config.writer)?;
    if let Some(max) = args.batch_max_events {
        anyhow::ensure!(max > 0, "--batch-max-events must be above 0");
        config.writer.max_events = max;
    }
    config.writer.max_wait = args.flush_interval.unwrap_or(config.writer.max_wait);
    config.writer.linger = args.flush_linger.unwrap_or(config.writer.linger);
    if let Some(every) = args.derived_flush_interval {
        anyhow::ensure!(!every.is_zero(), "--derived-flush-interval must be above 0");
        config.writer.derived_flush = every;
    }
    config.prices = file.price_book(config_path)?;
    config.health = file.health.health_config()?;
    config.prometheus = file.prometheus.limits()?;
    (config.alerting, config.delivery) =
        file.alerting.alerting_config(args.slack_webhook_url.as_ref().map(|url| url.expose_secret()))?;
    if let Some(url) = &args.redis_url {
        voicemon_server::health::redis::RedisTarget::parse(url.expose_secret())
            .map_err(|err| anyhow::anyhow!("REDIS_URL: {err}"))?;
        config.health.redis_url = Some(url.clone());
    }
    config.durability = match &args.durability {
        Some(text) => parse_durability(text)?,
        None => file.ingest.durability()?.unwrap_or(config.durability),
    };
    Ok(config)
}

async fn serve(args: ServeArgs) -> Result<()> {
    let (file, config_path) = load_file_config(args.config.as_deref())?;
    let config = serve_config(&args, &file, &config_path)?;
    for warning in voicemon_server::notify::cleartext_warnings(&config.alerting.receivers) {
        tracing::warn!("{warning}");
    }
    let app = Application::build(config, Arc::new(SystemClock)).await.context("voicemon could not start")?;
    let addr = app.local_addr();
    tracing::info!(
        "voicemon listening on http://{addr} (store: {}), ingest at POST /v1/events",
        app.storage()
    );
    if app.is_open() {
        tracing::warn!(
            "running OPEN: no API keys exist, so anyone on this machine may read and write; \
             listening on loopback only. Create keys with `voicemon keys create`"
        );
    }
    let (stop_demo, demo_stopped) = watch::channel(false);
    let demo = args.demo.then(|| tokio::spawn(run_demo(addr, demo_stopped)));
    let signal = async move {
        shutdown_signal().await;
        let _ = stop_demo.send(true);
    };
    app.run_until(signal).await.context("the HTTP server failed")?;
    if let Some(demo) = demo {
        demo.abort();
    }
    tracing::info!("voicemon stopped cleanly");
    Ok(())
}

async fn run_demo(addr: std::net::SocketAddr, stop: watch::Receiver<bool>) {
    let options = SimulateOptions {
        base_url: format!("http://{addr}"),
        backfill: Some(Duration::from_secs(15 * 60)),
        ..SimulateOptions::default()
    };
    tracing::info!("demo: simulating voice traffic (15 minutes of history, then live)");
    match simulate::run(options, stop, |_| {}).await {
        Ok(summary) => tracing::info!("demo simulator stopped: {} events sent", summary.events_sent),
        Err(err) => tracing::warn!(error = %err, "demo simulator stopped"),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

async fn simulate_command(args: SimulateArgs) -> Result<()> {
    let options = SimulateOptions {
        base_url: args.url.trim_end_matches('/').to_owned(),
        api_key: args.api_key.map(|key| key.expose_secret().to_owned()),
        tenants: args.tenants,
        calls_per_minute: args.calls_per_minute,
        duration: args.duration,
        backfill: args.backfill,
        seed: args.seed,
        ..SimulateOptions::default()
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let summary = simulate::run(options, stopped, |progress| {
        eprint!(
            "\r{:>6.0}s  events sent {:>9}  accepted {:>9}  rejected {:>5}  calls {:>6} started {:>6} ended  failed requests {}   ",
            progress.elapsed.as_secs_f64(),
            progress.events_sent,
            progress.accepted,
            progress.rejected,
            progress.calls_started,
            progress.calls_ended,
            progress.failed_requests,
        );
    })
    .await;
    eprintln!();
    let summary = summary.context("the simulation stopped")?;
    println!("{summary}");
    Ok(())
}

fn config_check(path: &Path) -> Result<()> {
    let file = FileConfig::load(path)?;
    // The environment `serve` would see, so its URLs are checked too (and never printed).
    let from_env =
        |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty()).map(SecretString::from);
    let args = ServeArgs {
        port: None,
        bind: None,
        data_dir: None,
        database_url: from_env("DATABASE_URL"),
        config: Some(path.to_owned()),
        max_body_bytes: None,
        batch_max_events: None,
        flush_interval: None,
        flush_linger: None,
        derived_flush_interval: None,
        durability: None,
        redis_url: from_env("REDIS_URL"),
        slack_webhook_url: from_env("SLACK_WEBHOOK_URL"),
        demo: false,
    };
    let config = serve_config(&args, &file, path)?;
    println!("{} is valid", path.display());
    println!("  port:              {}", config.port);
    println!(
        "  bind:              {}",
        config.bind.map(|ip| ip.to_string()).unwrap_or_else(|| "0.0.0.0 with keys, 127.0.0.1 without".into())
    );
    println!("  data_dir:          {}", config.data_dir.display());
    println!(
        "  store:             {}",
        match &args.database_url {
            Some(url) => format!(
                "PostgreSQL {} (DATABASE_URL)",
                voicemon_server::startup::describe_url(url.expose_secret())
            ),
            None => "embedded SQLite in data_dir (DATABASE_URL is not set)".to_owned(),
        }
    );
    let postgres = file.postgres.postgres_config("postgres://")?;
    println!(
        "  postgres:          used when DATABASE_URL is set; pool {}, {} concurrent group commits, retention {}, \
         {} day partitions ahead, timescaledb {}, compress after {}",
        postgres.pool_size,
        postgres.concurrent_writes,
        humantime::format_duration(postgres.retention),
        postgres.partitions_ahead,
        if postgres.timescaledb { "when available" } else { "off" },
        postgres.compress_after.map(|d| humantime::format_duration(d).to_string()).unwrap_or_else(|| "off".into()),
    );
    println!("  max_body_bytes:    {}", config.max_body_bytes);
    println!("  batch_max_events:  {}", config.writer.max_events);
    println!("  flush_interval:    {}", humantime::format_duration(config.writer.max_wait));
    println!("  flush_linger:      {}", humantime::format_duration(config.writer.linger));
    println!("  derived flush:     every {}", humantime::format_duration(config.writer.derived_flush));
    println!("  durability:        {:?}", config.durability);
    println!(
        "  health:            stale after {}, down after {}, retention {}, redis {}",
        humantime::format_duration(Duration::from_millis(config.health.rules.stale_after_ms as u64)),
        humantime::format_duration(Duration::from_millis(config.health.rules.down_after_ms as u64)),
        humantime::format_duration(config.health.retention),
        config.health.redis_url.as_ref().map(|_| "watched").unwrap_or("not watched"),
    );
    println!(
        "  alerting:          {} rules ({}), evaluated every {}, receivers: {}",
        config.alerting.rules.len(),
        config.alerting.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
        humantime::format_duration(config.alerting.evaluation_interval),
        if config.alerting.receivers.is_empty() {
            "none (set SLACK_WEBHOOK_URL or [[alerting.receiver]])".to_owned()
        } else {
            config.alerting.receivers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
        },
    );
    println!(
        "  prometheus:        max_tenants {}, max_providers {}: at most {} series at /metrics",
        config.prometheus.max_tenants,
        config.prometheus.max_providers,
        config.prometheus.worst_case_series(),
    );
    println!(
        "  price book:        {} entries ({} shipped defaults, {} from this file); check them against your contracts",
        config.prices.entries().len(),
        file_defaults_count(),
        file.pricing.price.len()
    );
    for warning in voicemon_server::notify::cleartext_warnings(&config.alerting.receivers) {
        println!("warning: {warning}");
    }
    Ok(())
}

fn file_defaults_count() -> usize {
    voicemon_core::pricing::PriceBook::with_overrides(&[], "").map(|book| book.entries().len()).unwrap_or(0)
}

/// Parses a CLI time: `YYYY-MM-DD` (00:00 UTC), RFC 3339 or unix seconds.
fn parse_cli_time(text: &str) -> Result<i64> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis());
    }
    Ok(voicemon_core::window::parse_time(text)?)
}

async fn reprice_command(args: RepriceArgs) -> Result<()> {
    let (file, config_path) = load_file_config(args.config.as_deref())?;
    let book = file.price_book(&config_path)?;
    let from_ms = parse_cli_time(&args.from)?;
    let to_ms = match &args.to {
        Some(to) => parse_cli_time(to)?,
        None => voicemon_core::clock::Clock::now_ms(&SystemClock),
    };
    anyhow::ensure!(from_ms < to_ms, "--from must be before --to");
    let (store, _) = storage::open(&args.store, &file).await?;
    let range = voicemon_core::window::TimeRange { from_ms, to_ms };
    let summary = voicemon_server::reprice::reprice(
        store.as_ref(),
        &book,
        args.tenant.as_deref(),
        range,
        |done, total| {
            eprint!("\r{}", progress_bar(done, total));
        },
    )
    .await;
    eprintln!();
    println!(
        "{}",
        summary.context("re-pricing stopped; what was done so far is stored, run it again to finish")?
    );
    Ok(())
}

async fn migrate_command(args: storage::StoreArgs) -> Result<()> {
    let (file, _) = load_file_config(None)?;
    let (store, described) = storage::open(&args, &file).await?;
    let version = store.schema_version().await.context("cannot read the schema version")?;
    println!("{described}: schema at version {version}, nothing pending");
    Ok(())
}

/// `[##########----------]  50%  5000/10000 lines`
fn progress_bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let done = done.min(total);
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    format!(
        "[{}{}] {percent:>3}%  {done}/{total} usage lines",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize)
    )
}
