//! Derived data committed and not flushed yet ([`crate::derived`]), shared by the writer
//! that absorbs and flushes it and by the reads that merge it with the flushed rows
//! (latency sketches, provider minutes and errors, workers' latest heartbeats, and the call
//! totals that cost reads stage for their SQL), so that such a read neither waits for a
//! flush nor misses an acknowledged event.
//!
//! What is pending is one [`Pending`] (many commits folded together) and, while a flush
//! writes it, the one it took. A read copies the rows it wants from both, each with
//! the first journal row of its commits, **before** it opens its snapshot of the store.
//! A flush deletes all of its journal rows in the transaction that merges its data, so in
//! the read's snapshot a part's first journal row is there exactly when the part's data is
//! not in the derived tables yet: the read merges the parts whose row it finds
//! ([`Unflushed::merged`]) and never counts a commit twice or not at all. Commits absorbed
//! after the copy are not counted, which is what a read that began before them may answer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use voicemon_core::latency::{Component, SeriesKey, Source};
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::{hour_of, TimeRange};

use crate::derived::{CallTotals, Derived, WorkerBeat};
use crate::rollup::{read_plan, Period, ProviderDeltas};
use crate::{LatencyFilter, ProviderErrorCount, ProviderMinuteRow, Resolution, WorkerRow};

/// Derived data of commits, and their journal rows.
#[derive(Debug, Default)]
pub struct Pending {
    pub derived: Derived,
    pub seqs: Vec<i64>,
}

/// What is pending, and what a flush under way took from it.
#[derive(Debug, Default)]
pub struct PendingDerived {
    state: Mutex<State>,
    /// [`PendingDerived::gate`].
    gate: Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    pending: Pending,
    in_flight: Option<Arc<Pending>>,
}

impl PendingDerived {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is left whole by every holder (no holder panics mid-change).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Held by a writer from before its commit until the batch's derived data is pending
    /// (absorbed), and by a read that also reads raw facts from before it copies what is
    /// pending until its snapshot is open: no commit lands in between, so every commit
    /// the read's snapshot holds is either flushed in it or in the read's copy (for a
    /// writer that commits one batch at a time, as SQLite's does). A read of derived data
    /// alone needs no gate: a commit it does not copy counts from the next read on.
    pub fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a committed batch's derived data, journalled as row `seq`.
    pub fn absorb(&self, seq: i64, derived: Derived) {
        let mut state = self.state();
        state.pending.derived.absorb(derived);
        state.pending.seqs.push(seq);
    }

    /// Whether commits wait for a flush (not counting one under way).
    pub fn has_pending(&self) -> bool {
        !self.state().pending.seqs.is_empty()
    }

    /// Rows pending (before hour sketches): a measure of its memory.
    pub fn rows(&self) -> usize {
        self.state().pending.derived.len()
    }

