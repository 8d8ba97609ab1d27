//! Slack Block Kit messages: what, where, how bad, since when, and a link.

use super::payload::{AlertView, NoticePayload};
use serde_json::{json, Value};
use voicemon_core::window::format_time;

/// Alerts listed one by one before the rest is summarised.
const MAX_LISTED: usize = 10;

pub fn message(notice: &NoticePayload) -> Value {
    let mut blocks = Vec::new();
    let mut fallback = Vec::new();
    for (alerts, title) in [(&notice.firing, "FIRING"), (&notice.resolved, "RESOLVED")] {
        if alerts.is_empty() {
            continue;
        }
        let icon = if title == "FIRING" { severity_icon(&notice.severity) } else { ":white_check_mark:" };
        let heading = format!("{icon} {title}: {} ({}, {})", notice.rule, notice.severity, alerts.len());
        fallback.push(heading.clone());
        blocks
            .push(json!({"type": "header", "text": {"type": "plain_text", "text": heading, "emoji": true}}));
        for alert in alerts.iter().take(MAX_LISTED) {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": describe(alert, notice.sent_at_ms)}}));
        }
        if alerts.len() > MAX_LISTED {
            let more = format!("… and {} more", alerts.len() - MAX_LISTED);
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]}));
        }
    }
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": format!("<{}|Open in voicemon> · sent {}", notice.link, format_time(notice.sent_at_ms))}
    ]}));
    json!({"text": fallback.join(" · "), "blocks": blocks})
}

fn severity_icon(severity: &str) -> &'static str {
    match severity {
        "critical" => ":red_circle:",
        "warning" => ":large_orange_circle:",
        _ => ":large_blue_circle:",
    }
}

fn describe(alert: &AlertView, now_ms: i64) -> String {
    let summary = alert.annotations.get("summary").cloned().unwrap_or_else(|| alert.fingerprint.clone());
    let place: Vec<String> = alert
        .labels
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "alertname" | "metric" | "severity"))
        .map(|(name, value)| format!("{name}=`{value}`"))
        .collect();
    let when = match alert.ends_at_ms {
        Some(end) => format!(
            "from {} to {} ({})",
            format_time(alert.starts_at_ms),
            format_time(end),
            duration_words(end - alert.starts_at_ms)
        ),
        None => format!(
            "since {} ({})",
            format_time(alert.starts_at_ms),
            duration_words(now_ms - alert.starts_at_ms)
        ),
    };
    format!("*{summary}*\n{} · {when}", place.join(" "))
}

fn duration_words(ms: i64) -> String {
    let seconds = (ms / 1000).max(0);
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
