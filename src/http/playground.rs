//! GraphiQL, served by the binary itself: no CDN, so it works offline.
//!
//! `clients/playground/dist/` is the build of `clients/playground` (GraphiQL 5 bundled with Vite,
//! committed so that building the crate needs no Node; see its README to rebuild it):
//! `index.html`, the page, whose settings the server fills in ([`page`]), and `assets/`, the
//! content-hashed scripts, styles, font and Monaco web workers, served at
//! `/graphql/assets/<file>` ([`asset`]) and cached for a year; gzipped (6.6 MB become 1.9 MB)
//! for clients that accept it, each file compressed once per process on its first request.

use std::io::Write;
use std::sync::{LazyLock, OnceLock};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use crate::config::AuthMode;

/// Where the page loads [`ASSETS`] from (the base of the Vite build).
pub const ASSETS_PATH: &str = "/graphql/assets/{file}";

/// The page, with `__PLAYGROUND_CONFIG__` where the settings go.
const PAGE: &str = include_str!("../../clients/playground/dist/index.html");

/// `(file name, content)` of every file of `clients/playground/dist/assets/`.
const ASSETS: &[(&str, &[u8])] = include!("../../clients/playground/dist/assets.rs");

/// The query editor's content on a first visit: scenario 1.
const DEFAULT_QUERY: &str = "# Scenario 1: check the balance, charge 50,000 won, browse the products.\n\
     query Me {\n  me { id name balance }\n}\n\n\
     mutation Charge {\n  chargeBalance(input: { amount: 50000 }) {\n    balance\n    userErrors { code message }\n  }\n}\n\n\
     query Products {\n  products(first: 20) {\n    totalCount\n    edges { node { id name price stock category } }\n  }\n}\n";

/// The page for `mode`: the headers editor starts with that mode's credentials (subscriptions
/// send the headers in their `connection_init` payload), the query editor with scenario 1.
pub fn page(mode: AuthMode) -> Response {
    let headers = match mode {
        AuthMode::Dev => json!({ "x-user-id": "1" }),
        AuthMode::Jwt => {
            json!({ "Authorization": "Bearer <token from `commerce token --user 1`>" })
        }
    };
    let config = json!({ "headers": headers, "query": DEFAULT_QUERY });
    let html = PAGE.replacen("__PLAYGROUND_CONFIG__", &script_json(&config), 1);
    (
        // The page names the assets of this build: never a stale copy.
        [(header::CACHE_CONTROL, "no-cache")],
        axum::response::Html(html),
    )
        .into_response()
}

/// `value` as JSON that can stand inside `<script>`: `<`, `>` and `&` (which JSON has in strings
/// only) are written as `\u` escapes, so no string can close the element.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The gzipped form of each of [`ASSETS`], made when first asked for.
static GZIPPED: LazyLock<Vec<OnceLock<Bytes>>> =
    LazyLock::new(|| ASSETS.iter().map(|_| OnceLock::new()).collect());

/// `GET /graphql/assets/{file}`: a file of the build (gzipped when the client accepts it), or
/// 404.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|(name, _)| *name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (name, bytes) = ASSETS[index];
    let cached = [
        (header::CONTENT_TYPE, content_type(name)),
        // Names carry a hash of the content.
        (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::VARY, "accept-encoding"),
    ];
    if !accepts_gzip(&headers) {
        return (cached, bytes).into_response();
    }
    let gzipped = match GZIPPED[index].get() {
        Some(gzipped) => gzipped.clone(),
        None => {
            let made = tokio::task::spawn_blocking(move || gzip(bytes)).await;
            match made {
                Ok(gzipped) => GZIPPED[index].get_or_init(|| gzipped).clone(),
                Err(_) => return (cached, bytes).into_response(),
            }
        }
    };
    (cached, [(header::CONTENT_ENCODING, "gzip")], gzipped).into_response()
}

/// Whether `Accept-Encoding` names gzip (or `*`) with a quality above zero.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn gzip(bytes: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::best());
    // writing into a Vec cannot fail
    let _ = encoder.write_all(bytes);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// The media type of a file of the build, by its extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("ttf") => "font/ttf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_cannot_close_the_script_element() {
        let json = script_json(&json!({ "query": "</script><script>alert(1)</script> & more" }));
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["query"], "</script><script>alert(1)</script> & more");
    }

    #[test]
    fn gzip_is_sent_only_to_clients_that_accept_it() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
            accepts_gzip(&headers)
        };
        assert!(with("gzip, deflate, br, zstd") && with("br;q=1, GZIP;q=0.5") && with("*"));
        assert!(!with("identity") && !with("gzip;q=0") && !with("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn every_asset_has_a_known_media_type_and_the_page_one_placeholder() {
        assert!(!ASSETS.is_empty());
        for (name, _) in ASSETS {
            assert_ne!(content_type(name), "application/octet-stream", "{name}");
        }
        assert_eq!(PAGE.matches("__PLAYGROUND_CONFIG__").count(), 1);
    }
}