    /// Takes what is pending for a flush, one flush at a time. It stays readable until the
    /// flush ends: [`Taken::flushed`] once it committed; dropped otherwise (an error, or the
    /// flush's future dropped half-way), it is pending again.
    pub fn take(&self) -> Taken<'_> {
        let mut state = self.state();
        let part = Arc::new(std::mem::take(&mut state.pending));
        state.in_flight = Some(Arc::clone(&part));
        Taken { pending: self, part, flushed: false }
    }

    /// What a failed flush took is pending again, before what came since.
    fn restore(&self) {
        let mut state = self.state();
        let Some(taken) = state.in_flight.take() else { return };
        let mut earlier = Arc::try_unwrap(taken)
            .unwrap_or_else(|taken| Pending { derived: taken.derived.clone(), seqs: taken.seqs.clone() });
        let later = std::mem::take(&mut state.pending);
        earlier.derived.absorb(later.derived);
        earlier.seqs.extend(later.seqs);
        state.pending = earlier;
    }

    /// The latest pending heartbeat of each worker (of `tenant`, or of every tenant), a
    /// flush under way's first, so that a later one comes after it.
    pub fn workers(&self, tenant: Option<&str>) -> Vec<((String, String), WorkerBeat)> {
        let state = self.state();
        state
            .in_flight
            .as_deref()
            .into_iter()
            .chain(std::iter::once(&state.pending))
            .flat_map(|part| part.derived.workers.iter())
            .filter(|((tenant_id, _), _)| tenant.is_none_or(|wanted| wanted == tenant_id))
            .map(|(key, beat)| (key.clone(), *beat))
            .collect()
    }

    /// Copies what `copy` picks of each part (what is pending, a flush under way), with the
    /// part's first journal row; to be taken before the read's snapshot opens. A part
    /// `copy` finds nothing wanted in is left out: flushed or not, it changes nothing.
    fn unflushed<R>(&self, copy: impl Fn(&Derived) -> Option<R>) -> Unflushed<R> {
        let state = self.state();
        let parts = std::iter::once(&state.pending)
            .chain(state.in_flight.as_deref())
            .filter_map(|part| {
                Some(UnflushedPart { first_seq: *part.seqs.first()?, rows: copy(&part.derived)? })
            })
            .collect();
        Unflushed { parts }
    }

    /// Copies of the minute latency rollups that `wanted` picks.
    fn latency(&self, wanted: impl Fn(&SeriesKey, i64) -> bool) -> Unflushed<LatencyRows> {
        self.unflushed(|derived| {
            let rows: LatencyRows = derived
                .rollups
                .iter()
                .filter(|((key, minute), _)| wanted(key, *minute))
                .map(|((key, minute), sketch)| (key.clone(), *minute, sketch.clone()))
                .collect();
            (!rows.is_empty()).then_some(rows)
        })
    }

    /// The unflushed latency a read of `filter` over `range` merges.
    pub fn latency_of(&self, filter: &LatencyFilter, range: TimeRange) -> Unflushed<LatencyRows> {
        let given = |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|w| w == value);
        self.latency(|key, minute| {
            key.component == filter.component
                && key.source == filter.source
                && range.contains(minute)
                && given(&filter.tenant_id, &key.tenant_id)
                && given(&filter.agent_id, &key.agent_id)
                && given(&filter.provider, &key.provider)
                && given(&filter.model, &key.model)
        })
    }

    /// The unflushed latency a by-tenant read of `component` over `range` merges.
    pub fn latency_by_tenant(
        &self,
        component: Component,
        range: TimeRange,
        by_provider: bool,
    ) -> Unflushed<LatencyRows> {
        let source = if by_provider { Source::Usage } else { Source::Turn };
        self.latency(|key, minute| {
            key.component == component && key.source == source && range.contains(minute)
        })
    }

    /// The unflushed provider minutes and errors of `tenant` (or every tenant) in the
    /// minutes that start at or after `since_ms`, as the provider reads take rows.
    pub fn providers(&self, tenant: Option<&str>, since_ms: i64) -> Unflushed<ProviderDeltas> {
        let wanted = |t: &str, minute: i64| tenant.is_none_or(|wanted| wanted == t) && minute >= since_ms;
        self.unflushed(|derived| {
            let all = &derived.providers;
            let deltas = ProviderDeltas {
                minutes: all.minutes.iter().filter(|((t, _, m), _)| wanted(t, *m)).map(cloned).collect(),
                errors: all.errors.iter().filter(|((t, _, m, _), _)| wanted(t, *m)).map(cloned).collect(),
            };
            (!deltas.minutes.is_empty() || !deltas.errors.is_empty()).then_some(deltas)
        })
    }

    /// Copies of the pending call totals of `tenant` (or of every tenant), for the cost
    /// reads that merge them.
    pub fn calls(&self, tenant: Option<&str>) -> Unflushed<CallRows> {
        self.unflushed(|derived| {
            let calls: CallRows = derived
                .calls
                .iter()
                .filter(|(_, entry)| tenant.is_none_or(|wanted| wanted == entry.tenant_id))
                .map(|(call, entry)| (*call, entry.totals))
                .collect();
            (!calls.is_empty()).then_some(calls)
        })
    }
}

fn cloned<K: Clone, V: Clone>((key, value): (&K, &V)) -> (K, V) {
    (key.clone(), value.clone())
}

/// What a flush under way took ([`PendingDerived::take`]).
#[derive(Debug)]
pub struct Taken<'a> {
    pending: &'a PendingDerived,
    part: Arc<Pending>,
    flushed: bool,
}

impl Taken<'_> {
    /// The part, to hand to a transaction that may outlive this borrow.
    pub fn part(&self) -> &Arc<Pending> {
        &self.part
    }

    /// The flush committed (or its data reached the tables another way): reads stop
    /// merging the part.
    pub fn flushed(mut self) {
        self.flushed = true;
        self.pending.state().in_flight = None;
    }
}

