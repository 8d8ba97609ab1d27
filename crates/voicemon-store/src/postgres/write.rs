//! The write path: one group commit = one transaction of a few statements, whatever the
//! batch size: the idempotency keys and the calls' own fields (`INSERT … SELECT FROM
//! unnest($arrays)` with `ON CONFLICT`), the raw facts (a binary `COPY` per table) and one
//! `derived_journal` row. Derived data
//! (rollups, provider minutes, call totals, workers) is merged later by a flush
//! ([`crate::derived`]).
//!
//! Rows are sorted by their keys before upserts so that instances writing the same calls
//! and rollups at once take row locks in one order and never deadlock.

use super::{at, map_error, PostgresStore};
use crate::call_ids::CallIds;
use crate::derived::{CallEntry, CallTotals, Derived, WorkerBeat};
use crate::plan::{BreakerChangeRow, CallFields, Fact, HeartbeatRow, RequestRow, TurnRow, UsageRow};
use crate::{IngestEvent, StoreError, WriteOutcome};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use voicemon_core::access::event_key;

use voicemon_core::latency::SeriesKey;
use voicemon_core::pricing::Costing;
use voicemon_core::sketch::LatencySketch;

use crate::rollup::{hours_of, in_key_order, Period, ProviderDeltas, Rollups};

pub type NoteCache = Arc<Mutex<HashMap<(String, String), i64>>>;

impl PostgresStore {
    pub(super) async fn write_events(
        &self,
        events: Arc<Vec<IngestEvent>>,
    ) -> Result<WriteOutcome, StoreError> {
        // Ends once the derived data is absorbed (or the write failed): a read meanwhile
        // waits for it rather than see raw facts without their derived data.
        let _under_way = self.derived.begin_commit().await;
        let notes = Arc::clone(&self.cost_notes);
        let known_calls = Arc::clone(&self.known_calls);
        let claims = Arc::clone(&self.claims);
        let owner = self.derived.owner.clone();
        let (outcome, learned, new_calls, journalled) = self
            .transaction_retrying(move |tx| {
                let (claims, notes, known_calls) =
                    (Arc::clone(&claims), Arc::clone(&notes), Arc::clone(&known_calls));
                Box::pin(write_batch(tx, claims, notes, known_calls, owner.clone(), Arc::clone(&events)))
            })
            .await?;
        self.learn_notes(learned);
        if let Ok(mut known) = self.known_calls.lock() {
            if known.len() + new_calls.ids.len() > MAX_KNOWN_CALLS {
                known.clear();
            }
            known.extend(new_calls.ids);
        }
        self.known_firsts.learn(new_calls.firsts);
        if let Some((seq, derived)) = journalled {
            self.derived.pending.absorb(seq, derived);
        }
        Ok(outcome)
    }

    /// Caches notes once the transaction that interned them has committed: a note of a
    /// transaction still open (or rolled back) must never be used by another.
    pub(super) fn learn_notes(&self, learned: Vec<((String, String), i64)>) {
        if let Ok(mut known) = self.cost_notes.lock() {
            known.extend(learned);
        }
    }
}

/// Notes interned by a transaction, to cache after it commits.
pub type Learned = Vec<((String, String), i64)>;

/// Call row ids by (tenant, call id), remembered across batches so that the events of a
/// live call cost no round trip. Rows are never deleted, so a remembered id stays right;
/// ids are remembered only once the transaction that made them has committed.
pub type CallCache = Arc<Mutex<CallIds>>;

/// Remembered call ids past which the cache starts again (it is only a cache).
const MAX_KNOWN_CALLS: usize = 200_000;

/// A batch's journal row: its `seq` and what it adds to derived data.
type Journalled = Option<(i64, Derived)>;

/// The call rows a transaction made or found, to remember once it commits: their ids, and
/// the first-event times their rows then hold (or earlier ones).
#[derive(Default)]
struct NewCalls {
    ids: Learned,
    firsts: Vec<(i64, i64)>,
}

async fn write_batch(
    tx: &Transaction<'_>,
    claims: Arc<Claims>,
    notes: NoteCache,
    known_calls: CallCache,
    owner: String,
    events: Arc<Vec<IngestEvent>>,
) -> Result<(WriteOutcome, Learned, NewCalls, Journalled), StoreError> {
    let stored = claim_ids(tx, &events, &claims).await?;
    let fresh: Vec<&IngestEvent> = events.iter().zip(&stored).filter(|(_, s)| **s).map(|(e, _)| e).collect();
    if fresh.is_empty() {
        return Ok((WriteOutcome { stored }, Learned::new(), NewCalls::default(), None));
    }
    let (calls, new_calls) = call_rows(tx, &fresh, &known_calls).await?;
    let (note_ids, learned) = cost_note_ids(tx, &notes, fresh.iter().map(|e| &e.costing)).await?;
    let mut batch = Batch::default();
    let mut derived = Derived::default();
    for event in &fresh {
        let call = batch.add(event, &calls, &note_ids);
        derived.add(&event.event, &event.costing, call);
    }
    batch.execute(tx).await.map_err(map_error)?;
    if derived.is_empty() {
        return Ok((WriteOutcome { stored }, learned, new_calls, None));
    }
    let row = query_cached(
        tx,
        "INSERT INTO derived_journal (owner, body) VALUES ($1, $2) RETURNING seq",
        &[&owner, &derived.encode()],
    )
    .await
    .map_err(map_error)?;
    let seq: i64 = row.first().map(|row| row.get(0)).unwrap_or_default();
    Ok((WriteOutcome { stored }, learned, new_calls, Some((seq, derived))))
}

