//! The HTTP API: routes, query handlers and the one error type.

pub mod alerts;
pub mod calls;
pub mod cost;
pub mod error;
pub mod health;
pub mod latency;
pub mod probes;
pub mod query;

use crate::ingest::post_events;
use crate::live::{page, socket};
use crate::state::AppState;
use axum::routing::{get, post};
use axum::Router;
use error::ApiError;

/// Every route voicemon serves.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/metrics/latency", get(latency::get_latency))
        .route("/metrics/calls", get(calls::get_calls))
        .route("/metrics/cost", get(cost::get_cost))
        .route("/metrics/health", get(health::get_health))
        .route("/alerts", get(alerts::get_alerts))
        .route("/alerts/history", get(alerts::get_history))
        .route("/alerts/silences", get(alerts::get_silences).post(alerts::post_silence))
        .route("/alerts/silences/{id}", axum::routing::delete(alerts::delete_silence))
        .route("/metrics/stream", get(socket::stream))
        .route("/", get(page::index))
        .route("/assets/{*path}", get(page::asset))
        .route("/metrics", get(probes::prometheus))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
