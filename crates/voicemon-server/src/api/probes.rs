//! Liveness, readiness and the Prometheus exposition.

use crate::api::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: storage answers a real round trip.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ping().await.map_err(|err| {
        tracing::warn!(error = %err, "not ready: storage check failed");
        ApiError::Unavailable(format!("storage ({}) is not answering", state.store.backend()))
    })?;
    Ok(Json(json!({ "status": "ready", "store": state.store.backend() })))
}

/// `GET /metrics`: the OpenMetrics text exposition of voicemon's own and the voice
/// metrics. They span every tenant, so with API keys it takes a key that reads every
/// tenant (an admin key without a tenant); open (loopback, no keys) it answers anyone.
pub async fn prometheus(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let principal = state.keys.authenticate(&headers).await?;
    if principal.read_scope(None)?.is_some() {
        return Err(ApiError::Forbidden(
            "/metrics spans every tenant: scrape it with an admin key that has no tenant".into(),
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.telemetry.encode(&state.store.pool_stats()),
    ))
}
