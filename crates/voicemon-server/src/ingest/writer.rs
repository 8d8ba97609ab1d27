//! The batch writer: group commits of validated events.
//!
//! Policy: the writer takes the first waiting submission and, without waiting, every
//! other submission already queued, up to `max_events`; then it commits them in one
//! transaction and answers each submitter. While a commit runs, new submissions queue and
//! form the next group, so under load groups fill by themselves and a lone event is
//! committed at once. `linger` (default 0) lets the writer wait that long for a fuller
//! group, never longer than `max_wait`. A submission is never split: its events commit
//! together. On shutdown the writer stops lingering, commits what it holds and exits
//! once every submitter's sender is gone. A store that takes concurrent transactions
//! (PostgreSQL) gets several groups in flight at once; SQLite gets one.
//!
//! The voice metrics of `/metrics` are recorded here, after a commit is durable and
//! before its submitters are answered, for the events the store kept (not duplicates);
//! so is `voicemon_ingest_writer_events`, the events taken and not yet answered.

use crate::telemetry::voice::VoiceRecord;
use crate::telemetry::Telemetry;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use voicemon_store::{IngestEvent, IngestStore, StoreError, WriteOutcome};

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Stop gathering a group at this many events.
    pub max_events: usize,
    /// Wait this long for more events before committing a group that is not full.
    pub linger: Duration,
    /// No event waits longer than this for its group to close.
    pub max_wait: Duration,
    /// Submissions that may queue before submitters wait (backpressure).
    pub queue: usize,
    /// How often derived data (latency rollups, provider minutes, call totals, workers) is
    /// merged into its tables; reads merge it first anyway ([`voicemon_store::derived`]).
    pub derived_flush: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_events: 5_000,
            linger: Duration::ZERO,
            max_wait: Duration::from_secs(5),
            queue: 1024,
            // Reads merge or flush what is pending, so this bounds only SQL readers'
            // (Grafana's) lag; on hour-spread traffic 5 s ingests 35 % more than 1 s
            // (BENCHMARKS.md).
            derived_flush: Duration::from_secs(5),
        }
    }
}

struct Submission {
    events: Vec<IngestEvent>,
    /// What each event adds to the voice metrics, taken by the submitter (in parallel,
    /// off the writer task) because the store consumes the events.
    records: Vec<Option<VoiceRecord>>,
    reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
}

/// The submitting side; clone it into every handler.
#[derive(Clone, Debug)]
pub struct BatchWriter {
    queue: mpsc::Sender<Submission>,
}

/// How long a submitter waits for room in the queue before answering 503.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

impl BatchWriter {
    /// Starts the writer task. It ends once every `BatchWriter` is dropped and everything
    /// queued is committed; `shutdown` turning true stops it lingering.
    pub fn spawn(
        store: Arc<dyn IngestStore>,
        config: WriterConfig,
        telemetry: Telemetry,
        shutdown: watch::Receiver<bool>,
    ) -> (BatchWriter, tokio::task::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(config.queue.max(1));
        let task = tokio::spawn(run(store, config, telemetry, receiver, shutdown));
        (BatchWriter { queue }, task)
    }

    /// Stores `events` in the next group commit; returns once that commit is durable.
    pub async fn submit(&self, events: Vec<IngestEvent>) -> Result<WriteOutcome, StoreError> {
        if events.is_empty() {
            return Ok(WriteOutcome { stored: Vec::new() });
        }
        let (reply, answer) = oneshot::channel();
        let records = events.iter().map(VoiceRecord::of).collect();
        let submission = Submission { events, records, reply };
        match tokio::time::timeout(QUEUE_WAIT, self.queue.send(submission)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::Unavailable("voicemon is shutting down".into())),
            Err(_) => return Err(StoreError::Unavailable("the write queue is full".into())),
        }
        answer.await.unwrap_or_else(|_| Err(StoreError::Internal("the batch writer stopped".into())))
    }
}

