//! What a delivery attempt leaves in the alert history, whatever the backend: each backend
//! updates its outbox and receivers in SQL of its own and stores this entry in the same
//! transaction.

use crate::{Delivery, HistoryEntry, OutboxItem};
use voicemon_core::alerting::HistoryKind;

/// The history entry of one attempt to deliver `item`: `notified`, `notification_failed`,
/// or `notification_retrying` for a message's first failed attempt only (later retries of
/// it add nothing, so a receiver that stays down does not flood the history).
pub fn history_entry(item: &OutboxItem, delivery: &Delivery) -> Option<HistoryEntry> {
    let receiver = &item.receiver;
    let (kind, at_ms, detail) = match delivery {
        Delivery::Sent { at_ms } => (HistoryKind::Notified, *at_ms, format!("to {receiver}")),
        Delivery::Retry { .. } if item.attempts > 0 => return None,
        Delivery::Retry { at_ms, error, .. } => {
            (HistoryKind::NotificationRetrying, *at_ms, format!("to {receiver}: {error}"))
        }
        Delivery::Failed { at_ms, error, .. } => {
            (HistoryKind::NotificationFailed, *at_ms, format!("to {receiver}: {error}"))
        }
    };
    Some(HistoryEntry {
        at_ms,
        kind,
        fingerprint: String::new(),
        rule: item.rule.clone(),
        tenant_id: None,
        labels: Default::default(),
        value: None,
        detail: Some(detail),
    })
}
