//! `GET /metrics/stream`: the WebSocket upgrade of the live view. A browser's `Origin`
//! must be voicemon's own (the page at `/`) or an allowed one, with or without keys
//! (403 otherwise): browsers let any page open a WebSocket anywhere. A key in the
//! `Authorization` header is checked before the upgrade (401/403 as the REST API);
//! without one, the first message must carry it (`live::socket`).

use crate::api::browser::{check_origin, host};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::json::lowercase_first;
use crate::auth::bearer;
use crate::live::socket::{bounded, serve, Caller};
use crate::state::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

/// `GET /metrics/stream`: the upgrade; its messages are described in `docs/live.md`.
#[utoipa::path(
    get,
    path = "/metrics/stream",
    tag = "live",
    security((), ("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol. Without an `Authorization` header the first message must carry the key (`docs/live.md`)."),
        (status = 400, description = "Not a WebSocket upgrade request (`Connection: Upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key` are needed).", body = ErrorBody),
        (status = 401, description = "An unknown or revoked key in the `Authorization` header.", body = ErrorBody),
        (status = 403, description = "An ingest key, or a page of an origin that is not allowed.", body = ErrorBody),
        (status = 503, description = "As many live connections as the server takes; retry later.", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait"))),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_origin(&headers, host(&headers, &uri), &state.allowed_origins)?;
    let token = bearer(&headers)?.map(str::to_owned);
    let principal = match &token {
        Some(token) => Some(state.keys.authenticate_token(Some(token)).await?),
        None => state.keys.authenticate_token(None).await.ok(),
    };
    if let Some(principal) = &principal {
        principal.read_scope(None)?;
    }
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "{}: connect with a WebSocket client",
            lowercase_first(&rejection.body_text())
        ))
    })?;
    let guard = state.live.open_connection().ok_or_else(|| {
        ApiError::Unavailable("voicemon has as many live connections as it takes; retry later".into())
    })?;
    let (hub, keys) = (state.live.clone(), state.keys.clone());
    let caller = Caller { principal, token };
    Ok(bounded(upgrade).on_upgrade(move |socket| serve(socket, hub, keys, caller, guard)))
}
