//! `POST /v1/events` → validate → batch writer → 202 once durable.

use crate::api::error::ApiError;
use crate::api::limits::caller;
use crate::auth::Principal;
use crate::limits::Kind;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use voicemon_core::body::{parse_body, Framing};
use voicemon_store::IngestEvent;

/// One refused event: its index in the body, the field at fault, and why.
#[derive(Debug, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub field: Option<String>,
    pub error: String,
}

/// The answer to an ingest request.
#[derive(Debug, Serialize)]
pub struct IngestReport {
    /// Events stored by this request.
    pub accepted: usize,
    /// Events whose id this tenant had already sent; stored once, not again.
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

/// `POST /v1/events`: 202 when anything was stored or was a duplicate, 422 when every
/// event was refused (the report says why), 503 with `Retry-After` when storage is down;
/// 429 with `Retry-After` when the caller's events are over its rate limit, 413 when one
/// body holds more events than its burst.
pub async fn post_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.check_may_write()?;
    // One event up front: a caller with an empty bucket is refused before its body is read.
    let caller = caller(&principal);
    state.limits.admit(Kind::Ingest, caller, 1)?;
    let bytes = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit: state.max_body_bytes })?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let framing = Framing::from_content_type(content_type);
    let parsed = parse_body(&bytes, framing, state.clock.now_ms())
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    // The rest of the body's events, valid or not: each cost its parsing and validation.
    let events_in_body = u32::try_from(parsed.len()).unwrap_or(u32::MAX);
    state.limits.admit_rest_of_body(caller, events_in_body)?;

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
