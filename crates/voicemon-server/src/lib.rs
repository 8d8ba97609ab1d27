//! voicemon-server: the HTTP API, the ingest pipeline and the traffic simulator.
//!
//! # Layout
//! - [`startup`]: builds the application from its configuration; ordered shutdown.
//! - [`ingest`]: `POST /v1/events` and the group-commit [`ingest::writer`].
//! - [`alerting`]: the alert engine (rules → alerts → notices → outbox).
//! - [`notify`]: receivers (Slack, webhook, Alertmanager) and delivery of the outbox.
//! - [`outbound`]: the HTTP client of every outbound request (rustls, the system trust store).
//! - [`api`]: query routes (`/metrics/*`, probes) and the one [`api::error::ApiError`].
//! - [`live`]: `GET /metrics/stream` (WebSocket snapshots, alert pushes) and the page at `/`.
//! - [`auth`]: API keys, roles, tenant scope.
//! - [`config`]: one configuration tree: `voicemon.toml`, environment and flags merged,
//!   validated into the [`startup::ServeConfig`] the application is built from.
//! - [`health`]: workers, breakers, providers, database, Redis; per-minute samples.
//! - [`telemetry`]: voicemon's own metrics.
//! - [`reprice`]: recompute stored cost after the price book changes.
//! - [`simulate`]: realistic traffic for demos, tests and benchmarks.

pub mod alerting;
pub mod api;
pub mod auth;
pub mod config;
pub mod health;
pub mod ingest;
pub mod live;
pub mod notify;
pub mod outbound;
pub mod reprice;
pub mod simulate;
pub mod startup;
pub mod state;
pub mod telemetry;
