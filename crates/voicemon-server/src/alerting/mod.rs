//! The alert engine: every evaluation interval it measures each rule, moves alerts
//! through pending → firing → resolved, decides what to notify (grouping, repeat
//! interval, silences, inhibition) and stores the tick — alerts, notification log,
//! outbox messages and history — in one transaction, so a restart resumes exactly.

pub mod samples;

use crate::notify::payload::{AlertView, NoticePayload};
use crate::notify::{Receiver, ReceiverKind};
use crate::query::health::{report, Depth};
use crate::redis::RedisMonitor;
use crate::roles::{Role, Roles};
use crate::telemetry::Telemetry;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify};
use voicemon_core::alerting::evaluator::{Alert, AlertState, Change, Evaluator};
use voicemon_core::alerting::policy::{Notice, Policy, PolicyConfig};
use voicemon_core::alerting::rules::Rule;
use voicemon_core::alerting::silence::{is_inhibited, InhibitRule, Silence};
use voicemon_core::alerting::HistoryKind;
use voicemon_core::clock::Clock;
use voicemon_core::health::HealthRules;
use voicemon_store::{AlertStore, AlertingTick, HistoryEntry, LeaseClaim, Store, StoreError};

/// Alerting settings.
#[derive(Debug, Clone)]
pub struct AlertingConfig {
    pub rules: Vec<Rule>,
    pub evaluation_interval: Duration,
    pub policy: PolicyConfig,
    pub inhibit: Vec<InhibitRule>,
    pub receivers: Vec<Receiver>,
    /// Base URL of voicemon for links in messages.
    pub public_url: Option<String>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            rules: voicemon_core::alerting::rules::default_rules(),
            evaluation_interval: Duration::from_secs(10),
            policy: PolicyConfig::default(),
            inhibit: voicemon_core::alerting::silence::default_inhibit_rules(),
            receivers: Vec::new(),
            public_url: None,
        }
    }
}

/// How often firing alerts are re-sent to an Alertmanager (it expires alerts not re-sent).
const ALERTMANAGER_RESEND_MS: i64 = 60_000;

/// An alert state change, for live subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub kind: &'static str,
    pub alert: Alert,
}

/// The engine's state between ticks.
pub struct Engine {
    /// What rules are measured on: the health report and every subsystem's facts.
    facts: Arc<dyn Store>,
    /// The engine's own state: alerts, notification log, outbox, silences, history.
    store: Arc<dyn AlertStore>,
    redis: RedisMonitor,
    health_rules: HealthRules,
    config: AlertingConfig,
    evaluator: Evaluator,
    policy: Policy,
    /// Fingerprints muted by a silence at the last tick (to record "silenced" once).
    silenced: BTreeSet<String>,
    /// Fingerprints silenced or inhibited at the last tick: no group wait to wake for.
    muted: BTreeSet<String>,
    last_alertmanager_resend_ms: i64,
    link_base: String,
    events: broadcast::Sender<AlertEvent>,
    /// The alerting lease the ticks are stored under, once [`Engine::spawn`] runs it.
    lease: Option<LeaseClaim>,
}

/// What woke the engine.
enum Wake {
    Evaluation,
    GroupWaitEnded,
}

impl Engine {
    /// Resumes from the stored alerting state. The engine takes the whole store because
    /// rules are measured on the health report and every subsystem's facts; its own
    /// state goes through [`AlertStore`] only.
    pub async fn load(
        store: Arc<dyn Store>,
        redis: RedisMonitor,
        health_rules: HealthRules,
        config: AlertingConfig,
        link_base: String,
        events: broadcast::Sender<AlertEvent>,
        now_ms: i64,
    ) -> Result<Engine, StoreError> {
        let state = store.load_alerting(now_ms).await?;
        if !state.alerts.is_empty() {
            tracing::info!(alerts = state.alerts.len(), "resumed alerts from the store");
        }
        Ok(Engine {
            facts: Arc::clone(&store),
            store,
            redis,
            health_rules,
            evaluator: Evaluator::restore(state.alerts),
            policy: Policy::new(config.policy, state.records),
            config,
            silenced: BTreeSet::new(),
            muted: BTreeSet::new(),
            last_alertmanager_resend_ms: i64::MIN / 2,
            link_base,
            events,
            lease: None,
        })
    }

