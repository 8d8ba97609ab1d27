//! The hub: one feed per scope. A feed's task computes the scope's snapshot once per
//! interval, serialises it once and broadcasts the same bytes to every subscriber; it
//! also forwards alert state changes the scope may see, at once. The task ends at the
//! first tick that finds no subscriber left.

use super::snapshot::{compute, Sources};
use super::subscription::Scope;
use super::{LiveConfig, LiveMetrics};
use crate::alerting::AlertEvent;
use crate::query::alerts::visible;
use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::MissedTickBehavior;
use voicemon_core::alerting::evaluator::{Alert, AlertState};
use voicemon_core::latency::Component;
use voicemon_core::window::{format_time, minute_of, TimeRange, HOUR_MS, MINUTE_MS};

/// How long the tenant list offered to admin callers is reused.
const TENANTS_TTL: Duration = Duration::from_secs(60);

/// One message of a feed, serialised once for all its subscribers.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The snapshot's `seq`; `None` for alert and error messages.
    pub snapshot_seq: Option<u64>,
    pub text: Utf8Bytes,
}

/// A subscriber's end of a feed.
#[derive(Debug)]
pub struct Subscription {
    pub scope: Scope,
    pub frames: broadcast::Receiver<Frame>,
    /// The feed's last snapshot, so a new subscriber does not wait a whole interval.
    pub latest: Option<Frame>,
}

struct Feed {
    sender: broadcast::Sender<Frame>,
    latest: Mutex<Option<Frame>>,
}

impl Feed {
    fn publish(&self, frame: Frame) {
        if frame.snapshot_seq.is_some() {
            *self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(frame.clone());
        }
        // No receiver: the next tick retires the feed.
        let _ = self.sender.send(frame);
    }

    fn latest(&self) -> Option<Frame> {
        self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

struct Inner {
    sources: Sources,
    config: LiveConfig,
    metrics: LiveMetrics,
    alert_events: broadcast::Sender<AlertEvent>,
    feeds: Mutex<HashMap<Scope, Arc<Feed>>>,
    shutdown: watch::Receiver<bool>,
    /// Open connections; shutdown waits for it to reach zero.
    connections: watch::Sender<usize>,
    tenants: tokio::sync::Mutex<Option<(Instant, Arc<Vec<String>>)>>,
}

/// Live feeds by scope, shared by every connection.
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHub").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// Counts a connection for as long as it lives.
pub struct ConnectionGuard {
    hub: LiveHub,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.hub.inner.connections.send_modify(|count| *count -= 1);
        self.hub.inner.metrics.connection_closed();
    }
}

impl LiveHub {
    pub fn new(
        sources: Sources,
        config: LiveConfig,
        metrics: LiveMetrics,
        alert_events: broadcast::Sender<AlertEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> LiveHub {
        let inner = Inner {
            sources,
            config,
            metrics,
            alert_events,
            feeds: Mutex::new(HashMap::new()),
            shutdown,
            connections: watch::Sender::new(0),
            tenants: tokio::sync::Mutex::new(None),
        };
        LiveHub { inner: Arc::new(inner) }
    }

    pub fn config(&self) -> &LiveConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &LiveMetrics {
        &self.inner.metrics
    }

    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.clone()
    }

    /// Counts a new connection, unless there are already `max_connections`.
    pub fn open_connection(&self) -> Option<ConnectionGuard> {
        let max = self.inner.config.max_connections;
        let admitted = self.inner.connections.send_if_modified(|count| {
            if *count >= max {
                return false;
            }
            *count += 1;
            true
        });
        admitted.then(|| {
            self.inner.metrics.connection_opened();
            ConnectionGuard { hub: self.clone() }
        })
    }

    /// Waits until every connection has closed, for at most `limit`; returns how many
    /// were still open.
    pub async fn wait_closed(&self, limit: Duration) -> usize {
        let mut connections = self.inner.connections.subscribe();
        let _ = tokio::time::timeout(limit, connections.wait_for(|count| *count == 0)).await;
        let open = *connections.borrow();
        open
    }

    /// Joins the feed of `scope`, starting it when nobody watches that scope yet.
    pub fn subscribe(&self, scope: Scope) -> Subscription {
        let mut feeds = self.inner.feeds.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(feed) = feeds.get(&scope) {
            return Subscription { frames: feed.sender.subscribe(), latest: feed.latest(), scope };
        }
        let (sender, frames) = broadcast::channel(self.inner.config.queue_frames);
        let feed = Arc::new(Feed { sender, latest: Mutex::new(None) });
        feeds.insert(scope.clone(), Arc::clone(&feed));
        tokio::spawn(run_feed(Arc::clone(&self.inner), scope.clone(), feed));
        Subscription { scope, frames, latest: None }
    }

    /// Tenants seen in the last hour (turns or workers), for an admin's tenant picker.
    pub async fn tenants(&self) -> Arc<Vec<String>> {
        let mut cached = self.inner.tenants.lock().await;
        if let Some((at, tenants)) = cached.as_ref() {
            if at.elapsed() < TENANTS_TTL {
                return Arc::clone(tenants);
            }
        }
        let tenants = Arc::new(self.read_tenants().await);
        *cached = Some((Instant::now(), Arc::clone(&tenants)));
        tenants
    }

