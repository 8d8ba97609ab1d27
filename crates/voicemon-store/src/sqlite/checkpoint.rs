//! WAL checkpoints on a thread of their own. With SQLite's default, the commit that
//! crosses 1 000 WAL pages copies them into the database file and syncs it before it
//! returns; under steady ingest that was a sixth of the writer's time. Here a connection
//! of its own runs a PASSIVE checkpoint every second, which never blocks the writer or
//! the readers, and the writer keeps a far larger automatic checkpoint as a fallback.

use super::{map_error, open_connection};
use crate::StoreError;
use rusqlite::OpenFlags;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The writer's own automatic checkpoint, in WAL pages (4 KiB each): 256 MiB.
pub const WRITER_FALLBACK_PAGES: i64 = 65_536;

/// How often the checkpoint thread runs.
const EVERY: Duration = Duration::from_secs(1);

/// The checkpoint thread; dropping it stops the thread.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub fn spawn(path: &Path) -> Result<Checkpointer, StoreError> {
    let conn = open_connection(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(map_error)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                std::thread::park_timeout(EVERY);
                if stopping.load(Ordering::Acquire) {
                    break;
                }
                if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %err, "sqlite checkpoint failed; the writer's own takes over");
                }
            }
        })
        .map_err(|err| StoreError::Internal(format!("cannot start the checkpoint thread: {err}")))?;
    Ok(Checkpointer { stop, thread: Some(thread) })
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
