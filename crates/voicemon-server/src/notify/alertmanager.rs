//! Forwarding to a Prometheus Alertmanager (`POST /api/v2/alerts`): firing alerts carry an
//! `endsAt` in the near future and are re-sent while they fire; resolved ones carry the
//! time they resolved.

use super::payload::NoticePayload;
use serde_json::{json, Value};
use voicemon_core::window::format_time;

pub fn alerts(notice: &NoticePayload) -> Value {
    let alerts: Vec<Value> = notice
        .firing
        .iter()
        .chain(notice.resolved.iter())
        .map(|alert| {
            json!({
                "labels": alert.labels,
                "annotations": alert.annotations,
                "startsAt": format_time(alert.starts_at_ms),
                "endsAt": format_time(alert.ends_at_ms.unwrap_or(notice.valid_until_ms)),
                "generatorURL": notice.link,
            })
        })
        .collect();
    Value::Array(alerts)
}
