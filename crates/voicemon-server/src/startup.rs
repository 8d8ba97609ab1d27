//! Builds the application from its configuration and runs it until told to stop.
//!
//! Shutdown order: stop accepting and finish in-flight requests; the batch writer stops
//! lingering meanwhile and, once the last request is answered, commits what it holds.
//! Nothing acknowledged is lost and nothing buffered is dropped.

use crate::alerting::Engine;
use crate::api::connection::Connection;
use crate::api::router;
use crate::auth::{KeyRing, RELOAD_EVERY};
use crate::bus;
use crate::config::describe_url;
use crate::connections::{self, ConnectionLimits};
use crate::health::sampler::{self, SamplerConfig};
use crate::ingest::writer::BatchWriter;
use crate::limits::RateLimits;
use crate::live::snapshot::Sources;
use crate::live::LiveHub;
use crate::notify;
use crate::otlp::OtlpIngest;
use crate::redis::{RedisMonitor, RedisTarget};
use crate::roles::{Role, Roles};
use crate::state::AppState;
use crate::telemetry::Telemetry;
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::sync::{broadcast, Notify};
use voicemon_core::clock::Clock;
use voicemon_store::postgres::{PostgresConfig, PostgresStore};
use voicemon_store::sqlite::{Durability, SqliteStore};
use voicemon_store::{AdminStore, IngestStore, Store, StoreError};

/// What the application is built from, validated by [`crate::config`].
pub use crate::config::{HealthConfig, ServeConfig};

/// How long shutdown waits for live WebSocket connections to close.
const LIVE_CLOSE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("REDIS_URL: {0}")]
    Redis(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A built application, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    writer_task: tokio::task::JoinHandle<()>,
    /// Ends once the roles this instance held are given up, after the shutdown signal.
    roles_task: tokio::task::JoinHandle<()>,
    shutdown: watch::Sender<bool>,
    storage: String,
    connections: ConnectionLimits,
}