    /// Takes up the stored state again: another instance may have evaluated, notified and
    /// resolved since this one last held the alerting role.
    async fn resume(&mut self, now_ms: i64) -> Result<(), StoreError> {
        let state = self.store.load_alerting(now_ms).await?;
        tracing::info!(alerts = state.alerts.len(), "took over alert evaluation from the stored state");
        self.evaluator = Evaluator::restore(state.alerts);
        self.policy = Policy::new(self.config.policy, state.records);
        self.silenced.clear();
        self.muted.clear();
        self.last_alertmanager_resend_ms = i64::MIN / 2;
        Ok(())
    }

    /// One evaluation at `now_ms`.
    pub async fn tick(&mut self, now_ms: i64) -> Result<(), StoreError> {
        let health =
            report(self.facts.as_ref(), &self.redis, &self.health_rules, None, now_ms, Depth::Recent).await;
        let mut changes = Vec::new();
        let mut reads = samples::TickReads::default();
        for rule in &self.config.rules {
            match samples::samples(self.facts.as_ref(), rule, &health, now_ms, &mut reads).await {
                Ok(samples) => changes.extend(self.evaluator.evaluate(rule, &samples, now_ms)),
                Err(err) => tracing::warn!(rule = %rule.name, error = %err, "rule not evaluated this time"),
            }
        }
        let names: Vec<&str> = self.config.rules.iter().map(|r| r.name.as_str()).collect();
        changes.extend(self.evaluator.retain_rules(&names, now_ms));
        self.notify(changes, now_ms).await
    }

