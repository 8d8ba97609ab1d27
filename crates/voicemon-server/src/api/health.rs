//! `GET /metrics/health`: what is sick now, with an overall status and its reasons;
//! `?from&to` adds the stored per-minute samples of that range.

use crate::api::error::ApiError;
use crate::api::query::Params;
use crate::health::sampler::{Sample, PLATFORM};
use crate::health::{report, Depth, HealthReport};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use voicemon_core::window::{format_time, TimeRange};

#[derive(Debug, Serialize)]
pub struct HealthAnswer {
    #[serde(flatten)]
    pub now: HealthReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryPoint>>,
}

#[derive(Debug, Serialize)]
pub struct HistoryPoint {
    pub minute: String,
    #[serde(flatten)]
    pub sample: Sample,
}

pub async fn get_health(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Json<HealthAnswer>, ApiError> {
    let principal = state.keys.authenticate(&headers).await?;
    let tenant = principal.read_scope(params.get("tenant_id"))?;
    let now_ms = state.clock.now_ms();
    let now = report(
        state.store.as_ref(),
        &state.redis,
        &state.health_rules,
        tenant.as_deref(),
        now_ms,
        Depth::Full,
    )
    .await;
    let history = match (params.get("from"), params.get("to")) {
        (None, None) => None,
        (from, to) => {
            let range = TimeRange::resolve(from, to, now_ms, 60 * 60 * 1000)?;
            let stored = state.store.health_samples(PLATFORM, range).await?;
            let points = stored
                .into_iter()
                .filter_map(|(minute, text)| {
                    let sample: Sample = serde_json::from_str(&text).ok()?;
                    let sample = match &tenant {
                        Some(tenant) => sample.for_tenant(tenant),
                        None => sample,
                    };
                    Some(HistoryPoint { minute: format_time(minute), sample })
                })
                .collect();
            Some(points)
        }
    };
    Ok(Json(HealthAnswer { now, history }))
}
