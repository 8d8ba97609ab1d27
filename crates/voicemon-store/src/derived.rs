//! Derived data, kept off the commit path: what stored events add to the minute and hour
//! latency sketches, the provider minutes, each call's cost totals and first event, and
//! each worker's latest heartbeat. Both backends use it the same way:
//!
//! 1. A group commit stores the raw facts and, in the same transaction, one row of the
//!    `derived_journal`: the batch's [`Derived`] encoded ([`Derived::encode`]). Only the
//!    facts, the idempotency keys and the journal row are written synchronously.
//! 2. After the commit the batch's `Derived` joins the store's pending one in memory
//!    ([`Derived::absorb`]), where many batches fold into few keys.
//! 3. A flush (every `ingest.derived_flush_interval`, before a read of call totals, and at
//!    shutdown) merges the pending `Derived` into the derived tables with the same
//!    mergeable-sketch rules and deletes the journal rows it covered, in one transaction.
//!    Latency, provider and worker reads merge what is pending instead ([`crate::pending`]).
//! 4. At start, journal rows that were never flushed (a crash between 1 and 3) are decoded
//!    and flushed, so derived data equals what a clean run would have.
//!
//! The journal holds exact values (not the raw facts' rounded ones), so a recovered
//! sketch is bit-for-bit the one a clean run builds.

use std::collections::{BTreeMap, HashMap};
use voicemon_core::event::{Body, Event};
use voicemon_core::latency::{observations, Component, SeriesKey, Source};
use voicemon_core::pricing::Costing;
use voicemon_core::sketch::LatencySketch;
use voicemon_core::window::minute_of;

use crate::rollup::{add_value, in_key_order, ProviderDeltas, ProviderMinute, Rollups};

/// One call's totals from the usage lines and events folded so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTotals {
    /// The earliest event's time.
    pub first_ms: i64,
    pub cost_nano: i64,
    pub usage_lines: i64,
    pub unpriced_lines: i64,
}

impl CallTotals {
    /// Folds in `other`, of the same call.
    pub(crate) fn absorb(&mut self, other: CallTotals) {
        self.first_ms = self.first_ms.min(other.first_ms);
        self.cost_nano += other.cost_nano;
        self.usage_lines += other.usage_lines;
        self.unpriced_lines += other.unpriced_lines;
    }
}

/// A call's totals and its tenant (so that a read of one tenant's costs merges only that
/// tenant's pending totals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEntry {
    pub tenant_id: String,
    pub totals: CallTotals,
}

/// The first-event time of call rows as the store holds them, or a later one (it only
/// moves earlier), learnt from flushes that committed: a flush rewrites a call's first
/// time only where the pending one is earlier ([`KnownFirsts::moving`]). On a live
/// fleet most events of a call come after its first, so most flushed calls need no
/// `first_ms` write (each costs a row rewrite and two index updates). A call not
/// remembered is written: the statement keeps the earlier of the two. Call rows are never
/// deleted, so what is remembered stays true; past [`MAX_KNOWN_FIRSTS`] calls the memory
/// starts again.
#[derive(Debug, Default)]
pub struct KnownFirsts(std::sync::Mutex<HashMap<i64, i64>>);

/// Calls whose first time [`KnownFirsts`] remembers at most (16 bytes each, plus the map's).
pub const MAX_KNOWN_FIRSTS: usize = 250_000;

impl KnownFirsts {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        // Each holder leaves the map whole (no holder panics mid-change).
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// (call, first time) of the calls in `calls` whose stored first time may be later.
    pub fn moving(&self, calls: &BTreeMap<i64, CallEntry>) -> Vec<(i64, i64)> {
        let known = self.known();
        calls
            .iter()
            .filter(|(call, entry)| known.get(call).is_none_or(|&stored| entry.totals.first_ms < stored))
            .map(|(call, entry)| (*call, entry.totals.first_ms))
            .collect()
    }

    /// Remembers first times that a committed flush wrote: the store holds them or earlier
    /// ones.
    pub fn learn(&self, written: impl IntoIterator<Item = (i64, i64)>) {
        let mut known = self.known();
        if known.len() > MAX_KNOWN_FIRSTS {
            known.clear();
        }
        for (call, first_ms) in written {
            known.entry(call).and_modify(|stored| *stored = (*stored).min(first_ms)).or_insert(first_ms);
        }
    }
}

/// A worker's latest heartbeat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerBeat {
    pub last_ms: i64,
    pub memory_used_bytes: i64,
    pub memory_limit_bytes: i64,
    pub cpu_percent: f64,
    pub active_calls: i64,
}