/// How group commits claim their idempotency keys. A binary `COPY` of the keys is several
/// times cheaper than `INSERT … ON CONFLICT DO NOTHING RETURNING` (BENCHMARKS.md), but
/// fails on a key already stored; then the commit rolls back to a savepoint taken before
/// it and claims with `ON CONFLICT`, which finds the stored keys. After such a failure
/// (a client retrying, a redelivery) the next [`ON_CONFLICT_AFTER_STORED_KEY`] commits
/// go straight to `ON CONFLICT`, as more duplicates tend to follow.
#[derive(Debug, Default)]
pub(super) struct Claims {
    on_conflict_left: AtomicU32,
}

/// Commits that claim with `ON CONFLICT` after a `COPY` of keys met one already stored.
const ON_CONFLICT_AFTER_STORED_KEY: u32 = 64;

impl Claims {
    /// Whether this commit tries `COPY` first (counting down the commits after a failure).
    fn by_copy(&self) -> bool {
        self.on_conflict_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
            .is_err()
    }

    fn met_stored_key(&self) {
        self.on_conflict_left.store(ON_CONFLICT_AFTER_STORED_KEY, Ordering::Relaxed);
    }
}

/// Inserts every event's idempotency key; an event is fresh when its key was new and it
/// is the first of the batch with that key. Keys go in in their order, so that commits
/// beside one another wait for each other's keys in one order and never deadlock.
async fn claim_ids(
    tx: &Transaction<'_>,
    events: &[IngestEvent],
    claims: &Claims,
) -> Result<Vec<bool>, StoreError> {
    let keys: Vec<(i64, i64)> = events
        .iter()
        .map(|e| {
            (e.event.envelope.timestamp_ms, event_key(&e.event.envelope.tenant_id, &e.event.envelope.id))
        })
        .collect();
    if claims.by_copy() {
        let mut distinct = HashSet::with_capacity(keys.len());
        let first_of_batch: Vec<bool> = keys.iter().map(|key| distinct.insert(*key)).collect();
        let mut sorted: Vec<(i64, i64)> = distinct.into_iter().collect();
        sorted.sort_unstable();
        tx.batch_execute("SAVEPOINT claim").await.map_err(map_error)?;
        match copy_keys(tx, &sorted).await {
            Ok(()) => return Ok(first_of_batch),
            Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT claim").await.map_err(map_error)?;
                claims.met_stored_key();
            }
            Err(err) => return Err(map_error(err)),
        }
    }
    let times: Vec<DateTime<Utc>> = keys.iter().map(|(ts, _)| at(*ts)).collect();
    let digests: Vec<i64> = keys.iter().map(|(_, key)| *key).collect();
    let rows = query_cached(
        tx,
        "INSERT INTO event_ids (ts, key)
             SELECT DISTINCT * FROM unnest($1::timestamptz[], $2::bigint[]) ORDER BY 1, 2
             ON CONFLICT DO NOTHING RETURNING ts, key",
        &[&times, &digests],
    )
    .await
    .map_err(map_error)?;
    let mut new: HashSet<(i64, i64)> =
        rows.iter().map(|row| (row.get::<_, DateTime<Utc>>(0).timestamp_millis(), row.get(1))).collect();
    Ok(keys.iter().map(|key| new.remove(key)).collect())
}

/// The keys, distinct and sorted, by binary `COPY`: fails on one already stored.
async fn copy_keys(tx: &Transaction<'_>, sorted: &[(i64, i64)]) -> Result<(), tokio_postgres::Error> {
    let copy = copy_in(tx, "event_ids (ts, key)", &[Type::TIMESTAMPTZ, Type::INT8]).await?;
    let mut copy = std::pin::pin!(copy);
    for (ts, key) in sorted {
        copy.as_mut().write(&[&at(*ts), key]).await?;
    }
    copy.finish().await.map(|_| ())
}