    async fn read_tenants(&self) -> Vec<String> {
        let store = self.inner.sources.store.as_ref();
        let now_ms = self.inner.sources.clock.now_ms();
        let hour = TimeRange { from_ms: minute_of(now_ms - HOUR_MS), to_ms: minute_of(now_ms) + MINUTE_MS };
        let mut tenants = BTreeSet::new();
        match store.latency_by_tenant(Component::TurnE2e, hour, false).await {
            Ok(rows) => tenants.extend(rows.into_iter().map(|(tenant, _, _)| tenant)),
            Err(err) => tracing::warn!(error = %err, "live: could not list tenants from latency"),
        }
        match store.workers(None).await {
            Ok(rows) => tenants.extend(rows.into_iter().map(|row| row.tenant_id)),
            Err(err) => tracing::warn!(error = %err, "live: could not list tenants from workers"),
        }
        tenants.into_iter().collect()
    }
}

impl Inner {
    /// Removes the feed when nobody subscribes to it any more; under the map's lock, so a
    /// subscriber either joins before (and keeps it) or after (and starts a new one).
    fn retire_if_unwatched(&self, scope: &Scope, feed: &Arc<Feed>) -> bool {
        let mut feeds = self.feeds.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if feed.sender.receiver_count() > 0 {
            return false;
        }
        if feeds.get(scope).is_some_and(|current| Arc::ptr_eq(current, feed)) {
            feeds.remove(scope);
        }
        true
    }

    async fn snapshot_frame(&self, scope: &Scope, seq: u64) -> Frame {
        let now_ms = self.sources.clock.now_ms();
        let started = Instant::now();
        let snapshot = compute(&self.sources, scope, seq, now_ms).await;
        self.metrics.snapshot(started.elapsed());
        match snapshot.map(|snapshot| serde_json::to_string(&snapshot)) {
            Ok(Ok(text)) => Frame { snapshot_seq: Some(seq), text: text.into() },
            Ok(Err(err)) => error_frame("internal", &format!("the snapshot could not be written: {err}")),
            Err(err) => {
                tracing::warn!(error = %err, tenant = ?scope.tenant_id, "live: snapshot not computed");
                error_frame("unavailable", "the snapshot could not be computed this interval; retrying")
            }
        }
    }
}

async fn run_feed(inner: Arc<Inner>, scope: Scope, feed: Arc<Feed>) {
    inner.metrics.feed_started();
    tracing::debug!(?scope, "live: feed started");
    let mut ticks = tokio::time::interval(scope.interval());
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut alerts = inner.alert_events.subscribe();
    let mut alerts_open = true;
    let mut shutdown = inner.shutdown.clone();
    let mut seq = 0;
    loop {
        tokio::select! {
            _ = stopping(&mut shutdown) => break,
            _ = ticks.tick() => {
                if inner.retire_if_unwatched(&scope, &feed) {
                    break;
                }
                let frame = inner.snapshot_frame(&scope, seq + 1).await;
                if frame.snapshot_seq.is_some() {
                    seq += 1;
                }
                feed.publish(frame);
            }
            event = alerts.recv(), if alerts_open => match event {
                Ok(event) => {
                    let mut batch = vec![event];
                    while let Ok(event) = alerts.try_recv() {
                        batch.push(event);
                    }
                    let now_ms = inner.sources.clock.now_ms();
                    if let Some(frame) = alert_frame(scope.tenant_id.as_deref(), &batch, now_ms) {
                        feed.publish(frame);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "live: missed alert changes; the next snapshot lists the alerts");
                }
                Err(RecvError::Closed) => alerts_open = false,
            },
        }
    }
    tracing::debug!(?scope, "live: feed stopped");
    inner.metrics.feed_stopped();
}

/// Resolves once shutdown is signalled (or its sender is gone).
pub async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// An `error` message.
pub fn error_frame(code: &str, message: &str) -> Frame {
    let text = serde_json::json!({"type": "error", "code": code, "message": message}).to_string();
    Frame { snapshot_seq: None, text: text.into() }
}

#[derive(Debug, Serialize)]
struct AlertMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    at: String,
    tenant_id: Option<&'a str>,
    changes: Vec<AlertChange<'a>>,
}

/// One alert state change, as the live view sends it.
#[derive(Debug, Serialize)]
struct AlertChange<'a> {
    /// `pending`, `firing`, `resolved` (was firing, condition over) or `dropped` (was
    /// pending, never fired).
    change: &'static str,
    fingerprint: &'a str,
    rule: &'a str,
    state: AlertState,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    value: f64,
    active_since: String,
    firing_since: Option<String>,
}

impl<'a> AlertChange<'a> {
    fn of(change: &'static str, alert: &'a Alert) -> AlertChange<'a> {
        AlertChange {
            change,
            fingerprint: &alert.fingerprint,
            rule: &alert.rule,
            state: alert.state,
            labels: &alert.labels,
            annotations: &alert.annotations,
            value: alert.value,
            active_since: format_time(alert.active_since_ms),
            firing_since: alert.firing_since_ms.map(format_time),
        }
    }
}

/// The `alert` message of the changes `tenant` may see, if any.
fn alert_frame(tenant: Option<&str>, events: &[AlertEvent], now_ms: i64) -> Option<Frame> {
    let changes: Vec<AlertChange> = events
        .iter()
        .filter(|event| visible(&event.alert.labels, tenant))
        .map(|event| AlertChange::of(event.kind, &event.alert))
        .collect();
    if changes.is_empty() {
        return None;
    }
    let message = AlertMessage { kind: "alert", at: format_time(now_ms), tenant_id: tenant, changes };
    let text = serde_json::to_string(&message).ok()?;
    Some(Frame { snapshot_seq: None, text: text.into() })
}
