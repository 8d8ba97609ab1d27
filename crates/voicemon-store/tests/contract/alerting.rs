//! Alerting state: ticks saved in one piece, the outbox delivered in order per receiver
//! and rule, delivery attempts and receiver health, silences and history.

use crate::backends::on_both_backends;
use crate::events::{at, range};
use crate::transcript::Transcript;
use std::collections::BTreeMap;
use std::sync::Arc;
use voicemon_core::alerting::evaluator::{Alert, AlertState};
use voicemon_core::alerting::fingerprint;
use voicemon_core::alerting::policy::NotifyRecord;
use voicemon_core::alerting::silence::{Matcher, Silence};
use voicemon_core::alerting::{HistoryKind, Labels};
use voicemon_store::{AlertingTick, Delivery, HistoryEntry, OutboxItem, ReceiverState, Store, StoreError};

const LATENCY: &str = "turn_latency_p95";
const COST: &str = "cost_per_minute";

fn labels(rule: &str) -> Labels {
    Labels::from([
        ("alertname".into(), rule.into()),
        ("severity".into(), "page".into()),
        ("tenant_id".into(), "acme".into()),
    ])
}

fn alert(rule: &str, state: AlertState, value: f64) -> Alert {
    let labels = labels(rule);
    Alert {
        fingerprint: fingerprint(&labels),
        rule: rule.into(),
        labels,
        state,
        active_since_ms: at(9, 55),
        firing_since_ms: (state == AlertState::Firing).then_some(at(10, 0)),
        last_true_ms: at(10, 0),
        keep_firing_since_ms: None,
        value,
        annotations: BTreeMap::from([("summary".into(), format!("{rule} is {value}"))]),
    }
}

fn history(kind: &str, rule: &str, at_ms: i64, value: Option<f64>) -> HistoryEntry {
    HistoryEntry {
        at_ms,
        kind: HistoryKind::parse(kind).expect("a history kind"),
        fingerprint: fingerprint(&labels(rule)),
        rule: rule.into(),
        tenant_id: Some("acme".into()),
        labels: labels(rule),
        value,
        detail: None,
    }
}

fn outbox(
    id: i64,
    receiver: &str,
    rule: &str,
    payload: &str,
    created_ms: i64,
    next_ms: i64,
    attempts: u32,
) -> OutboxItem {
    OutboxItem {
        id,
        receiver: receiver.into(),
        rule: rule.into(),
        payload: payload.into(),
        created_ms,
        next_attempt_ms: next_ms,
        attempts,
    }
}

fn record(rule: &str, first_ms: i64, last_ms: i64) -> NotifyRecord {
    NotifyRecord {
        fingerprint: fingerprint(&labels(rule)),
        rule: rule.into(),
        first_notified_ms: first_ms,
        last_notified_ms: last_ms,
    }
}

fn by_fingerprint(mut alerts: Vec<Alert>) -> Vec<Alert> {
    alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    alerts
}

