//! The HTTP edge: routes, extractors ([`params::Params`], [`crate::auth::Principal`]),
//! the one [`error::ApiError`], the request trace, the open-mode [`browser`] guard and
//! `X-Content-Type-Options: nosniff` on every answer, and the [`connection`] listener that
//! gives hyper's own 414 and 431 answers a JSON body. Handlers are thin: parameters in,
//! a [`crate::query`] (or the batch writer, or the live hub) called, JSON out.
//!
//! Nothing but `startup` imports this module.

pub mod alerts;
pub mod browser;
pub mod calls;
pub mod connection;
pub mod cost;
pub mod error;
pub mod explorer;
pub mod health;
pub mod ingest;
pub mod json;
pub mod latency;
pub mod limits;
pub mod openapi;
pub mod otlp;
pub mod page;
pub mod params;
pub mod principal;
pub mod probes;
pub mod stream;

use crate::state::AppState;
use axum::extract::MatchedPath;
use axum::http::{header, HeaderName, HeaderValue, Request};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use error::ApiError;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use tracing::Level;

/// The header that carries a request's id: the caller's own when it sends one, else a
/// new UUID; echoed in the answer and named in every log line of the request.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// Every route voicemon serves.
pub fn router(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(request_span)
        .on_request(())
        .on_response(DefaultOnResponse::new().level(Level::DEBUG).latency_unit(LatencyUnit::Micros))
        .on_failure(DefaultOnFailure::new().level(Level::WARN).latency_unit(LatencyUnit::Micros));
    Router::new()
        .route("/v1/events", post(ingest::post_events))
        .route("/v1/traces", post(otlp::post_traces))
        .route("/v1/metrics", post(otlp::post_metrics))
        .merge(query_routes(state.clone()))
        .route("/metrics/stream", get(stream::stream))
        .route("/", get(page::index))
        .route("/assets/{*path}", get(page::asset))
        .route("/metrics", get(probes::prometheus))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), browser::guard_open_mode))
        .with_state(state)
        // Browsers must not guess a type other than the one given (every answer).
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF))
        // The last layer added is the outermost: the id is set before the trace span opens.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The routes that draw from the caller's query bucket: every authenticated read, and
/// silences. Probes, `/metrics`, the page and the live stream (bounded by its own
/// connection cap) do not.
fn query_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/metrics/latency", get(latency::get_latency))
        .route("/metrics/calls", get(calls::get_calls))
        .route("/calls", get(explorer::get_calls))
        .route("/calls/{call_id}", get(explorer::get_call))
        .route("/metrics/cost", get(cost::get_cost))
        .route("/metrics/health", get(health::get_health))
        .route("/alerts", get(alerts::get_alerts))
        .route("/alerts/history", get(alerts::get_history))
        .route("/alerts/silences", get(alerts::get_silences).post(alerts::post_silence))
        .route("/alerts/silences/{id}", axum::routing::delete(alerts::delete_silence))
        .route_layer(axum::middleware::from_fn_with_state(state, limits::limit_queries))
}

/// The span of one request: method, route (the pattern, so ids in paths stay out of
/// logs) and request id.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("(none)");
    let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), route, request_id)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
