//! Alerting state: active alerts, the notification log, the outbox, receivers,
//! silences and history. Alerts and silences are stored as JSON of their core types.

use super::map_error;
use crate::column::Stored;
use crate::{
    delivery, AlertingState, AlertingTick, Delivery, HistoryEntry, OutboxItem, ReceiverState, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};
use voicemon_core::alerting::policy::NotifyRecord;
use voicemon_core::alerting::silence::Silence;
use voicemon_core::window::TimeRange;

fn json_error(err: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(err))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, column: usize) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(err))
    })
}

pub fn load(conn: &Connection, now_ms: i64) -> rusqlite::Result<AlertingState> {
    let mut alerts = Vec::new();
    let mut statement = conn.prepare("SELECT alert FROM alerts")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        alerts.push(from_json(&row.get::<_, String>(0)?, 0)?);
    }
    let mut statement =
        conn.prepare("SELECT fingerprint, rule, first_notified_ms, last_notified_ms FROM notify_log")?;
    let records = statement
        .query_map([], |row| {
            Ok(NotifyRecord {
                fingerprint: row.get(0)?,
                rule: row.get(1)?,
                first_notified_ms: row.get(2)?,
                last_notified_ms: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(AlertingState { alerts, records, silences: silences(conn, now_ms)? })
}

/// Stores a tick in one transaction; nothing when it is fenced by a lease no longer held.
pub fn save(conn: &mut Connection, tick: &AlertingTick) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(map_error)?;
    if let Some(claim) = &tick.lease {
        if !super::lease::holds(&tx, claim, tick.now_ms).map_err(map_error)? {
            return Err(claim.lost());
        }
    }
    save_tick(&tx, tick).map_err(map_error)?;
    tx.commit().map_err(map_error)
}

fn save_tick(tx: &rusqlite::Transaction<'_>, tick: &AlertingTick) -> rusqlite::Result<()> {
    for alert in &tick.upsert_alerts {
        let json = serde_json::to_string(alert).map_err(json_error)?;
        tx.prepare_cached(
            "INSERT INTO alerts (fingerprint, alert) VALUES (?1, ?2)
             ON CONFLICT (fingerprint) DO UPDATE SET alert = excluded.alert",
        )?
        .execute(params![alert.fingerprint, json])?;
    }
    for fingerprint in &tick.delete_alerts {
        tx.prepare_cached("DELETE FROM alerts WHERE fingerprint = ?1")?.execute([fingerprint])?;
    }
    for record in &tick.upsert_records {
        tx.prepare_cached(
            "INSERT INTO notify_log (fingerprint, rule, first_notified_ms, last_notified_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (fingerprint) DO UPDATE SET last_notified_ms = excluded.last_notified_ms",
        )?
        .execute(params![record.fingerprint, record.rule, record.first_notified_ms, record.last_notified_ms])?;
    }
    for fingerprint in &tick.delete_records {
        tx.prepare_cached("DELETE FROM notify_log WHERE fingerprint = ?1")?.execute([fingerprint])?;
    }
    for (receiver, rule, payload) in &tick.outbox {
        tx.prepare_cached(
            "INSERT INTO outbox (receiver, rule, payload, created_ms, next_attempt_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
        )?
        .execute(params![receiver, rule, payload, tick.now_ms])?;
    }
    for entry in &tick.history {
        insert_history(tx, entry)?;
    }
    Ok(())
}

fn insert_history(conn: &Connection, entry: &HistoryEntry) -> rusqlite::Result<()> {
    let labels = serde_json::to_string(&entry.labels).map_err(json_error)?;
    conn.prepare_cached(
        "INSERT INTO alert_history (at_ms, kind, fingerprint, rule, tenant_id, labels, value, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        entry.at_ms,
        entry.kind.as_str(),
        entry.fingerprint,
        entry.rule,
        entry.tenant_id,
        labels,
        entry.value,
        entry.detail
    ])?;
    Ok(())
}

/// Claims the messages due at `now_ms` until `now_ms + claim_ms`, oldest first.
pub fn claim_outbox(
    conn: &Connection,
    now_ms: i64,
    limit: usize,
    claim_ms: i64,
) -> rusqlite::Result<Vec<OutboxItem>> {
    let mut statement = conn.prepare_cached(
        "UPDATE outbox SET claimed_until_ms = ?1 + ?3 WHERE id IN (
           SELECT id FROM outbox o
            WHERE status = 'pending' AND next_attempt_ms <= ?1
              AND (claimed_until_ms IS NULL OR claimed_until_ms <= ?1)
              -- One rule's messages reach a receiver in order: a resolved message never
              -- overtakes the firing one still being retried (or sent by another claim).
              AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.status = 'pending' AND e.receiver = o.receiver
                              AND e.rule = o.rule AND e.id < o.id)
            ORDER BY id LIMIT ?2)
         RETURNING id, receiver, rule, payload, created_ms, next_attempt_ms, attempts",
    )?;
    let rows = statement.query_map(params![now_ms, limit as i64, claim_ms], |row| {
        Ok(OutboxItem {
            id: row.get(0)?,
            receiver: row.get(1)?,
            rule: row.get(2)?,
            payload: row.get(3)?,
            created_ms: row.get(4)?,
            next_attempt_ms: row.get(5)?,
            attempts: row.get(6)?,
        })
    })?;
    let mut items = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    items.sort_by_key(|item| item.id);
    Ok(items)
}

