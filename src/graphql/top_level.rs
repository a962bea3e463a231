//! The one builder of top-level GraphQL error objects: a message with its
//! `extensions.code` ([`TopLevelCode`]), whoever refuses (the transport, the document checks, the
//! persisted documents, the error-code extension).

use async_graphql::ServerError;

pub use crate::error::TopLevelCode;

/// A top-level error with `code`.
pub fn error(code: TopLevelCode, message: impl Into<String>) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

/// `error` with `code`, unless it has one already.
pub fn with_code(mut error: ServerError, code: TopLevelCode) -> ServerError {
    if !has_code(&error) {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code.as_str());
    }
    error
}

pub fn has_code(error: &ServerError) -> bool {
    error
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some())
}
