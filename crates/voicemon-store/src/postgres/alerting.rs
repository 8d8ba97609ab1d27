//! Alerting state: active alerts, the notification log, the outbox, receivers,
//! silences and history. Alerts and silences are stored as JSONB of their core types.

use super::{at, map_error, ms};
use crate::column::Stored;
use crate::{
    delivery, AlertingState, AlertingTick, Delivery, HistoryEntry, OutboxItem, ReceiverState, StoreError,
};
use tokio_postgres::{Client, Error, Row, Transaction};
use voicemon_core::alerting::policy::NotifyRecord;
use voicemon_core::alerting::silence::Silence;
use voicemon_core::window::TimeRange;

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| StoreError::Internal(format!("cannot encode: {err}")))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|err| StoreError::Internal(format!("stored JSON is not readable: {err}")))
}

pub async fn load(client: &Client, now_ms: i64) -> Result<AlertingState, StoreError> {
    let alerts = client
        .query("SELECT alert::text FROM alerts", &[])
        .await
        .map_err(map_error)?
        .iter()
        .map(|row| from_json(row.get(0)))
        .collect::<Result<_, _>>()?;
    let records = client
        .query("SELECT fingerprint, rule, first_notified_ms, last_notified_ms FROM notify_log", &[])
        .await
        .map_err(map_error)?
        .iter()
        .map(|row| NotifyRecord {
            fingerprint: row.get(0),
            rule: row.get(1),
            first_notified_ms: row.get(2),
            last_notified_ms: row.get(3),
        })
        .collect();
    Ok(AlertingState { alerts, records, silences: silences(client, now_ms).await? })
}

pub async fn save(tx: &Transaction<'_>, tick: AlertingTick) -> Result<(), StoreError> {
    if let Some(claim) = &tick.lease {
        if !super::lease::holds(tx, claim, tick.now_ms).await.map_err(map_error)? {
            return Err(claim.lost());
        }
    }
    for alert in &tick.upsert_alerts {
        tx.execute(
            "INSERT INTO alerts (fingerprint, alert) VALUES ($1, $2::text::jsonb)
             ON CONFLICT (fingerprint) DO UPDATE SET alert = excluded.alert",
            &[&alert.fingerprint, &to_json(alert)?],
        )
        .await
        .map_err(map_error)?;
    }
    if !tick.delete_alerts.is_empty() {
        tx.execute("DELETE FROM alerts WHERE fingerprint = ANY($1)", &[&tick.delete_alerts])
            .await
            .map_err(map_error)?;
    }
    for record in &tick.upsert_records {
        tx.execute(
            "INSERT INTO notify_log (fingerprint, rule, first_notified_ms, last_notified_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (fingerprint) DO UPDATE SET last_notified_ms = excluded.last_notified_ms",
            &[&record.fingerprint, &record.rule, &record.first_notified_ms, &record.last_notified_ms],
        )
        .await
        .map_err(map_error)?;
    }
    if !tick.delete_records.is_empty() {
        tx.execute("DELETE FROM notify_log WHERE fingerprint = ANY($1)", &[&tick.delete_records])
            .await
            .map_err(map_error)?;
    }
    for (receiver, rule, payload) in &tick.outbox {
        tx.execute(
            "INSERT INTO outbox (receiver, rule, payload, created_ms, next_attempt_ms) VALUES ($1, $2, $3, $4, $4)",
            &[receiver, rule, payload, &tick.now_ms],
        )
        .await
        .map_err(map_error)?;
    }
    for entry in &tick.history {
        insert_history(tx, entry).await?;
    }
    Ok(())
}

async fn insert_history(tx: &Transaction<'_>, entry: &HistoryEntry) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO alert_history (at, kind, fingerprint, rule, tenant_id, labels, value, detail)
         VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8)",
        &[
            &at(entry.at_ms),
            &entry.kind.as_str(),
            &entry.fingerprint,
            &entry.rule,
            &entry.tenant_id,
            &to_json(&entry.labels)?,
            &entry.value,
            &entry.detail,
        ],
    )
    .await
    .map_err(map_error)?;
    Ok(())
}

/// Claims the messages due at `now_ms` until `now_ms + claim_ms`, oldest first. Rows
/// another instance is claiming at the same moment are skipped, not waited for.
pub async fn claim_outbox(
    client: &Client,
    now_ms: i64,
    limit: usize,
    claim_ms: i64,
) -> Result<Vec<OutboxItem>, Error> {
    let rows = client
        .query(
            "UPDATE outbox SET claimed_until_ms = $1 + $3 WHERE id IN (
               SELECT id FROM outbox o
                WHERE status = 'pending' AND next_attempt_ms <= $1
                  AND (claimed_until_ms IS NULL OR claimed_until_ms <= $1)
                  -- One rule's messages reach a receiver in order: a resolved message never
                  -- overtakes the firing one still being retried (or sent by another claim).
                  AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.status = 'pending' AND e.receiver = o.receiver
                                  AND e.rule = o.rule AND e.id < o.id)
                ORDER BY id LIMIT $2
                FOR UPDATE SKIP LOCKED)
             RETURNING id, receiver, rule, payload, created_ms, next_attempt_ms, attempts",
            &[&now_ms, &(limit as i64), &claim_ms],
        )
        .await?;
    let mut items: Vec<OutboxItem> = rows
        .iter()
        .map(|row| OutboxItem {
            id: row.get(0),
            receiver: row.get(1),
            rule: row.get(2),
            payload: row.get(3),
            created_ms: row.get(4),
            next_attempt_ms: row.get(5),
            attempts: row.get::<_, i32>(6) as u32,
        })
        .collect();
    items.sort_by_key(|item| item.id);
    Ok(items)
}

