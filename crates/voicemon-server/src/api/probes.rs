//! Liveness, readiness and voicemon's own Prometheus metrics.

use crate::api::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
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

/// `GET /metrics`: Prometheus text exposition of voicemon's own metrics.
pub async fn prometheus(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.telemetry.encode(),
    )
}
