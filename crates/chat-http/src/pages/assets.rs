//! Static assets embedded in the binary and served under content-hashed names.
//!
//! Every asset is compiled in with `include_bytes!`, so the binary needs no
//! files beside it. At first use each gets a name carrying a hash of its
//! content (`app.css` → `app.3f2a9c1b.css`); pages link to that name and it
//! is served with a year-long `immutable` cache lifetime, so a browser never
//! runs a stale script after an upgrade and never asks twice for the same one.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The name in the source tree, e.g. `app.css`.
    pub logical: &'static str,
    /// The cache-busting name, e.g. `app.3f2a9c1b.css`.
    pub hashed: String,
    /// `/static/` + the hashed name.
    pub url: String,
    /// The content.
    pub bytes: &'static [u8],
    /// Its media type.
    pub content_type: &'static str,
}

const SOURCES: [(&str, &[u8], &str); 4] = [
    (
        "app.css",
        include_bytes!("../../assets/app.css"),
        "text/css; charset=utf-8",
    ),
    (
        "chat.js",
        include_bytes!("../../assets/chat.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "theme.js",
        include_bytes!("../../assets/theme.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "favicon.svg",
        include_bytes!("../../assets/favicon.svg"),
        "image/svg+xml",
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|&(logical, bytes, content_type)| {
            let hashed = hashed_name(logical, bytes);
            Asset {
                logical,
                url: format!("/static/{hashed}"),
                hashed,
                bytes,
                content_type,
            }
        })
        .collect()
});

/// The cache-busting name of `logical` with content `bytes`: the first 8 hex
/// digits of its SHA-256 inserted before the extension.
pub fn hashed_name(logical: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    match logical.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{short}.{ext}"),
        None => format!("{logical}.{short}"),
    }
}

/// Every embedded asset.
pub fn all() -> &'static [Asset] {
    &ASSETS
}

/// The URL (`/static/app.3f2a9c1b.css`) of the asset named `logical`.
///
/// An unknown name gives `/static/<logical>`, which answers 404: a typo in a
/// template shows up as a broken link in the browser's console, not a panic.
pub fn url(logical: &str) -> String {
    ASSETS
        .iter()
        .find(|a| a.logical == logical)
        .map_or_else(|| format!("/static/{logical}"), |a| a.url.clone())
}

/// `GET /static/{file}`: serves an asset by its hashed name (cached for a
/// year, immutable) or by its plain name (revalidated every time, for tools
/// and curious people).
pub async fn serve(Path(file): Path<String>) -> Response {
    let (asset, cache) = if let Some(a) = ASSETS.iter().find(|a| a.hashed == file) {
        (a, "public, max-age=31536000, immutable")
    } else if let Some(a) = ASSETS.iter().find(|a| a.logical == file) {
        (a, "no-cache")
    } else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_changes_when_the_content_changes() {
        let a = hashed_name("app.css", b"body { color: red }");
        let b = hashed_name("app.css", b"body { color: blue }");
        assert_ne!(a, b);
        assert_eq!(a, hashed_name("app.css", b"body { color: red }"));
        assert!(a.starts_with("app.") && a.ends_with(".css"), "{a}");
        assert_eq!(a.len(), "app.12345678.css".len());
    }

    #[test]
    fn every_embedded_asset_has_a_distinct_hashed_url() {
        let all = all();
        assert_eq!(all.len(), SOURCES.len());
        for a in all {
            assert_eq!(url(a.logical), a.url);
            assert_ne!(a.hashed, a.logical);
            assert_eq!(a.hashed, hashed_name(a.logical, a.bytes));
        }
    }
}