async fn run(
    store: Arc<dyn IngestStore>,
    config: WriterConfig,
    telemetry: Telemetry,
    mut receiver: mpsc::Receiver<Submission>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The loop ends when every BatchWriter is dropped, i.e. after the HTTP server has
    // finished its in-flight requests; shutdown only stops lingering meanwhile.
    // Up to `concurrent_writes` groups commit at once (one for SQLite's single writer).
    // A slot is taken before the next group is gathered, so submissions queue meanwhile
    // and the next group is as full as a commit's duration makes it.
    let slots = store.concurrent_writes().max(1);
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.len() >= slots {
            in_flight.join_next().await;
        }
        let Some(first) = receiver.recv().await else { break };
        let group = gather(first, &mut receiver, &config, &telemetry, &mut shutdown).await;
        let (store, telemetry) = (Arc::clone(&store), telemetry.clone());
        in_flight.spawn(async move { commit(&store, &telemetry, group).await });
    }
    while in_flight.join_next().await.is_some() {}
    tracing::info!("batch writer stopped; everything acknowledged is committed");
}

fn group_size(group: &[Submission]) -> usize {
    group.iter().map(|s| s.events.len()).sum()
}

/// Adds `submission` to `group`, counting its events as held by the writer.
fn take(group: &mut Vec<Submission>, submission: Submission, telemetry: &Telemetry) {
    telemetry.writer_took(submission.events.len());
    group.push(submission);
}

/// Moves already-queued submissions into `group` until it holds `max_events`.
fn take_queued(
    group: &mut Vec<Submission>,
    receiver: &mut mpsc::Receiver<Submission>,
    max_events: usize,
    telemetry: &Telemetry,
) {
    while group_size(group) < max_events {
        match receiver.try_recv() {
            Ok(submission) => take(group, submission, telemetry),
            Err(_) => break,
        }
    }
}

