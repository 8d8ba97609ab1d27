//! Evaluation: a rule's samples → alerts that go inactive → pending → firing → resolved.
//!
//! A condition that holds makes an alert pending; once it has held for the rule's `for`,
//! firing. A pending alert whose condition stops holding is dropped (it never fired); a
//! firing one resolves when its condition has not held for `keep_firing_for` (which
//! damps flapping). Time is `now_ms`, given by the caller.

use super::rules::Rule;
use super::{fingerprint, Labels};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One value of a rule's metric for one label set.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Pending,
    Firing,
}

/// An active alert (pending or firing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub fingerprint: String,
    pub rule: String,
    /// Identity: `alertname`, `metric`, `severity` and the rule's group-by labels.
    pub labels: Labels,
    pub state: AlertState,
    /// When the condition started holding.
    pub active_since_ms: i64,
    pub firing_since_ms: Option<i64>,
    /// The last evaluation at which the condition held.
    pub last_true_ms: i64,
    /// The first evaluation that found a firing alert's condition over, while
    /// `keep_firing_for` keeps it firing (Prometheus' `KeepFiringSince`).
    #[serde(default)]
    pub keep_firing_since_ms: Option<i64>,
    /// The latest value; in annotations, never in labels.
    pub value: f64,
    pub annotations: BTreeMap<String, String>,
}

/// What one evaluation changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Became pending (its `for` has not elapsed yet).
    Pending(Alert),
    /// Started firing.
    Firing(Alert),
    /// A firing alert whose condition is over.
    Resolved { alert: Alert, at_ms: i64 },
    /// A pending alert whose condition stopped before it fired.
    Dropped(Alert),
}

/// Every active alert, by fingerprint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluator {
    alerts: BTreeMap<String, Alert>,
}

impl Evaluator {
    /// Resumes from stored alerts (after a restart).
    pub fn restore(alerts: impl IntoIterator<Item = Alert>) -> Evaluator {
        Evaluator { alerts: alerts.into_iter().map(|a| (a.fingerprint.clone(), a)).collect() }
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    pub fn get(&self, fingerprint: &str) -> Option<&Alert> {
        self.alerts.get(fingerprint)
    }

    /// Evaluates `rule` over `samples` at `now_ms`.
    pub fn evaluate(&mut self, rule: &Rule, samples: &[Sample], now_ms: i64) -> Vec<Change> {
        let mut changes = Vec::new();
        let holding = holding(rule, samples);
        for (labels, value) in &holding {
            let print = fingerprint(labels);
            let for_ms = rule.for_.as_millis() as i64;
            match self.alerts.get_mut(&print) {
                Some(alert) => {
                    alert.last_true_ms = now_ms;
                    alert.keep_firing_since_ms = None;
                    alert.value = *value;
                    alert.annotations = annotations(rule, labels, *value);
                    if alert.state == AlertState::Pending && now_ms - alert.active_since_ms >= for_ms {
                        alert.state = AlertState::Firing;
                        alert.firing_since_ms = Some(now_ms);
                        changes.push(Change::Firing(alert.clone()));
                    }
                }
                None => {
                    let fires_now = for_ms == 0;
                    let alert = Alert {
                        fingerprint: print.clone(),
                        rule: rule.name.clone(),
                        labels: labels.clone(),
                        state: if fires_now { AlertState::Firing } else { AlertState::Pending },
                        active_since_ms: now_ms,
                        firing_since_ms: fires_now.then_some(now_ms),
                        last_true_ms: now_ms,
                        keep_firing_since_ms: None,
                        value: *value,
                        annotations: annotations(rule, labels, *value),
                    };
                    changes.push(if fires_now {
                        Change::Firing(alert.clone())
                    } else {
                        Change::Pending(alert.clone())
                    });
                    self.alerts.insert(print, alert);
                }
            }
        }
        let keep_ms = rule.keep_firing_for.as_millis() as i64;
        let mut over = Vec::new();
        for alert in
            self.alerts.values_mut().filter(|a| a.rule == rule.name && !holding.contains_key(&a.labels))
        {
            let since = *alert.keep_firing_since_ms.get_or_insert(now_ms);
            if alert.state == AlertState::Pending || now_ms - since >= keep_ms {
                over.push(alert.fingerprint.clone());
            }
        }
        for print in over {
            if let Some(alert) = self.alerts.remove(&print) {
                changes.push(match alert.state {
                    AlertState::Pending => Change::Dropped(alert),
                    AlertState::Firing => Change::Resolved { alert, at_ms: now_ms },
                });
            }
        }
        changes
    }

    /// Forgets the alerts of rules that no longer exist; returns them, resolved.
    pub fn retain_rules(&mut self, names: &[&str], now_ms: i64) -> Vec<Change> {
        let gone: Vec<String> = self
            .alerts
            .values()
            .filter(|a| !names.contains(&a.rule.as_str()))
            .map(|a| a.fingerprint.clone())
            .collect();
        gone.into_iter()
            .filter_map(|print| self.alerts.remove(&print))
            .map(|alert| match alert.state {
                AlertState::Pending => Change::Dropped(alert),
                AlertState::Firing => Change::Resolved { alert, at_ms: now_ms },
            })
            .collect()
    }
}

/// The label sets whose condition holds, with their value: samples reduced to the
/// rule's group-by labels (the worst value wins when several collapse into one), outside
/// the rule's tenants dropped.
fn holding(rule: &Rule, samples: &[Sample]) -> BTreeMap<Labels, f64> {
    let mut holding: BTreeMap<Labels, f64> = BTreeMap::new();
    for sample in samples {
        if !rule.tenants.is_empty() {
            let tenant = sample.labels.get("tenant_id");
            if !tenant.is_some_and(|t| rule.tenants.contains(t)) {
                continue;
            }
        }
        if sample.value.is_nan() || sample.value <= rule.threshold {
            continue;
        }
        let mut labels: Labels = sample
            .labels
            .iter()
            .filter(|(name, _)| rule.group_by.contains(name))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        labels.insert("alertname".into(), rule.name.clone());
        labels.insert("metric".into(), rule.metric.name().into());
        labels.insert("severity".into(), rule.severity.as_str().into());
        let worst = holding.entry(labels).or_insert(sample.value);
        *worst = worst.max(sample.value);
    }
    holding
}

/// Values shown with as many decimals as their size needs.
pub fn format_value(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.4}")
    }
}

fn annotations(rule: &Rule, labels: &Labels, value: f64) -> BTreeMap<String, String> {
    let mut summary = rule
        .summary
        .replace("{value}", &format_value(value))
        .replace("{threshold}", &format_value(rule.threshold));
    for (name, label) in labels {
        summary = summary.replace(&format!("{{{name}}}"), label);
    }
    BTreeMap::from([
        ("summary".to_owned(), summary),
        ("value".to_owned(), format_value(value)),
        ("threshold".to_owned(), format_value(rule.threshold)),
        ("unit".to_owned(), rule.metric.unit().to_owned()),
    ])
}
