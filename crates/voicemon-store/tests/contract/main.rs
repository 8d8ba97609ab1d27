//! The store contract: every case runs one script against SQLite and against PostgreSQL,
//! checks the concrete answers on each, then checks that both backends answered alike.
//!
//! PostgreSQL runs when `VOICEMON_TEST_DATABASE_URL` names a server; without it the
//! PostgreSQL half is skipped with a note, and with it an unreachable server fails the
//! case. Every PostgreSQL case works in a schema of its own, dropped when it ends.
//!
//! # Layout
//! - `backends`: a fresh store of each kind, the PostgreSQL test schema, `on_both_backends`.
//! - `transcript`: what a script answered, checked and compared across backends.
//! - `events`: events built from contract-v1 JSON and costed under the shipped price book.
//! - one module per subject of the `Store` trait; `partitions`, `connections`,
//!   `schema_file` and `sql_quantile` are PostgreSQL-only.

mod backends;
mod events;
mod transcript;

mod alerting;
mod calls;
mod connections;
mod cost;
mod health;
mod ingest;
mod keys;
mod latency;
mod leases;
mod partitions;
mod schema_file;
mod sql_quantile;