impl Application {
    pub async fn build(config: ServeConfig, clock: Arc<dyn Clock>) -> Result<Application, StartError> {
        let connections = connection_limits(config.connections);
        let (store, storage) =
            open_store(&config.data_dir, config.durability, config.postgres.as_ref()).await?;
        let has_keys = !store.active_key_hashes().await?.is_empty();
        let ip = choose_bind(config.bind, has_keys);
        let addr = SocketAddr::new(ip, config.port);
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        // Each part gets the narrow store trait it uses: `store.clone()` upcasts the
        // `Arc<dyn Store>` to it (`Arc::clone(&store)` would infer the narrow type instead).
        let keys = KeyRing::load(store.clone(), ip.is_loopback()).await?;
        let telemetry = Telemetry::new(config.prometheus);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (writer, writer_task) =
            BatchWriter::spawn(store.clone(), config.writer, telemetry.clone(), shutdown_rx);
        let prices = Arc::new(config.prices);
        if let Some(bus) = config.bus {
            tracing::info!(stream = %bus.stream, consumer = %bus.consumer, "consuming events from NATS JetStream");
            bus::spawn(
                bus,
                writer.clone(),
                Arc::clone(&prices),
                Arc::clone(&clock),
                telemetry.clone(),
                shutdown.subscribe(),
            );
        }
        let redis = match &config.health.redis_url {
            Some(url) => {
                let target = RedisTarget::parse(url.expose_secret()).map_err(StartError::Redis)?;
                RedisMonitor::spawn(
                    target,
                    config.health.redis_poll,
                    Arc::clone(&clock),
                    shutdown.subscribe(),
                )
            }
            None => RedisMonitor::disabled(),
        };
        let (roles, roles_task) =
            Roles::start(store.clone(), Arc::clone(&clock), telemetry.clone(), shutdown.subscribe()).await;
        let sampler = SamplerConfig { every: config.health.sample_every, retention: config.health.retention };
        sampler::spawn(
            Arc::clone(&store),
            redis.clone(),
            config.health.rules,
            sampler,
            Arc::clone(&clock),
            roles.clone(),
            shutdown.subscribe(),
        );
        let local = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let link_base = config.alerting.public_url.clone().unwrap_or_else(|| format!("http://{local}"));
        let wake = Arc::new(Notify::new());
        let (alert_events, _) = broadcast::channel(256);
        let engine = Engine::load(
            Arc::clone(&store),
            redis.clone(),
            config.health.rules,
            config.alerting.clone(),
            link_base,
            alert_events.clone(),
            clock.now_ms(),
        )
        .await?;
        engine.spawn(
            Arc::clone(&clock),
            roles.clone(),
            Arc::clone(&wake),
            telemetry.clone(),
            shutdown.subscribe(),
        );
        notify::spawn_dispatcher(
            store.clone(),
            config.alerting.receivers.clone(),
            config.delivery,
            Arc::clone(&clock),
            wake,
            telemetry.clone(),
            shutdown.subscribe(),
        );
        let alerting = Arc::new(config.alerting);
        let sources = Sources {
            store: Arc::clone(&store),
            redis: redis.clone(),
            health_rules: config.health.rules,
            alerting: Arc::clone(&alerting),
            clock: Arc::clone(&clock),
        };
        let live =
            LiveHub::new(sources, config.live, telemetry.live.clone(), alert_events, shutdown.subscribe());
        let limits = RateLimits::new(config.limits, Arc::clone(&clock), telemetry.clone());
        let otlp = OtlpIngest::new(
            config.otlp,
            writer.clone(),
            Arc::clone(&prices),
            Arc::clone(&clock),
            telemetry.clone(),
        );
        otlp.spawn(shutdown.subscribe());
        let state = AppState {
            store,
            writer,
            keys,
            clock,
            telemetry,
            max_body_bytes: config.max_body_bytes,
            allowed_origins: Arc::new(config.allowed_origins.clone()),
            prices,
            redis,
            health_rules: config.health.rules,
            alerting,
            live,
            limits,
            otlp,
        };
        spawn_maintenance(state.store.clone(), Arc::clone(&state.clock), roles, shutdown.subscribe());
        spawn_derived_flusher(state.store.clone(), config.writer.derived_flush, shutdown.subscribe());
        Ok(Application { listener, state, writer_task, roles_task, shutdown, storage, connections })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Which store serves, for the start-up line: the SQLite file or the PostgreSQL server.
    pub fn storage(&self) -> &str {
        &self.storage
    }

    /// Whether the server runs without API keys (loopback only).
    pub fn is_open(&self) -> bool {
        self.state.keys.is_open()
    }

    /// Serves until `signal` completes, then shuts down in order.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Application { listener, state, writer_task, roles_task, shutdown, connections, .. } = self;
        let reload = tokio::spawn(reload_keys(state.keys.clone(), shutdown.subscribe()));
        let live = state.live.clone();
        let store = Arc::clone(&state.store);
        let otlp = state.otlp.clone();
        let app = router(state);
        let stop = shutdown.clone();
        let served = connections::serve(listener, Connection::new, app, connections, async move {
            signal.await;
            tracing::info!("shutting down: finishing in-flight requests, then flushing");
            let _ = stop.send(true);
        })
        .await;
        let _ = shutdown.send(true);
        // Live connections were told to close (1001) with the shutdown signal; a client
        // that does not finish the close handshake is not waited for long.
        let open = live.wait_closed(LIVE_CLOSE_WAIT).await;
        if open > 0 {
            tracing::warn!(open, "live connections still open at shutdown; leaving them");
        }
        // No request adds spans any more: what waits for its turn is stored as it is.
        otlp.drain().await;
        drop(otlp);
        // The router (and with it the last BatchWriter) is gone: the writer drains and ends.
        if let Err(err) = writer_task.await {
            tracing::error!(error = %err, "batch writer ended abnormally");
        }
        // Nothing more is written: merge the last derived data (the journal would replay
        // it at the next start otherwise).
        if let Err(err) = store.flush_derived().await {
            tracing::warn!(error = %err, "cannot flush derived data at shutdown; it is replayed at the next start");
        }
        // Another instance takes this one's roles at once rather than when the leases expire.
        if let Err(err) = roles_task.await {
            tracing::warn!(error = %err, "the lease task ended abnormally; its leases expire by themselves");
        }
        reload.abort();
        served
    }
}