/// Row ids of the calls the events belong to, creating the rows that do not exist, and
/// the ids this transaction looked up (to remember once it commits). A new row gets its
/// first-event time from the batch (the earliest of its events here), which the flush of
/// the batch's derived data would otherwise write in a second version of the row.
async fn call_rows(
    tx: &Transaction<'_>,
    events: &[&IngestEvent],
    known_calls: &CallCache,
) -> Result<(CallIds, NewCalls), StoreError> {
    let mut wanted: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for event in events {
        let envelope = &event.event.envelope;
        let Some(call) = envelope.call_id.as_deref() else { continue };
        let first = wanted.entry((envelope.tenant_id.as_str(), call)).or_insert(envelope.timestamp_ms);
        *first = (*first).min(envelope.timestamp_ms);
    }
    let mut found = CallIds::with_capacity(wanted.len());
    let mut missing = Vec::new();
    {
        let known = known_calls.lock().map_err(|_| StoreError::Internal("poisoned call cache".into()))?;
        for ((tenant, call), first_ms) in wanted {
            match known.get(tenant, call) {
                Some(id) => found.insert(tenant, call, id),
                None => missing.push((tenant, call, at(first_ms))),
            }
        }
    }
    if missing.is_empty() {
        return Ok((found, NewCalls::default()));
    }
    let tenants: Vec<&str> = missing.iter().map(|(tenant, _, _)| *tenant).collect();
    let ids: Vec<&str> = missing.iter().map(|(_, call, _)| *call).collect();
    let firsts: Vec<DateTime<Utc>> = missing.iter().map(|(_, _, first)| *first).collect();
    let rows = query_cached(
        tx,
        "INSERT INTO calls (tenant_id, call_id, first_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
             ON CONFLICT (tenant_id, call_id) DO UPDATE SET first_at = least(calls.first_at, excluded.first_at)
             RETURNING id, tenant_id, call_id, first_at",
        &[&tenants, &ids, &firsts],
    )
    .await
    .map_err(map_error)?;
    let mut new = NewCalls::default();
    for row in rows {
        let id: i64 = row.get(0);
        new.ids.push(((row.get(1), row.get(2)), id));
        new.firsts.push((id, row.get::<_, DateTime<Utc>>(3).timestamp_millis()));
    }
    found.extend(new.ids.iter().cloned());
    Ok((found, new))
}

/// The price entry (or unpriced reason) a costing is filed under.
pub fn note_key(costing: &Costing) -> Option<(String, String)> {
    match costing {
        Costing::NotUsage => None,
        Costing::Priced(line) => Some((line.price_ref.clone(), line.unit_price.clone())),
        Costing::Unpriced { reason } => Some((String::new(), reason.clone())),
    }
}

/// `cost_notes` ids for every note the costings need, interning new ones; the new ones
/// are also returned apart, for the cache once the transaction commits.
pub async fn cost_note_ids<'c>(
    tx: &Transaction<'_>,
    cache: &NoteCache,
    costings: impl IntoIterator<Item = &'c Costing>,
) -> Result<(HashMap<(String, String), i64>, Learned), StoreError> {
    let wanted: HashSet<(String, String)> = costings.into_iter().filter_map(note_key).collect();
    let mut ids = HashMap::new();
    let mut missing = Vec::new();
    {
        let known = cache.lock().map_err(|_| StoreError::Internal("cost note cache poisoned".into()))?;
        for key in wanted {
            match known.get(&key) {
                Some(&id) => {
                    ids.insert(key, id);
                }
                None => missing.push(key),
            }
        }
    }
    missing.sort();
    let mut learned = Learned::new();
    for key in missing {
        let rows = query_cached(
            tx,
            "INSERT INTO cost_notes (price_ref, detail) VALUES ($1, $2)
             ON CONFLICT (price_ref, detail) DO UPDATE SET detail = excluded.detail RETURNING id",
            &[&key.0, &key.1],
        )
        .await
        .map_err(map_error)?;
        let id: i64 = rows
            .first()
            .map(|row| row.get(0))
            .ok_or_else(|| StoreError::Internal("interning a cost note returned no id".into()))?;
        learned.push((key.clone(), id));
        ids.insert(key, id);
    }
    Ok((ids, learned))
}

/// Latencies are stored in ms as `real`.
fn real(ms: f64) -> f32 {
    ms as f32
}

/// What a batch changes on one call row: later events of the batch win, as they would
/// one statement at a time.
#[derive(Debug, Default)]
struct CallPatch {
    started_at: Option<i64>,
    channel: Option<String>,
    agent_id: Option<String>,
    objective: Option<String>,
    trace_id: Option<String>,
    attributes: Option<String>,
    ended: Option<EndedPatch>,
}

#[derive(Debug)]
struct EndedPatch {
    at_ms: i64,
    duration_s: f64,
    status: &'static str,
    ended_reason: Option<String>,
    ended_by: Option<&'static str>,
}

