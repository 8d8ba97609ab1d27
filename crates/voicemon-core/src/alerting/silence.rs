//! Silences (matchers over a time span, with a comment and an author) and inhibition (a
//! firing source alert mutes target alerts that share some labels): both mute
//! notifications without changing what is firing.

use super::evaluator::Alert;
use super::Labels;
use serde::{Deserialize, Serialize};

/// `name = value` or `name != value`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    #[serde(default = "yes")]
    pub equal: bool,
}

fn yes() -> bool {
    true
}

impl Matcher {
    /// Parses `name=value` or `name!=value`.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        if text.contains("=~") || text.contains("!~") {
            return Err(format!("`{text}`: regular-expression matchers are not supported; use = or !="));
        }
        let (name, value, equal) = match text.split_once("!=") {
            Some((name, value)) => (name, value, false),
            None => match text.split_once('=') {
                Some((name, value)) => (name, value, true),
                None => {
                    return Err(format!(
                        "`{text}` is not a matcher such as tenant_id=acme or provider!=openai"
                    ))
                }
            },
        };
        let (name, value) = (name.trim(), value.trim().trim_matches('"'));
        if name.is_empty() {
            return Err(format!("`{text}` has no label name"));
        }
        Ok(Matcher { name: name.to_owned(), value: value.to_owned(), equal })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.name).map(String::as_str).unwrap_or("");
        (value == self.value) == self.equal
    }
}

/// A silence: mutes the alerts all of whose matchers match, from `starts_ms` to `ends_ms`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub comment: String,
    pub author: String,
    pub created_ms: i64,
}

impl Silence {
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.starts_ms <= now_ms && now_ms < self.ends_ms
    }

    pub fn mutes(&self, labels: &Labels, now_ms: i64) -> bool {
        self.is_active(now_ms) && !self.matchers.is_empty() && self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// A firing alert matching `source` mutes alerts matching `target` whose `equal` labels
/// have the same values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

/// A provider that is down mutes the latency alerts that name it.
pub fn default_inhibit_rules() -> Vec<InhibitRule> {
    vec![InhibitRule {
        source: vec![Matcher { name: "metric".into(), value: "provider_down_seconds".into(), equal: true }],
        target: vec![Matcher { name: "metric".into(), value: "latency".into(), equal: true }],
        equal: vec!["provider".into()],
    }]
}

/// Whether `alert` is muted by a firing alert through one of `rules`.
pub fn is_inhibited(alert: &Alert, firing: &[&Alert], rules: &[InhibitRule]) -> bool {
    rules.iter().any(|rule| {
        rule.target.iter().all(|m| m.matches(&alert.labels))
            && rule.equal.iter().all(|label| alert.labels.contains_key(label))
            && firing.iter().any(|source| {
                source.fingerprint != alert.fingerprint
                    && rule.source.iter().all(|m| m.matches(&source.labels))
                    && rule.equal.iter().all(|label| source.labels.get(label) == alert.labels.get(label))
            })
    })
}