impl std::ops::Deref for Taken<'_> {
    type Target = Pending;

    fn deref(&self) -> &Pending {
        &self.part
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.flushed {
            self.pending.restore();
        }
    }
}

/// The latest heartbeat of each worker as the `workers` table gives it, with what is
/// pending put over it: `pending` is taken (with [`PendingDerived::workers`]) before
/// `rows` are read, and a worker keeps the later beat of the two (of two at the same time,
/// the pending one, stored later). A beat flushed in between is in both, so nothing is
/// missed, and taking the later of two is the same whichever holds it: no snapshot needed.
pub fn overlay_workers(rows: Vec<WorkerRow>, pending: Vec<((String, String), WorkerBeat)>) -> Vec<WorkerRow> {
    let mut latest: BTreeMap<(String, String), WorkerRow> =
        rows.into_iter().map(|row| ((row.tenant_id.clone(), row.worker_id.clone()), row)).collect();
    for ((tenant_id, worker_id), beat) in pending {
        let key = (tenant_id, worker_id);
        if latest.get(&key).is_some_and(|row| row.last_ms > beat.last_ms) {
            continue;
        }
        let row = WorkerRow {
            tenant_id: key.0.clone(),
            worker_id: key.1.clone(),
            last_ms: beat.last_ms,
            memory_used_bytes: beat.memory_used_bytes.max(0) as u64,
            memory_limit_bytes: beat.memory_limit_bytes.max(0) as u64,
            cpu_percent: beat.cpu_percent,
            active_calls: u32::try_from(beat.active_calls).unwrap_or(u32::MAX),
        };
        latest.insert(key, row);
    }
    latest.into_values().collect()
}

/// Call totals by call row id: what flushes add to each call's first time and cost.
pub type CallRows = BTreeMap<i64, CallTotals>;

/// A call's first time once its totals not flushed yet (`pending`, if any) are merged
/// into `stored`, its row's (`None` until its first flush).
pub fn merged_first(stored: Option<i64>, pending: Option<&CallTotals>) -> Option<i64> {
    match (stored, pending.map(|totals| totals.first_ms)) {
        (Some(stored), Some(pending)) => Some(stored.min(pending)),
        (stored, pending) => stored.or(pending),
    }
}

/// Minute latency rollups: series, minute, sketch.
pub type LatencyRows = Vec<(SeriesKey, i64, LatencySketch)>;

/// Derived rows (`R`) not flushed when a read began, by the commits they came from.
#[derive(Debug)]
pub struct Unflushed<R> {
    parts: Vec<UnflushedPart<R>>,
}

#[derive(Debug)]
struct UnflushedPart<R> {
    /// The first journal row of the part's commits: all go in one flush.
    first_seq: i64,
    rows: R,
}

impl<R> Unflushed<R> {
    /// Whether nothing was pending: the read needs no snapshot of its own.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The journal rows a read looks for in its snapshot, one a part.
    pub fn seqs(&self) -> Vec<i64> {
        self.parts.iter().map(|part| part.first_seq).collect()
    }

    /// The rows of the parts whose journal row the read's snapshot holds (`present`):
    /// those not in its tables.
    fn merged<'a>(&'a self, present: &'a [i64]) -> impl Iterator<Item = &'a R> + 'a {
        self.parts.iter().filter(move |part| present.contains(&part.first_seq)).map(|part| &part.rows)
    }
}

impl Unflushed<LatencyRows> {
    /// Adds to `sketches` the unflushed minutes of the parts in `present` as a read of
    /// `range` at `resolution` takes rows from the tables: one (period start, sketch) per
    /// series and period (a period that also has a flushed row has two; the caller merges).
    pub fn add_periods(
        &self,
        present: &[i64],
        range: TimeRange,
        resolution: Resolution,
        sketches: &mut Vec<(i64, LatencySketch)>,
    ) {
        let plan = read_plan(range, resolution);
        let mut periods: BTreeMap<(&SeriesKey, i64), LatencySketch> = BTreeMap::new();
        for (key, minute, sketch) in self.merged(present).flatten() {
            let Some((period, _)) = plan.iter().find(|(_, part)| part.contains(*minute)) else { continue };
            let start = match period {
                Period::Minute => *minute,
                Period::Hour => hour_of(*minute),
            };
            periods.entry((key, start)).or_default().merge(sketch);
        }
        sketches.extend(periods.into_iter().map(|((_, start), sketch)| (start, sketch)));
    }

