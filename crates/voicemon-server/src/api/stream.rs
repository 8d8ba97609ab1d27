//! `GET /metrics/stream`: the WebSocket upgrade of the live view. A browser's `Origin`
//! must be voicemon's own (the page at `/`) or an allowed one, with or without keys
//! (403 otherwise): browsers let any page open a WebSocket anywhere. A key in the
//! `Authorization` header is checked before the upgrade (401/403 as the REST API);
//! without one, the first message must carry it (`live::socket`).

use crate::api::browser::{check_origin, host};
use crate::api::error::ApiError;
use crate::auth::bearer;
use crate::live::socket::{bounded, serve, Caller};
use crate::state::AppState;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: WebSocketUpgrade,
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
    let guard = state.live.open_connection().ok_or_else(|| {
        ApiError::Unavailable("voicemon has as many live connections as it takes; retry later".into())
    })?;
    let (hub, keys) = (state.live.clone(), state.keys.clone());
    let caller = Caller { principal, token };
    Ok(bounded(upgrade).on_upgrade(move |socket| serve(socket, hub, keys, caller, guard)))
}
