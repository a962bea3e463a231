//! The API kernel: what every domain's GraphQL module builds on (errors and their codes,
//! DataLoaders, pagination, scalars, document limits, persisted documents), and the extension
//! that gives every error a code. The schema itself is assembled above the domains, in
//! [`crate::schema`].

pub mod context;
pub mod documents;
pub mod errors;
pub mod feeds;
pub mod limits;
pub mod pagination;
pub mod scalars;
pub mod top_level;
pub mod trusted;

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};

use top_level::{TopLevelCode, has_code, with_code};

/// Gives every error an `extensions.code`: GRAPHQL_PARSE_FAILED, QUERY_TOO_COMPLEX,
/// GRAPHQL_VALIDATION_FAILED, BAD_USER_INPUT (a value of the wrong type or out of range, as a
/// literal or in a variable) or, for anything else without one, INTERNAL_SERVER_ERROR (logged,
/// its message hidden). It also refuses a document whose complexity (async-graphql's measure,
/// list fields weighed by their page size) is over `max_complexity`, with our own code and
/// message rather than by matching the library's.
pub struct ErrorCodes {
    pub max_complexity: usize,
}

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension {
            max_complexity: self.max_complexity,
        })
    }
}

struct ErrorCodesExtension {
    max_complexity: usize,
}

/// True for async-graphql's errors about a value that does not fit its type (its
/// `InputValueError`s and the argument validation rule).
fn is_coercion_error(error: &ServerError) -> bool {
    [
        "Failed to parse \"",
        "Expected input type \"",
        "Invalid value for argument",
    ]
    .iter()
    .any(|prefix| error.message.starts_with(prefix))
}

/// The code of an error that reached the response without one.
fn fallback_code(error: &ServerError) -> TopLevelCode {
    if is_coercion_error(error) {
        TopLevelCode::BadUserInput
    } else if error.path.is_empty() {
        // about the request as a whole (e.g. an unknown operation name)
        TopLevelCode::GraphqlValidationFailed
    } else {
        TopLevelCode::InternalServerError
    }
}

/// Gives every error of a response a code (see [`ErrorCodes`]).
pub fn complete_error_codes(response: &mut Response) {
    for error in &mut response.errors {
        if has_code(error) {
            continue;
        }
        let code = fallback_code(error);
        if code == TopLevelCode::InternalServerError {
            tracing::error!(error = %error.message, path = ?error.path, "internal error");
            error.message = "internal server error".to_owned();
        }
        *error = with_code(std::mem::replace(error, ServerError::new("", None)), code);
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        complete_error_codes(&mut response);
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, TopLevelCode::GraphqlParseFailed))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let validated = next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let code = if is_coercion_error(&e) {
                        TopLevelCode::BadUserInput
                    } else {
                        TopLevelCode::GraphqlValidationFailed
                    };
                    with_code(e, code)
                })
                .collect::<Vec<_>>()
        })?;
        if validated.complexity > self.max_complexity {
            let message = format!(
                "the query's complexity is {}; at most {} is accepted (list fields count their page size)",
                validated.complexity, self.max_complexity
            );
            return Err(vec![top_level::error(
                TopLevelCode::QueryTooComplex,
                message,
            )]);
        }
        Ok(validated)
    }
}

/// True when the response is a request that failed before execution (parse, validation, limits):
/// answered 400 over HTTP and with an `error` message over WebSocket.
pub fn failed_before_execution(response: &async_graphql::Response) -> bool {
    // errors of execution name the field (`path`); errors of the request as a whole do not
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}
