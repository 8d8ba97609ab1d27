//! `POST /v1/traces` and `POST /v1/metrics`: OTLP/HTTP from voice agent frameworks →
//! [`crate::otlp`].
//!
//! Answers follow the OTLP/HTTP specification: the request's own encoding (protobuf or
//! JSON), 200 with an `ExportTraceServiceResponse` (its `partial_success` counts and
//! explains refused spans), and for errors a `google.rpc.Status` with the status code
//! voicemon gives the same failure elsewhere: 400 for an undecodable body, 401/403, 413,
//! 415, and 429 or 503 with `Retry-After`, which exporters retry.

use crate::api::error::ApiError;
use crate::api::ingest::read_body;
use crate::api::limits::caller;
use crate::auth::Principal;
use crate::limits::Kind;
use crate::otlp::decode::{decode, inflate, DecodeError, Encoding, Status};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use serde::Serialize;
use utoipa::ToSchema;

/// An `ExportTraceServiceRequest` in OTLP/JSON, as far as the document describes it: its
/// fields follow the OpenTelemetry protobuf definitions (`opentelemetry/proto/collector/
/// trace/v1/trace_service.proto`), with ids in hex and 64-bit integers as strings.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct TracesJson {
    pub resource_spans: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
}

/// An `ExportMetricsServiceRequest` in OTLP/JSON (`opentelemetry/proto/collector/
/// metrics/v1/metrics_service.proto`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct MetricsJson {
    pub resource_metrics: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
}

/// An `ExportTraceServiceResponse` as OTLP/JSON writes it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportAnswer {
    /// Present when some spans were refused.
    pub partial_success: Option<PartialSuccess>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartialSuccess {
    pub rejected_spans: i64,
    pub error_message: String,
}

/// An `ExportMetricsServiceResponse` as OTLP/JSON writes it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsAnswer {
    /// Present when some data points were refused.
    pub partial_success: Option<MetricsPartialSuccess>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsPartialSuccess {
    pub rejected_data_points: i64,
    pub error_message: String,
}

/// A `google.rpc.Status` as OTLP/JSON writes it: the body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct StatusAnswer {
    pub code: i32,
    pub message: String,
}

/// `POST /v1/traces`: OTLP/HTTP traces (protobuf or JSON, gzip or not) from Pipecat or
/// LiveKit Agents, turned into calls, turns, usage lines and provider requests
/// (`docs/otlp.md`). The tenant is the key's, or the resource attribute
/// `voicemon.tenant_id` for a key of every tenant.
#[utoipa::path(
    post,
    path = "/v1/traces",
    tag = "ingest",
    request_body(
        description = "An OTLP `ExportTraceServiceRequest`, as protobuf or OTLP/JSON; \
                       `Content-Encoding: gzip` is accepted.",
        content(
            (Vec<u8> = "application/x-protobuf"),
            (TracesJson = "application/json"),
        ),
    ),
    responses(
        (status = 200, description = "The spans were taken: the events of every turn they complete are durable; \
                                      spans still waiting for their turn are held. `partialSuccess` counts refused spans.",
         content((ExportAnswer = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 400, description = "The body is not an OTLP request in the encoding it claims.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 401, description = "No key, or an unknown or revoked one.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 403, description = "A read key.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 413, description = "The body, inflated, is larger than `max_body_bytes`, or holds more spans than the caller's burst.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 415, description = "A content type other than protobuf or JSON.", content((StatusAnswer = "application/json"))),
        (status = 429, description = "The caller is over its ingest rate limit; retry after `Retry-After` seconds.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf")), headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 503, description = "Storage is unavailable; the spans are held and a retry is harmless.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf")), headers(("Retry-After" = u64, description = "seconds to wait"))),
    )
)]
pub async fn post_traces(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let encoding = encoding(&headers);
    let answer = async {
        let (principal, encoding, request) =
            receive::<ExportTraceServiceRequest>(&state, encoding, &headers, body, |request| {
                request
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|scope| scope.spans.len())
                    .sum()
            })
            .await?;
        let outcome = state.otlp.export(principal.tenant(), request).await?;
        let partial_success = (outcome.rejected > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: outcome.rejected,
            error_message: outcome.message,
        });
        Ok(encoded(
            StatusCode::OK,
            encoding,
            encoding.encode(&ExportTraceServiceResponse { partial_success }),
        ))
    };
    answer.await.unwrap_or_else(|err| status_answer(encoding.unwrap_or(Encoding::Json), err))
}

