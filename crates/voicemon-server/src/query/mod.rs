//! The read model: every answer voicemon gives about stored data, whoever asks — the
//! REST handlers (`api`), the live feeds (`live`) and the alert engine (`alerting`).
//!
//! # Layout
//! - [`latency`]: sketch merges into steps and percentiles.
//! - [`calls`]: call counts, success rate, failure reasons, durations.
//! - [`cost`]: cost summaries, itemised calls, and the cost signals alert rules read.
//! - [`explorer`]: the call explorer: a window's slow calls, and one call whole.
//! - [`health`]: the health report (workers, breakers, providers, database, Redis).
//! - [`alerts`]: the alerts and history a caller may see.
//!
//! # Rules
//! - Nothing here knows HTTP: a question comes in as plain values, an answer goes out as
//!   a serialisable struct, a failure as [`QueryError`]. The `api` module maps it to a
//!   status; the live feed and the alert engine handle it their own way.
//! - Nothing here imports `api`, `live` or `alerting`.

pub mod alerts;
pub mod calls;
pub mod cost;
pub mod explorer;
pub mod health;
pub mod latency;

use voicemon_core::window::WindowError;
use voicemon_store::StoreError;

/// Why a question has no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The question cannot be answered as asked (the caller must change it).
    #[error("{0}")]
    Invalid(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// What was asked for names more than one thing; the message says how to pick one.
    #[error("{0}")]
    Ambiguous(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for QueryError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(message) => QueryError::NotFound(message),
            other => QueryError::Store(other),
        }
    }
}

impl From<WindowError> for QueryError {
    fn from(err: WindowError) -> Self {
        QueryError::Invalid(err.to_string())
    }
}
