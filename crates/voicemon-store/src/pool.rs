//! The store's connections as `/metrics/health` shows them, and the last storage error
//! both backends remember for it.

use crate::{Fault, StoreError};
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
    /// Why writes fail now (a full disk, a read-only file, an unreachable database): the
    /// fault of the last failed operation, until a write succeeds (or, for an unreachable
    /// database, any operation does).
    pub fault: Option<Fault>,
}

/// The last error a store operation returned, with when it happened: a store that
/// answers again still shows what went wrong last.
#[derive(Debug, Default)]
pub(crate) struct LastError {
    last: Mutex<Option<(i64, String)>>,
    fault: Mutex<Option<Fault>>,
}

impl LastError {
    /// Passes the result of a read (or of anything that does not prove writes work)
    /// through, remembering its error if it is one; a success proves the database is
    /// reachable.
    pub(crate) fn record<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.remember(&result, |fault| fault == Fault::Unreachable);
        result
    }

    /// [`LastError::record`] for a write: a success proves no fault is left.
    pub(crate) fn record_write<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.remember(&result, |_| true);
        result
    }

    fn remember<T>(&self, result: &Result<T, StoreError>, cleared_by_success: impl Fn(Fault) -> bool) {
        let Ok(mut fault) = self.fault.lock() else { return };
        match result {
            // A lease that passed to another instance is not the storage failing.
            Err(StoreError::LeaseLost(_)) => {}
            Err(err) => {
                if let Ok(mut last) = self.last.lock() {
                    *last = Some((SystemClock.now_ms(), err.to_string()));
                }
                if let Some(now) = err.fault() {
                    *fault = Some(now);
                }
            }
            Ok(_) => {
                if fault.is_some_and(cleared_by_success) {
                    *fault = None;
                }
            }
        }
    }

    /// Why writes fail now, if a fault is known.
    pub(crate) fn fault(&self) -> Option<Fault> {
        self.fault.lock().ok().and_then(|fault| *fault)
    }

    /// The error remembered last and when (unix ms), as [`PoolStats`] shows them.
    pub(crate) fn last(&self) -> (Option<String>, Option<i64>) {
        match self.last.lock().ok().and_then(|last| last.clone()) {
            Some((at_ms, message)) => (Some(message), Some(at_ms)),
            None => (None, None),
        }
    }
}