/// What a set of stored events adds to derived data. Maps other than the rollups are
/// ordered; the rollups are taken in key order when written ([`in_key_order`]), so a
/// backend upserts rows in one order and concurrent flushes never deadlock.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// Minute latency sketches; hour sketches are made from them at flush.
    pub rollups: Rollups,
    pub providers: ProviderDeltas,
    /// By call row id.
    pub calls: BTreeMap<i64, CallEntry>,
    /// By (tenant, worker): the latest heartbeat; of two at the same time, the later stored.
    pub workers: BTreeMap<(String, String), WorkerBeat>,
}

impl Derived {
    /// Adds one stored event, of call row `call` when it is call-scoped.
    pub fn add(&mut self, event: &Event, costing: &Costing, call: Option<i64>) {
        let at_ms = event.envelope.timestamp_ms;
        if let Some(call) = call {
            let (cost_nano, usage_lines, unpriced_lines) = match costing {
                Costing::NotUsage => (0, 0, 0),
                Costing::Priced(line) => (line.cost.0, 1, 0),
                Costing::Unpriced { .. } => (0, 1, 1),
            };
            let totals = CallTotals { first_ms: at_ms, cost_nano, usage_lines, unpriced_lines };
            self.add_call(call, totals, || event.envelope.tenant_id.clone());
        }
        match &event.body {
            Body::ProviderRequest(request) => self.providers.add(&event.envelope.tenant_id, at_ms, request),
            Body::WorkerHeartbeat(beat) => {
                let key = (event.envelope.tenant_id.clone(), beat.worker_id.clone());
                self.add_worker(
                    key,
                    WorkerBeat {
                        last_ms: at_ms,
                        memory_used_bytes: beat.memory_used_bytes as i64,
                        memory_limit_bytes: beat.memory_limit_bytes as i64,
                        cpu_percent: beat.cpu_percent,
                        active_calls: i64::from(beat.active_calls),
                    },
                );
            }
            _ => {}
        }
        for observation in observations(event) {
            add_value(
                &mut self.rollups,
                observation.key,
                minute_of(observation.timestamp_ms),
                observation.value_ms,
            );
        }
    }

    /// Adds `totals` to call `call`'s; its tenant is asked for only when the call is new
    /// here (most events are of a call already folded: no copy of the tenant).
    fn add_call(&mut self, call: i64, totals: CallTotals, tenant_id: impl FnOnce() -> String) {
        match self.calls.get_mut(&call) {
            Some(known) => known.totals.absorb(totals),
            None => {
                self.calls.insert(call, CallEntry { tenant_id: tenant_id(), totals });
            }
        }
    }

    fn add_worker(&mut self, key: (String, String), beat: WorkerBeat) {
        match self.workers.get_mut(&key) {
            Some(known) if known.last_ms > beat.last_ms => {}
            Some(known) => *known = beat,
            None => {
                self.workers.insert(key, beat);
            }
        }
    }