/// Every row one batch writes: the calls' patches (an `UPDATE … FROM unnest`) and the raw
/// facts, borrowed from the events, for `COPY`.
#[derive(Default)]
struct Batch<'e> {
    calls: BTreeMap<i64, CallPatch>,
    turns: Vec<(i64, &'e str, TurnRow<'e>)>,
    /// Call, tenant, cost note, the row.
    usage: Vec<(i64, &'e str, i64, UsageRow<'e>)>,
    requests: Vec<(Option<i64>, &'e str, RequestRow<'e>)>,
    breakers: Vec<(&'e str, BreakerChangeRow<'e>)>,
    beats: Vec<(&'e str, HeartbeatRow<'e>)>,
}

impl CallPatch {
    /// Later events of a batch win, as they would one statement at a time.
    fn set_fields(&mut self, fields: &CallFields<'_>) {
        self.agent_id = fields.agent_id.map(str::to_owned).or(self.agent_id.take());
        self.objective = fields.objective.map(str::to_owned).or(self.objective.take());
        self.trace_id = fields.trace_id.map(str::to_owned).or(self.trace_id.take());
    }
}

impl<'e> Batch<'e> {
    /// Adds one fresh event; returns its call's row id when it is call-scoped.
    fn add(
        &mut self,
        ingest: &'e IngestEvent,
        calls: &CallIds,
        notes: &HashMap<(String, String), i64>,
    ) -> Option<i64> {
        let event = &ingest.event;
        let envelope = &event.envelope;
        let call = envelope.call_id.as_ref().and_then(|call_id| calls.get(&envelope.tenant_id, call_id));
        let note = note_key(&ingest.costing).and_then(|key| notes.get(&key).copied());
        self.add_fact(&envelope.tenant_id, Fact::of(event, &ingest.costing), call, note);
        call
    }

    /// Files one event's row of the write plan under its table.
    fn add_fact(&mut self, tenant: &'e str, fact: Fact<'e>, call: Option<i64>, note: Option<i64>) {
        match fact {
            Fact::CallStarted(row) => {
                let Some(call) = call else { return };
                let patch = self.calls.entry(call).or_default();
                patch.started_at = Some(row.at_ms);
                patch.channel = row.channel.map(str::to_owned).or(patch.channel.take());
                patch.attributes = row.attributes.or(patch.attributes.take());
                patch.set_fields(&row.fields);
            }
            Fact::CallEnded(row) => {
                let Some(call) = call else { return };
                let patch = self.calls.entry(call).or_default();
                patch.ended = Some(EndedPatch {
                    at_ms: row.at_ms,
                    duration_s: row.duration_s,
                    status: row.status,
                    ended_reason: row.ended_reason.map(str::to_owned),
                    ended_by: row.ended_by,
                });
                patch.set_fields(&row.fields);
            }
            Fact::Turn(row) => {
                if let Some(call) = call {
                    self.turns.push((call, tenant, row));
                }
            }
            Fact::Usage(row) => {
                if let (Some(call), Some(note)) = (call, note) {
                    self.usage.push((call, tenant, note, row));
                }
            }
            Fact::Request(row) => self.requests.push((call, tenant, row)),
            Fact::BreakerChange(row) => self.breakers.push((tenant, row)),
            Fact::Heartbeat(row) => self.beats.push((tenant, row)),
        }
    }

    async fn execute(self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        self.copy_facts(tx).await?;
        update_calls(tx, self.calls).await
    }