pub fn unclaim_outbox(conn: &Connection, ids: &[i64]) -> rusqlite::Result<()> {
    let mut statement = conn
        .prepare_cached("UPDATE outbox SET claimed_until_ms = NULL WHERE id = ?1 AND status = 'pending'")?;
    for id in ids {
        statement.execute([id])?;
    }
    Ok(())
}

pub fn record_delivery(
    conn: &mut Connection,
    item: &OutboxItem,
    delivery: &Delivery,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute("INSERT INTO receivers (name) VALUES (?1) ON CONFLICT (name) DO NOTHING", [&item.receiver])?;
    match delivery {
        Delivery::Sent { at_ms } => {
            tx.execute(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, done_ms = ?2 WHERE id = ?1",
                params![item.id, at_ms],
            )?;
            tx.execute(
                "UPDATE receivers SET broken = 0, last_sent_ms = ?2 WHERE name = ?1",
                params![item.receiver, at_ms],
            )?;
        }
        Delivery::Retry { next_attempt_ms, error, .. } => {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3, claimed_until_ms = NULL
                 WHERE id = ?1",
                params![item.id, next_attempt_ms, error],
            )?;
            tx.execute(
                "UPDATE receivers SET last_error = ?2 WHERE name = ?1",
                params![item.receiver, error],
            )?;
        }
        Delivery::Failed { at_ms, error, broken } => {
            tx.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?2, done_ms = ?3
                 WHERE id = ?1",
                params![item.id, error, at_ms],
            )?;
            tx.execute(
                "UPDATE receivers SET broken = max(broken, ?2), last_error = ?3 WHERE name = ?1",
                params![item.receiver, broken, error],
            )?;
        }
    }
    if let Some(entry) = delivery::history_entry(item, delivery) {
        insert_history(&tx, &entry)?;
    }
    tx.commit()
}

pub fn receiver_states(conn: &Connection) -> rusqlite::Result<Vec<ReceiverState>> {
    let mut statement = conn.prepare(
        "SELECT r.name, r.broken, r.last_error, r.last_sent_ms,
                (SELECT count(*) FROM outbox o WHERE o.receiver = r.name AND o.status = 'pending')
         FROM receivers r ORDER BY r.name",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(ReceiverState {
            name: row.get(0)?,
            broken: row.get::<_, i64>(1)? != 0,
            last_error: row.get(2)?,
            last_sent_ms: row.get(3)?,
            pending: row.get::<_, i64>(4)? as u64,
        })
    })?;
    rows.collect()
}

pub fn create_silence(conn: &Connection, silence: &Silence) -> rusqlite::Result<()> {
    let json = serde_json::to_string(silence).map_err(json_error)?;
    conn.execute(
        "INSERT INTO silences (id, silence, ends_ms) VALUES (?1, ?2, ?3)",
        params![silence.id, json, silence.ends_ms],
    )?;
    Ok(())
}

pub fn expire_silence(conn: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<Option<Silence>> {
    let found: Option<String> =
        conn.query_row("SELECT silence FROM silences WHERE id = ?1", [id], |row| row.get(0)).optional()?;
    let Some(text) = found else { return Ok(None) };
    let mut silence: Silence = from_json(&text, 0)?;
    silence.ends_ms = silence.ends_ms.min(now_ms);
    let json = serde_json::to_string(&silence).map_err(json_error)?;
    conn.execute(
        "UPDATE silences SET silence = ?2, ends_ms = ?3 WHERE id = ?1",
        params![id, json, silence.ends_ms],
    )?;
    Ok(Some(silence))
}

pub fn silences(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<Silence>> {
    let mut statement = conn.prepare_cached("SELECT silence FROM silences WHERE ends_ms > ?1 ORDER BY id")?;
    let mut rows = statement.query([now_ms])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_json(&row.get::<_, String>(0)?, 0)?);
    }
    Ok(out)
}

pub fn history(
    conn: &Connection,
    range: TimeRange,
    rule: Option<&str>,
    tenant_id: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<HistoryEntry>> {
    let mut statement = conn.prepare_cached(
        "SELECT at_ms, kind, fingerprint, rule, tenant_id, labels, value, detail FROM alert_history
         WHERE at_ms >= ?1 AND at_ms < ?2 AND (?3 IS NULL OR rule = ?3) AND (?4 IS NULL OR tenant_id = ?4)
         ORDER BY at_ms DESC, id DESC LIMIT ?5",
    )?;
    let mut rows = statement.query(params![range.from_ms, range.to_ms, rule, tenant_id, limit as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(HistoryEntry {
            at_ms: row.get(0)?,
            kind: row.get::<_, Stored<_>>(1)?.0,
            fingerprint: row.get(2)?,
            rule: row.get(3)?,
            tenant_id: row.get(4)?,
            labels: from_json(&row.get::<_, String>(5)?, 5)?,
            value: row.get(6)?,
            detail: row.get(7)?,
        });
    }
    Ok(out)
}
