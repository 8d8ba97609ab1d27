//! What every metrics query shares: its parameters, its caller's tenant scope, its range.

use crate::api::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;
use std::collections::HashMap;
use voicemon_core::window::TimeRange;

/// Raw query parameters; empty values count as absent.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
}

/// The tenant a query may read and the range it asked for.
#[derive(Debug)]
pub struct Scope {
    pub tenant_id: Option<String>,
    pub range: TimeRange,
}

impl Scope {
    pub async fn resolve(
        state: &AppState,
        headers: &HeaderMap,
        params: &Params,
        default_range_ms: i64,
    ) -> Result<Scope, ApiError> {
        let principal = state.keys.authenticate(headers).await?;
        let tenant_id = principal.read_scope(params.get("tenant_id"))?;
        let range =
            TimeRange::resolve(params.get("from"), params.get("to"), state.clock.now_ms(), default_range_ms)?;
        Ok(Scope { tenant_id, range })
    }
}
