//! When to notify: the notification log. A firing alert is notified once, then again at
//! most once per repeat interval while it keeps firing; alerts of one rule that fire
//! together go out as one message (the first waits `group_wait` for its companions); a
//! resolved message follows every firing message that was sent, and only those.
//!
//! The log ([`NotifyRecord`]s) is what the server persists, so a restart neither repeats
//! a firing message nor forgets to send the resolved one.

use super::evaluator::Alert;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyConfig {
    pub group_wait_ms: i64,
    pub repeat_interval_ms: i64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig { group_wait_ms: 10_000, repeat_interval_ms: 5 * 60_000 }
    }
}

/// What was sent for one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyRecord {
    pub fingerprint: String,
    pub rule: String,
    pub first_notified_ms: i64,
    pub last_notified_ms: i64,
}

/// One message to send: a rule's alerts that fire (new or repeated) and that resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub rule: String,
    pub firing: Vec<Alert>,
    pub resolved: Vec<Alert>,
}

/// The notification log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    config: PolicyConfig,
    records: BTreeMap<String, NotifyRecord>,
}

impl Policy {
    pub fn new(config: PolicyConfig, records: impl IntoIterator<Item = NotifyRecord>) -> Policy {
        Policy { config, records: records.into_iter().map(|r| (r.fingerprint.clone(), r)).collect() }
    }

    pub fn records(&self) -> impl Iterator<Item = &NotifyRecord> {
        self.records.values()
    }

    /// Whether a firing message was sent for this alert.
    pub fn was_notified(&self, fingerprint: &str) -> bool {
        self.records.contains_key(fingerprint)
    }

    /// The messages due at `now_ms`. `firing`: every firing alert; `resolved`: alerts that
    /// resolved since the last call; `muted`: silenced or inhibited alerts (not notified,
    /// but their resolved message still follows a firing one that was sent). The log is
    /// updated as if every returned message is sent; the sender retries until it is.
    pub fn due(
        &mut self,
        firing: &[&Alert],
        resolved: &[Alert],
        muted: impl Fn(&Alert) -> bool,
        now_ms: i64,
    ) -> Vec<Notice> {
        let mut notices: BTreeMap<String, Notice> = BTreeMap::new();
        for alert in resolved {
            if self.records.remove(&alert.fingerprint).is_some() {
                entry(&mut notices, &alert.rule).resolved.push(alert.clone());
            }
        }
        let candidates: Vec<&&Alert> = firing.iter().filter(|a| !muted(a)).collect();
        let ready_rules: Vec<&str> =
            candidates.iter().filter(|a| self.is_ready(a, now_ms)).map(|a| a.rule.as_str()).collect();
        for alert in candidates {
            let new = !self.records.contains_key(&alert.fingerprint);
            let joins = new && ready_rules.contains(&alert.rule.as_str());
            if self.is_ready(alert, now_ms) || joins {
                entry(&mut notices, &alert.rule).firing.push((*alert).clone());
                let record = self.records.entry(alert.fingerprint.clone()).or_insert_with(|| NotifyRecord {
                    fingerprint: alert.fingerprint.clone(),
                    rule: alert.rule.clone(),
                    first_notified_ms: now_ms,
                    last_notified_ms: now_ms,
                });
                record.last_notified_ms = now_ms;
            }
        }
        notices.into_values().collect()
    }

    /// A new alert is ready once it has fired for `group_wait`; a notified one once the
    /// repeat interval has passed since its last message.
    fn is_ready(&self, alert: &Alert, now_ms: i64) -> bool {
        match self.records.get(&alert.fingerprint) {
            Some(record) => now_ms - record.last_notified_ms >= self.config.repeat_interval_ms,
            None => now_ms - alert.firing_since_ms.unwrap_or(now_ms) >= self.config.group_wait_ms,
        }
    }
}

fn entry<'n>(notices: &'n mut BTreeMap<String, Notice>, rule: &str) -> &'n mut Notice {
    notices.entry(rule.to_owned()).or_insert_with(|| Notice {
        rule: rule.to_owned(),
        firing: Vec::new(),
        resolved: Vec::new(),
    })
}
