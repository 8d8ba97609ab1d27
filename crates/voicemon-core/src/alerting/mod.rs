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

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Label name → value. Every alert carries `alertname` (its rule) and `metric`.
pub type Labels = BTreeMap<String, String>;

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
