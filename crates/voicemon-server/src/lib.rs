//! voicemon-server: the HTTP API, the ingest pipeline and the traffic simulator.
//!
//! # Layout
//! - [`startup`]: builds the application from its configuration; ordered shutdown.
//! - [`api`]: the HTTP edge: every route, the extractors, the one [`api::error::ApiError`],
//!   the request trace (method, route, status, latency, `x-request-id`).
//! - [`query`]: the read model every answer comes from (REST, live view, alert engine).
//! - [`ingest`]: the group-commit [`ingest::writer`] behind `POST /v1/events`.
//! - [`alerting`]: the alert engine (rules → alerts → notices → outbox).
//! - [`notify`]: receivers (Slack, webhook, Alertmanager) and delivery of the outbox.
//! - [`outbound`]: the HTTP client of every outbound request (rustls, the system trust store).
//! - [`live`]: the live view: feeds of snapshots and alert pushes per scope, one WebSocket
//!   connection's life, and the embedded page.
//! - [`auth`]: API keys, roles, tenant scope.
//! - [`config`]: the optional `voicemon.toml`.
//! - [`health`]: per-minute samples of the health report.
//! - [`redis`]: the platform's Redis, watched with an `INFO` poll.
//! - [`telemetry`]: voicemon's own metrics.
//! - [`reprice`]: recompute stored cost after the price book changes.
//! - [`simulate`]: realistic traffic for demos, tests and benchmarks.

pub mod alerting;
pub mod api;
#[cfg(test)]
mod architecture;
pub mod auth;
pub mod config;
pub mod health;
pub mod ingest;
pub mod live;
pub mod notify;
pub mod outbound;
pub mod query;
pub mod redis;
pub mod reprice;
pub mod simulate;
pub mod startup;
pub mod state;
pub mod telemetry;