    /// The raw facts, one binary `COPY` per table: measured against `INSERT … SELECT FROM
    /// unnest($arrays)` on live-shaped traffic (BENCHMARKS.md), it won. The facts need no
    /// `ON CONFLICT`: the idempotency keys are claimed first.
    async fn copy_facts(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        use Type as T;
        if !self.turns.is_empty() {
            let copy = copy_in(
                tx,
                "turns (call, tenant_id, ts, turn_index, e2e_ms, stt_ms, eou_ms, llm_ttft_ms, tts_ttfb_ms,
                 interrupted, tool_calls, agent_id)",
                &[
                    T::INT8,
                    T::TEXT,
                    T::TIMESTAMPTZ,
                    T::INT4,
                    T::FLOAT4,
                    T::FLOAT4,
                    T::FLOAT4,
                    T::FLOAT4,
                    T::FLOAT4,
                    T::BOOL,
                    T::INT4,
                    T::TEXT,
                ],
            )
            .await?;
            let mut copy = std::pin::pin!(copy);
            for (call, tenant, t) in &self.turns {
                let [stt, eou, llm_ttft, tts_ttfb] = t.components_ms.map(|ms| ms.map(real));
                let tool_calls = t.tool_calls.map(|n| n as i32);
                copy.as_mut()
                    .write(&[
                        call,
                        tenant,
                        &at(t.at_ms),
                        &(t.turn_index as i32),
                        &real(t.e2e_ms),
                        &stt,
                        &eou,
                        &llm_ttft,
                        &tts_ttfb,
                        &t.interrupted,
                        &tool_calls,
                        &t.agent_id,
                    ])
                    .await?;
            }
            copy.finish().await?;
        }
        if !self.usage.is_empty() {
            let copy = copy_in(
                tx,
                "usage (call, tenant_id, ts, component, provider, model, voice, audio_seconds, input_tokens,
                 output_tokens, cached_input_tokens, audio_input_tokens, audio_output_tokens, characters,
                 latency_ms, cost_nano, cost_note)",
                &[
                    T::INT8,
                    T::TEXT,
                    T::TIMESTAMPTZ,
                    T::TEXT,
                    T::TEXT,
                    T::TEXT,
                    T::TEXT,
                    T::FLOAT8,
                    T::INT8,
                    T::INT8,
                    T::INT8,
                    T::INT8,
                    T::INT8,
                    T::INT8,
                    T::FLOAT4,
                    T::INT8,
                    T::INT8,
                ],
            )
            .await?;
            let mut copy = std::pin::pin!(copy);
            for (call, tenant, note, u) in &self.usage {
                let [input, output, cached, audio_in, audio_out] = u.tokens.map(|n| n.map(|n| n as i64));
                let characters = u.characters.map(|n| n as i64);
                copy.as_mut()
                    .write(&[
                        call,
                        tenant,
                        &at(u.at_ms),
                        &u.component,
                        &u.provider,
                        &u.model,
                        &u.voice,
                        &u.audio_seconds,
                        &input,
                        &output,
                        &cached,
                        &audio_in,
                        &audio_out,
                        &characters,
                        &u.latency_ms.map(real),
                        &u.cost_nano,
                        note,
                    ])
                    .await?;
            }
            copy.finish().await?;
        }
        if !self.requests.is_empty() {
            let copy = copy_in(
                tx,
                "provider_requests (tenant_id, ts, provider, component, ok, latency_ms, error, call)",
                &[T::TEXT, T::TIMESTAMPTZ, T::TEXT, T::TEXT, T::BOOL, T::FLOAT4, T::TEXT, T::INT8],
            )
            .await?;
            let mut copy = std::pin::pin!(copy);
            for (call, tenant, r) in &self.requests {
                copy.as_mut()
                    .write(&[
                        tenant,
                        &at(r.at_ms),
                        &r.provider,
                        &r.component,
                        &r.ok,
                        &r.latency_ms.map(real),
                        &r.error,
                        call,
                    ])
                    .await?;
            }
            copy.finish().await?;
        }
        if !self.breakers.is_empty() {
            let copy = copy_in(
                tx,
                "breaker_changes (tenant_id, ts, breaker, state)",
                &[T::TEXT, T::TIMESTAMPTZ, T::TEXT, T::TEXT],
            )
            .await?;
            let mut copy = std::pin::pin!(copy);
            for (tenant, b) in &self.breakers {
                copy.as_mut().write(&[tenant, &at(b.at_ms), &b.breaker, &b.state]).await?;
            }
            copy.finish().await?;
        }
        if !self.beats.is_empty() {
            let copy = copy_in(
                tx,
                "heartbeats (tenant_id, ts, worker_id, memory_used_bytes, memory_limit_bytes, cpu_percent,
                 active_calls)",
                &[T::TEXT, T::TIMESTAMPTZ, T::TEXT, T::INT8, T::INT8, T::FLOAT8, T::INT4],
            )
            .await?;
            let mut copy = std::pin::pin!(copy);
            for (tenant, h) in &self.beats {
                copy.as_mut()
                    .write(&[
                        tenant,
                        &at(h.at_ms),
                        &h.worker_id,
                        &h.memory_used_bytes,
                        &h.memory_limit_bytes,
                        &h.cpu_percent,
                        &(h.active_calls as i32),
                    ])
                    .await?;
            }
            copy.finish().await?;
        }
        Ok(())
    }
}

/// Starts a binary `COPY {target} FROM STDIN` (`target`: the table and its columns, whose
/// types `types` gives in order), its statement prepared once per connection.
async fn copy_in(
    tx: &Transaction<'_>,
    target: &str,
    types: &[Type],
) -> Result<BinaryCopyInWriter, tokio_postgres::Error> {
    let statement = tx.prepare_cached(&format!("COPY {target} FROM STDIN (FORMAT binary)")).await?;
    let sink = tx.copy_in(&statement).await?;
    Ok(BinaryCopyInWriter::new(sink, types))
}

/// Runs one statement of a group commit and returns its rows, prepared once per connection.
async fn query_cached(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query(&statement, params).await
}

