//! The write path. A group commit is one transaction of raw facts, idempotency keys and
//! one `derived_journal` row; derived data waits in memory for [`Writer::flush`], which
//! merges it into the rollups, provider minutes, call totals and workers ([`crate::derived`]).

use super::map_error;
use crate::{IngestEvent, StoreError, WriteOutcome};
use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, Transaction};
use std::collections::HashMap;
use std::sync::Arc;
use voicemon_core::access::event_key;
use voicemon_core::pricing::Costing;
use voicemon_core::sketch::LatencySketch;

use crate::call_ids::CallIds;
use crate::derived::{CallEntry, Derived, KnownFirsts, WorkerBeat};
use crate::pending::PendingDerived;
use crate::plan::{note_of, Fact};
use crate::rollup::{hours_of, in_key_order, Period, ProviderDeltas, Rollups};

/// Call row ids remembered across batches, so turns and usage lines of a live call cost
/// no look-up. Cleared when it grows past this many calls (it is only a cache).
const MAX_CACHED_CALLS: usize = 200_000;

/// Pending derived rows past which a commit flushes at once, bounding memory between
/// the timed flushes.
const MAX_PENDING: usize = 200_000;

#[derive(Debug)]
pub struct Writer {
    conn: Connection,
    call_rows: CallIds,
    /// `cost_notes` ids by (price_ref, detail).
    cost_notes: HashMap<(String, String), i64>,
    /// Derived data of the commits not flushed yet, shared with the reads that merge it
    /// ([`crate::pending`]).
    pending: Arc<PendingDerived>,
    /// First-event times of call rows (a flush writes only those that move earlier).
    firsts: KnownFirsts,
}

/// Latencies in raw fact tables are integer tenths of a millisecond.
fn tenths(ms: f64) -> i64 {
    (ms * 10.0).round() as i64
}

/// `sketch_merge(a, b)`: the rollup upsert merges in SQL with the core's sketch merge.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "sketch_merge",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let decode = |i: usize| -> rusqlite::Result<LatencySketch> {
                let bytes: Vec<u8> = ctx.get(i)?;
                LatencySketch::decode(&bytes).map_err(|err| rusqlite::Error::UserFunctionError(Box::new(err)))
            };
            let mut merged = decode(0)?;
            merged.merge(&decode(1)?);
            Ok(merged.encode())
        },
    )
}

impl Writer {
    pub fn new(conn: Connection, pending: Arc<PendingDerived>) -> Writer {
        Writer {
            conn,
            call_rows: CallIds::default(),
            cost_notes: HashMap::new(),
            pending,
            firsts: KnownFirsts::default(),
        }
    }

    /// Whether derived data waits for a flush.
    pub fn has_pending(&self) -> bool {
        self.pending.has_pending()
    }

