//! The PostgreSQL side of [`crate::derived`]: this instance's pending derived data, its
//! flush, and the folding of journal rows that instances left when they stopped without
//! flushing.
//!
//! Each instance writes journal rows under its own `owner` name and holds a session
//! advisory lock on that name on a connection of its own for as long as it runs. An
//! owner whose lock is free is gone: any instance folds its rows. A flush deletes its own
//! rows first and checks that every one was still there, so rows folded by another
//! instance (after this one lost its lock connection, say) are never counted twice.

use super::{map_error, pool_error, write, PostgresStore};
use crate::derived::Derived;
use crate::pending::PendingDerived;
use crate::StoreError;
use deadpool_postgres::ClientWrapper;
use std::sync::Arc;

/// What this instance has journalled and not flushed yet.
#[derive(Debug)]
pub struct DerivedState {
    /// This instance's name in `derived_journal.owner`.
    pub owner: String,
    /// Derived data committed and not flushed yet; latency reads merge it
    /// ([`crate::pending`]).
    pub pending: PendingDerived,
    /// One flush at a time, so a read that flushes waits for one in progress.
    flushing: tokio::sync::Mutex<()>,
    /// The connection holding the advisory lock on `owner`; also used to try the locks of
    /// other owners.
    lock: tokio::sync::Mutex<Option<ClientWrapper>>,
    /// Held shared by each group commit, from before its transaction to after its derived
    /// data is absorbed (between the two its raw facts may be visible while its derived
    /// data is not pending yet), and alone by a read that merges what is pending, from
    /// before it copies until its snapshot is open ([`DerivedState::hold_commits`]).
    gate: Arc<tokio::sync::RwLock<()>>,
}

/// Group commits held off by a read ([`DerivedState::hold_commits`]) until it is dropped.
pub type HeldCommits = tokio::sync::OwnedRwLockWriteGuard<()>;

/// How long a read waits for the group commits under way when it began, at most: a
/// commit stuck on a lock or an outage must not hold every read (they then read what is
/// merged, as before the wait existed).
const SETTLE_AT_MOST: std::time::Duration = std::time::Duration::from_secs(5);

impl DerivedState {
    pub fn new() -> DerivedState {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        DerivedState {
            owner: format!("{:x}-{:x}", std::process::id(), nanos),
            pending: PendingDerived::default(),
            flushing: tokio::sync::Mutex::new(()),
            lock: tokio::sync::Mutex::new(None),
            gate: Arc::default(),
        }
    }

    /// Marks a group commit under way until the guard is dropped. It waits while a read
    /// holds commits off ([`DerivedState::hold_commits`]).
    pub async fn begin_commit(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        Arc::clone(&self.gate).read_owned().await
    }

    /// Waits until every group commit under way has absorbed its derived data (or failed),
    /// then holds new ones off until the guard is dropped: a read that copies what is
    /// pending and opens its snapshot meanwhile never sees a batch's raw facts without
    /// its derived data. After [`SETTLE_AT_MOST`] it gives up (`None`).
    pub async fn hold_commits(&self) -> Option<HeldCommits> {
        tokio::time::timeout(SETTLE_AT_MOST, Arc::clone(&self.gate).write_owned()).await.ok()
    }

    /// Waits until every group commit under way has absorbed its derived data (or failed);
    /// at most [`SETTLE_AT_MOST`].
    pub async fn settle(&self) {
        drop(self.hold_commits().await);
    }

    /// Whether a flush holds data it took from memory and has not merged yet.
    pub fn is_flushing(&self) -> bool {
        self.flushing.try_lock().is_err()
    }
}

/// Why a flush rolled back: some of its journal rows were already folded by another
/// instance (the transaction must roll back, so this travels as its error).
const FOLDED_ELSEWHERE: &str = "derived_journal rows were folded elsewhere";

/// `pg_advisory_lock` key of an owner.
const LOCK_KEY: &str = "hashtextextended('voicemon.derived.' || current_schema() || '.' || $1, 0)";

impl PostgresStore {
    /// Takes a connection out of the pool for good and locks this instance's name on it.
    pub(super) async fn hold_owner_lock(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let client = deadpool_postgres::Object::take(client);
        client
            .execute(&format!("SELECT pg_advisory_lock({LOCK_KEY})"), &[&self.derived.owner])
            .await
            .map_err(map_error)?;
        *self.derived.lock.lock().await = Some(client);
        Ok(())
    }