/// Opens PostgreSQL when configured, else the embedded store in `data_dir` (applying
/// migrations), and describes it.
pub async fn open_store(
    data_dir: &std::path::Path,
    durability: Durability,
    postgres: Option<&PostgresConfig>,
) -> Result<(Arc<dyn Store>, String), StoreError> {
    if let Some(postgres) = postgres {
        let store = PostgresStore::connect(postgres.clone()).await?;
        let described = format!(
            "postgresql {} ({} partitioning)",
            describe_url(postgres.url.expose_secret()),
            store.partitioning().as_str()
        );
        return Ok((Arc::new(store), described));
    }
    let data_dir = data_dir.to_owned();
    let sqlite = tokio::task::spawn_blocking(move || SqliteStore::open(&data_dir, durability))
        .await
        .map_err(|err| StoreError::Internal(err.to_string()))??;
    let described = format!("sqlite {}", sqlite.path().display());
    Ok((Arc::new(sqlite), described))
}

/// Merges derived data into its tables every `every`, so memory stays bounded and SQL
/// readers (Grafana) see at most that much delay.
fn spawn_derived_flusher(store: Arc<dyn IngestStore>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.changed() => return,
            }
            let started = std::time::Instant::now();
            match store.flush_derived().await {
                Ok(0) => {}
                Ok(rows) => tracing::debug!(
                    rows,
                    took_ms = started.elapsed().as_millis() as u64,
                    "derived data flushed"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot flush derived data; it stays pending and journalled")
                }
            }
        }
    });
}

/// How often the store's housekeeping (partitions ahead, retention) runs.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);

/// Only the instance holding the maintenance role runs it.
fn spawn_maintenance(
    store: Arc<dyn AdminStore>,
    clock: Arc<dyn Clock>,
    roles: Roles,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        // The store did its housekeeping when it opened: the first run is an hour away.
        let mut every =
            tokio::time::interval_at(tokio::time::Instant::now() + MAINTENANCE_EVERY, MAINTENANCE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
            if !roles.holds(Role::Maintenance) {
                continue;
            }
            match store.maintain(clock.now_ms()).await {
                Ok(0) => {}
                Ok(dropped) => tracing::info!(dropped, "store maintenance dropped partitions past retention"),
                Err(err) => tracing::warn!(error = %err, "store maintenance failed; retrying in an hour"),
            }
        }
    });
}

/// The configured connection limits, with the cap lowered to fit the open-file limit
/// (raised to the hard limit first).
fn connection_limits(configured: ConnectionLimits) -> ConnectionLimits {
    let files = match connections::raise_open_file_limit() {
        Ok(files) => files.now,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open-file limit; the connection cap is as configured");
            return configured;
        }
    };
    let cap = connections::fitting_cap(configured.max_connections, files);
    if cap < configured.max_connections {
        tracing::warn!(
            configured = configured.max_connections,
            cap,
            "server.max_connections lowered from {} to {cap} to fit the open-file limit of {files}",
            configured.max_connections
        );
    }
    tracing::info!(
        max_connections = cap,
        header_read_timeout = %humantime::format_duration(configured.header_read_timeout),
        idle_timeout = %humantime::format_duration(configured.idle_timeout),
        "accepting at most {cap} HTTP connections at once"
    );
    ConnectionLimits { max_connections: cap, ..configured }
}

fn choose_bind(requested: Option<IpAddr>, has_keys: bool) -> IpAddr {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    match requested {
        Some(ip) if has_keys || ip.is_loopback() => ip,
        Some(ip) => {
            tracing::warn!(%ip, "no api keys exist: refusing to listen on {ip}, listening on loopback only");
            loopback
        }
        None if has_keys => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => loopback,
    }
}

async fn reload_keys(keys: KeyRing, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(RELOAD_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => keys.reload().await,
            _ = shutdown.changed() => return,
        }
    }
}
