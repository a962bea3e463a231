//! Which web origins may call the API from a browser (`CORS_ALLOWED_ORIGINS`, see
//! [`AllowedOrigins`]).
//!
//! - HTTP: tower-http's CORS layer answers preflights and adds `access-control-allow-origin`
//!   for an allowed origin only; a page of any other origin cannot read the answers.
//! - WebSocket: browsers do not apply CORS to WebSockets, so an upgrade that carries an `Origin`
//!   (every browser sends one) is refused with 403 unless that origin is allowed or is the
//!   server's own (the playground). Programs that are not browsers send no `Origin`.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::config::AllowedOrigins;

/// The CORS layer for these origins.
pub fn layer(allowed: &AllowedOrigins) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::ACCEPT,
            HeaderName::from_static("x-user-id"),
            HeaderName::from_static("x-role"),
            HeaderName::from_static("x-request-id"),
            // sent by Apollo Client when configured with a name, and by its CSRF-safe mode
            HeaderName::from_static("apollographql-client-name"),
            HeaderName::from_static("apollographql-client-version"),
            HeaderName::from_static("apollo-require-preflight"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER]);
    match allowed {
        AllowedOrigins::Any => layer.allow_origin(Any),
        AllowedOrigins::Loopback => layer.allow_origin(AllowOrigin::predicate(|origin, _| {
            origin.to_str().is_ok_and(AllowedOrigins::is_loopback)
        })),
        AllowedOrigins::Listed(origins) => layer.allow_origin(AllowOrigin::list(
            origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    }
}

/// Whether a WebSocket upgrade with these headers may proceed: no `Origin` (not a browser), an
/// allowed origin, or the server's own (its authority equals the `Host` the client used).
pub fn permits_socket(allowed: &AllowedOrigins, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).map(|o| o.to_str()) else {
        return true;
    };
    let Ok(origin) = origin else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let same_origin = origin
        .split_once("://")
        .is_some_and(|(_, authority)| host.is_some_and(|h| authority.eq_ignore_ascii_case(h)));
    match allowed {
        AllowedOrigins::Any => true,
        AllowedOrigins::Loopback => same_origin || AllowedOrigins::is_loopback(origin),
        AllowedOrigins::Listed(origins) => {
            same_origin || origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
        }
    }
}