    /// Folds journal rows that were committed but never flushed (voicemon stopped
    /// between the two) and flushes them. Returns how many rows it folded. Only the
    /// process that owns the store's derived data may call it (see `SqliteStore::open`).
    pub fn recover(&mut self) -> Result<usize, StoreError> {
        let rows = {
            let mut statement =
                self.conn.prepare("SELECT seq, body FROM derived_journal ORDER BY seq").map_err(map_error)?;
            let rows = statement
                .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)))
                .map_err(map_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_error)?
        };
        for (seq, body) in &rows {
            let derived = Derived::decode(body).map_err(|err| StoreError::Internal(err.to_string()))?;
            self.pending.absorb(*seq, derived);
        }
        self.flush()?;
        Ok(rows.len())
    }

    /// Merges the pending derived data into its tables and deletes the journal rows it
    /// covered, in one transaction. On failure it stays pending.
    pub fn flush(&mut self) -> Result<usize, StoreError> {
        if !self.pending.has_pending() {
            return Ok(0);
        }
        let taken = self.pending.take();
        let written = taken.derived.len();
        let firsts = self.firsts.moving(&taken.derived.calls);
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            update_calls(&tx, &taken.derived.calls, &firsts)?;
            upsert_workers(&tx, &taken.derived.workers)?;
            upsert_providers(&tx, &taken.derived.providers)?;
            upsert_rollups(&tx, &taken.derived.rollups)?;
            let mut delete = tx.prepare_cached("DELETE FROM derived_journal WHERE seq = ?1")?;
            for seq in &taken.seqs {
                delete.execute([seq])?;
            }
            drop(delete);
            tx.commit()
        })();
        match result {
            Ok(()) => {
                taken.flushed();
                self.firsts.learn(firsts);
                Ok(written)
            }
            // Dropped unflushed, the taken part is pending again.
            Err(err) => Err(map_error(err)),
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The connection and the cost-note cache, borrowed together.
    pub fn parts(&mut self) -> (&mut Connection, &mut HashMap<(String, String), i64>) {
        (&mut self.conn, &mut self.cost_notes)
    }

    pub fn write_batch(&mut self, events: &[IngestEvent]) -> Result<WriteOutcome, StoreError> {
        let result = self.try_write_batch(events).map_err(map_error);
        if result.is_err() || self.call_rows.len() > MAX_CACHED_CALLS {
            // Rows inserted by a rolled-back transaction do not exist: forget them.
            self.call_rows.clear();
            self.cost_notes.clear();
        }
        let outcome = result?;
        if self.pending.rows() > MAX_PENDING {
            // The batch is durable whatever happens here: its journal row stays until a flush works.
            if let Err(err) = self.flush() {
                tracing::warn!(error = %err, "cannot flush derived data; it stays pending");
            }
        }
        Ok(outcome)
    }

    /// Stores the batch's raw facts and journal row in one transaction; its derived data
    /// is pending once it has committed, behind [`PendingDerived::gate`].
    fn try_write_batch(&mut self, events: &[IngestEvent]) -> rusqlite::Result<WriteOutcome> {
        let Writer { conn, call_rows, cost_notes, pending, firsts } = self;
        let tx = conn.transaction()?;
        let mut stored = Vec::with_capacity(events.len());
        let mut new_firsts = Vec::new();
        let mut derived = Derived::default();
        for IngestEvent { event, costing } in events {
            let key = event_key(&event.envelope.tenant_id, &event.envelope.id);
            let fresh = tx
                .prepare_cached("INSERT OR IGNORE INTO event_ids (ts_ms, key) VALUES (?1, ?2)")?
                .execute([event.envelope.timestamp_ms, key])?
                == 1;
            stored.push(fresh);
            if !fresh {
                continue;
            }
            let call = match &event.envelope.call_id {
                Some(call_id) => {
                    let new_call = NewCall {
                        tenant_id: &event.envelope.tenant_id,
                        call_id,
                        at_ms: event.envelope.timestamp_ms,
                    };
                    Some(call_row(&tx, call_rows, new_call, &mut new_firsts)?)
                }
                None => None,
            };
            let cost = CostColumns::of(&tx, cost_notes, costing)?;
            insert_fact(&tx, &event.envelope.tenant_id, call, &Fact::of(event, costing), cost.note)?;
            derived.add(event, costing, call);
        }
        let seq = if derived.is_empty() {
            None
        } else {
            tx.prepare_cached("INSERT INTO derived_journal (body) VALUES (?1)")?
                .execute([derived.encode()])?;
            Some(tx.last_insert_rowid())
        };
        let _gate = pending.gate();
        tx.commit()?;
        firsts.learn(new_firsts);
        if let Some(seq) = seq {
            pending.absorb(seq, derived);
        }
        Ok(WriteOutcome { stored })
    }
}

