//! The `voicemon` binary: a thin command line over voicemon-server, voicemon-store and
//! voicemon-simulate.

mod alerts;
mod keys;
mod settings;
mod storage;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use settings::{Given, SettingsArgs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use voicemon_core::clock::SystemClock;
use voicemon_server::config::Layers;
use voicemon_server::startup::Application;
use voicemon_simulate::SimulateOptions;

/// jemalloc, not the system's allocator: ingest allocates and frees many small strings and
/// sketches on every thread, and glibc's malloc took a quarter of the server's CPU and held
/// more memory (BENCHMARKS.md, session 11).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start: a background thread returns freed pages to the
/// system after a second instead of on later allocations (`_RJEM_MALLOC_CONF` in the
/// environment still overrides them).
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

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
    /// Check the configuration and print what `serve` would run with.
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
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate voicemon.toml with the environment and these flags over it, as `serve`
    /// would, and print the effective configuration (secrets redacted) and where each
    /// value came from.
    Check {
        /// The configuration file.
        #[arg(long, short, env = "VOICEMON_CONFIG", default_value = "voicemon.toml")]
        config: PathBuf,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// Configuration file; flags and environment take precedence over it
    /// [default: ./voicemon.toml if present]. A file named here must exist.
    #[arg(long, short, env = "VOICEMON_CONFIG")]
    config: Option<PathBuf>,
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

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", failure_text(&err));
            ExitCode::FAILURE
        }
    }
}

/// An error and its whole cause chain, as anyhow prints it (`Error: …`, then `Caused by:`
/// and one numbered line per cause), except that every line has text: a cause whose
/// message is empty is shown by its debug form, and one that only repeats the line above
/// it is left out.
fn failure_text(err: &anyhow::Error) -> String {
    let mut lines: Vec<String> = Vec::new();
    for cause in err.chain() {
        let mut text = cause.to_string();
        if text.trim().is_empty() {
            text = format!("{cause:?}");
        }
        if !lines.last().is_some_and(|above| above.ends_with(&text)) {
            lines.push(text);
        }
    }
    let mut printed = format!("Error: {}", lines.first().map_or("", String::as_str));
    if lines.len() > 1 {
        printed.push_str("\n\nCaused by:");
        for (index, text) in lines.iter().skip(1).enumerate() {
            printed.push_str(&format!("\n    {index}: {text}"));
        }
    }
    printed
}

fn run() -> Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.format(&mut Cli::command()).exit());
    // Kept to name the flag or environment variable behind each configuration value.
    let given = Given::new(Cli::command(), &matches);
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args, &given).await,
            Command::Simulate(args) => simulate_command(args).await,
            Command::Config { command: ConfigCommand::Check { config, settings } } => {
                config_check(&config, &settings, &given)
            }
            Command::Keys(args) => keys::run(args, &given).await,
            Command::Migrate(args) => migrate_command(args, &given).await,
            Command::Reprice(args) => reprice_command(args, &given).await,
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

async fn serve(args: ServeArgs, given: &Given) -> Result<()> {
    let layers = settings::demo_layer(args.demo)?.config_file(args.config.as_deref())?;
    let config = given.over(layers, &args.settings)?.serve;
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
    match voicemon_simulate::run(options, stop, |_| {}).await {
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
    let summary = voicemon_simulate::run(options, stopped, |progress| {
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

fn config_check(path: &Path, flags: &SettingsArgs, given: &Given) -> Result<()> {
    let settings = given.over(Layers::new().file(path)?, flags)?;
    println!("{} is valid", path.display());
    for line in settings.summary() {
        println!("  {line}");
    }
    println!();
    println!(
        "# What `serve` would run with: defaults < {} < environment < flags, secrets redacted.",
        path.display()
    );
    println!("# Each value is followed by where it came from.");
    print!("{}", settings.effective());
    for warning in voicemon_server::notify::cleartext_warnings(&settings.serve.alerting.receivers) {
        println!("warning: {warning}");
    }
    Ok(())
}

/// Parses a CLI time: `YYYY-MM-DD` (00:00 UTC), RFC 3339 or unix seconds.
fn parse_cli_time(text: &str) -> Result<i64> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis());
    }
    Ok(voicemon_core::window::parse_time(text)?)
}

async fn reprice_command(args: RepriceArgs, given: &Given) -> Result<()> {
    let settings = args.store.settings(given)?;
    let from_ms = parse_cli_time(&args.from)?;
    let to_ms = match &args.to {
        Some(to) => parse_cli_time(to)?,
        None => voicemon_core::clock::Clock::now_ms(&SystemClock),
    };
    anyhow::ensure!(from_ms < to_ms, "--from must be before --to");
    let (store, _) = storage::open(&settings).await?;
    let range = voicemon_core::window::TimeRange { from_ms, to_ms };
    let summary = voicemon_server::reprice::reprice(
        store.as_ref(),
        &settings.serve.prices,
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

async fn migrate_command(args: storage::StoreArgs, given: &Given) -> Result<()> {
    let (store, described) = storage::open(&args.settings(given)?).await?;
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
