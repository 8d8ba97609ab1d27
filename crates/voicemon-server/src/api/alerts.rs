//! `GET /alerts`, `GET /alerts/history`, and silences: `GET|POST /alerts/silences`,
//! `DELETE /alerts/silences/{id}`.

use crate::api::error::{ApiError, ErrorBody};
use crate::api::json::JsonBody;
use crate::api::openapi::ReadErrors;
use crate::api::params::{Limit, Params, RangeParams};
use crate::auth::Principal;
use crate::query::alerts::{active_alerts, history, AlertsAnswer, HistoryAnswer};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use voicemon_core::alerting::silence::{Matcher, Silence};
use voicemon_core::window::{parse_duration_ms, parse_time};

const DEFAULT_HISTORY_MS: i64 = 24 * 60 * 60 * 1000;
const MAX_HISTORY: usize = 1000;
const DEFAULT_HISTORY_LIMIT: usize = 500;
/// What `/alerts/silences` asks of a key.
const SILENCES: &str = "silences";

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsParams {
    /// Only this tenant's alerts; a key confined to a tenant reads its own.
    tenant_id: Option<String>,
}

/// `GET /alerts`.
#[utoipa::path(
    get,
    path = "/alerts",
    tag = "alerts",
    params(AlertsParams),
    responses(
        (status = 200, description = "The firing and pending alerts the key may see, and the silences (for keys that see every tenant).", body = AlertsAnswer),
        ReadErrors,
    )
)]

pub async fn get_alerts(
    State(state): State<AppState>,
    principal: Principal,
    Params(params): Params<AlertsParams>,
) -> Result<Json<AlertsAnswer>, ApiError> {
    let tenant = principal.read_scope(params.tenant_id.as_deref())?;
    let now_ms = state.clock.now_ms();
    let answer =
        active_alerts(state.store.as_ref(), &state.alerting.inhibit, tenant.as_deref(), now_ms).await?;
    Ok(Json(answer))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only this tenant's entries; a key confined to a tenant reads its own.
    tenant_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    range: RangeParams,
    /// Only this rule's entries.
    rule: Option<String>,
    /// 1 to 1000; 500 by default.
    #[param(value_type = Option<u16>, minimum = 1, maximum = 1000)]
    limit: Option<Limit<MAX_HISTORY>>,
}

/// `GET /alerts/history`.
#[utoipa::path(
    get,
    path = "/alerts/history",
    tag = "alerts",
    params(HistoryParams, RangeParams),
    responses(
        (status = 200, description = "Alert transitions and deliveries in the range (the last day by default), newest first.", body = HistoryAnswer),
        ReadErrors,
    )
)]

pub async fn get_history(
    State(state): State<AppState>,
    principal: Principal,
    Params(params): Params<HistoryParams>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let tenant = principal.read_scope(params.tenant_id.as_deref())?;
    let range = params.range.resolve(state.clock.now_ms(), DEFAULT_HISTORY_MS)?;
    let limit = params.limit.map_or(DEFAULT_HISTORY_LIMIT, |limit| limit.0);
    let store = state.store.as_ref();
    Ok(Json(history(store, range, params.rule.as_deref(), tenant.as_deref(), limit).await?))
}

/// `POST /alerts/silences` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// `name=value` or `name!=value`, all of which must match.
    #[schema(min_items = 1)]
    pub matchers: Vec<String>,
    /// RFC 3339; default now.
    pub starts_at: Option<String>,
    /// RFC 3339; or give `duration`.
    pub ends_at: Option<String>,
    /// e.g. "2h".
    pub duration: Option<String>,
    /// Why; not blank (a character that is not white space as Rust's `char::is_whitespace`).
    #[schema(
        pattern = "[^\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub comment: String,
    /// Who; not blank (as `comment`).
    #[schema(
        pattern = "[^\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub author: String,
}

