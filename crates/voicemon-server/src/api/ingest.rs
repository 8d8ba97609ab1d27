//! `POST /v1/events` → validate → batch writer → 202 once durable.

use crate::api::error::{ApiError, ErrorBody};
use crate::auth::Principal;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use voicemon_core::body::{parse_body, Framing};
use voicemon_core::validate::WireEvent;
use voicemon_store::IngestEvent;

/// One refused event: its index in the body, the field at fault, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejection {
    pub index: usize,
    pub field: Option<String>,
    pub error: String,
}

/// The answer to an ingest request.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestReport {
    /// Events stored by this request.
    pub accepted: usize,
    /// Events whose id this tenant had already sent; stored once, not again.
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

/// The JSON framings of an ingest body (NDJSON, one event a line, is the third).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum EventsBody {
    One(Box<WireEvent>),
    Many(Vec<WireEvent>),
}

/// `POST /v1/events`: 202 when anything was stored or was a duplicate, 422 when every
/// event was refused (the report says why), 503 with `Retry-After` when storage is down.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "ingest",
    request_body(
        description = "Contract-v1 events (docs/events.md): one event object or a JSON array of \
                       them, or NDJSON (one event a line) with `Content-Type: application/x-ndjson`. \
                       Each event is validated alone: one bad event never costs the good ones.",
        content(
            (EventsBody = "application/json"),
            (String = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 202, description = "Durable: the accepted events are stored; `rejected` lists the refused ones.", body = IngestReport),
        (status = 400, description = "The body is not JSON (or empty, or not UTF-8); nothing is stored.", body = ErrorBody),
        (status = 401, description = "No key, or an unknown or revoked one.", body = ErrorBody),
        (status = 403, description = "A read key, or an ingest key sending another tenant's events; nothing is stored.", body = ErrorBody),
        (status = 413, description = "The body is larger than `max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "Every event was refused; `rejected` says why.", body = IngestReport),
        (status = 503, description = "Storage is unavailable; nothing is stored; retry after `Retry-After` seconds.", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait"))),
    )
)]
pub async fn post_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.check_may_write()?;
    let bytes = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit: state.max_body_bytes })?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let framing = Framing::from_content_type(content_type);
    let parsed = parse_body(&bytes, framing, state.clock.now_ms())
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;

    let mut events = Vec::with_capacity(parsed.len());
    let mut rejected = Vec::new();
    for (index, outcome) in parsed.into_iter().enumerate() {
        match outcome {
            Ok(event) => {
                principal.check_write(&event.envelope.tenant_id)?;
                let costing = state.prices.cost(&event);
                events.push(IngestEvent { event, costing });
            }
            Err(err) => rejected.push(Rejection { index, field: err.field, error: err.message }),
        }
    }
    let submitted = events.len();
    let outcome = state.writer.submit(events).await?;
    let duplicates = outcome.duplicates();
    let report = IngestReport { accepted: outcome.stored.len() - duplicates, duplicates, rejected };
    state.telemetry.events("accepted", report.accepted);
    state.telemetry.events("duplicate", report.duplicates);
    state.telemetry.events("rejected", report.rejected.len());
    if !report.rejected.is_empty() {
        tracing::debug!(rejected = report.rejected.len(), first = %report.rejected[0].error, "events rejected");
    }
    let status = if submitted == 0 { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::ACCEPTED };
    Ok((status, Json(report)).into_response())
}