async fn gather(
    first: Submission,
    receiver: &mut mpsc::Receiver<Submission>,
    config: &WriterConfig,
    telemetry: &Telemetry,
    shutdown: &mut watch::Receiver<bool>,
) -> Vec<Submission> {
    let mut group = Vec::new();
    take(&mut group, first, telemetry);
    take_queued(&mut group, receiver, config.max_events, telemetry);
    let deadline = tokio::time::Instant::now() + config.linger.min(config.max_wait);
    while group_size(&group) < config.max_events && !config.linger.is_zero() && !*shutdown.borrow() {
        tokio::select! {
            next = receiver.recv() => match next {
                Some(submission) => take(&mut group, submission, telemetry),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
            _ = shutdown.changed() => break,
        }
    }
    group
}

async fn commit(store: &Arc<dyn IngestStore>, telemetry: &Telemetry, group: Vec<Submission>) {
    let sizes: Vec<usize> = group.iter().map(|s| s.events.len()).collect();
    let mut replies = Vec::with_capacity(group.len());
    let mut events = Vec::with_capacity(sizes.iter().sum());
    let mut records = Vec::with_capacity(events.capacity());
    for submission in group {
        events.extend(submission.events);
        records.extend(submission.records);
        replies.push(submission.reply);
    }
    let total = events.len();
    let started = Instant::now();
    let span = tracing::debug_span!("group_commit", events = total, submissions = replies.len());
    let result = tracing::Instrument::instrument(store.write_batch(events), span).await;
    telemetry.flush(result.is_ok(), total, started.elapsed());
    match result {
        Ok(outcome) => {
            // Durable now: count what was stored before anyone is told it is.
            telemetry.voice_stored(&records, &outcome.stored);
            let mut offset = 0;
            for (reply, size) in replies.into_iter().zip(sizes) {
                let stored = outcome.stored[offset..offset + size].to_vec();
                offset += size;
                // A submitter that went away (client disconnected) still had its events stored.
                let _ = reply.send(Ok(WriteOutcome { stored }));
            }
        }
        Err(err) => {
            telemetry.write_error(err.cause());
            tracing::warn!(error = %err, events = total, "group commit failed; nothing of it is stored");
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
    telemetry.writer_answered(total);
}

/// The grouping policy on tokio's paused clock: lingering, `max_wait` and shutdown are
/// observed as exact virtual durations, without waiting any of them out.
#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant as VirtualInstant;
    use voicemon_core::pricing::Costing;
    use voicemon_core::validate::parse_event;
    use voicemon_store::sqlite::{Durability, SqliteStore};

    /// 2026-11-27T12:00:00Z.
    const NOW_MS: i64 = 1_795_780_800_000;

    /// A batch writer over a fresh SQLite store.
    struct Running {
        writer: BatchWriter,
        task: tokio::task::JoinHandle<()>,
        telemetry: Telemetry,
        stop: watch::Sender<bool>,
        _dir: tempfile::TempDir,
    }

    impl Running {
        fn start(config: WriterConfig) -> Running {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let store = SqliteStore::open(dir.path(), Durability::Normal).expect("the store opens");
            let telemetry = Telemetry::default();
            let (stop, shutdown) = watch::channel(false);
            let (writer, task) = BatchWriter::spawn(Arc::new(store), config, telemetry.clone(), shutdown);
            Running { writer, task, telemetry, stop, _dir: dir }
        }

        /// Drops the last submitter and waits for the writer to end.
        async fn finish(self) {
            drop(self.writer);
            self.task.await.expect("the writer ends cleanly");
            assert_eq!(self.telemetry.writer_events_held(), 0, "every event taken was answered");
        }
    }

    fn lingering(linger: Duration, max_wait: Duration) -> WriterConfig {
        WriterConfig { linger, max_wait, ..WriterConfig::default() }
    }

    /// Turns with distinct ids, a minute old.
    fn turns(ids: &[&str]) -> Vec<IngestEvent> {
        ids.iter()
            .map(|id| {
                let json = format!(
                    r#"{{"id":"{id}","type":"turn.completed","timestamp":"2026-11-27T11:59:00Z",
                        "tenant_id":"acme","call_id":"c1","turn_index":0,"e2e_ms":640.0}}"#
                );
                let event = parse_event(&json, NOW_MS).expect("a valid turn");
                IngestEvent { event, costing: Costing::NotUsage }
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_linger_a_lone_submission_is_committed_at_once() {
        let running = Running::start(WriterConfig::default());
        let started = VirtualInstant::now();
        let outcome = running.writer.submit(turns(&["t1"])).await.expect("committed");
        assert_eq!(outcome.stored, [true]);
        assert_eq!(started.elapsed(), Duration::ZERO);
        running.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_writer_commits_a_group_that_is_not_full_when_the_linger_ends() {
        let running = Running::start(lingering(Duration::from_secs(2), Duration::from_secs(5)));
        let started = VirtualInstant::now();
        let (first, second) =
            tokio::join!(running.writer.submit(turns(&["t1", "t2"])), running.writer.submit(turns(&["t3"])));
        assert_eq!(first.expect("committed").stored, [true, true]);
        assert_eq!(second.expect("committed").stored, [true]);
        assert_eq!(started.elapsed(), Duration::from_secs(2), "answered when the linger ended");
        running.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn max_wait_cuts_a_longer_linger_short() {
        let running = Running::start(lingering(Duration::from_secs(30), Duration::from_secs(3)));
        let started = VirtualInstant::now();
        running.writer.submit(turns(&["t1"])).await.expect("committed");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        running.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_group_is_committed_without_waiting_out_the_linger() {
        let config =
            WriterConfig { max_events: 3, ..lingering(Duration::from_secs(30), Duration::from_secs(60)) };
        let running = Running::start(config);
        let started = VirtualInstant::now();
        let (first, second) =
            tokio::join!(running.writer.submit(turns(&["t1", "t2"])), running.writer.submit(turns(&["t3"])));
        assert_eq!((first.expect("committed").stored.len(), second.expect("committed").stored.len()), (2, 1));
        assert_eq!(started.elapsed(), Duration::ZERO);
        running.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_linger_and_commits_what_the_writer_holds() {
        let running = Running::start(lingering(Duration::from_secs(30), Duration::from_secs(60)));
        let started = VirtualInstant::now();
        let writer = running.writer.clone();
        let submitted = tokio::spawn(async move { writer.submit(turns(&["t1", "t2"])).await });
        // Time moves only once every task waits: by then the writer holds the events.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(running.telemetry.writer_events_held(), 2, "the writer holds both events");
        assert!(!submitted.is_finished(), "it lingers for a fuller group");

        running.stop.send(true).expect("the writer listens");
        let outcome = submitted.await.expect("the submitter").expect("committed");
        assert_eq!(outcome.stored, [true, true]);
        assert_eq!(started.elapsed(), Duration::from_secs(1), "not a moment of the linger more");
        running.finish().await;
    }
}
