//! Alerts: the firing and pending alerts a caller may see, and the alert history.

use super::QueryError;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use voicemon_core::alerting::evaluator::{Alert, AlertState};
use voicemon_core::alerting::silence::{is_inhibited, InhibitRule, Silence};
use voicemon_core::alerting::Labels;
use voicemon_core::window::{format_time, TimeRange};
use voicemon_store::{AlertStore, HistoryEntry};

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertAnswer {
    pub fingerprint: String,
    pub rule: String,
    pub state: AlertState,
    #[schema(value_type = BTreeMap<String, String>)]
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub value: f64,
    pub active_since: String,
    pub firing_since: Option<String>,
    pub silenced: bool,
    pub inhibited: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsAnswer {
    pub firing: Vec<AlertAnswer>,
    pub pending: Vec<AlertAnswer>,
    pub silences: Vec<Silence>,
}

/// Whether a caller confined to a tenant may see an alert: only its tenant's alerts.
pub fn visible(alert_labels: &Labels, tenant: Option<&str>) -> bool {
    tenant.is_none_or(|tenant| alert_labels.get("tenant_id").is_some_and(|t| t == tenant))
}

/// The firing and pending alerts `tenant` may see (all with `None`), with whether each
/// is silenced or inhibited; silences only for callers that see every tenant.
pub async fn active_alerts(
    store: &dyn AlertStore,
    inhibit: &[InhibitRule],
    tenant: Option<&str>,
    now_ms: i64,
) -> Result<AlertsAnswer, QueryError> {
    let stored = store.load_alerting(now_ms).await?;
    let firing: Vec<&Alert> = stored.alerts.iter().filter(|a| a.state == AlertState::Firing).collect();
    let answer = |alert: &Alert| AlertAnswer {
        fingerprint: alert.fingerprint.clone(),
        rule: alert.rule.clone(),
        state: alert.state,
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        value: alert.value,
        active_since: format_time(alert.active_since_ms),
        firing_since: alert.firing_since_ms.map(format_time),
        silenced: stored.silences.iter().any(|s| s.mutes(&alert.labels, now_ms)),
        inhibited: is_inhibited(alert, &firing, inhibit),
    };
    let shown = |wanted: AlertState| {
        stored
            .alerts
            .iter()
            .filter(|a| a.state == wanted && visible(&a.labels, tenant))
            .map(answer)
            .collect::<Vec<_>>()
    };
    Ok(AlertsAnswer {
        firing: shown(AlertState::Firing),
        pending: shown(AlertState::Pending),
        silences: if tenant.is_none() { stored.silences.clone() } else { Vec::new() },
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryAnswer {
    pub from: String,
    pub to: String,
    pub entries: Vec<HistoryView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    pub at: String,
    #[serde(flatten)]
    pub entry: HistoryEntry,
}

/// History entries in `range`, newest first, of one rule and tenant when given.
pub async fn history(
    store: &dyn AlertStore,
    range: TimeRange,
    rule: Option<&str>,
    tenant_id: Option<&str>,
    limit: usize,
) -> Result<HistoryAnswer, QueryError> {
    let entries = store.alert_history(range, rule, tenant_id, limit).await?;
    Ok(HistoryAnswer {
        from: format_time(range.from_ms),
        to: format_time(range.to_ms),
        entries: entries
            .into_iter()
            .map(|entry| HistoryView { at: format_time(entry.at_ms), entry })
            .collect(),
    })
}