/// Runs one statement of a group commit, prepared once per connection.
async fn run_cached(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), tokio_postgres::Error> {
    // Cached per connection: a group commit costs one round trip per statement.
    let statement = tx.prepare_cached(sql).await?;
    tx.execute(&statement, params).await.map(|_| ())
}

async fn update_calls(
    tx: &Transaction<'_>,
    calls: BTreeMap<i64, CallPatch>,
) -> Result<(), tokio_postgres::Error> {
    if calls.is_empty() {
        return Ok(());
    }
    let mut c = CallColumns::default();
    for (id, patch) in calls {
        c.push(id, patch);
    }
    run_cached(
        tx,
        "UPDATE calls AS c SET
           started_at = coalesce(v.started_at, c.started_at),
           channel = coalesce(v.channel, c.channel),
           agent_id = coalesce(v.agent_id, c.agent_id),
           objective = coalesce(v.objective, c.objective),
           trace_id = coalesce(v.trace_id, c.trace_id),
           attributes = coalesce(v.attributes::jsonb, c.attributes),
           ended_at = CASE WHEN v.ended THEN v.ended_at ELSE c.ended_at END,
           duration_s = CASE WHEN v.ended THEN v.duration_s ELSE c.duration_s END,
           status = CASE WHEN v.ended THEN v.status ELSE c.status END,
           ended_reason = CASE WHEN v.ended THEN v.ended_reason ELSE c.ended_reason END,
           ended_by = CASE WHEN v.ended THEN v.ended_by ELSE c.ended_by END
         FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::boolean[], $9::timestamptz[], $10::float8[], $11::text[], $12::text[], $13::text[])
           AS v (id, started_at, channel, agent_id, objective, trace_id, attributes, ended, ended_at,
                 duration_s, status, ended_reason, ended_by)
         WHERE c.id = v.id",
        &[
            &c.id,
            &c.started_at,
            &c.channel,
            &c.agent_id,
            &c.objective,
            &c.trace_id,
            &c.attributes,
            &c.ended,
            &c.ended_at,
            &c.duration_s,
            &c.status,
            &c.ended_reason,
            &c.ended_by,
        ],
    )
    .await
}

#[derive(Default)]
struct CallColumns {
    id: Vec<i64>,
    started_at: Vec<Option<DateTime<Utc>>>,
    channel: Vec<Option<String>>,
    agent_id: Vec<Option<String>>,
    objective: Vec<Option<String>>,
    trace_id: Vec<Option<String>>,
    attributes: Vec<Option<String>>,
    ended: Vec<bool>,
    ended_at: Vec<Option<DateTime<Utc>>>,
    duration_s: Vec<Option<f64>>,
    status: Vec<Option<&'static str>>,
    ended_reason: Vec<Option<String>>,
    ended_by: Vec<Option<&'static str>>,
}

impl CallColumns {
    fn push(&mut self, id: i64, patch: CallPatch) {
        self.id.push(id);
        self.started_at.push(patch.started_at.map(at));
        self.channel.push(patch.channel);
        self.agent_id.push(patch.agent_id);
        self.objective.push(patch.objective);
        self.trace_id.push(patch.trace_id);
        self.attributes.push(patch.attributes);
        self.ended.push(patch.ended.is_some());
        self.ended_at.push(patch.ended.as_ref().map(|e| at(e.at_ms)));
        self.duration_s.push(patch.ended.as_ref().map(|e| e.duration_s));
        self.status.push(patch.ended.as_ref().map(|e| e.status));
        self.ended_by.push(patch.ended.as_ref().and_then(|e| e.ended_by));
        self.ended_reason.push(patch.ended.and_then(|e| e.ended_reason));
    }
}

/// Deletes the journal rows `seqs` a flush covers; returns how many were still there.
pub(super) async fn claim_journal(
    tx: &Transaction<'_>,
    seqs: &[i64],
) -> Result<usize, tokio_postgres::Error> {
    let statement = tx.prepare_cached("DELETE FROM derived_journal WHERE seq = ANY($1)").await?;
    Ok(tx.execute(&statement, &[&seqs]).await? as usize)
}

/// Merges derived data into its tables (in the caller's transaction); of the calls' first
/// times, only `firsts` ([`crate::derived::KnownFirsts::moving`]).
pub(super) async fn flush(
    tx: &Transaction<'_>,
    derived: &Derived,
    firsts: &[(i64, i64)],
) -> Result<(), tokio_postgres::Error> {
    // The calls' updates join a few thousand row ids to a table of many more: PostgreSQL
    // would hash the whole table for each statement (seen: 100 000 calls scanned to update
    // 4 000, twice the time of looking each id up in the primary key).
    tx.batch_execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off").await?;
    update_call_totals(tx, &derived.calls, firsts).await?;
    upsert_workers(tx, &derived.workers).await?;
    upsert_providers(tx, &derived.providers).await?;
    upsert_rollups(tx, &derived.rollups).await
}

