//! Static files compiled into the binary (vendored htmx and its SSE extension, Pico CSS, the
//! console's own CSS and script) and served at content-hashed URLs with a year-long immutable
//! cache: a new build changes the URL, never the bytes behind one.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::extract::Path;

struct Asset {
    /// `name.<hash>.ext`, the only URL it is served at.
    file: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

const SOURCES: [(&str, &str, &[u8]); 5] = [
    ("pico", "text/css; charset=utf-8", include_bytes!("../assets/vendor/pico-2.1.1.min.css")),
    ("console-css", "text/css; charset=utf-8", include_bytes!("../assets/console.css")),
    ("htmx", "text/javascript; charset=utf-8", include_bytes!("../assets/vendor/htmx-2.0.11.min.js")),
    ("htmx-sse", "text/javascript; charset=utf-8", include_bytes!("../assets/vendor/htmx-ext-sse-2.2.4.min.js")),
    ("console-js", "text/javascript; charset=utf-8", include_bytes!("../assets/console.js")),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(name, content_type, bytes)| {
            let hash = hex::encode(&Sha256::digest(bytes)[..6]);
            let ext = if content_type.starts_with("text/css") { "css" } else { "js" };
            Asset { file: format!("{name}.{hash}.{ext}"), content_type, bytes }
        })
        .collect()
});

/// The URLs pages link to.
#[derive(Debug)]
pub struct AssetUrls {
    pub pico: String,
    pub css: String,
    pub htmx: String,
    pub sse: String,
    pub js: String,
}

pub static URLS: LazyLock<AssetUrls> = LazyLock::new(|| {
    let url = |name: &str| {
        ASSETS
            .iter()
            .find(|a| a.file.starts_with(&format!("{name}.")))
            .map_or_else(String::new, |a| format!("/static/{}", a.file))
    };
    AssetUrls {
        pico: url("pico"),
        css: url("console-css"),
        htmx: url("htmx"),
        sse: url("htmx-sse"),
        js: url("console-js"),
    }
});

/// `GET /static/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.file == file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
        ],
        asset.bytes,
    )
        .into_response()
}
