//! `GET /` (the live page) and `GET /assets/{*path}`, from the assets in `live::page`.

use crate::api::error::ApiError;
use crate::live::page::{asset as find_asset, index_html, serve};
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

/// `GET /`: the live page.
pub async fn index(headers: HeaderMap) -> Response {
    serve(index_html(), &headers)
}

/// `GET /assets/{*path}`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match find_asset(&path) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::NotFound(format!("no asset {path}")).into_response(),
    }
}
