//! The store's connections as `/metrics/health` shows them, and the last storage error
//! both backends remember for it.

use crate::StoreError;
use serde::Serialize;
use std::sync::Mutex;
use voicemon_core::clock::{Clock, SystemClock};

/// The store's own connection pool, as `/metrics/health` shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    pub backend: &'static str,
    /// Connections open (idle + in use).
    pub size: u32,
    pub in_use: u32,
    pub idle: u32,
    /// Callers waiting for a connection (the writer, for SQLite).
    pub waiting: u32,
    /// The last storage error and when (unix ms), if any.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// The last error a store operation returned, with when it happened: a store that
/// answers again still shows what went wrong last.
#[derive(Debug, Default)]
pub(crate) struct LastError {
    last: Mutex<Option<(i64, String)>>,
}

impl LastError {
    /// Passes `result` through, remembering its error if it is one.
    pub(crate) fn record<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(err) = &result {
            if let Ok(mut last) = self.last.lock() {
                *last = Some((SystemClock.now_ms(), err.to_string()));
            }
        }
        result
    }

    /// The error remembered last and when (unix ms), as [`PoolStats`] shows them.
    pub(crate) fn last(&self) -> (Option<String>, Option<i64>) {
        match self.last.lock().ok().and_then(|last| last.clone()) {
            Some((at_ms, message)) => (Some(message), Some(at_ms)),
            None => (None, None),
        }
    }
}