    /// Decides and stores what to notify after `changes` (none: a group wait ended
    /// between two evaluations).
    pub async fn notify(&mut self, changes: Vec<Change>, now_ms: i64) -> Result<(), StoreError> {
        let silences = self.store.silences(now_ms).await?;
        let firing_now: Vec<Alert> =
            self.evaluator.alerts().filter(|a| a.state == AlertState::Firing).cloned().collect();
        let firing: Vec<&Alert> = firing_now.iter().collect();
        let resolved: Vec<Alert> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Resolved { alert, .. } => Some(alert.clone()),
                _ => None,
            })
            .collect();
        let silenced_now: BTreeSet<String> = firing
            .iter()
            .filter(|a| is_silenced(a, &silences, now_ms))
            .map(|a| a.fingerprint.clone())
            .collect();
        let inhibit = &self.config.inhibit;
        let muted = |alert: &Alert| {
            silenced_now.contains(&alert.fingerprint) || is_inhibited(alert, &firing, inhibit)
        };
        let muted_now: BTreeSet<String> =
            firing.iter().filter(|a| muted(a)).map(|a| a.fingerprint.clone()).collect();
        let notices = self.policy.due(&firing, &resolved, muted, now_ms);

        let mut tick = AlertingTick { now_ms, lease: self.lease.clone(), ..AlertingTick::default() };
        tick.history = history_of(&changes, now_ms);
        for print in silenced_now.difference(&self.silenced) {
            if let Some(alert) = self.evaluator.get(print) {
                tick.history.push(entry(HistoryKind::Silenced, alert, now_ms, None));
            }
        }
        for notice in &notices {
            self.enqueue(&mut tick, notice, now_ms);
        }
        self.resend_to_alertmanagers(&mut tick, &firing, &silenced_now, now_ms);
        tick.upsert_alerts = self.evaluator.alerts().cloned().collect();
        tick.delete_alerts = changes
            .iter()
            .filter_map(|c| match c {
                Change::Resolved { alert, .. } | Change::Dropped(alert) => Some(alert.fingerprint.clone()),
                _ => None,
            })
            .collect();
        tick.upsert_records = self.policy.records().cloned().collect();
        tick.delete_records = resolved.iter().map(|a| a.fingerprint.clone()).collect();
        self.silenced = silenced_now;
        self.muted = muted_now;
        self.store.save_alerting(tick).await?;
        for change in changes {
            let _ = self.events.send(event_of(change));
        }
        Ok(())
    }

    fn receivers_of(&self, rule: &str) -> Vec<&Receiver> {
        let wanted = self
            .config
            .rules
            .iter()
            .find(|r| r.name == rule)
            .map(|r| r.receivers.clone())
            .unwrap_or_default();
        self.config.receivers.iter().filter(|r| wanted.is_empty() || wanted.contains(&r.name)).collect()
    }

    fn enqueue(&self, tick: &mut AlertingTick, notice: &Notice, now_ms: i64) {
        let payload = NoticePayload {
            version: 1,
            rule: notice.rule.clone(),
            severity: self.severity_of(&notice.rule),
            firing: notice.firing.iter().map(AlertView::firing).collect(),
            resolved: notice.resolved.iter().map(|a| AlertView::resolved(a, now_ms)).collect(),
            link: self.link_for(notice.firing.first().or(notice.resolved.first())),
            valid_until_ms: now_ms + 4 * ALERTMANAGER_RESEND_MS,
            sent_at_ms: now_ms,
        };
        let text = serde_json::to_string(&payload).unwrap_or_default();
        for receiver in self.receivers_of(&notice.rule) {
            tick.outbox.push((receiver.name.clone(), notice.rule.clone(), text.clone()));
        }
        if self.config.receivers.is_empty() {
            tracing::warn!(rule = %notice.rule, "an alert is due but no receiver is configured (set SLACK_WEBHOOK_URL)");
        }
    }

    /// Alertmanager forgets alerts that are not re-sent: send every firing alert again
    /// once a minute (the policy's repeat interval applies to people, not to it).
    fn resend_to_alertmanagers(
        &mut self,
        tick: &mut AlertingTick,
        firing: &[&Alert],
        silenced: &BTreeSet<String>,
        now_ms: i64,
    ) {
        if now_ms - self.last_alertmanager_resend_ms < ALERTMANAGER_RESEND_MS {
            return;
        }
        self.last_alertmanager_resend_ms = now_ms;
        let managers: Vec<&Receiver> =
            self.config.receivers.iter().filter(|r| r.kind == ReceiverKind::Alertmanager).collect();
        for rule in &self.config.rules {
            let alerts: Vec<AlertView> = firing
                .iter()
                .filter(|a| a.rule == rule.name && !silenced.contains(&a.fingerprint))
                .filter(|a| self.policy.was_notified(&a.fingerprint))
                .map(|a| AlertView::firing(a))
                .collect();
            if alerts.is_empty() {
                continue;
            }
            let payload = NoticePayload {
                version: 1,
                rule: rule.name.clone(),
                severity: rule.severity.as_str().into(),
                firing: alerts,
                resolved: Vec::new(),
                link: self.link_for(None),
                valid_until_ms: now_ms + 4 * ALERTMANAGER_RESEND_MS,
                sent_at_ms: now_ms,
            };
            let text = serde_json::to_string(&payload).unwrap_or_default();
            for manager in
                managers.iter().filter(|m| rule.receivers.is_empty() || rule.receivers.contains(&m.name))
            {
                if !tick.outbox.iter().any(|(r, name, _)| r == &manager.name && name == &rule.name) {
                    tick.outbox.push((manager.name.clone(), rule.name.clone(), text.clone()));
                }
            }
        }
    }

    fn severity_of(&self, rule: &str) -> String {
        self.config
            .rules
            .iter()
            .find(|r| r.name == rule)
            .map_or("warning", |r| r.severity.as_str())
            .to_owned()
    }

    /// The voicemon page that explains an alert.
    fn link_for(&self, alert: Option<&Alert>) -> String {
        let base = self.link_base.trim_end_matches('/');
        let Some(alert) = alert else { return format!("{base}/metrics/health") };
        let tenant = alert.labels.get("tenant_id");
        match (alert.labels.get("metric").map(String::as_str), tenant) {
            (Some("latency"), Some(tenant)) => format!("{base}/metrics/latency?tenant_id={tenant}&step=1m"),
            (Some("cost_per_call" | "cost_per_minute"), Some(tenant)) => {
                format!("{base}/metrics/cost?tenant_id={tenant}&group_by=provider")
            }
            _ => format!("{base}/metrics/health"),
        }
    }

    /// When the earliest group wait of a firing alert not yet notified ends, if any.
    fn next_group_deadline(&self) -> Option<i64> {
        self.evaluator
            .alerts()
            .filter(|a| a.state == AlertState::Firing && !self.policy.was_notified(&a.fingerprint))
            .filter(|a| !self.muted.contains(&a.fingerprint))
            .filter_map(|a| a.firing_since_ms)
            .map(|since| since + self.config.policy.group_wait_ms)
            .min()
    }

    /// Evaluates every `evaluation_interval` until `shutdown` turns true, and notifies
    /// at the end of a group wait without waiting for the next evaluation; both only while
    /// this instance holds the alerting role (`roles`), resuming from the stored state each
    /// time it takes the role. Each evaluation is counted in `telemetry` once its outcome
    /// is known.
    pub fn spawn(
        mut self,
        clock: Arc<dyn Clock>,
        roles: Roles,
        wake_dispatcher: Arc<Notify>,
        telemetry: Telemetry,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        self.lease = Some(roles.claim(Role::Alerting));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.config.evaluation_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The state loaded at start is current while this instance holds the role.
            let mut active = roles.holds(Role::Alerting);
            loop {
                let group_wait_ends = self.next_group_deadline().filter(|_| active).map(|deadline| {
                    let wait_ms = (deadline - clock.now_ms()).max(0) as u64;
                    tokio::time::Instant::now() + Duration::from_millis(wait_ms)
                });
                let far = tokio::time::Instant::now() + Duration::from_secs(3600);
                let woke = tokio::select! {
                    _ = ticks.tick() => Wake::Evaluation,
                    _ = tokio::time::sleep_until(group_wait_ends.unwrap_or(far)), if group_wait_ends.is_some() => {
                        Wake::GroupWaitEnded
                    }
                    _ = shutdown.changed() => return,
                };
                if !roles.holds(Role::Alerting) {
                    if active {
                        tracing::info!("another instance evaluates alerts now; standing by");
                    }
                    active = false;
                    continue;
                }
                if !active {
                    if let Err(err) = self.resume(clock.now_ms()).await {
                        tracing::warn!(error = %err, "cannot load the alerting state; trying again next tick");
                        continue;
                    }
                    active = true;
                }
                // A tick that cannot be stored is undone, so it is decided again next time.
                let saved =
                    (self.evaluator.clone(), self.policy.clone(), self.silenced.clone(), self.muted.clone());
                let result = match woke {
                    Wake::Evaluation => {
                        let span = tracing::debug_span!("alert_evaluation");
                        let result = tracing::Instrument::instrument(self.tick(clock.now_ms()), span).await;
                        telemetry.evaluation(result.is_ok());
                        result
                    }
                    Wake::GroupWaitEnded => self.notify(Vec::new(), clock.now_ms()).await,
                };
                match result {
                    Ok(()) => wake_dispatcher.notify_one(),
                    Err(StoreError::LeaseLost(message)) => {
                        (self.evaluator, self.policy, self.silenced, self.muted) = saved;
                        active = false;
                        tracing::warn!(%message, "alert evaluation dropped: the alerting role passed to another instance")
                    }
                    Err(err) => {
                        (self.evaluator, self.policy, self.silenced, self.muted) = saved;
                        tracing::warn!(error = %err, "alert evaluation not stored; it runs again next tick")
                    }
                }
            }
        })
    }
}

