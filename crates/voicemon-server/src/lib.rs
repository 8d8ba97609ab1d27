//! voicemon-server: the HTTP API, the ingest pipeline, alerting and notifications.
//!
//! # Layout
//! - [`startup`]: builds the application from its configuration; ordered shutdown.
//! - [`ingest`]: `POST /v1/events` and the group-commit [`ingest::writer`].
//! - [`alerting`]: the alert engine (rules → alerts → notices → outbox).
//! - [`notify`]: receivers (Slack, webhook, Alertmanager) and delivery of the outbox.
//! - [`outbound`]: the HTTP client of every outbound request (rustls, the system trust
//!   store); it is `voicemon_tls::http`, shared with the simulator (`voicemon-simulate`).
//! - [`api`]: query routes (`/metrics/*`, probes) and the one [`api::error::ApiError`].
//! - [`live`]: `GET /metrics/stream` (WebSocket snapshots, alert pushes) and the page at `/`.
//! - [`auth`]: API keys, roles, tenant scope.
//! - [`config`]: the optional `voicemon.toml`.
//! - [`health`]: workers, breakers, providers, database, Redis; per-minute samples.
//! - [`telemetry`]: voicemon's own metrics.
//! - [`reprice`]: recompute stored cost after the price book changes.

pub mod alerting;
pub mod api;
pub mod auth;
pub mod config;
pub mod health;
pub mod ingest;
pub mod live;
pub mod notify;
pub mod reprice;
pub mod startup;
pub mod state;
pub mod telemetry;

/// The one HTTP client builder lives in `voicemon-tls`, so that the simulator, which must
/// not depend on the server, builds its client the same way.
pub use voicemon_tls::http as outbound;
