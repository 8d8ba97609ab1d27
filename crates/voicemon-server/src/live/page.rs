//! The built-in page and its assets (served by `api::page`), embedded in the binary: nothing is
//! fetched from elsewhere at run time.
//!
//! Our own files are served with `Cache-Control: no-cache` and an ETag (a browser checks
//! them, a 304 costs nothing); the vendored chart library sits under a versioned path
//! and is cached for a year.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::hash::{DefaultHasher, Hash, Hasher};

/// The vendored chart library's version: part of its path (see assets/vendor/README.md).
pub const UPLOT_VERSION: &str = "1.6.32";

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

pub struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// Versioned path: cache for a year.
    immutable: bool,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "live.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/live/live.js"),
        immutable: false,
    },
    Asset {
        path: "live.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/live/live.css"),
        immutable: false,
    },
    Asset {
        path: "vendor/uplot-1.6.32/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/vendor/uplot/uPlot.iife.min.js"),
        immutable: true,
    },
    Asset {
        path: "vendor/uplot-1.6.32/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/vendor/uplot/uPlot.min.css"),
        immutable: true,
    },
    Asset {
        path: "vendor/uplot-1.6.32/LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../assets/vendor/uplot/LICENSE"),
        immutable: true,
    },
];

const INDEX: Asset = Asset {
    path: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../../assets/live/index.html"),
    immutable: false,
};

/// The page itself.
pub fn index_html() -> &'static Asset {
    &INDEX
}

/// An asset by its path under `/assets/`.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The answer for `asset`: 304 when the client's `If-None-Match` has this build's tag.
pub fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = etag(asset.body);
    let cache = match asset.immutable {
        true => "public, max-age=31536000, immutable",
        false => "no-cache",
    };
    let fresh = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let mut response = match fresh {
        true => StatusCode::NOT_MODIFIED.into_response(),
        false => ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response(),
    };
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if asset.content_type.starts_with("text/html") {
        out.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        out.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    response
}

/// A strong validator of the embedded bytes (the same build gives the same tag).
fn etag(body: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}-{}\"", hasher.finish(), body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_served() {
        let html = std::str::from_utf8(INDEX.body).expect("utf-8");
        for asset in ASSETS.iter().filter(|a| !a.path.ends_with("LICENSE")) {
            assert!(html.contains(&format!("/assets/{}", asset.path)), "index.html loads {}", asset.path);
        }
        assert!(ASSETS.iter().all(|a| !a.path.contains("vendor") || a.path.contains(UPLOT_VERSION)));
    }
}
