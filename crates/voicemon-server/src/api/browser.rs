//! Requests a web page may make: a server without API keys answers only requests that
//! name it by a loopback name (no DNS rebinding) and that come from its own origin or an
//! allowed one (no cross-origin post from any page on the machine). With keys, the key
//! is what protects it. The rules themselves are [`crate::origin`]'s.

use crate::api::error::ApiError;
use crate::origin::{browser_may_call, is_own_host, AllowedOrigins};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The middleware: checks the request when the server runs without keys.
pub async fn guard_open_mode(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.keys.is_open() {
        if let Err(err) = check_open(request.headers(), request.uri(), &state.allowed_origins) {
            return err.into_response();
        }
    }
    next.run(request).await
}

/// A request to a server without keys: a loopback `Host`, and no foreign `Origin`.
fn check_open(headers: &HeaderMap, uri: &Uri, allowed: &AllowedOrigins) -> Result<(), ApiError> {
    let host = host(headers, uri);
    if let Some(host) = host {
        if !is_own_host(host, allowed) {
            return Err(ApiError::Forbidden(format!(
                "this server has no api keys and answers only on its loopback names (localhost, \
                 127.0.0.1), not `{}`; add an allowed origin or create an api key to serve other names",
                bounded(host)
            )));
        }
    }
    check_origin(headers, host, allowed)
}

/// A browser request (one with `Origin`, or one its browser marks cross-site) must come
/// from voicemon's own origin or an allowed one.
pub fn check_origin(
    headers: &HeaderMap,
    host: Option<&str>,
    allowed: &AllowedOrigins,
) -> Result<(), ApiError> {
    let refused = |origin: &str| {
        ApiError::Forbidden(format!(
            "requests from pages at `{}` are refused; list the origin in [server] allowed_origins",
            bounded(origin)
        ))
    };
    match headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("(not text)")) {
        Some(origin) if !browser_may_call(origin, host, allowed) => Err(refused(origin)),
        Some(_) => Ok(()),
        None if headers.get("sec-fetch-site").is_some_and(|site| site == "cross-site") => {
            Err(refused("another site"))
        }
        None => Ok(()),
    }
}

/// The name the caller used: the `Host` header, or the authority of an HTTP/2 request.
pub fn host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    let header = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    header.or_else(|| uri.authority().map(|authority| authority.as_str()))
}

/// A caller's text cut for an error message.
fn bounded(text: &str) -> &str {
    voicemon_core::validate::prefix(text, 128)
}
