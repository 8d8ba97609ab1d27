//! The notice as stored in the outbox: everything a receiver needs to render it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use voicemon_core::alerting::evaluator::Alert;

/// One alert in a notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
}

impl AlertView {
    pub fn firing(alert: &Alert) -> AlertView {
        AlertView {
            fingerprint: alert.fingerprint.clone(),
            status: "firing".into(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at_ms: alert.firing_since_ms.unwrap_or(alert.active_since_ms),
            ends_at_ms: None,
        }
    }

    pub fn resolved(alert: &Alert, at_ms: i64) -> AlertView {
        AlertView { status: "resolved".into(), ends_at_ms: Some(at_ms), ..AlertView::firing(alert) }
    }
}

/// A message: one rule's alerts that fire and that resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticePayload {
    /// Format version of this payload (generic webhooks receive it as is).
    pub version: u32,
    pub rule: String,
    pub severity: String,
    pub firing: Vec<AlertView>,
    pub resolved: Vec<AlertView>,
    /// Where to look in voicemon.
    pub link: String,
    /// For Alertmanager: when a firing alert should be considered over if not re-sent.
    pub valid_until_ms: i64,
    pub sent_at_ms: i64,
}