    /// Merges this instance's pending derived data into its tables; returns the rows written.
    pub(super) async fn flush_pending(&self) -> Result<usize, StoreError> {
        let _one_at_a_time = self.derived.flushing.lock().await;
        // Dropped before `flushed` (an error, or this future dropped with its request), the
        // taken part is pending again; a commit it already made is caught by the journal
        // claim of the next flush, as rows folded elsewhere.
        let taken = self.derived.pending.take();
        if taken.seqs.is_empty() {
            taken.flushed();
            return Ok(0);
        }
        let written = taken.derived.len();
        // A late event's day may have been dropped by retention since its commit.
        let minutes = taken.derived.rollups.keys().map(|(_, minute)| *minute);
        self.ensure_partitions_at(minutes).await?;
        let batch = Arc::clone(taken.part());
        let firsts = Arc::new(self.known_firsts.moving(&batch.derived.calls));
        let started = std::time::Instant::now();
        let result = self
            .transaction_retrying(|tx| {
                let (batch, firsts) = (Arc::clone(&batch), Arc::clone(&firsts));
                Box::pin(async move {
                    let still_there = write::claim_journal(tx, &batch.seqs).await.map_err(map_error)?;
                    if still_there == batch.seqs.len() {
                        write::flush(tx, &batch.derived, &firsts).await.map_err(map_error)
                    } else {
                        // Some rows were folded by another instance: fold what is left, from the rows.
                        Err(StoreError::Unavailable(FOLDED_ELSEWHERE.into()))
                    }
                })
            })
            .await;
        tracing::debug!(
            rows = written,
            commits = taken.seqs.len(),
            ms = started.elapsed().as_millis() as u64,
            "flushed derived data"
        );
        match result {
            Ok(()) => {
                taken.flushed();
                self.known_firsts.learn(firsts.iter().copied());
                Ok(written)
            }
            Err(StoreError::Unavailable(message)) if message == FOLDED_ELSEWHERE => {
                tracing::warn!("some derived data of this instance was folded by another; folding the rest");
                // The rows, not this copy, are what is left to fold; reads stop merging it.
                let seqs = taken.seqs.clone();
                taken.flushed();
                self.fold_rows(seqs).await
            }
            Err(err) => Err(err),
        }
    }

    /// Folds journal rows of owners whose lock is free (instances that stopped without
    /// flushing); returns how many rows it folded.
    pub(super) async fn fold_orphans(&self) -> Result<usize, StoreError> {
        let owners: Vec<String> = self
            .read(|client| {
                Box::pin(async move {
                    let rows = client.query("SELECT DISTINCT owner FROM derived_journal", &[]).await?;
                    Ok(rows.iter().map(|row| row.get(0)).collect())
                })
            })
            .await?;
        let mut folded = 0;
        for owner in owners.into_iter().filter(|owner| *owner != self.derived.owner) {
            let guard = self.derived.lock.lock().await;
            let Some(lock) = guard.as_ref() else { break };
            let free: bool = lock
                .query_one(&format!("SELECT pg_try_advisory_lock({LOCK_KEY})"), &[&owner])
                .await
                .map_err(map_error)?
                .get(0);
            if !free {
                continue;
            }
            let rows = self
                .read(|client| {
                    let owner = owner.clone();
                    Box::pin(async move {
                        let rows = client
                            .query("SELECT seq FROM derived_journal WHERE owner = $1", &[&owner])
                            .await?;
                        Ok(rows.iter().map(|row| row.get::<_, i64>(0)).collect::<Vec<_>>())
                    })
                })
                .await;
            let result = match rows {
                Ok(seqs) => self.fold_rows(seqs).await,
                Err(err) => Err(err),
            };
            let _ = lock.execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"), &[&owner]).await;
            let count = result?;
            tracing::info!(owner = %owner, rows = count, "folded derived data an instance left unflushed");
            folded += count;
        }
        Ok(folded)
    }

    /// Folds the journal rows `seqs` that still exist, from their stored bodies.
    async fn fold_rows(&self, seqs: Vec<i64>) -> Result<usize, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = self
            .read(move |client| {
                Box::pin(async move {
                    let rows = client
                        .query(
                            "SELECT seq, body FROM derived_journal WHERE seq = ANY($1) ORDER BY seq",
                            &[&seqs],
                        )
                        .await?;
                    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
                })
            })
            .await?;
        let mut derived = Derived::default();
        for (_, body) in &rows {
            derived.absorb(Derived::decode(body).map_err(|err| StoreError::Internal(err.to_string()))?);
        }
        self.ensure_partitions_at(derived.rollups.keys().map(|(_, minute)| *minute)).await?;
        let found: Vec<i64> = rows.iter().map(|(seq, _)| *seq).collect();
        let count = found.len();
        let firsts = self.known_firsts.moving(&derived.calls);
        let written = firsts.clone();
        self.transaction(move |tx| {
            Box::pin(async move {
                if write::claim_journal(tx, &found).await.map_err(map_error)? != found.len() {
                    return Err(StoreError::Unavailable(FOLDED_ELSEWHERE.into()));
                }
                write::flush(tx, &derived, &firsts).await.map_err(map_error)
            })
        })
        .await?;
        self.known_firsts.learn(written);
        Ok(count)
    }
}

#[cfg(test)]
mod settle_tests {
    use super::DerivedState;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_read_waits_for_the_commits_under_way_and_holds_later_ones_off() {
        let state = std::sync::Arc::new(DerivedState::new());
        // Nothing under way: no wait.
        tokio::time::timeout(Duration::from_millis(1), state.settle()).await.expect("no wait");

        let first = state.begin_commit().await;
        let read = {
            let state = std::sync::Arc::clone(&state);
            tokio::spawn(async move {
                let held = state.hold_commits().await.expect("held");
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(held);
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!read.is_finished(), "the read waits for the commit under way");
        let later = {
            let state = std::sync::Arc::clone(&state);
            tokio::spawn(async move { drop(state.begin_commit().await) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(first);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!later.is_finished(), "a commit that begins after the read waits while it holds commits off");
        tokio::time::timeout(Duration::from_millis(100), read).await.expect("read").expect("the task ends");
        tokio::time::timeout(Duration::from_millis(1), later).await.expect("then it goes on").expect("ends");

        // A commit that never ends holds a read only so long.
        let stuck = state.begin_commit().await;
        let started = tokio::time::Instant::now();
        assert!(state.hold_commits().await.is_none(), "given up");
        assert_eq!(started.elapsed(), super::SETTLE_AT_MOST);
        drop(stuck);
    }
}
