//! `Principal` as an extractor: a handler that names it is authenticated before
//! anything else of the request is read (the body included). Behind the query limit
//! ([`crate::api::limits`]) the caller was authenticated already, and is taken from there.

use crate::api::error::ApiError;
use crate::auth::Principal;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        Ok(state.keys.authenticate(&parts.headers).await?)
    }
}