pub async fn record_delivery(
    tx: &Transaction<'_>,
    item: OutboxItem,
    delivery: Delivery,
) -> Result<(), StoreError> {
    let receiver = &item.receiver;
    tx.execute("INSERT INTO receivers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", &[receiver])
        .await
        .map_err(map_error)?;
    match &delivery {
        Delivery::Sent { at_ms } => {
            tx.execute(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, done_ms = $2 WHERE id = $1",
                &[&item.id, &at_ms],
            )
            .await
            .map_err(map_error)?;
            tx.execute(
                "UPDATE receivers SET broken = false, last_sent_ms = $2 WHERE name = $1",
                &[receiver, &at_ms],
            )
            .await
            .map_err(map_error)?;
        }
        Delivery::Retry { next_attempt_ms, error, .. } => {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = $2, last_error = $3, claimed_until_ms = NULL
                 WHERE id = $1",
                &[&item.id, &next_attempt_ms, &error],
            )
            .await
            .map_err(map_error)?;
            tx.execute("UPDATE receivers SET last_error = $2 WHERE name = $1", &[receiver, &error])
                .await
                .map_err(map_error)?;
        }
        Delivery::Failed { at_ms, error, broken } => {
            tx.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = $2, done_ms = $3
                 WHERE id = $1",
                &[&item.id, &error, &at_ms],
            )
            .await
            .map_err(map_error)?;
            tx.execute(
                "UPDATE receivers SET broken = broken OR $2, last_error = $3 WHERE name = $1",
                &[receiver, &broken, &error],
            )
            .await
            .map_err(map_error)?;
        }
    }
    match delivery::history_entry(&item, &delivery) {
        Some(entry) => insert_history(tx, &entry).await,
        None => Ok(()),
    }
}

pub async fn receiver_states(client: &Client) -> Result<Vec<ReceiverState>, Error> {
    let rows = client
        .query(
            "SELECT r.name, r.broken, r.last_error, r.last_sent_ms,
                    (SELECT count(*) FROM outbox o WHERE o.receiver = r.name AND o.status = 'pending')
             FROM receivers r ORDER BY r.name COLLATE \"C\"",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| ReceiverState {
            name: row.get(0),
            broken: row.get(1),
            last_error: row.get(2),
            last_sent_ms: row.get(3),
            pending: row.get::<_, i64>(4) as u64,
        })
        .collect())
}

pub async fn create_silence(client: &Client, silence: Silence) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO silences (id, silence, ends_ms) VALUES ($1, $2::text::jsonb, $3)",
            &[&silence.id, &to_json(&silence)?, &silence.ends_ms],
        )
        .await
        .map_err(map_error)?;
    Ok(())
}

pub async fn expire_silence(tx: &Transaction<'_>, id: String, now_ms: i64) -> Result<Silence, StoreError> {
    let found = tx
        .query_opt("SELECT silence::text FROM silences WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .map_err(map_error)?
        .ok_or_else(|| StoreError::NotFound(format!("no silence with id `{id}`")))?;
    let mut silence: Silence = from_json(found.get(0))?;
    silence.ends_ms = silence.ends_ms.min(now_ms);
    tx.execute(
        "UPDATE silences SET silence = $2::text::jsonb, ends_ms = $3 WHERE id = $1",
        &[&id, &to_json(&silence)?, &silence.ends_ms],
    )
    .await
    .map_err(map_error)?;
    Ok(silence)
}

pub async fn silences(client: &Client, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
    client
        .query("SELECT silence::text FROM silences WHERE ends_ms > $1 ORDER BY id COLLATE \"C\"", &[&now_ms])
        .await
        .map_err(map_error)?
        .iter()
        .map(|row| from_json(row.get(0)))
        .collect()
}

pub async fn history(
    client: &Client,
    range: TimeRange,
    rule: Option<&str>,
    tenant: Option<&str>,
    limit: usize,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let rows = client
        .query(
            "SELECT at, kind, fingerprint, rule, tenant_id, labels::text, value, detail FROM alert_history
             WHERE at >= $1 AND at < $2 AND ($3::text IS NULL OR rule = $3) AND ($4::text IS NULL OR tenant_id = $4)
             ORDER BY at DESC, id DESC LIMIT $5",
            &[&at(range.from_ms), &at(range.to_ms), &rule, &tenant, &(limit as i64)],
        )
        .await
        .map_err(map_error)?;
    rows.iter().map(history_entry).collect()
}

fn history_entry(row: &Row) -> Result<HistoryEntry, StoreError> {
    Ok(HistoryEntry {
        at_ms: ms(row.get(0)),
        kind: row.try_get::<_, Stored<_>>(1).map_err(map_error)?.0,
        fingerprint: row.get(2),
        rule: row.get(3),
        tenant_id: row.get(4),
        labels: from_json(row.get(5))?,
        value: row.get(6),
        detail: row.get(7),
    })
}
