//! One run of the simulator: backfill, then live sending once a second, then a last
//! flush; counts what voicemon answered and reports progress.

use super::send::{Answered, Delivery, RejectedEvent, Sender};
use super::{Progress, SimulateError, Summary, TrafficModel};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use voicemon_core::clock::{Clock, SystemClock};

/// Backfill is generated in steps of this much simulated time.
const BACKFILL_STEP_MS: i64 = 10_000;

/// The state of one run: the model, the sender and the counters.
pub(super) struct Session<F> {
    model: TrafficModel,
    sender: Sender,
    clock: SystemClock,
    seed: u64,
    batch_max_events: usize,
    on_progress: F,
    progress: Progress,
    first_rejection: Option<String>,
    started: Instant,
    last_report: Instant,
}

impl<F: FnMut(&Progress) + Send> Session<F> {
    pub(super) fn new(
        model: TrafficModel,
        sender: Sender,
        seed: u64,
        batch_max_events: usize,
        on_progress: F,
    ) -> Self {
        let now = Instant::now();
        Session {
            model,
            sender,
            clock: SystemClock,
            seed,
            batch_max_events,
            on_progress,
            progress: Progress::default(),
            first_rejection: None,
            started: now,
            last_report: now,
        }
    }

    /// Generates the history up to `end_ms` step by step and sends it in full batches
    /// as fast as voicemon answers. Returns false if `shutdown` cut it short (what was
    /// generated is still sent).
    pub(super) async fn backfill(
        &mut self,
        end_ms: i64,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<bool, SimulateError> {
        let mut pending: Vec<String> = Vec::new();
        while self.model.cursor_ms() < end_ms && !*shutdown.borrow() {
            let step_end = (self.model.cursor_ms() + BACKFILL_STEP_MS).min(end_ms);
            pending.extend(self.lines_until(step_end));
            while pending.len() >= self.batch_max_events {
                let batch: Vec<String> = pending.drain(..self.batch_max_events).collect();
                self.send_batch(&batch).await?;
            }
        }
        self.send_lines(&pending).await?;
        Ok(self.model.cursor_ms() >= end_ms)
    }

    /// Every second, sends what happened since the last tick.
    pub(super) async fn live(
        &mut self,
        deadline: Option<Instant>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), SimulateError> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(());
            }
            tokio::select! {
                _ = tick.tick() => {}
                _ = wait_for_stop(shutdown) => return Ok(()),
                _ = sleep_until(deadline) => return Ok(()),
            }
            self.send_due_events().await?;
            self.report(true);
        }
    }

    /// Sends every event whose time has come by the wall clock.
    pub(super) async fn send_due_events(&mut self) -> Result<(), SimulateError> {
        let lines = self.lines_until(self.clock.now_ms());
        self.send_lines(&lines).await
    }

    /// The model's events up to `end_ms`, one NDJSON line each.
    fn lines_until(&mut self, end_ms: i64) -> Vec<String> {
        let events = self.model.events_until(end_ms);
        events.iter().map(Value::to_string).collect()
    }

    async fn send_lines(&mut self, lines: &[String]) -> Result<(), SimulateError> {
        for batch in lines.chunks(self.batch_max_events) {
            self.send_batch(batch).await?;
        }
        Ok(())
    }

    async fn send_batch(&mut self, batch: &[String]) -> Result<(), SimulateError> {
        self.progress.events_sent += batch.len() as u64;
        match self.sender.deliver(batch).await? {
            Delivery::Answered(answered) => self.count_answer(answered, batch.len())?,
            Delivery::GaveUp { reason } => {
                self.progress.failed_requests += 1;
                tracing::warn!(%reason, events = batch.len(), "simulate: gave up on a batch");
            }
        }
        self.report(false);
        Ok(())
    }

    fn count_answer(&mut self, answered: Answered, sent: usize) -> Result<(), SimulateError> {
        let Answered { answer, all_rejected } = answered;
        let first = answer.rejected.first().map(RejectedEvent::describe);
        if all_rejected {
            let first = first.unwrap_or_else(|| "voicemon gave no reason".to_owned());
            return Err(SimulateError::Rejected { count: sent, first });
        }
        self.progress.accepted += answer.accepted;
        self.progress.duplicates += answer.duplicates;
        self.progress.rejected += answer.rejected_count();
        if self.first_rejection.is_none() {
            if let Some(first) = first {
                tracing::warn!(rejection = %first, "simulate: voicemon rejected generated events");
                self.first_rejection = Some(first);
            }
        }
        Ok(())
    }

    /// Calls `on_progress` if forced or if a second has passed since the last call.
    pub(super) fn report(&mut self, force: bool) {
        if !force && self.last_report.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_report = Instant::now();
        let stats = self.model.stats();
        self.progress.calls_started = stats.calls_started;
        self.progress.calls_ended = stats.calls_ended;
        self.progress.elapsed = self.started.elapsed();
        (self.on_progress)(&self.progress);
    }

    pub(super) fn summary(&self) -> Summary {
        let stats = self.model.stats();
        let progress = &self.progress;
        Summary {
            seed: self.seed,
            events_sent: progress.events_sent,
            accepted: progress.accepted,
            duplicates: progress.duplicates,
            rejected: progress.rejected,
            calls_started: stats.calls_started,
            calls_ended: stats.calls_ended,
            calls_active: self.model.active_calls() as u64,
            calls_completed: stats.completed,
            calls_failed: stats.failed,
            calls_abandoned: stats.abandoned,
            calls_transferred: stats.transferred,
            breaker_trips: stats.breaker_trips,
            elapsed: self.started.elapsed(),
            failed_requests: progress.failed_requests,
            first_rejection: self.first_rejection.clone(),
        }
    }
}

/// Resolves once `shutdown` is true; never, if its sender is gone.
async fn wait_for_stop(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending::<()>().await,
    }
}
