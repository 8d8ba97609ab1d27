//! voicemon-server: the HTTP API, the ingest pipeline, alerting and notifications.
//!
//! # Layout
//! - [`startup`]: builds the application from its configuration; ordered shutdown.
//! - [`connections`]: the accept loop under the router: connection cap, header-read and
//!   idle timeouts, the open-file limit.
//! - [`api`]: the HTTP edge: every route, the extractors, the one [`api::error::ApiError`],
//!   the request trace (method, route, status, latency, `x-request-id`).
//! - [`query`]: the read model every answer comes from (REST, live view, alert engine).
//! - [`ingest`]: the group-commit [`ingest::writer`] behind `POST /v1/events`.
//! - [`bus`]: events from NATS JetStream (a durable pull consumer, acked after the commit).
//! - [`otlp`]: OpenTelemetry traces (Pipecat, LiveKit Agents) assembled into turns, usage
//!   and calls, then stored like events.
//! - [`alerting`]: the alert engine (rules → alerts → notices → outbox).
//! - [`notify`]: receivers (Slack, webhook, Alertmanager) and delivery of the outbox.
//! - [`outbound`]: the HTTP client of every outbound request (rustls, the system trust
//!   store); it is `voicemon_tls::http`, shared with the simulator (`voicemon-simulate`).
//! - [`live`]: the live view: feeds of snapshots and alert pushes per scope, one WebSocket
//!   connection's life, and the embedded page.
//! - [`auth`]: API keys, roles, tenant scope.
//! - [`origin`]: which web origins may call, and which `Host` names a server without keys
//!   answers to.
//! - [`limits`]: per-caller rate limits (token buckets) of ingest and queries.
//! - [`config`]: one configuration tree: `voicemon.toml`, environment and flags merged,
//!   validated into the [`config::ServeConfig`] the application is built from.
//! - [`health`]: per-minute samples of the health report.
//! - [`redis`]: the platform's Redis, watched with an `INFO` poll.
//! - [`telemetry`]: voicemon's own metrics.
//! - [`reprice`]: recompute stored cost after the price book changes.
//! - [`roles`]: the duties that run on one instance among those sharing a database
//!   (alerting, health sampling, maintenance), leased in the store.

pub mod alerting;
pub mod api;
#[cfg(test)]
mod architecture;
pub mod auth;
pub mod bus;
pub mod config;
pub mod connections;
pub mod health;
pub mod ingest;
pub mod limits;
pub mod live;
pub mod notify;
pub mod origin;
pub mod otlp;
pub mod query;
pub mod redis;
pub mod reprice;
pub mod roles;
pub mod startup;
pub mod state;
pub mod telemetry;

/// The one HTTP client builder lives in `voicemon-tls`, so that the simulator, which must
/// not depend on the server, builds its client the same way.
pub use voicemon_tls::http as outbound;
