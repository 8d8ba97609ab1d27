//! What one batch adds to the rollups, whatever the backend: per-minute provider request
//! counts and latency, and hour latency sketches from minute ones. Keys are ordered, so a
//! backend upserts rows in one order (concurrent writers never deadlock on PostgreSQL).
//! And which rollup table a latency read takes each part of its range from.

use hashbrown::HashMap;
use std::collections::BTreeMap;
use voicemon_core::event::ProviderRequest;
use voicemon_core::latency::{SeriesKey, SeriesKeyRef};
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::{hour_of, minute_of, TimeRange, HOUR_MS};

use crate::Resolution;

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

/// Adds `value_ms` to the sketch of `key` starting at `start`.
pub fn add_value(rollups: &mut Rollups, key: SeriesKeyRef<'_>, start: i64, value_ms: f64) {
    rollups.entry((key.to_key(), start)).or_default().add(value_ms);
}

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

/// The period one latency rollup row covers, and the table that holds such rows. Both
/// backends use these names (the Grafana dashboards read them on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Minute,
    Hour,
}

impl Period {
    pub fn table(self) -> &'static str {
        match self {
            Period::Minute => "latency_minute",
            Period::Hour => "latency_hour",
        }
    }
}

/// Which table serves which part of a latency read of the minute-aligned `range`: minute
/// rollups only, or at [`Resolution::Hour`] the whole hours from the hour table and the
/// ragged edges from the minute table. Parts are non-empty and in time order.
pub fn read_plan(range: TimeRange, resolution: Resolution) -> Vec<(Period, TimeRange)> {
    let first_hour = hour_of(range.from_ms + HOUR_MS - 1);
    let end_hour = hour_of(range.to_ms);
    if resolution == Resolution::Minute || first_hour >= end_hour {
        return vec![(Period::Minute, range)];
    }
    let parts = [
        (Period::Minute, TimeRange { from_ms: range.from_ms, to_ms: first_hour }),
        (Period::Hour, TimeRange { from_ms: first_hour, to_ms: end_hour }),
        (Period::Minute, TimeRange { from_ms: end_hour, to_ms: range.to_ms }),
    ];
    parts.into_iter().filter(|(_, part)| part.from_ms < part.to_ms).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MS;
    const M: i64 = voicemon_core::window::MINUTE_MS;

    fn plan(from_ms: i64, to_ms: i64, resolution: Resolution) -> Vec<(Period, i64, i64)> {
        read_plan(TimeRange { from_ms, to_ms }, resolution)
            .into_iter()
            .map(|(period, part)| (period, part.from_ms, part.to_ms))
            .collect()
    }

    #[test]
    fn a_value_goes_into_the_sketch_of_its_series_and_start_whatever_key_built_it() {
        use voicemon_core::latency::{Component, Source};
        let series = |tenant_id, agent_id, model| SeriesKeyRef {
            tenant_id,
            component: Component::Stt,
            source: Source::Usage,
            agent_id,
            provider: "deepgram",
            model,
        };
        let mut rollups = Rollups::new();
        add_value(&mut rollups, series("acme", "bot", "nova-3"), M, 100.0);
        // Found by the borrowed key: the same sketch, not a second one.
        add_value(&mut rollups, series("acme", "bot", "nova-3"), M, 200.0);
        // Fields that differ, or that split text differently across fields, are other series.
        add_value(&mut rollups, series("acme", "bot", "nova-2"), M, 300.0);
        add_value(&mut rollups, series("acme", "botnova-3", ""), M, 300.0);
        add_value(&mut rollups, series("acme", "bot", "nova-3"), 2 * M, 400.0);
        assert_eq!(rollups.len(), 4, "one sketch a series and start");
        let counts: BTreeMap<_, _> = rollups
            .iter()
            .map(|((key, start), sketch)| ((key.model.clone(), key.agent_id.clone(), *start), sketch.count()))
            .collect();
        assert_eq!(
            counts,
            BTreeMap::from([
                (("".into(), "botnova-3".into(), M), 1),
                (("nova-2".into(), "bot".into(), M), 1),
                (("nova-3".into(), "bot".into(), M), 2),
                (("nova-3".into(), "bot".into(), 2 * M), 1),
            ])
        );
    }

    #[test]
    fn an_hour_read_takes_whole_hours_from_the_hour_table_and_the_edges_from_minutes() {
        assert_eq!(
            plan(10 * H + 50 * M, 13 * H + 5 * M, Resolution::Hour),
            vec![
                (Period::Minute, 10 * H + 50 * M, 11 * H),
                (Period::Hour, 11 * H, 13 * H),
                (Period::Minute, 13 * H, 13 * H + 5 * M),
            ]
        );
        assert_eq!(plan(10 * H, 12 * H, Resolution::Hour), vec![(Period::Hour, 10 * H, 12 * H)]);
    }

    #[test]
    fn a_read_without_a_whole_hour_or_at_minute_resolution_takes_minutes_only() {
        assert_eq!(
            plan(10 * H + 5 * M, 10 * H + 55 * M, Resolution::Hour),
            vec![(Period::Minute, 10 * H + 5 * M, 10 * H + 55 * M)]
        );
        assert_eq!(plan(10 * H, 12 * H, Resolution::Minute), vec![(Period::Minute, 10 * H, 12 * H)]);
    }
}