/// Tick 1 at 10:00: a pending and a firing alert, three messages. Tick 2 at 10:01: the
/// pending alert dropped, the firing one updated, one more message.
async fn save_two_ticks(store: &dyn Store) {
    let first = AlertingTick {
        now_ms: at(10, 0),
        upsert_alerts: vec![
            alert(LATENCY, AlertState::Pending, 912.5),
            alert(COST, AlertState::Firing, 0.31),
        ],
        upsert_records: vec![record(COST, at(10, 0), at(10, 0))],
        outbox: vec![
            ("slack".into(), COST.into(), r#"{"status":"firing"}"#.into()),
            ("webhook".into(), COST.into(), r#"{"status":"firing","to":"webhook"}"#.into()),
            ("slack".into(), LATENCY.into(), r#"{"status":"pending"}"#.into()),
        ],
        history: vec![
            history("pending", LATENCY, at(10, 0), Some(912.5)),
            history("fired", COST, at(10, 0), Some(0.31)),
        ],
        ..AlertingTick::default()
    };
    store.save_alerting(first).await.expect("the first tick is stored");
    let second = AlertingTick {
        now_ms: at(10, 1),
        upsert_alerts: vec![alert(COST, AlertState::Firing, 0.35)],
        delete_alerts: vec![fingerprint(&labels(LATENCY))],
        // The first notification time is kept; only the last one moves.
        upsert_records: vec![record(COST, at(10, 1), at(10, 1))],
        outbox: vec![("slack".into(), COST.into(), r#"{"status":"resolved"}"#.into())],
        history: vec![history("dropped", LATENCY, at(10, 1), None)],
        ..AlertingTick::default()
    };
    store.save_alerting(second).await.expect("the second tick is stored");
}

#[tokio::test]
async fn alerting_ticks_are_saved_and_loaded_whole() {
    on_both_backends(ticks).await;
}

async fn ticks(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    t.check("nothing at first", store.load_alerting(at(10, 0)).await.unwrap(), Default::default());
    save_two_ticks(&*store).await;
    let state = store.load_alerting(at(10, 1)).await.unwrap();
    t.check(
        "the alert left active",
        by_fingerprint(state.alerts),
        vec![alert(COST, AlertState::Firing, 0.35)],
    );
    t.check("the notification log", state.records, vec![record(COST, at(10, 0), at(10, 1))]);
    let third = AlertingTick {
        now_ms: at(10, 2),
        delete_alerts: vec![fingerprint(&labels(COST))],
        delete_records: vec![fingerprint(&labels(COST))],
        history: vec![history("resolved", COST, at(10, 2), Some(0.1))],
        ..AlertingTick::default()
    };
    store.save_alerting(third).await.expect("the third tick is stored");
    t.check("resolved and forgotten", store.load_alerting(at(10, 2)).await.unwrap(), Default::default());
    t
}

#[tokio::test]
async fn the_outbox_delivers_each_rules_messages_to_a_receiver_in_order() {
    on_both_backends(deliveries).await;
}

async fn deliveries(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    save_two_ticks(&*store).await;
    let due = |now_ms, limit| {
        let store = Arc::clone(&store);
        async move { store.claim_outbox(now_ms, limit, 0).await.expect("the outbox reads") }
    };
    let first = outbox(1, "slack", COST, r#"{"status":"firing"}"#, at(10, 0), at(10, 0), 0);
    let to_webhook =
        outbox(2, "webhook", COST, r#"{"status":"firing","to":"webhook"}"#, at(10, 0), at(10, 0), 0);
    let pending = outbox(3, "slack", LATENCY, r#"{"status":"pending"}"#, at(10, 0), at(10, 0), 0);
    let resolved = outbox(4, "slack", COST, r#"{"status":"resolved"}"#, at(10, 1), at(10, 1), 0);
    t.check("nothing is due before it was created", due(at(9, 59), 10).await, Vec::new());
    t.check(
        "a message waits for the earlier one of its receiver and rule",
        due(at(10, 1), 10).await,
        vec![first.clone(), to_webhook.clone(), pending.clone()],
    );
    t.check(
        "oldest first, at most `limit`",
        due(at(10, 1), 2).await,
        vec![first.clone(), to_webhook.clone()],
    );

    let retry = Delivery::Retry { at_ms: at(10, 1), next_attempt_ms: at(10, 5), error: "HTTP 503".into() };
    store.record_delivery(&first, retry).await.expect("the retry is recorded");
    t.check(
        "a message being retried still holds back the next one",
        due(at(10, 2), 10).await,
        vec![to_webhook.clone(), pending.clone()],
    );
    store.record_delivery(&to_webhook, Delivery::Sent { at_ms: at(10, 2) }).await.unwrap();
    let failed = Delivery::Failed { at_ms: at(10, 2), error: "HTTP 404".into(), broken: true };
    store.record_delivery(&pending, failed).await.unwrap();
    let receiver = |name: &str, broken, last_error: Option<&str>, last_sent_ms, pending| ReceiverState {
        name: name.into(),
        broken,
        last_error: last_error.map(Into::into),
        last_sent_ms,
        pending,
    };
    t.check(
        "a 404 marks its receiver broken",
        store.receiver_states().await.unwrap(),
        vec![
            receiver("slack", true, Some("HTTP 404"), None, 2),
            receiver("webhook", false, None, Some(at(10, 2)), 0),
        ],
    );
    let retried = outbox(1, "slack", COST, r#"{"status":"firing"}"#, at(10, 0), at(10, 5), 1);
    t.check(
        "the retry is due at its time, one attempt made",
        due(at(10, 5), 10).await,
        vec![retried.clone()],
    );
    store.record_delivery(&retried, Delivery::Sent { at_ms: at(10, 5) }).await.unwrap();
    t.check("then the resolved message follows", due(at(10, 5), 10).await, vec![resolved]);
    t.check(
        "a message sent mends its receiver",
        store.receiver_states().await.unwrap(),
        vec![
            receiver("slack", false, Some("HTTP 404"), Some(at(10, 5)), 1),
            receiver("webhook", false, None, Some(at(10, 2)), 0),
        ],
    );

    let delivered = |kind: &str, rule: &str, at_ms, detail: &str| HistoryEntry {
        at_ms,
        kind: HistoryKind::parse(kind).expect("a history kind"),
        fingerprint: String::new(),
        rule: rule.into(),
        tenant_id: None,
        labels: Labels::new(),
        value: None,
        detail: Some(detail.into()),
    };
    let everything = vec![
        delivered("notified", COST, at(10, 5), "to slack"),
        delivered("notification_failed", LATENCY, at(10, 2), "to slack: HTTP 404"),
        delivered("notified", COST, at(10, 2), "to webhook"),
        delivered("notification_retrying", COST, at(10, 1), "to slack: HTTP 503"),
        history("dropped", LATENCY, at(10, 1), None),
        history("fired", COST, at(10, 0), Some(0.31)),
        history("pending", LATENCY, at(10, 0), Some(912.5)),
    ];
    let read = |range, rule, tenant, limit| {
        let store = Arc::clone(&store);
        async move { store.alert_history(range, rule, tenant, limit).await.expect("history reads") }
    };
    let morning = range(at(9, 0), at(11, 0));
    t.check("history, newest first", read(morning, None, None, 100).await, everything.clone());
    t.check(
        "of one rule",
        read(morning, Some(LATENCY), None, 100).await,
        vec![everything[1].clone(), everything[4].clone(), everything[6].clone()],
    );
    t.check("of one tenant", read(morning, None, Some("acme"), 100).await, everything[4..].to_vec());
    t.check("at most `limit`", read(morning, None, None, 2).await, everything[..2].to_vec());
    t.check(
        "in a range",
        read(range(at(10, 1), at(10, 5)), None, None, 100).await,
        everything[1..5].to_vec(),
    );
    t.check(
        "of a rule and tenant",
        read(morning, Some(COST), Some("acme"), 100).await,
        vec![everything[5].clone()],
    );
    t
}

fn silence(id: &str, ends_ms: i64) -> Silence {
    Silence {
        id: id.into(),
        matchers: vec![Matcher { name: "tenant_id".into(), value: "acme".into(), equal: true }],
        starts_ms: at(9, 0),
        ends_ms,
        comment: "maintenance window".into(),
        author: "oncall@acme.test".into(),
        created_ms: at(8, 55),
    }
}

fn error_kind<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Ok(value) => format!("ok: {value:?}"),
        Err(StoreError::NotFound(_)) => "not found".into(),
        Err(StoreError::Internal(_)) => "internal".into(),
        Err(StoreError::Unavailable(_) | StoreError::Fault { .. }) => "unavailable".into(),
        Err(StoreError::Config(_)) => "configuration".into(),
        Err(StoreError::LeaseLost(_)) => "lease lost".into(),
    }
}

#[tokio::test]
async fn silences_are_listed_until_they_end_and_expire_early_on_request() {
    on_both_backends(silences).await;
}

async fn silences(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    store.create_silence(silence("s-2", at(10, 30))).await.expect("a silence is stored");
    store.create_silence(silence("s-1", at(11, 0))).await.expect("a silence is stored");
    t.check(
        "a silence id is unique",
        error_kind(store.create_silence(silence("s-1", at(12, 0))).await),
        "internal".into(),
    );
    t.check(
        "silences by id",
        store.silences(at(10, 0)).await.unwrap(),
        vec![silence("s-1", at(11, 0)), silence("s-2", at(10, 30))],
    );
    t.check(
        "expiring ends it now",
        store.expire_silence("s-1", at(10, 10)).await.unwrap(),
        silence("s-1", at(10, 10)),
    );
    t.check(
        "so it is no longer listed",
        store.silences(at(10, 20)).await.unwrap(),
        vec![silence("s-2", at(10, 30))],
    );
    t.check(
        "nor loaded",
        store.load_alerting(at(10, 20)).await.unwrap().silences,
        vec![silence("s-2", at(10, 30))],
    );
    t.check(
        "expiring an ended silence keeps its end",
        store.expire_silence("s-2", at(10, 50)).await.unwrap(),
        silence("s-2", at(10, 30)),
    );
    t.check(
        "an unknown silence",
        error_kind(store.expire_silence("nope", at(10, 50)).await),
        "not found".into(),
    );
    t.check("none left", store.silences(at(10, 30)).await.unwrap(), Vec::new());
    t
}