fn is_silenced(alert: &Alert, silences: &[Silence], now_ms: i64) -> bool {
    silences.iter().any(|s| s.mutes(&alert.labels, now_ms))
}

fn entry(kind: HistoryKind, alert: &Alert, at_ms: i64, detail: Option<String>) -> HistoryEntry {
    HistoryEntry {
        at_ms,
        kind,
        fingerprint: alert.fingerprint.clone(),
        rule: alert.rule.clone(),
        tenant_id: alert.labels.get("tenant_id").cloned(),
        labels: alert.labels.clone(),
        value: Some(alert.value),
        detail: detail.or_else(|| alert.annotations.get("summary").cloned()),
    }
}

fn history_of(changes: &[Change], now_ms: i64) -> Vec<HistoryEntry> {
    changes
        .iter()
        .map(|change| match change {
            Change::Pending(alert) => entry(HistoryKind::Pending, alert, now_ms, None),
            Change::Firing(alert) => entry(HistoryKind::Fired, alert, now_ms, None),
            Change::Resolved { alert, at_ms } => entry(HistoryKind::Resolved, alert, *at_ms, None),
            Change::Dropped(alert) => entry(HistoryKind::Dropped, alert, now_ms, None),
        })
        .collect()
}

fn event_of(change: Change) -> AlertEvent {
    match change {
        Change::Pending(alert) => AlertEvent { kind: "pending", alert },
        Change::Firing(alert) => AlertEvent { kind: "firing", alert },
        Change::Resolved { alert, .. } => AlertEvent { kind: "resolved", alert },
        Change::Dropped(alert) => AlertEvent { kind: "dropped", alert },
    }
}

