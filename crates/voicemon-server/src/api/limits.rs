//! The rate limits at the edge: the query limit as a layer over the query routes, and
//! the caller whose bucket a request draws from. Ingest takes its events in its handler,
//! once it knows how many a body holds.

use crate::api::error::ApiError;
use crate::auth::Principal;
use crate::limits::{Caller, Kind};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Whose bucket `principal` draws from: its key's, or the open server's one.
pub fn caller(principal: &Principal) -> Caller {
    match principal {
        Principal::Open => Caller::Open,
        Principal::Key(key) => Caller::Key(key.id),
    }
}

/// Authenticates the caller (401 before any bucket, so unknown keys make none), takes
/// one request from its query bucket (429 when empty) and hands the principal on to the
/// handler's extractor.
pub async fn limit_queries(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = state.keys.authenticate(request.headers()).await?;
    state.limits.admit_or_hold(Kind::Query, caller(&principal), 1).await?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}