impl NewSilence {
    /// The silence this body asks for at `now_ms`, or why it cannot be one.
    pub fn resolve(&self, now_ms: i64) -> Result<Silence, ApiError> {
        let matchers = self
            .matchers
            .iter()
            .map(|text| Matcher::parse(text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::BadRequest)?;
        if matchers.is_empty() {
            return Err(ApiError::BadRequest("a silence needs at least one matcher".into()));
        }
        let starts_ms = self.starts_at.as_deref().map(parse_time).transpose()?.unwrap_or(now_ms);
        let ends_ms = match (&self.ends_at, &self.duration) {
            (Some(end), None) => parse_time(end)?,
            (None, Some(duration)) => {
                starts_ms.checked_add(parse_duration_ms(duration)?).ok_or_else(|| {
                    ApiError::BadRequest(format!("a silence of `{duration}` ends after the year 9999"))
                })?
            }
            _ => return Err(ApiError::BadRequest("give either ends_at or duration".into())),
        };
        if ends_ms <= starts_ms.max(now_ms) {
            return Err(ApiError::BadRequest("a silence must end in the future and after it starts".into()));
        }
        if self.comment.trim().is_empty() || self.author.trim().is_empty() {
            return Err(ApiError::BadRequest("a silence needs a comment and an author".into()));
        }
        Ok(Silence {
            id: format!("s{now_ms:x}{:04x}", rand::random::<u16>()),
            matchers,
            starts_ms,
            ends_ms,
            comment: self.comment.trim().to_owned(),
            author: self.author.trim().to_owned(),
            created_ms: now_ms,
        })
    }
}

/// `POST /alerts/silences`.
#[utoipa::path(
    post,
    path = "/alerts/silences",
    tag = "alerts",
    request_body = NewSilence,
    responses(
        (status = 201, description = "The silence, created.", body = Silence),
        (status = 400, description = "The body is not a valid silence; the message says why.", body = ErrorBody),
        (status = 401, description = "No key, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "Silences need an admin key without a tenant.", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`.", body = ErrorBody),
        (status = 503, description = "Storage is unavailable; retry later.", body = ErrorBody),
    )
)]
pub async fn post_silence(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewSilence>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    principal.check_admin(SILENCES)?;
    let silence = body.resolve(state.clock.now_ms())?;
    state.store.create_silence(silence.clone()).await?;
    tracing::info!(id = %silence.id, author = %silence.author, "silence created");
    Ok((StatusCode::CREATED, Json(silence)))
}

/// `GET /alerts/silences`.
#[utoipa::path(
    get,
    path = "/alerts/silences",
    tag = "alerts",
    responses(
        (status = 200, description = "The silences that have not ended.", body = Vec<Silence>),
        (status = 401, description = "No key, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "Silences need an admin key without a tenant.", body = ErrorBody),
        (status = 503, description = "Storage is unavailable; retry later.", body = ErrorBody),
    )
)]
pub async fn get_silences(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<Silence>>, ApiError> {
    principal.check_admin(SILENCES)?;
    Ok(Json(state.store.silences(state.clock.now_ms()).await?))
}

/// `DELETE /alerts/silences/{id}`.
#[utoipa::path(
    delete,
    path = "/alerts/silences/{id}",
    tag = "alerts",
    params(("id" = String, Path, description = "The silence's id.")),
    responses(
        (status = 200, description = "The silence, ended now.", body = Silence),
        (status = 401, description = "No key, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "Silences need an admin key without a tenant.", body = ErrorBody),
        (status = 404, description = "No such silence.", body = ErrorBody),
        (status = 503, description = "Storage is unavailable; retry later.", body = ErrorBody),
    )
)]
pub async fn delete_silence(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Silence>, ApiError> {
    principal.check_admin(SILENCES)?;
    Ok(Json(state.store.expire_silence(&id, state.clock.now_ms()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_795_780_800_000;

    fn silence(duration: &str) -> NewSilence {
        NewSilence {
            matchers: vec!["tenant_id=acme".into()],
            starts_at: None,
            ends_at: None,
            duration: Some(duration.into()),
            comment: "maintenance".into(),
            author: "ops".into(),
        }
    }

    /// Read while writing the fuzz target `silence_request`: a duration of nearly
    /// `i64::MAX` ms added to the start overflowed (a panic with overflow checks, a silence
    /// ending in the past without). It is a 400 now.
    #[test]
    fn a_silence_whose_duration_overflows_its_end_is_refused_400() {
        let refused = silence("9223372036854775807ms").resolve(NOW_MS).expect_err("refused");
        assert!(matches!(&refused, ApiError::BadRequest(message) if message.contains("9999")), "{refused}");
        let two_hours = silence("2h").resolve(NOW_MS).expect("a valid silence");
        assert_eq!(two_hours.ends_ms - two_hours.starts_ms, 2 * 3_600_000);
    }
}
