//! `POST /v1/events` → validate → batch writer → 202 once durable.

use crate::api::error::{ApiError, ErrorBody};
use crate::api::limits::caller;
use crate::auth::Principal;
use crate::limits::Kind;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use voicemon_core::body::{parse_body, Framing, Rejection, ACCEPTED_CONTENT_TYPES};
use voicemon_core::validate::{Reason, WireEvent};
use voicemon_store::IngestEvent;

/// The answer to an ingest request. Its size is bounded whatever the body holds: the
/// first refusals are listed in full, the rest only counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestReport {
    /// Events stored by this request.
    pub accepted: usize,
    /// Events whose id this tenant had already sent; stored once, not again.
    pub duplicates: usize,
    /// The first refused events (`voicemon_core::body::LISTED_REJECTIONS` at most), in
    /// body order.
    pub rejected: Vec<Rejection>,
    /// Every refused event, listed or not.
    pub rejected_count: usize,
    /// Every refused event by reason; the counts add up to `rejected_count`.
    pub rejected_by_reason: BTreeMap<Reason, usize>,
}

/// The JSON framings of an ingest body (NDJSON, one event a line, is the third).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum EventsBody {
    One(Box<WireEvent>),
    Many(Vec<WireEvent>),
}

/// `POST /v1/events`: 202 when anything was stored or was a duplicate, 422 when every
/// event was refused (the report says why), 415 for a body that is neither JSON nor
/// NDJSON, 503 with `Retry-After` when storage is down; 429 with `Retry-After` when the
/// caller's events are over its rate limit, 413 when one body holds more events than its burst.
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
        (status = 413, description = "The body is larger than `max_body_bytes`, or holds more events than the caller's burst.", body = ErrorBody),
        (status = 415, description = "A content type other than JSON or NDJSON, or none.", body = ErrorBody),
        (status = 422, description = "Every event was refused; `rejected` says why.", body = IngestReport),
        (status = 429, description = "The caller's events are over its rate limit; nothing is stored; retry after `Retry-After` seconds.", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait"))),
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
    let framing = framing(&headers)?;
    // One event up front: a caller with an empty bucket is refused before its body is read.
    let caller = caller(&principal);
    state.limits.admit_or_hold(Kind::Ingest, caller, 1).await?;
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    let parsed = parse_body(&bytes, framing, state.clock.now_ms())
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    drop(bytes);
    // The rest of the body's events, valid or not: each cost its parsing and validation.
    let in_body = parsed.events.len() + parsed.rejections.total;
    state.limits.admit_rest_of_body(caller, u32::try_from(in_body).unwrap_or(u32::MAX)).await?;

    let mut events = Vec::with_capacity(parsed.events.len());
    for event in parsed.events {
        principal.check_write(&event.envelope.tenant_id)?;
        let costing = state.prices.cost(&event);
        events.push(IngestEvent { event, costing });
    }
    let submitted = events.len();
    let outcome = state.writer.submit(events).await?;
    let duplicates = outcome.duplicates();
    let rejections = parsed.rejections;
    let report = IngestReport {
        accepted: outcome.stored.len() - duplicates,
        duplicates,
        rejected: rejections.listed,
        rejected_count: rejections.total,
        rejected_by_reason: rejections.by_reason,
    };
    state.telemetry.ingested(&outcome, report.rejected_count);
    if let Some(first) = report.rejected.first() {
        tracing::debug!(rejected = report.rejected_count, first = %first.error, "events rejected");
    }
    let status = if submitted == 0 { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::ACCEPTED };
    Ok((status, Json(report)).into_response())
}

/// The body, read into one buffer sized by `Content-Length` when given (no copy of
/// gathered chunks), at most `limit` bytes.
pub(crate) async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::PayloadTooLarge { limit };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::BadRequest("the body could not be read to its end".into()))?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The framing the `Content-Type` names; any other type (or none) is a 415, so a body a
/// web page may send without asking (`text/plain`, a form) is never read.
fn framing(headers: &HeaderMap) -> Result<Framing, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    Framing::from_content_type(content_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "send events as {} (NDJSON: one event per line)",
            ACCEPTED_CONTENT_TYPES.join(", ")
        ))
    })
}