/// The engine's timers on tokio's paused clock, with a manual clock for the times it
/// stores: evaluations and group waits are observed at exact virtual instants.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::SecretUrl;
    use tokio::time::Instant as VirtualInstant;
    use voicemon_core::clock::ManualClock;
    use voicemon_core::pricing::Costing;
    use voicemon_core::validate::parse_event;
    use voicemon_store::sqlite::{Durability, SqliteStore};
    use voicemon_store::IngestEvent;

    /// 2026-11-27T12:00:00Z.
    const NOW_MS: i64 = 1_795_780_800_000;
    const INTERVAL: Duration = Duration::from_secs(10);
    const GROUP_WAIT_MS: i64 = 3_000;

    /// An engine evaluating every [`INTERVAL`] over a fresh SQLite store, with one webhook
    /// receiver (never sent to: nothing dispatches here).
    struct Running {
        store: Arc<dyn Store>,
        clock: ManualClock,
        telemetry: Telemetry,
        /// Notified after each stored evaluation or group-wait notification.
        stored: Arc<Notify>,
        _stop: watch::Sender<bool>,
        _dir: tempfile::TempDir,
    }

    impl Running {
        async fn start(events: &[&str]) -> Running {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let store: Arc<dyn Store> =
                Arc::new(SqliteStore::open(dir.path(), Durability::Normal).expect("the store opens"));
            let events: Vec<IngestEvent> = events
                .iter()
                .map(|json| IngestEvent {
                    event: parse_event(json, NOW_MS).expect("a valid event"),
                    costing: Costing::NotUsage,
                })
                .collect();
            store.write_batch(events).await.expect("the events are stored");
            let config = AlertingConfig {
                evaluation_interval: INTERVAL,
                policy: PolicyConfig { group_wait_ms: GROUP_WAIT_MS, repeat_interval_ms: 3_600_000 },
                receivers: vec![Receiver {
                    name: "hook".into(),
                    kind: ReceiverKind::Webhook,
                    url: SecretUrl::new("http://127.0.0.1:9/hook"),
                }],
                ..AlertingConfig::default()
            };
            let (alert_events, _) = broadcast::channel(16);
            let redis = RedisMonitor::disabled();
            let rules = HealthRules::default();
            let link_base = "http://voicemon.test".to_owned();
            let engine =
                Engine::load(Arc::clone(&store), redis, rules, config, link_base, alert_events, NOW_MS)
                    .await
                    .expect("the engine loads");
            let clock = ManualClock::at(NOW_MS);
            let telemetry = Telemetry::default();
            let stored = Arc::new(Notify::new());
            let (stop, shutdown) = watch::channel(false);
            let clock_arc: Arc<dyn Clock> = Arc::new(clock.clone());
            let (roles, _) =
                Roles::start(store.clone(), Arc::clone(&clock_arc), telemetry.clone(), shutdown.clone())
                    .await;
            engine.spawn(clock_arc, roles, Arc::clone(&stored), telemetry.clone(), shutdown);
            Running { store, clock, telemetry, stored, _stop: stop, _dir: dir }
        }

        /// The rules of the outbox messages due at the manual clock's time.
        async fn due(&self) -> Vec<String> {
            let due = self.store.claim_outbox(self.clock.now_ms(), 100, 0).await.expect("the outbox reads");
            due.into_iter().map(|item| format!("{} to {}", item.rule, item.receiver)).collect()
        }
    }

    /// A worker using 90 % of its memory half a second ago: `worker_memory_high` fires at
    /// its first evaluation (it has no `for`).
    const HOT_WORKER: &str = r#"{"id":"hb-1","type":"worker.heartbeat","timestamp":"2026-11-27T11:59:59.500Z",
        "tenant_id":"acme","worker_id":"w-1","memory_used_bytes":900000000,
        "memory_limit_bytes":1000000000,"cpu_percent":40.0,"active_calls":1}"#;

    #[tokio::test(start_paused = true)]
    async fn evaluations_come_once_per_interval_and_are_counted() {
        let running = Running::start(&[]).await;
        let started = VirtualInstant::now();
        let mut at = Vec::new();
        for _ in 0..3 {
            running.stored.notified().await;
            at.push(started.elapsed());
        }
        assert_eq!(at, [Duration::ZERO, INTERVAL, 2 * INTERVAL]);
        assert_eq!(running.telemetry.evaluations_counted("ok"), 3);
        assert_eq!(running.telemetry.evaluations_counted("error"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_firing_alert_is_queued_when_its_group_wait_ends_not_at_the_next_evaluation() {
        let running = Running::start(&[HOT_WORKER]).await;
        let started = VirtualInstant::now();
        running.stored.notified().await;
        assert!(running.due().await.is_empty(), "fired, waiting for its group");

        // The engine sleeps until the group wait's end, computed from the stored time.
        running.clock.advance(GROUP_WAIT_MS);
        running.stored.notified().await;
        assert_eq!(started.elapsed(), Duration::from_millis(GROUP_WAIT_MS as u64));
        assert_eq!(running.due().await, ["worker_memory_high to hook"]);
        assert_eq!(running.telemetry.evaluations_counted("ok"), 1, "a group wait is not an evaluation");
    }
}
