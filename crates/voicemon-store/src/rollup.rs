//! What one batch adds to the rollups, whatever the backend: per-minute provider request
//! counts and latency, and hour latency sketches from minute ones. Keys are ordered, so a
//! backend upserts rows in one order (concurrent writers never deadlock on PostgreSQL).

use std::collections::{BTreeMap, HashMap};
use voicemon_core::event::ProviderRequest;
use voicemon_core::latency::SeriesKey;
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::{hour_of, minute_of};

/// (tenant, provider, minute start in unix ms).
pub type ProviderMinuteKey = (String, String, i64);

/// One minute of one provider's requests.
#[derive(Debug, Clone, Default)]
pub struct ProviderMinute {
    pub requests: i64,
    pub errors: i64,
    pub latency: LatencySketch,
}

/// One batch's `provider.request` outcomes per tenant, provider and minute.
#[derive(Debug, Clone, Default)]
pub struct ProviderDeltas {
    pub minutes: BTreeMap<ProviderMinuteKey, ProviderMinute>,
    /// Errors by (tenant, provider, minute, kind); `unspecified` when the event named none.
    pub errors: BTreeMap<(String, String, i64, String), i64>,
}

impl ProviderDeltas {
    pub fn add(&mut self, tenant: &str, at_ms: i64, request: &ProviderRequest) {
        let minute = minute_of(at_ms);
        let key = (tenant.to_owned(), request.provider.to_ascii_lowercase(), minute);
        let entry = self.minutes.entry(key.clone()).or_default();
        entry.requests += 1;
        if !request.ok {
            entry.errors += 1;
            let kind = request.error.clone().unwrap_or_else(|| "unspecified".into());
            *self.errors.entry((key.0, key.1, minute, kind)).or_default() += 1;
        }
        if let Some(latency) = request.latency_ms {
            entry.latency.add(latency);
        }
    }
}

/// Latency rollups by series and period start. A hash map: batches fold into it many
/// times a second; whoever writes rows takes them in key order with [`in_key_order`].
pub type Rollups = HashMap<(SeriesKey, i64), LatencySketch>;

/// Rollups in key order, so a backend upserts rows in one order (concurrent writers never
/// deadlock on PostgreSQL, and SQLite's B-tree inserts stay local).
pub fn in_key_order(rollups: &Rollups) -> Vec<(&(SeriesKey, i64), &LatencySketch)> {
    let mut sorted: Vec<_> = rollups.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    sorted
}

/// The hour rollups of a batch's minute rollups: each hour the merge of its minutes.
pub fn hours_of(minutes: &Rollups) -> Rollups {
    let mut hours = Rollups::new();
    for ((key, minute), sketch) in minutes {
        hours.entry((key.clone(), hour_of(*minute))).or_default().merge(sketch);
    }
    hours
}
