//! `GET /` (the live page) and `GET /assets/{*path}`, from the assets in `live::page`.

use crate::api::error::{ApiError, ErrorBody};
use crate::live::page::{asset as find_asset, index_html, serve};
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

/// `GET /`: the live page.
#[utoipa::path(
    get,
    path = "/",
    tag = "live",
    security(()),
    responses(
        (status = 200, description = "The live page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Not modified: the `If-None-Match` tag is this build's."),
    )
)]
pub async fn index(headers: HeaderMap) -> Response {
    serve(index_html(), &headers)
}

/// `GET /assets/{*path}`.
#[utoipa::path(
    get,
    path = "/assets/{path}",
    tag = "live",
    security(()),
    params(("path" = String, Path, description = "An asset of the page, such as `live.js` or `vendor/uplot-1.6.32/uPlot.min.css`.")),
    responses(
        (status = 200, description = "The asset.", content(
            (String = "text/javascript; charset=utf-8"),
            (String = "text/css; charset=utf-8"),
            (String = "text/plain; charset=utf-8"),
        )),
        (status = 304, description = "Not modified: the `If-None-Match` tag is this build's."),
        (status = 404, description = "No such asset.", body = ErrorBody),
    )
)]
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match find_asset(&path) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::NotFound(format!("no asset {path}")).into_response(),
    }
}