    /// Merges into `rows` (tenant, provider or "", sketch), one row a key as the tables
    /// give them, the unflushed minutes of the parts in `present`.
    pub fn add_by_tenant(
        &self,
        present: &[i64],
        by_provider: bool,
        rows: Vec<(String, String, LatencySketch)>,
    ) -> Vec<(String, String, LatencySketch)> {
        let mut merged: BTreeMap<(String, String), LatencySketch> =
            rows.into_iter().map(|(tenant, provider, sketch)| ((tenant, provider), sketch)).collect();
        for (key, _, sketch) in self.merged(present).flatten() {
            let provider = if by_provider { key.provider.clone() } else { String::new() };
            merged.entry((key.tenant_id.clone(), provider)).or_default().merge(sketch);
        }
        merged.into_iter().map(|((tenant, provider), sketch)| (tenant, provider, sketch)).collect()
    }
}

impl Unflushed<CallRows> {
    /// The totals of the parts in `present`, summed by call (the earliest first time):
    /// what the flushes to come add to each call row.
    pub fn totals(&self, present: &[i64]) -> CallRows {
        let mut all = CallRows::new();
        for (call, totals) in self.merged(present).flatten() {
            all.entry(*call).and_modify(|known| known.absorb(*totals)).or_insert(*totals);
        }
        all
    }
}

impl Unflushed<ProviderDeltas> {
    /// Merges into `rows` (requests and errors by provider and minute, every tenant asked
    /// for summed, as the table gives them) the unflushed minutes of the parts in `present`.
    pub fn add_minutes(&self, present: &[i64], rows: Vec<ProviderMinuteRow>) -> Vec<ProviderMinuteRow> {
        let mut merged: BTreeMap<(String, i64), ProviderMinuteRow> =
            rows.into_iter().map(|row| ((row.provider.clone(), row.start_ms), row)).collect();
        for ((_, provider, start_ms), minute) in self.merged(present).flat_map(|deltas| &deltas.minutes) {
            let row = merged.entry((provider.clone(), *start_ms)).or_insert_with(|| ProviderMinuteRow {
                provider: provider.clone(),
                start_ms: *start_ms,
                requests: 0,
                errors: 0,
            });
            row.requests += minute.requests.max(0) as u64;
            row.errors += minute.errors.max(0) as u64;
        }
        merged.into_values().collect()
    }

    /// Merges into `rows` (one latency sketch a provider) the unflushed minutes of the
    /// parts in `present`.
    pub fn add_latency(
        &self,
        present: &[i64],
        rows: Vec<(String, LatencySketch)>,
    ) -> Vec<(String, LatencySketch)> {
        let mut merged: BTreeMap<String, LatencySketch> = rows.into_iter().collect();
        for ((_, provider, _), minute) in self.merged(present).flat_map(|deltas| &deltas.minutes) {
            merged.entry(provider.clone()).or_default().merge(&minute.latency);
        }
        merged.into_iter().collect()
    }