/// Upserts provider minutes and errors, merging latency sketches.
fn upsert_providers(tx: &Transaction<'_>, deltas: &ProviderDeltas) -> rusqlite::Result<()> {
    let mut minutes = tx.prepare_cached(
        "INSERT INTO provider_minutes (tenant_id, provider, start_ms, requests, errors, sketch)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant_id, provider, start_ms) DO UPDATE SET
           requests = requests + excluded.requests, errors = errors + excluded.errors,
           sketch = sketch_merge(sketch, excluded.sketch)",
    )?;
    for ((tenant, provider, start), minute) in &deltas.minutes {
        let sketch = minute.latency.encode();
        minutes.execute(params![tenant, provider, start, minute.requests, minute.errors, sketch])?;
    }
    let mut errors = tx.prepare_cached(
        "INSERT INTO provider_errors (tenant_id, provider, start_ms, error, count) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant_id, provider, start_ms, error) DO UPDATE SET count = count + excluded.count",
    )?;
    for ((tenant, provider, start, error), count) in &deltas.errors {
        errors.execute(params![tenant, provider, start, error, count])?;
    }
    Ok(())
}

/// Call totals: cost where usage came, and the first times `firsts` (sorted by call, like
/// `calls`) that may move earlier ([`KnownFirsts::moving`]); a first time is written only
/// where it does move (so the two indexes on it are touched only when it changes), and a
/// call with both is updated once.
fn update_calls(
    tx: &Transaction<'_>,
    calls: &std::collections::BTreeMap<i64, CallEntry>,
    firsts: &[(i64, i64)],
) -> rusqlite::Result<()> {
    let mut first = tx.prepare_cached(
        "UPDATE calls SET first_ms = ?2 WHERE id = ?1 AND (first_ms IS NULL OR first_ms > ?2)",
    )?;
    let mut cost = tx.prepare_cached(
        "UPDATE calls SET cost_nano = cost_nano + ?2, usage_lines = usage_lines + ?3,
         unpriced_lines = unpriced_lines + ?4 WHERE id = ?1",
    )?;
    let mut both = tx.prepare_cached(
        "UPDATE calls SET first_ms = CASE WHEN first_ms IS NULL OR first_ms > ?5 THEN ?5 ELSE first_ms END,
         cost_nano = cost_nano + ?2, usage_lines = usage_lines + ?3, unpriced_lines = unpriced_lines + ?4
         WHERE id = ?1",
    )?;
    let mut firsts = firsts.iter().peekable();
    for (call, CallEntry { totals, .. }) in calls {
        let moving = firsts.next_if(|(id, _)| id == call).map(|(_, first_ms)| *first_ms);
        let (cost_nano, lines, unpriced) = (totals.cost_nano, totals.usage_lines, totals.unpriced_lines);
        match (moving, lines != 0) {
            (Some(first_ms), true) => both.execute(params![call, cost_nano, lines, unpriced, first_ms])?,
            (Some(first_ms), false) => first.execute(params![call, first_ms])?,
            (None, true) => cost.execute(params![call, cost_nano, lines, unpriced])?,
            (None, false) => 0,
        };
    }
    Ok(())
}

/// Each worker's latest heartbeat wins, whatever order they arrive in.
fn upsert_workers(
    tx: &Transaction<'_>,
    workers: &std::collections::BTreeMap<(String, String), WorkerBeat>,
) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO workers (tenant_id, last_ms, worker_id, memory_used_bytes,
         memory_limit_bytes, cpu_percent, active_calls) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant_id, worker_id) DO UPDATE SET last_ms = excluded.last_ms,
           memory_used_bytes = excluded.memory_used_bytes,
           memory_limit_bytes = excluded.memory_limit_bytes,
           cpu_percent = excluded.cpu_percent, active_calls = excluded.active_calls
         WHERE excluded.last_ms >= workers.last_ms",
    )?;
    for ((tenant, worker), beat) in workers {
        upsert.execute(params![
            tenant,
            beat.last_ms,
            worker,
            beat.memory_used_bytes,
            beat.memory_limit_bytes,
            beat.cpu_percent,
            beat.active_calls,
        ])?;
    }
    Ok(())
}

