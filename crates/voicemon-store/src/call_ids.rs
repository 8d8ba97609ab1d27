//! Call row ids by tenant and call id, as both write paths remember them across batches
//! so that the events of a live call cost no look-up in the store. Searched with the
//! event's own text: a hit builds no key.

use hashbrown::{Equivalent, HashMap};

/// Call row ids by (tenant, call id).
#[derive(Debug, Default, Clone)]
pub struct CallIds(HashMap<(String, String), i64>);

/// A key borrowed from an event: hashes like `(String, String)` (a tuple hashes its
/// fields in order, as this derive does, and `&str` hashes as `String`).
#[derive(Hash)]
struct Borrowed<'a>(&'a str, &'a str);

impl Equivalent<(String, String)> for Borrowed<'_> {
    fn equivalent(&self, (tenant, call): &(String, String)) -> bool {
        self.0 == tenant && self.1 == call
    }
}

impl CallIds {
    pub fn with_capacity(capacity: usize) -> CallIds {
        CallIds(HashMap::with_capacity(capacity))
    }

    pub fn get(&self, tenant: &str, call: &str) -> Option<i64> {
        self.0.get(&Borrowed(tenant, call)).copied()
    }

    pub fn insert(&mut self, tenant: &str, call: &str, id: i64) {
        self.0.insert((tenant.to_owned(), call.to_owned()), id);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl Extend<((String, String), i64)> for CallIds {
    fn extend<I: IntoIterator<Item = ((String, String), i64)>>(&mut self, ids: I) {
        self.0.extend(ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_found_by_the_text_it_was_remembered_under_and_by_no_other() {
        let mut ids = CallIds::default();
        ids.insert("acme", "call-1", 7);
        ids.extend([(("acme".to_owned(), "call-2".to_owned()), 8)]);
        assert_eq!((ids.get("acme", "call-1"), ids.get("acme", "call-2")), (Some(7), Some(8)));
        // The same characters split differently between tenant and call are another call.
        assert_eq!(ids.get("acmec", "all-1"), None);
        assert_eq!(ids.get("globex", "call-1"), None);
        ids.insert("acme", "call-1", 9);
        assert_eq!((ids.get("acme", "call-1"), ids.len()), (Some(9), 2));
    }
}