    /// Folds `later` (stored after `self`) into `self`.
    pub fn absorb(&mut self, later: Derived) {
        for (key, sketch) in later.rollups {
            match self.rollups.get_mut(&key) {
                Some(known) => known.merge(&sketch),
                None => {
                    self.rollups.insert(key, sketch);
                }
            }
        }
        for (key, minute) in later.providers.minutes {
            let known = self.providers.minutes.entry(key).or_default();
            known.requests += minute.requests;
            known.errors += minute.errors;
            known.latency.merge(&minute.latency);
        }
        for (key, count) in later.providers.errors {
            *self.providers.errors.entry(key).or_default() += count;
        }
        for (call, CallEntry { tenant_id, totals }) in later.calls {
            self.add_call(call, totals, || tenant_id);
        }
        for (key, beat) in later.workers {
            self.add_worker(key, beat);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows it would upsert (before hour sketches): a measure of its memory.
    pub fn len(&self) -> usize {
        self.rollups.len()
            + self.providers.minutes.len()
            + self.providers.errors.len()
            + self.calls.len()
            + self.workers.len()
    }

    /// A compact binary form for the journal: a string table, then each map. The rollups
    /// go in the hash map's order: sorting them (by six strings) took a tenth of the
    /// writer's time on hour-spread traffic, and the reader does not need it. Two equal
    /// values may therefore encode differently; compare [`Derived::canonical`] instead.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_rollups_in(self.rollups.iter().collect())
    }

    /// [`Derived::encode`] with the rollups in key order: the same bytes for equal values.
    pub fn canonical(&self) -> Vec<u8> {
        self.encode_rollups_in(in_key_order(&self.rollups))
    }

    fn encode_rollups_in<'a>(&'a self, rollups: Vec<(&'a (SeriesKey, i64), &'a LatencySketch)>) -> Vec<u8> {
        let mut out = Encoder::default();
        out.varint(FORMAT);
        out.varint(rollups.len() as u64);
        // A series has many minutes: its six strings are looked up in the table once.
        let mut series: hashbrown::HashMap<&SeriesKey, [u64; 6]> = hashbrown::HashMap::new();
        for ((key, minute), sketch) in rollups {
            let ids = series.entry(key).or_insert_with(|| key.texts().map(|text| out.string(text)));
            for id in *ids {
                out.varint(id);
            }
            out.signed(*minute);
            out.bytes(&sketch.encode());
        }
        out.varint(self.providers.minutes.len() as u64);
        for ((tenant, provider, minute), counts) in &self.providers.minutes {
            out.text(tenant);
            out.text(provider);
            out.signed(*minute);
            out.signed(counts.requests);
            out.signed(counts.errors);
            out.bytes(&counts.latency.encode());
        }
        out.varint(self.providers.errors.len() as u64);
        for ((tenant, provider, minute, kind), count) in &self.providers.errors {
            out.text(tenant);
            out.text(provider);
            out.signed(*minute);
            out.text(kind);
            out.signed(*count);
        }
        out.varint(self.calls.len() as u64);
        for (call, CallEntry { tenant_id, totals }) in &self.calls {
            out.signed(*call);
            out.text(tenant_id);
            for value in [totals.first_ms, totals.cost_nano, totals.usage_lines, totals.unpriced_lines] {
                out.signed(value);
            }
        }
        out.varint(self.workers.len() as u64);
        for ((tenant, worker), beat) in &self.workers {
            out.text(tenant);
            out.text(worker);
            for value in [beat.last_ms, beat.memory_used_bytes, beat.memory_limit_bytes, beat.active_calls] {
                out.signed(value);
            }
            out.varint(beat.cpu_percent.to_bits());
        }
        out.finish()
    }

    /// Reads what [`Derived::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Derived, DecodeError> {
        let mut input = Decoder::new(bytes)?;
        let format = input.varint()?;
        if !(1..=FORMAT).contains(&format) {
            return Err(DecodeError("unknown journal format".into()));
        }
        let mut derived = Derived::default();
        for _ in 0..input.varint()? {
            let (tenant_id, component, source, agent_id) =
                (input.text()?, input.text()?, input.text()?, input.text()?);
            let key = SeriesKey::new(
                &tenant_id,
                Component::parse(&component).ok_or_else(|| DecodeError(format!("component {component}")))?,
                Source::parse(&source).ok_or_else(|| DecodeError(format!("source {source}")))?,
                &agent_id,
                &input.text()?,
                &input.text()?,
            );
            let minute = input.signed()?;
            derived.rollups.insert((key, minute), input.sketch()?);
        }
        for _ in 0..input.varint()? {
            let key = (input.text()?, input.text()?, input.signed()?);
            let (requests, errors) = (input.signed()?, input.signed()?);
            derived
                .providers
                .minutes
                .insert(key, ProviderMinute { requests, errors, latency: input.sketch()? });
        }
        for _ in 0..input.varint()? {
            let key = (input.text()?, input.text()?, input.signed()?, input.text()?);
            derived.providers.errors.insert(key, input.signed()?);
        }
        for _ in 0..input.varint()? {
            let call = input.signed()?;
            // Format 1 (before 2026-12) kept no tenant: such rows are folded and flushed at
            // start, before any read.
            let tenant_id = if format == 1 { String::new() } else { input.text()? };
            let totals = CallTotals {
                first_ms: input.signed()?,
                cost_nano: input.signed()?,
                usage_lines: input.signed()?,
                unpriced_lines: input.signed()?,
            };
            derived.calls.insert(call, CallEntry { tenant_id, totals });
        }
        for _ in 0..input.varint()? {
            let key = (input.text()?, input.text()?);
            let (last_ms, used, limit, active) =
                (input.signed()?, input.signed()?, input.signed()?, input.signed()?);
            let beat = WorkerBeat {
                last_ms,
                memory_used_bytes: used,
                memory_limit_bytes: limit,
                active_calls: active,
                cpu_percent: f64::from_bits(input.varint()?),
            };
            derived.workers.insert(key, beat);
        }
        Ok(derived)
    }
}

/// The journal body's format version: 2 gives each call's tenant; 1 is still read.
const FORMAT: u64 = 2;

/// A journal row that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable derived-data journal row: {0}")]
pub struct DecodeError(String);