/// The cost columns of a usage line: its cost (None when unpriced) and its note.
#[derive(Debug, Default)]
pub struct CostColumns {
    pub cost_nano: Option<i64>,
    /// `cost_notes.id`; None for events that are not usage.
    pub note: Option<i64>,
}

impl CostColumns {
    pub fn of(
        tx: &Connection,
        notes: &mut HashMap<(String, String), i64>,
        costing: &Costing,
    ) -> rusqlite::Result<CostColumns> {
        let cost_nano = match costing {
            Costing::NotUsage => return Ok(CostColumns::default()),
            Costing::Priced(line) => Some(line.cost.0),
            Costing::Unpriced { .. } => None,
        };
        let (price_ref, detail) = note_of(costing);
        let note = cost_note(tx, notes, price_ref, detail)?;
        Ok(CostColumns { cost_nano, note: Some(note) })
    }
}

fn cost_note(
    tx: &Connection,
    notes: &mut HashMap<(String, String), i64>,
    price_ref: &str,
    detail: &str,
) -> rusqlite::Result<i64> {
    let key = (price_ref.to_owned(), detail.to_owned());
    if let Some(&id) = notes.get(&key) {
        return Ok(id);
    }
    let id = tx
        .prepare_cached(
            "INSERT INTO cost_notes (price_ref, detail) VALUES (?1, ?2)
             ON CONFLICT (price_ref, detail) DO UPDATE SET detail = excluded.detail RETURNING id",
        )?
        .query_row([price_ref, detail], |row| row.get(0))?;
    notes.insert(key, id);
    Ok(id)
}

/// The call of an event, and the event's time.
struct NewCall<'e> {
    tenant_id: &'e str,
    call_id: &'e str,
    at_ms: i64,
}

/// The row id of the event's call. A row made here gets the event's time as its first
/// time, which the flush would otherwise write in a second version of the row; its (id,
/// first time) goes into `new_firsts`, to remember once the transaction commits.
fn call_row(
    tx: &Transaction<'_>,
    cache: &mut CallIds,
    call: NewCall<'_>,
    new_firsts: &mut Vec<(i64, i64)>,
) -> rusqlite::Result<i64> {
    if let Some(row) = cache.get(call.tenant_id, call.call_id) {
        return Ok(row);
    }
    let (row, first_ms) = tx
        .prepare_cached(
            "INSERT INTO calls (tenant_id, call_id, first_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant_id, call_id) DO UPDATE SET first_ms = min(coalesce(first_ms, ?3), ?3)
             RETURNING id, first_ms",
        )?
        .query_row(params![call.tenant_id, call.call_id, call.at_ms], |row| Ok((row.get(0)?, row.get(1)?)))?;
    cache.insert(call.tenant_id, call.call_id, row);
    new_firsts.push((row, first_ms));
    Ok(row)
}

