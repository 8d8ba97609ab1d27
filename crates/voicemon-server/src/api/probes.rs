//! Liveness, readiness and the Prometheus exposition.

use crate::api::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// The answer of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
}

/// The answer of `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub store: &'static str,
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process answers.", body = Liveness))
)]
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// `GET /readyz`: storage answers a real round trip.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Storage answers.", body = Readiness),
        (status = 503, description = "Storage does not answer.", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait"))),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    state.store.ping().await.map_err(|err| {
        tracing::warn!(error = %err, "not ready: storage check failed");
        ApiError::Unavailable(format!("storage ({}) is not answering", state.store.backend()))
    })?;
    Ok(Json(Readiness { status: "ready", store: state.store.backend() }))
}

/// `GET /metrics`: the OpenMetrics text exposition of voicemon's own and the voice
/// metrics. They span every tenant, so with API keys it takes a key that reads every
/// tenant (an admin key without a tenant); open (loopback, no keys) it answers anyone.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenMetrics text exposition.", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "No key, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "A key confined to a tenant, or an ingest key.", body = ErrorBody),
    )
)]
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
