//! Alerting rules and their evaluation, Prometheus-style, as pure state machines:
//! rules ([`rules`]), pending → firing → resolved with `for` and `keep_firing_for`
//! ([`evaluator`]), when to notify: grouping, repeat interval, resolved after firing
//! ([`policy`]), silences and inhibition ([`silence`]).
//!
//! An alert's identity is its rule plus its label set (the fingerprint); current values
//! go in annotations, never in labels, so a changing value is the same alert.

pub mod evaluator;
pub mod policy;
pub mod rules;
pub mod silence;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Label name → value. Every alert carries `alertname` (its rule) and `metric`.
pub type Labels = BTreeMap<String, String>;

/// What an alert history entry records: a transition of an alert, or a delivery of one
/// of its messages. Serialised (and stored) as its snake_case name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    Pending,
    Fired,
    Resolved,
    Dropped,
    /// A firing alert muted by a silence (recorded once, when the silence starts to apply).
    Silenced,
    /// A message reached its receiver.
    Notified,
    /// A message's first failed attempt; retries follow.
    NotificationRetrying,
    /// A message given up on.
    NotificationFailed,
}

impl HistoryKind {
    pub const ALL: [HistoryKind; 8] = [
        HistoryKind::Pending,
        HistoryKind::Fired,
        HistoryKind::Resolved,
        HistoryKind::Dropped,
        HistoryKind::Silenced,
        HistoryKind::Notified,
        HistoryKind::NotificationRetrying,
        HistoryKind::NotificationFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Pending => "pending",
            HistoryKind::Fired => "fired",
            HistoryKind::Resolved => "resolved",
            HistoryKind::Dropped => "dropped",
            HistoryKind::Silenced => "silenced",
            HistoryKind::Notified => "notified",
            HistoryKind::NotificationRetrying => "notification_retrying",
            HistoryKind::NotificationFailed => "notification_failed",
        }
    }

    pub fn parse(text: &str) -> Option<HistoryKind> {
        HistoryKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// The stable identity of an alert: 16 hex digits of SHA-256 over its sorted labels.
pub fn fingerprint(labels: &Labels) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in labels {
        hasher.update(name.as_bytes());
        hasher.update([0xff]);
        hasher.update(value.as_bytes());
        hasher.update([0xfe]);
    }
    hex::encode(&hasher.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::HistoryKind;

    #[test]
    fn a_history_kind_serialises_to_the_name_it_is_stored_and_parsed_under() {
        for kind in HistoryKind::ALL {
            let json = serde_json::to_string(&kind).expect("a kind serialises");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(HistoryKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(HistoryKind::parse("firing"), None);
    }
}