/// Writes varints and interned strings; the string table goes first in the output. The
/// strings are borrowed from what is encoded: interning one copies nothing.
#[derive(Default)]
struct Encoder<'a> {
    strings: Vec<&'a str>,
    index: hashbrown::HashMap<&'a str, u64>,
    body: Vec<u8>,
}

impl<'a> Encoder<'a> {
    fn varint(&mut self, value: u64) {
        put_varint(&mut self.body, value);
    }

    fn signed(&mut self, value: i64) {
        self.varint(((value << 1) ^ (value >> 63)) as u64);
    }

    /// `text`'s number in the string table.
    fn string(&mut self, text: &'a str) -> u64 {
        let next = self.strings.len() as u64;
        let id = *self.index.entry(text).or_insert(next);
        if id == next {
            self.strings.push(text);
        }
        id
    }

    fn text(&mut self, text: &'a str) {
        let id = self.string(text);
        self.varint(id);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.body.extend_from_slice(bytes);
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + self.strings.len() * 12);
        put_varint(&mut out, self.strings.len() as u64);
        for text in &self.strings {
            put_varint(&mut out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        out.extend_from_slice(&self.body);
        out
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Decoder<'b> {
    strings: Vec<String>,
    rest: &'b [u8],
}

impl<'b> Decoder<'b> {
    fn new(bytes: &'b [u8]) -> Result<Decoder<'b>, DecodeError> {
        let mut decoder = Decoder { strings: Vec::new(), rest: bytes };
        let count = decoder.varint()?;
        for _ in 0..count {
            let raw = decoder.raw()?;
            let text = std::str::from_utf8(raw).map_err(|_| DecodeError("a string is not UTF-8".into()))?;
            decoder.strings.push(text.to_owned());
        }
        Ok(decoder)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().ok_or_else(|| DecodeError("truncated".into()))?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError("a varint is too long".into()))
    }

    fn signed(&mut self) -> Result<i64, DecodeError> {
        let raw = self.varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        let id = self.varint()? as usize;
        self.strings.get(id).cloned().ok_or_else(|| DecodeError(format!("string {id} is not in the table")))
    }

    fn raw(&mut self) -> Result<&'b [u8], DecodeError> {
        let length = self.varint()? as usize;
        if length > self.rest.len() {
            return Err(DecodeError("truncated".into()));
        }
        let (raw, rest) = self.rest.split_at(length);
        self.rest = rest;
        Ok(raw)
    }

    fn sketch(&mut self) -> Result<LatencySketch, DecodeError> {
        LatencySketch::decode(self.raw()?).map_err(|err| DecodeError(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use voicemon_core::pricing::PriceBook;
    use voicemon_core::validate::parse_event;
    use voicemon_core::window::format_time;

    const NOW_MS: i64 = 1_795_780_800_000;

    fn event(kind: &str, id: &str, tenant: &str, at_ms: i64, fields: serde_json::Value) -> (Event, Costing) {
        let mut json = json!({"id": id, "type": kind, "timestamp": format_time(at_ms), "tenant_id": tenant});
        json.as_object_mut().expect("an object").extend(fields.as_object().expect("an object").clone());
        let event = parse_event(&json.to_string(), NOW_MS).expect("a valid event");
        let costing = PriceBook::with_overrides(&[], "").expect("the shipped prices").cost(&event);
        (event, costing)
    }

    /// A turn, an LLM line, an unpriced one, two provider requests and two heartbeats, out of order.
    fn events() -> Vec<(Event, Costing, Option<i64>)> {
        let t = NOW_MS - 600_000;
        let beat = |active: u32| json!({"worker_id": "w-1", "memory_used_bytes": 5, "memory_limit_bytes": 10, "cpu_percent": 12.5, "active_calls": active});
        let failed = json!({"provider": "Deepgram", "component": "stt", "ok": false, "error": "http_503", "latency_ms": 900.0});
        let with_call = |(event, costing): (Event, Costing)| (event, costing, Some(7));
        let without = |(event, costing): (Event, Costing)| (event, costing, None);
        vec![
            with_call(event(
                "turn.completed",
                "a",
                "acme",
                t + 120_000,
                json!({"call_id": "c1", "agent_id": "bot", "turn_index": 0, "e2e_ms": 812.37, "stt_ms": 120.5}),
            )),
            with_call(event(
                "llm.usage",
                "b",
                "acme",
                t + 60_000,
                json!({"call_id": "c1", "provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5, "ttft_ms": 301.0}),
            )),
            with_call(event(
                "llm.usage",
                "b2",
                "acme",
                t + 61_000,
                json!({"call_id": "c1", "provider": "nobody", "model": "unknown-1", "input_tokens": 10, "output_tokens": 5}),
            )),
            without(event("provider.request", "c", "acme", t + 61_000, failed.clone())),
            without(event("provider.request", "d", "zen", t + 62_000, failed)),
            without(event("worker.heartbeat", "e", "acme", t + 90_000, beat(3))),
            without(event("worker.heartbeat", "f", "acme", t + 80_000, beat(9))),
        ]
    }

    fn all_at_once() -> Derived {
        let mut derived = Derived::default();
        for (event, costing, call) in events() {
            derived.add(&event, &costing, call);
        }
        derived
    }

    #[test]
    fn batches_absorbed_in_order_equal_every_event_added_at_once() {
        let mut batches = Derived::default();
        for chunk in events().chunks(2) {
            let mut batch = Derived::default();
            for (event, costing, call) in chunk {
                batch.add(event, costing, *call);
            }
            batches.absorb(batch);
        }
        assert_eq!(batches.canonical(), all_at_once().canonical());
    }

    #[test]
    fn what_events_add_is_counted_per_call_provider_worker_and_series() {
        let derived = all_at_once();
        let totals = derived.calls[&7].totals;
        assert_eq!((totals.first_ms, totals.usage_lines, totals.unpriced_lines), (NOW_MS - 540_000, 2, 1));
        assert!(totals.cost_nano > 0, "gpt-4o is priced: {totals:?}");
        assert_eq!(
            derived.workers[&("acme".to_owned(), "w-1".to_owned())].active_calls,
            3,
            "the latest beat wins"
        );
        let minute = minute_of(NOW_MS - 539_000);
        let deepgram = &derived.providers.minutes[&("acme".to_owned(), "deepgram".to_owned(), minute)];
        assert_eq!((deepgram.requests, deepgram.errors), (1, 1));
        // e2e and stt of the turn, TTFT of the priced LLM line.
        assert_eq!(derived.rollups.len(), 3);
        assert_eq!(derived.len(), 3 + 2 + 2 + 1 + 1);
    }

    #[test]
    fn a_journal_row_of_format_1_still_reads_back_its_calls_without_a_tenant() {
        // No strings; format 1; no rollups, provider minutes or errors; call 7 (first 5,
        // cost 3, one line, none unpriced), zigzag-encoded; no workers.
        let row = [0, 1, 0, 0, 0, 1, 14, 10, 6, 2, 0, 0];
        let decoded = Derived::decode(&row).expect("it decodes");
        let totals = CallTotals { first_ms: 5, cost_nano: 3, usage_lines: 1, unpriced_lines: 0 };
        assert_eq!(decoded.calls, BTreeMap::from([(7, CallEntry { tenant_id: String::new(), totals })]));
        assert!(Derived::decode(&[0, 3, 0, 0, 0, 0, 0]).is_err(), "a later format is refused");
    }

    #[test]
    fn the_journal_encoding_reads_back_exactly() {
        let derived = all_at_once();
        let bytes = derived.encode();
        let decoded = Derived::decode(&bytes).expect("it decodes");
        assert_eq!(decoded.canonical(), derived.canonical());
        assert_eq!(
            Derived::decode(&derived.canonical()).expect("it decodes").canonical(),
            derived.canonical()
        );
        assert_eq!(decoded.calls, derived.calls);
        assert_eq!(decoded.workers, derived.workers);
        assert!(Derived::decode(&bytes[..bytes.len() - 1]).is_err(), "a truncated row is refused");
        assert!(Derived::decode(&[9, 0]).is_err(), "garbage is refused");
    }

    #[test]
    fn a_flush_writes_only_first_times_earlier_than_the_known_ones() {
        let totals = |first_ms| CallEntry {
            tenant_id: "acme".into(),
            totals: CallTotals { first_ms, cost_nano: 0, usage_lines: 0, unpriced_lines: 0 },
        };
        let firsts = KnownFirsts::default();
        let calls: BTreeMap<i64, CallEntry> = [(1, totals(500)), (2, totals(700))].into();
        assert_eq!(firsts.moving(&calls), [(1, 500), (2, 700)], "nothing known: every call is written");
        firsts.learn([(1, 500), (2, 700)]);
        let calls: BTreeMap<i64, CallEntry> = [(1, totals(600)), (2, totals(650)), (3, totals(900))].into();
        assert_eq!(firsts.moving(&calls), [(2, 650), (3, 900)], "a later or equal time is not written");
        firsts.learn([(2, 800)]);
        assert_eq!(
            firsts.moving(&[(2, totals(690))].into()),
            [(2, 690)],
            "a later time learnt keeps the earlier"
        );
    }
}