/// The calls' totals in one statement per [`FLUSH_ROWS`] calls: the first-event time
/// where it moves earlier (`firsts`, sorted by call like `calls`) and the cost where usage
/// came. A call with both is rewritten once, and a row is rewritten only when something
/// changes.
async fn update_call_totals(
    tx: &Transaction<'_>,
    calls: &BTreeMap<i64, CallEntry>,
    firsts: &[(i64, i64)],
) -> Result<(), tokio_postgres::Error> {
    let mut firsts = firsts.iter().peekable();
    let changed: Vec<(i64, Option<i64>, &CallTotals)> = calls
        .iter()
        .filter_map(|(&id, entry)| {
            let first = firsts.next_if(|(call, _)| *call == id).map(|(_, first_ms)| *first_ms);
            (first.is_some() || entry.totals.usage_lines != 0).then_some((id, first, &entry.totals))
        })
        .collect();
    for chunk in changed.chunks(FLUSH_ROWS) {
        let ids: Vec<i64> = chunk.iter().map(|(id, _, _)| *id).collect();
        let first: Vec<Option<DateTime<Utc>>> = chunk.iter().map(|(_, first, _)| first.map(at)).collect();
        let cost: Vec<i64> = chunk.iter().map(|(_, _, t)| t.cost_nano).collect();
        let lines: Vec<i32> = chunk.iter().map(|(_, _, t)| t.usage_lines as i32).collect();
        let unpriced: Vec<i32> = chunk.iter().map(|(_, _, t)| t.unpriced_lines as i32).collect();
        // least() skips a NULL: a call whose first time does not move keeps its own.
        run_cached(
            tx,
            "UPDATE calls AS c SET first_at = least(c.first_at, v.first_at),
               cost_nano = c.cost_nano + v.cost_nano, usage_lines = c.usage_lines + v.usage_lines,
               unpriced_lines = c.unpriced_lines + v.unpriced_lines
             FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::integer[], $5::integer[])
               AS v (id, first_at, cost_nano, usage_lines, unpriced_lines)
             WHERE c.id = v.id AND (v.usage_lines <> 0 OR c.first_at IS NULL OR c.first_at > v.first_at)",
            &[&ids, &first, &cost, &lines, &unpriced],
        )
        .await?;
    }
    Ok(())
}

async fn upsert_workers(
    tx: &Transaction<'_>,
    workers: &BTreeMap<(String, String), WorkerBeat>,
) -> Result<(), tokio_postgres::Error> {
    if workers.is_empty() {
        return Ok(());
    }
    let (mut tenant, mut worker, mut last, mut used, mut limit, mut cpu, mut active) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((t, w), beat) in workers {
        tenant.push(t.as_str());
        worker.push(w.as_str());
        last.push(at(beat.last_ms));
        used.push(beat.memory_used_bytes);
        limit.push(beat.memory_limit_bytes);
        cpu.push(beat.cpu_percent);
        active.push(beat.active_calls as i32);
    }
    run_cached(
        tx,
        "INSERT INTO workers (tenant_id, worker_id, last_at, memory_used_bytes, memory_limit_bytes, cpu_percent,
           active_calls)
         SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::float8[],
           $7::integer[])
         ON CONFLICT (tenant_id, worker_id) DO UPDATE SET last_at = excluded.last_at,
           memory_used_bytes = excluded.memory_used_bytes, memory_limit_bytes = excluded.memory_limit_bytes,
           cpu_percent = excluded.cpu_percent, active_calls = excluded.active_calls
         WHERE excluded.last_at >= workers.last_at",
        &[&tenant, &worker, &last, &used, &limit, &cpu, &active],
    )
    .await
}

/// Sketch columns for `unnest`: arrays of arrays cannot be ragged, so bucket keys and
/// counts travel as array literals (`{1,2,3}`) and are cast back in SQL.
#[derive(Default)]
struct SketchColumns {
    zero: Vec<i64>,
    keys: Vec<String>,
    counts: Vec<String>,
}

impl SketchColumns {
    fn push(&mut self, sketch: &LatencySketch) {
        let (keys, counts): (Vec<String>, Vec<String>) =
            sketch.buckets().map(|(k, c)| (k.to_string(), c.to_string())).unzip();
        self.zero.push(sketch.zero_count() as i64);
        self.keys.push(format!("{{{}}}", keys.join(",")));
        self.counts.push(format!("{{{}}}", counts.join(",")));
    }
}