/// `POST /v1/metrics`: OTLP/HTTP metrics. voicemon reads one counter of them, LiveKit
/// Agents' `lk.agents.usage.stt_audio_duration` (the STT audio its spans do not carry),
/// as `stt.usage` lines of the call its `room_id` names; every other metric is ignored.
#[utoipa::path(
    post,
    path = "/v1/metrics",
    tag = "ingest",
    request_body(
        description = "An OTLP `ExportMetricsServiceRequest`, as protobuf or OTLP/JSON; \
                       `Content-Encoding: gzip` is accepted.",
        content(
            (Vec<u8> = "application/x-protobuf"),
            (MetricsJson = "application/json"),
        ),
    ),
    responses(
        (status = 200, description = "The points were taken: the STT audio lines they make are durable. `partialSuccess` counts refused points.",
         content((MetricsAnswer = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 400, description = "The body is not an OTLP request in the encoding it claims.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 401, description = "No key, or an unknown or revoked one.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 403, description = "A read key.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 413, description = "The body, inflated, is larger than `max_body_bytes`, or holds more points than the caller's burst.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf"))),
        (status = 415, description = "A content type other than protobuf or JSON.", content((StatusAnswer = "application/json"))),
        (status = 429, description = "The caller is over its ingest rate limit; retry after `Retry-After` seconds.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf")), headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 503, description = "Storage is unavailable; nothing was stored; retry after `Retry-After` seconds.", content((StatusAnswer = "application/json"), (Vec<u8> = "application/x-protobuf")), headers(("Retry-After" = u64, description = "seconds to wait"))),
    )
)]
pub async fn post_metrics(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let encoding = encoding(&headers);
    let answer = async {
        let (principal, encoding, request) =
            receive::<ExportMetricsServiceRequest>(&state, encoding, &headers, body, |request| {
                let metrics = request
                    .resource_metrics
                    .iter()
                    .flat_map(|r| &r.scope_metrics)
                    .flat_map(|scope| &scope.metrics);
                metrics.map(data_points).sum()
            })
            .await?;
        let outcome = state.otlp.export_metrics(principal.tenant(), request).await?;
        let partial_success = (outcome.rejected > 0).then_some(ExportMetricsPartialSuccess {
            rejected_data_points: outcome.rejected,
            error_message: outcome.message,
        });
        Ok(encoded(
            StatusCode::OK,
            encoding,
            encoding.encode(&ExportMetricsServiceResponse { partial_success }),
        ))
    };
    answer.await.unwrap_or_else(|err| status_answer(encoding.unwrap_or(Encoding::Json), err))
}

fn encoding(headers: &HeaderMap) -> Option<Encoding> {
    Encoding::from_content_type(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()))
}

/// Authenticates the caller, reads, inflates and decodes the body, and takes one event's
/// worth of the caller's ingest bucket for each item `items` counts in it.
async fn receive<T: prost::Message + Default + serde::de::DeserializeOwned>(
    state: &AppState,
    encoding: Option<Encoding>,
    headers: &HeaderMap,
    body: Body,
    items: impl Fn(&T) -> usize,
) -> Result<(Principal, Encoding, T), ApiError> {
    let principal = state.keys.authenticate(headers).await?;
    principal.check_may_write()?;
    let encoding = encoding.ok_or_else(|| {
        ApiError::UnsupportedMediaType("send OTLP as application/x-protobuf or application/json".into())
    })?;
    let caller = caller(&principal);
    state.limits.admit_or_hold(Kind::Ingest, caller, 1).await?;
    let compressed = read_body(body, headers, state.max_body_bytes).await?;
    let content_encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok());
    let bytes = inflate(compressed, content_encoding, state.max_body_bytes).map_err(|err| match err {
        DecodeError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
        other => ApiError::BadRequest(other.to_string()),
    })?;
    let request: T = decode(&bytes, encoding).map_err(|err| ApiError::BadRequest(err.to_string()))?;
    drop(bytes);
    state.limits.admit_rest_of_body(caller, u32::try_from(items(&request)).unwrap_or(u32::MAX)).await?;
    Ok((principal, encoding, request))
}

/// The data points of one metric, whatever its kind.
fn data_points(metric: &Metric) -> usize {
    match &metric.data {
        Some(Data::Gauge(gauge)) => gauge.data_points.len(),
        Some(Data::Sum(sum)) => sum.data_points.len(),
        Some(Data::Histogram(histogram)) => histogram.data_points.len(),
        Some(Data::ExponentialHistogram(histogram)) => histogram.data_points.len(),
        Some(Data::Summary(summary)) => summary.data_points.len(),
        None => 0,
    }
}

/// `err` as OTLP/HTTP answers it: the same status (and `Retry-After`) as elsewhere in
/// the API, with a `google.rpc.Status` body in `encoding`.
fn status_answer(encoding: Encoding, err: ApiError) -> Response {
    let message = err.to_string();
    let response = err.into_response();
    let code = match response.status() {
        StatusCode::UNAUTHORIZED => Status::UNAUTHENTICATED,
        StatusCode::FORBIDDEN => Status::PERMISSION_DENIED,
        StatusCode::TOO_MANY_REQUESTS => Status::RESOURCE_EXHAUSTED,
        StatusCode::SERVICE_UNAVAILABLE => Status::UNAVAILABLE,
        StatusCode::INTERNAL_SERVER_ERROR => Status::INTERNAL,
        _ => Status::INVALID_ARGUMENT,
    };
    let status = Status { code, message };
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let mut answer = encoded(response.status(), encoding, encoding.encode(&status));
    if let Some(retry_after) = retry_after {
        answer.headers_mut().insert(header::RETRY_AFTER, retry_after);
    }
    answer
}

fn encoded(status: StatusCode, encoding: Encoding, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(encoding.content_type()));
    response
}
