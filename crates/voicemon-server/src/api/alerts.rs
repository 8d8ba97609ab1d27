//! `GET /alerts`, `GET /alerts/history`, and silences: `GET|POST /alerts/silences`,
//! `DELETE /alerts/silences/{id}`.

use crate::api::error::ApiError;
use crate::api::query::Params;
use crate::auth::Principal;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use voicemon_core::access::Role;
use voicemon_core::alerting::evaluator::{Alert, AlertState};
use voicemon_core::alerting::silence::{is_inhibited, InhibitRule, Matcher, Silence};
use voicemon_core::alerting::Labels;
use voicemon_core::window::{format_time, parse_duration_ms, parse_time, TimeRange};
use voicemon_store::{HistoryEntry, Store, StoreError};

#[derive(Debug, Serialize)]
pub struct AlertAnswer {
    pub fingerprint: String,
    pub rule: String,
    pub state: AlertState,
    pub labels: Labels,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub value: f64,
    pub active_since: String,
    pub firing_since: Option<String>,
    pub silenced: bool,
    pub inhibited: bool,
}

#[derive(Debug, Serialize)]
pub struct AlertsAnswer {
    pub firing: Vec<AlertAnswer>,
    pub pending: Vec<AlertAnswer>,
    pub silences: Vec<Silence>,
}

/// Whether a caller confined to a tenant may see an alert: only its tenant's alerts.
pub fn visible(alert_labels: &Labels, tenant: Option<&str>) -> bool {
    tenant.is_none_or(|tenant| alert_labels.get("tenant_id").is_some_and(|t| t == tenant))
}

pub async fn get_alerts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Json<AlertsAnswer>, ApiError> {
    let principal = state.keys.authenticate(&headers).await?;
    let tenant = principal.read_scope(params.get("tenant_id"))?;
    let now_ms = state.clock.now_ms();
    let answer =
        active_alerts(state.store.as_ref(), &state.alerting.inhibit, tenant.as_deref(), now_ms).await?;
    Ok(Json(answer))
}

/// The firing and pending alerts `tenant` may see (all with `None`), with whether each
/// is silenced or inhibited; silences only for callers that see every tenant.
pub async fn active_alerts(
    store: &dyn Store,
    inhibit: &[InhibitRule],
    tenant: Option<&str>,
    now_ms: i64,
) -> Result<AlertsAnswer, StoreError> {
    let stored = store.load_alerting(now_ms).await?;
    let firing: Vec<&Alert> = stored.alerts.iter().filter(|a| a.state == AlertState::Firing).collect();
    let answer = |alert: &Alert| AlertAnswer {
        fingerprint: alert.fingerprint.clone(),
        rule: alert.rule.clone(),
        state: alert.state,
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        value: alert.value,
        active_since: format_time(alert.active_since_ms),
        firing_since: alert.firing_since_ms.map(format_time),
        silenced: stored.silences.iter().any(|s| s.mutes(&alert.labels, now_ms)),
        inhibited: is_inhibited(alert, &firing, inhibit),
    };
    let shown = |wanted: AlertState| {
        stored
            .alerts
            .iter()
            .filter(|a| a.state == wanted && visible(&a.labels, tenant))
            .map(answer)
            .collect::<Vec<_>>()
    };
    Ok(AlertsAnswer {
        firing: shown(AlertState::Firing),
        pending: shown(AlertState::Pending),
        silences: if tenant.is_none() { stored.silences.clone() } else { Vec::new() },
    })
}

#[derive(Debug, Serialize)]
pub struct HistoryAnswer {
    pub from: String,
    pub to: String,
    pub entries: Vec<HistoryView>,
}

#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub at: String,
    #[serde(flatten)]
    pub entry: HistoryEntry,
}

const DEFAULT_HISTORY_MS: i64 = 24 * 60 * 60 * 1000;
const MAX_HISTORY: usize = 1000;

pub async fn get_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let principal = state.keys.authenticate(&headers).await?;
    let tenant = principal.read_scope(params.get("tenant_id"))?;
    let range =
        TimeRange::resolve(params.get("from"), params.get("to"), state.clock.now_ms(), DEFAULT_HISTORY_MS)?;
    let limit = match params.get("limit") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_HISTORY).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be between 1 and {MAX_HISTORY}")))?,
        None => 500,
    };
    let entries = state.store.alert_history(range, params.get("rule"), tenant.as_deref(), limit).await?;
    Ok(Json(HistoryAnswer {
        from: format_time(range.from_ms),
        to: format_time(range.to_ms),
        entries: entries
            .into_iter()
            .map(|entry| HistoryView { at: format_time(entry.at_ms), entry })
            .collect(),
    }))
}

/// `POST /alerts/silences` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// `name=value` or `name!=value`, all of which must match.
    pub matchers: Vec<String>,
    /// RFC 3339; default now.
    pub starts_at: Option<String>,
    /// RFC 3339; or give `duration`.
    pub ends_at: Option<String>,
    /// e.g. "2h".
    pub duration: Option<String>,
    pub comment: String,
    pub author: String,
}

fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    match principal {
        Principal::Open => Ok(()),
        Principal::Key(key) if key.role == Role::Admin && key.tenant_id.is_none() => Ok(()),
        Principal::Key(_) => Err(ApiError::Forbidden("silences need an admin key for every tenant".into())),
    }
}

pub async fn post_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<NewSilence>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    require_admin(&state.keys.authenticate(&headers).await?)?;
    let now_ms = state.clock.now_ms();
    let matchers = body
        .matchers
        .iter()
        .map(|text| Matcher::parse(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::BadRequest)?;
    if matchers.is_empty() {
        return Err(ApiError::BadRequest("a silence needs at least one matcher".into()));
    }
    let starts_ms = body.starts_at.as_deref().map(parse_time).transpose()?.unwrap_or(now_ms);
    let ends_ms = match (&body.ends_at, &body.duration) {
        (Some(end), None) => parse_time(end)?,
        (None, Some(duration)) => starts_ms + parse_duration_ms(duration)?,
        _ => return Err(ApiError::BadRequest("give either ends_at or duration".into())),
    };
    if ends_ms <= starts_ms.max(now_ms) {
        return Err(ApiError::BadRequest("a silence must end in the future and after it starts".into()));
    }
    if body.comment.trim().is_empty() || body.author.trim().is_empty() {
        return Err(ApiError::BadRequest("a silence needs a comment and an author".into()));
    }
    let silence = Silence {
        id: format!("s{now_ms:x}{:04x}", rand::random::<u16>()),
        matchers,
        starts_ms,
        ends_ms,
        comment: body.comment.trim().to_owned(),
        author: body.author.trim().to_owned(),
        created_ms: now_ms,
    };
    state.store.create_silence(silence.clone()).await?;
    tracing::info!(id = %silence.id, author = %silence.author, "silence created");
    Ok((StatusCode::CREATED, Json(silence)))
}

pub async fn get_silences(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<Silence>>, ApiError> {
    require_admin(&state.keys.authenticate(&headers).await?)?;
    Ok(Json(state.store.silences(state.clock.now_ms()).await?))
}

pub async fn delete_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Silence>, ApiError> {
    require_admin(&state.keys.authenticate(&headers).await?)?;
    Ok(Json(state.store.expire_silence(&id, state.clock.now_ms()).await?))
}