async fn upsert_providers(
    tx: &Transaction<'_>,
    deltas: &ProviderDeltas,
) -> Result<(), tokio_postgres::Error> {
    let ProviderDeltas { minutes, errors } = deltas;
    if !minutes.is_empty() {
        let (mut tenant, mut provider, mut start, mut requests, mut failed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut sketches = SketchColumns::default();
        for ((t, p, s), minute) in minutes {
            tenant.push(t.clone());
            provider.push(p.clone());
            start.push(at(*s));
            requests.push(minute.requests);
            failed.push(minute.errors);
            sketches.push(&minute.latency);
        }
        run_cached(
            tx,
            "INSERT INTO provider_minutes AS m (tenant_id, provider, start_at, requests, errors, sketch)
             SELECT t, p, s, r, e, ROW(z, k::integer[], n::bigint[])::voicemon_sketch
             FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bigint[],
                         $7::text[], $8::text[]) AS v (t, p, s, r, e, z, k, n)
             ON CONFLICT (tenant_id, provider, start_at) DO UPDATE SET
               requests = m.requests + excluded.requests, errors = m.errors + excluded.errors,
               sketch = voicemon_sketch_merge(m.sketch, excluded.sketch)",
            &[
                &tenant,
                &provider,
                &start,
                &requests,
                &failed,
                &sketches.zero,
                &sketches.keys,
                &sketches.counts,
            ],
        )
        .await?;
    }
    if !errors.is_empty() {
        let (mut tenant, mut provider, mut start, mut kind, mut count) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((t, p, s, k), c) in errors {
            tenant.push(t.clone());
            provider.push(p.clone());
            start.push(at(*s));
            kind.push(k.clone());
            count.push(*c);
        }
        run_cached(
            tx,
            "INSERT INTO provider_errors AS e (tenant_id, provider, start_at, error, count)
             SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::bigint[])
             ON CONFLICT (tenant_id, provider, start_at, error) DO UPDATE SET count = e.count + excluded.count",
            &[&tenant, &provider, &start, &kind, &count],
        )
        .await?;
    }
    Ok(())
}

async fn upsert_rollups(tx: &Transaction<'_>, minutes: &Rollups) -> Result<(), tokio_postgres::Error> {
    let hours = hours_of(minutes);
    upsert_into(tx, Period::Minute.table(), minutes).await?;
    upsert_into(tx, Period::Hour.table(), &hours).await
}

/// Rows per statement of a flush: a connection keeps its largest message's buffer, so an
/// unbounded statement would hold the memory of the largest flush for good.
const FLUSH_ROWS: usize = 4_000;

async fn upsert_into(
    tx: &Transaction<'_>,
    table: &str,
    rollups: &Rollups,
) -> Result<(), tokio_postgres::Error> {
    for chunk in in_key_order(rollups).chunks(FLUSH_ROWS) {
        upsert_chunk(tx, table, chunk).await?;
    }
    Ok(())
}

async fn upsert_chunk(
    tx: &Transaction<'_>,
    table: &str,
    rollups: &[(&(SeriesKey, i64), &LatencySketch)],
) -> Result<(), tokio_postgres::Error> {
    let mut columns: [Vec<String>; 6] = Default::default();
    let mut start = Vec::new();
    let mut sketches = SketchColumns::default();
    for ((key, at_ms), sketch) in rollups {
        for (column, value) in columns.iter_mut().zip(key.texts()) {
            column.push(value.to_owned());
        }
        start.push(at(*at_ms));
        sketches.push(sketch);
    }
    let [tenant, component, source, agent, provider, model] = &columns;
    run_cached(
        tx,
        &format!(
            "INSERT INTO {table} AS r (tenant_id, component, source, start_at, agent_id, provider, model, sketch)
             SELECT t, c, s, a, g, p, m, ROW(z, k::integer[], n::bigint[])::voicemon_sketch
             FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
                         $8::bigint[], $9::text[], $10::text[]) AS v (t, c, s, a, g, p, m, z, k, n)
             ON CONFLICT (tenant_id, component, source, start_at, agent_id, provider, model)
             DO UPDATE SET sketch = voicemon_sketch_merge(r.sketch, excluded.sketch)"
        ),
        &[tenant, component, source, &start, agent, provider, model, &sketches.zero, &sketches.keys, &sketches.counts],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::{Claims, ON_CONFLICT_AFTER_STORED_KEY};

    #[test]
    fn keys_are_claimed_by_copy_until_one_is_met_stored_then_by_on_conflict_for_a_while() {
        let claims = Claims::default();
        assert!(claims.by_copy() && claims.by_copy(), "COPY while no stored key was met");
        claims.met_stored_key();
        let after: Vec<bool> = (0..ON_CONFLICT_AFTER_STORED_KEY + 2).map(|_| claims.by_copy()).collect();
        let expected: Vec<bool> =
            (0..ON_CONFLICT_AFTER_STORED_KEY + 2).map(|n| n >= ON_CONFLICT_AFTER_STORED_KEY).collect();
        assert_eq!(after, expected, "ON CONFLICT for the next commits, then COPY again");
    }
}
