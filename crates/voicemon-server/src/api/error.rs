//! The one error type of the HTTP API and its one status table.

use crate::auth::AuthError;
use crate::limits::LimitError;
use crate::query::QueryError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use voicemon_store::StoreError;

/// Every error a handler returns. Messages are for people: lowercase, actionable,
/// never a leaked internal detail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the body is larger than {limit} bytes; split it into smaller batches")]
    PayloadTooLarge { limit: usize },
    /// More events in one body than the caller's burst: no retry of it can pass.
    #[error("{0}")]
    TooManyEvents(String),
    /// The caller's bucket is empty for now; `Retry-After` says when to come back.
    #[error("{message}")]
    RateLimited { message: String, retry_after_seconds: u64 },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the url is too long; send fewer or shorter query parameters")]
    UriTooLong,
    #[error("the request headers are too large or too many")]
    HeadersTooLarge,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error; the details are in voicemon's log")]
    Internal,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } | ApiError::TooManyEvents(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code of the error, as in `{error: {code}}`.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::PayloadTooLarge { .. } | ApiError::TooManyEvents(_) => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::UriTooLong => ErrorCode::UriTooLong,
            ApiError::HeadersTooLarge => ErrorCode::HeadersTooLarge,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal => ErrorCode::Internal,
        }
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people: lowercase, says what to change.
    pub message: String,
}

/// The machine-readable kind of an error; each has one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400
    BadRequest,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 409
    Conflict,
    /// 413
    PayloadTooLarge,
    /// 414
    UriTooLong,
    /// 415
    UnsupportedMediaType,
    /// 429, with `Retry-After`
    RateLimited,
    /// 431
    HeadersTooLarge,
    /// 503, with `Retry-After`
    Unavailable,
    /// 500
    Internal,
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u64 = 5;

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(message) => {
                tracing::warn!(%message, "storage unavailable");
                ApiError::Unavailable("storage is unavailable; retry later".into())
            }
            StoreError::Fault { fault, detail } => {
                tracing::warn!(cause = fault.as_str(), %detail, "storage unavailable: {fault}");
                ApiError::Unavailable(format!("storage is unavailable: {fault}; retry later"))
            }
            StoreError::NotFound(message) => ApiError::NotFound(message),
            // No request writes under a lease; should one ever, the caller may retry.
            StoreError::LeaseLost(message) => {
                tracing::warn!(%message, "a leased write was refused");
                ApiError::Unavailable("storage is unavailable; retry later".into())
            }
            StoreError::Internal(message) | StoreError::Config(message) => {
                tracing::error!(%message, "storage error");
                ApiError::Internal
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Unauthorized(message) => ApiError::Unauthorized(message),
            AuthError::Forbidden(message) => ApiError::Forbidden(message),
        }
    }
}

impl From<LimitError> for ApiError {
    fn from(err: LimitError) -> Self {
        match err.retry_after_seconds() {
            Some(retry_after_seconds) => {
                ApiError::RateLimited { message: err.to_string(), retry_after_seconds }
            }
            None => ApiError::TooManyEvents(err.to_string()),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        match err {
            QueryError::Invalid(message) => ApiError::BadRequest(message),
            QueryError::NotFound(message) => ApiError::NotFound(message),
            QueryError::Ambiguous(message) => ApiError::Conflict(message),
            QueryError::Store(err) => err.into(),
        }
    }
}

impl From<voicemon_core::window::WindowError> for ApiError {
    fn from(err: voicemon_core::window::WindowError) -> Self {
        ApiError::BadRequest(err.to_string())
    }
}

impl ApiError {
    /// The JSON body of the answer: `{"error": {"code", "message"}}`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: self.code(), message: self.to_string() } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            ApiError::Unavailable(_) => Some(RETRY_AFTER_SECONDS),
            ApiError::RateLimited { retry_after_seconds, .. } => Some(*retry_after_seconds),
            _ => None,
        };
        let mut response = (status, Json(self.body())).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
