//! Bounded label values: the first `max` distinct values of a label keep their own
//! series, every later one is folded into `_other`, so `/metrics` stays bounded however
//! many tenants or providers the events name.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// The value every label takes once its cap is reached.
pub const OTHER: &str = "_other";

/// A label value, escaped for the text exposition when it is made: prometheus-client
/// writes label values verbatim, and a tenant id may hold `"` or `\`.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct LabelValue(Arc<str>);

impl LabelValue {
    pub fn new(raw: &str) -> LabelValue {
        if !raw.contains(['\\', '"', '\n']) {
            return LabelValue(Arc::from(raw));
        }
        let mut escaped = String::with_capacity(raw.len() + 2);
        for c in raw.chars() {
            match c {
                '\\' => escaped.push_str("\\\\"),
                '"' => escaped.push_str("\\\""),
                '\n' => escaped.push_str("\\n"),
                other => escaped.push(other),
            }
        }
        LabelValue(Arc::from(escaped))
    }

    /// The escaped text, as it appears between the quotes of the exposition.
    pub fn escaped(&self) -> &str {
        &self.0
    }
}

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

/// One admitted label value and what is cached for it (the metric handles of its series,
/// so recording skips the family lookups).
#[derive(Debug, Default)]
pub struct Slot<T> {
    pub value: LabelValue,
    pub series: T,
}

/// The distinct values one label may take. Values are admitted first come, first served
/// and stay admitted for the life of the process, so a series never changes meaning
/// (a counter that moved to `_other` and back would look like a reset).
#[derive(Debug)]
pub struct BoundedLabel<T = ()> {
    max: usize,
    admitted: Mutex<HashMap<Box<str>, Arc<Slot<T>>>>,
    other: Arc<Slot<T>>,
}

/// Whether a lookup kept its own value or was folded into `_other`.
#[derive(Debug)]
pub enum Admission<T> {
    Own(Arc<Slot<T>>),
    Folded(Arc<Slot<T>>),
}

impl<T> Admission<T> {
    pub fn slot(self) -> Arc<Slot<T>> {
        match self {
            Admission::Own(slot) | Admission::Folded(slot) => slot,
        }
    }

    pub fn is_folded(&self) -> bool {
        matches!(self, Admission::Folded(_))
    }
}

impl<T: Default> BoundedLabel<T> {
    /// A label with room for `max` distinct values besides `_other` (0: all are `_other`).
    pub fn new(max: usize) -> BoundedLabel<T> {
        let other = Arc::new(Slot { value: LabelValue::new(OTHER), series: T::default() });
        BoundedLabel { max, admitted: Mutex::new(HashMap::new()), other }
    }

    /// The slot to record `raw` under: its own while there is room (or it was admitted
    /// before), `_other` once `max` values are taken.
    pub fn admit(&self, raw: &str) -> Admission<T> {
        let mut admitted = self.admitted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(slot) = admitted.get(raw) {
            return Admission::Own(Arc::clone(slot));
        }
        if admitted.len() >= self.max {
            return Admission::Folded(Arc::clone(&self.other));
        }
        let slot = Arc::new(Slot { value: LabelValue::new(raw), series: T::default() });
        admitted.insert(Box::from(raw), Arc::clone(&slot));
        Admission::Own(slot)
    }

    /// How many distinct values have their own series.
    pub fn admitted(&self) -> usize {
        self.admitted.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The label text `raw` is recorded under, and whether it was folded.
    fn admit(label: &BoundedLabel, raw: &str) -> (String, bool) {
        let admission = label.admit(raw);
        let folded = admission.is_folded();
        (admission.slot().value.escaped().to_owned(), folded)
    }

    fn own(text: &str) -> (String, bool) {
        (text.to_owned(), false)
    }

    fn folded() -> (String, bool) {
        (OTHER.to_owned(), true)
    }

    #[test]
    fn the_first_values_up_to_the_cap_keep_their_own_label_and_later_ones_fold_into_other() {
        let label = BoundedLabel::new(2);
        assert_eq!(admit(&label, "acme"), own("acme"));
        assert_eq!(admit(&label, "globex"), own("globex"));
        assert_eq!(admit(&label, "initech"), folded());
        assert_eq!(admit(&label, "umbrella"), folded());
        assert_eq!(label.admitted(), 2);
    }

    #[test]
    fn an_admitted_value_stays_its_own_after_the_cap_is_reached() {
        let label = BoundedLabel::new(1);
        assert_eq!(admit(&label, "acme"), own("acme"));
        assert_eq!(admit(&label, "globex"), folded());
        assert_eq!(admit(&label, "acme"), own("acme"), "acme was admitted first and keeps its series");
        assert_eq!(label.admitted(), 1);
    }

    #[test]
    fn a_value_gets_the_same_slot_every_time_and_every_folded_value_shares_one() {
        let label: BoundedLabel<std::sync::atomic::AtomicU64> = BoundedLabel::new(1);
        assert!(Arc::ptr_eq(&label.admit("acme").slot(), &label.admit("acme").slot()));
        assert!(Arc::ptr_eq(&label.admit("globex").slot(), &label.admit("initech").slot()));
        assert!(!Arc::ptr_eq(&label.admit("acme").slot(), &label.admit("globex").slot()));
    }

    #[test]
    fn a_cap_of_zero_folds_every_value() {
        let label = BoundedLabel::new(0);
        assert_eq!(admit(&label, "acme"), folded());
        assert_eq!(label.admitted(), 0);
    }

    #[test]
    fn label_values_are_escaped_for_the_text_format() {
        assert_eq!(LabelValue::new(r#"a"b\c"#).escaped(), r#"a\"b\\c"#);
        assert_eq!(LabelValue::new("line\nbreak").escaped(), r"line\nbreak");
        assert_eq!(LabelValue::new("plain-tenant_01").escaped(), "plain-tenant_01");
    }

    #[test]
    fn two_raw_values_that_differ_only_in_escaping_stay_distinct() {
        let label = BoundedLabel::new(10);
        assert_ne!(admit(&label, r#"a"b"#), admit(&label, r#"a\"b"#));
        assert_eq!(label.admitted(), 2);
    }
}