/// Binds one event's row of the write plan.
fn insert_fact(
    tx: &Transaction<'_>,
    tenant: &str,
    call: Option<i64>,
    fact: &Fact<'_>,
    note: Option<i64>,
) -> rusqlite::Result<()> {
    let call_row_id = || call.ok_or(rusqlite::Error::InvalidQuery);
    match fact {
        Fact::CallStarted(row) => {
            tx.prepare_cached(
                "UPDATE calls SET started_ms = ?1, channel = coalesce(?2, channel),
                 agent_id = coalesce(?3, agent_id), objective = coalesce(?4, objective),
                 trace_id = coalesce(?5, trace_id), attributes = coalesce(?6, attributes)
                 WHERE id = ?7",
            )?
            .execute(params![
                row.at_ms,
                row.channel,
                row.fields.agent_id,
                row.fields.objective,
                row.fields.trace_id,
                row.attributes,
                call_row_id()?
            ])?;
        }
        Fact::CallEnded(row) => {
            tx.prepare_cached(
                "UPDATE calls SET ended_ms = ?1, duration_s = ?2, status = ?3, ended_reason = ?4,
                 ended_by = ?5, agent_id = coalesce(?6, agent_id), objective = coalesce(?7, objective),
                 trace_id = coalesce(?8, trace_id)
                 WHERE id = ?9",
            )?
            .execute(params![
                row.at_ms,
                row.duration_s,
                row.status,
                row.ended_reason,
                row.ended_by,
                row.fields.agent_id,
                row.fields.objective,
                row.fields.trace_id,
                call_row_id()?
            ])?;
        }
        Fact::Turn(row) => {
            let [stt, eou, llm_ttft, tts_ttfb] = row.components_ms.map(|ms| ms.map(tenths));
            tx.prepare_cached(
                "INSERT INTO turns (call, ts_ms, turn_index, e2e, stt, eou, llm_ttft, tts_ttfb,
                 interrupted, tool_calls, agent_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                call_row_id()?,
                row.at_ms,
                row.turn_index,
                tenths(row.e2e_ms),
                stt,
                eou,
                llm_ttft,
                tts_ttfb,
                row.interrupted,
                row.tool_calls,
                row.agent_id,
            ])?;
        }
        Fact::Usage(row) => {
            let [input, output, cached, audio_in, audio_out] = row.tokens.map(|t| t.map(|t| t as i64));
            tx.prepare_cached(
                "INSERT INTO usage (call, ts_ms, component, provider, model, voice, audio_seconds,
                 input_tokens, output_tokens, cached_input_tokens, audio_input_tokens,
                 audio_output_tokens, characters, latency, cost_nano, cost_note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?
            .execute(params![
                call_row_id()?,
                row.at_ms,
                row.component,
                row.provider,
                row.model,
                row.voice,
                row.audio_seconds,
                input,
                output,
                cached,
                audio_in,
                audio_out,
                row.characters.map(|c| c as i64),
                row.latency_ms.map(tenths),
                row.cost_nano,
                note,
            ])?;
        }
        Fact::Request(row) => {
            tx.prepare_cached(
                "INSERT INTO provider_requests (tenant_id, ts_ms, provider, component, ok, latency, error, call)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                tenant,
                row.at_ms,
                row.provider,
                row.component,
                row.ok,
                row.latency_ms.map(tenths),
                row.error,
                call,
            ])?;
        }
        Fact::BreakerChange(row) => {
            tx.prepare_cached(
                "INSERT INTO breaker_changes (tenant_id, ts_ms, breaker, state) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![tenant, row.at_ms, row.breaker, row.state])?;
        }
        Fact::Heartbeat(row) => {
            tx.prepare_cached(
                "INSERT INTO heartbeats (tenant_id, ts_ms, worker_id, memory_used_bytes,
                 memory_limit_bytes, cpu_percent, active_calls) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                tenant,
                row.at_ms,
                row.worker_id,
                row.memory_used_bytes,
                row.memory_limit_bytes,
                row.cpu_percent,
                row.active_calls,
            ])?;
        }
    }
    Ok(())
}

fn upsert_rollups(tx: &Transaction<'_>, minutes: &Rollups) -> rusqlite::Result<()> {
    let hours = hours_of(minutes);
    upsert_into(tx, Period::Minute.table(), minutes)?;
    upsert_into(tx, Period::Hour.table(), &hours)
}

fn upsert_into(tx: &Transaction<'_>, table: &str, rollups: &Rollups) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(&format!(
        "INSERT INTO {table} (tenant_id, component, source, start_ms, agent_id, provider, model, sketch)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (tenant_id, component, source, start_ms, agent_id, provider, model)
         DO UPDATE SET sketch = sketch_merge(sketch, excluded.sketch)"
    ))?;
    for ((key, start), sketch) in in_key_order(rollups) {
        upsert.execute(params![
            key.tenant_id,
            key.component.as_str(),
            key.source.as_str(),
            start,
            key.agent_id,
            key.provider,
            key.model,
            sketch.encode(),
        ])?;
    }
    Ok(())
}