    /// Merges into `rows` (counts by provider and error) the unflushed errors of the parts
    /// in `present`; by provider, the most frequent error first, as the table gives them.
    pub fn add_errors(&self, present: &[i64], rows: Vec<ProviderErrorCount>) -> Vec<ProviderErrorCount> {
        if self.merged(present).next().is_none() {
            return rows;
        }
        let mut merged: BTreeMap<(String, String), u64> =
            rows.into_iter().map(|row| ((row.provider, row.error), row.count)).collect();
        for ((_, provider, _, error), count) in self.merged(present).flat_map(|deltas| &deltas.errors) {
            *merged.entry((provider.clone(), error.clone())).or_default() += (*count).max(0) as u64;
        }
        let mut counts: Vec<ProviderErrorCount> = merged
            .into_iter()
            .map(|((provider, error), count)| ProviderErrorCount { provider, error, count })
            .collect();
        counts.sort_by(|a, b| a.provider.cmp(&b.provider).then(b.count.cmp(&a.count)));
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicemon_core::window::{HOUR_MS, MINUTE_MS};

    fn key(tenant: &str) -> SeriesKey {
        SeriesKey::new(tenant, Component::TurnE2e, Source::Turn, "", "", "")
    }

    /// Derived data of one turn of `tenant` at `minute`, of `value` ms.
    fn one_turn(tenant: &str, minute: i64, value: f64) -> Derived {
        let mut derived = Derived::default();
        derived.rollups.entry((key(tenant), minute)).or_default().add(value);
        derived
    }

    fn all(pending: &PendingDerived) -> Unflushed<LatencyRows> {
        pending.latency(|_, _| true)
    }

    fn counts(unflushed: &Unflushed<LatencyRows>, present: &[i64]) -> u64 {
        unflushed.merged(present).flatten().map(|(_, _, sketch)| sketch.count()).sum()
    }

    #[test]
    fn a_flush_under_way_stays_readable_and_a_failed_one_comes_back_first() {
        let pending = PendingDerived::default();
        pending.absorb(1, one_turn("acme", 0, 100.0));
        pending.absorb(2, one_turn("acme", 0, 200.0));
        let taken = pending.take();
        assert_eq!(taken.seqs, [1, 2]);
        assert!(!pending.has_pending(), "taken");
        pending.absorb(3, one_turn("acme", MINUTE_MS, 300.0));
        let read = all(&pending);
        assert_eq!(read.seqs(), [3, 1], "what is pending, then the flush under way");
        assert_eq!(counts(&read, &[1, 3]), 3, "both parts unflushed in the snapshot: every turn");
        assert_eq!(counts(&read, &[3]), 1, "the flush committed in the snapshot: only what came after");
        drop(taken);
        assert_eq!(
            all(&pending).seqs(),
            [1],
            "a flush that ended unflushed: one part again, led by the earliest commit"
        );
        let taken = pending.take();
        assert_eq!(taken.seqs, [1, 2, 3]);
        taken.flushed();
        assert!(all(&pending).is_empty() && !pending.has_pending());
    }

    #[test]
    fn a_read_copies_only_what_it_wants_and_skips_parts_without_it() {
        let pending = PendingDerived::default();
        pending.absorb(1, one_turn("globex", 0, 100.0));
        let _in_flight = pending.take();
        pending.absorb(2, one_turn("acme", 0, 200.0));
        let filter = LatencyFilter {
            tenant_id: Some("acme".into()),
            component: Component::TurnE2e,
            source: Source::Turn,
            agent_id: None,
            provider: None,
            model: None,
        };
        let acme = pending.latency_of(&filter, TimeRange { from_ms: 0, to_ms: HOUR_MS });
        assert_eq!(acme.seqs(), [2], "globex's part holds nothing for acme");
        let later = pending.latency_of(&filter, TimeRange { from_ms: MINUTE_MS, to_ms: HOUR_MS });
        assert!(later.is_empty(), "nothing of acme's in the range");
    }

    #[test]
    fn unflushed_minutes_become_rows_as_the_read_plan_takes_them() {
        let pending = PendingDerived::default();
        let (ten, ten_thirty, eleven) = (10 * HOUR_MS, 10 * HOUR_MS + 30 * MINUTE_MS, 11 * HOUR_MS);
        pending.absorb(1, one_turn("acme", ten, 100.0));
        pending.absorb(2, one_turn("acme", ten_thirty, 200.0));
        pending.absorb(3, one_turn("acme", eleven + 5 * MINUTE_MS, 300.0));
        pending.absorb(4, one_turn("globex", ten, 400.0));
        let range = TimeRange { from_ms: ten, to_ms: eleven + 10 * MINUTE_MS };
        let read = all(&pending);
        let mut rows = Vec::new();
        read.add_periods(&read.seqs(), range, Resolution::Hour, &mut rows);
        let rows: Vec<(i64, u64)> = rows.iter().map(|(start, sketch)| (*start, sketch.count())).collect();
        // Hour 10 from the hour table (one row a series), 11:00–11:10 from minutes.
        assert_eq!(rows, [(ten, 2), (eleven + 5 * MINUTE_MS, 1), (ten, 1)]);
        let tenants = read.add_by_tenant(
            &read.seqs(),
            false,
            vec![("acme".into(), String::new(), {
                let mut flushed = LatencySketch::new();
                flushed.add(50.0);
                flushed
            })],
        );
        let tenants: Vec<(String, u64)> =
            tenants.into_iter().map(|(t, _, sketch)| (t, sketch.count())).collect();
        assert_eq!(tenants, [("acme".to_owned(), 4), ("globex".to_owned(), 1)]);
    }
}
