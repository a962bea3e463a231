//! The errors every layer shares; imports no domain and no GraphQL type.
//!
//! - [`InvalidInput`]: a refused input field, raised by a service before it changes anything.
//! - [`CommonError`]: the refusals every write use case shares (invalid input, a reused
//!   idempotency key, an unknown user, an unconfirmed commit, an overloaded writer, the
//!   database). Each domain's error
//!   enum carries it as its `Common` variant ([`common_error!`] writes the conversions).
//! - [`AppError`]: the top-level errors a client sees as `errors[].extensions.code`
//!   (UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, SERVICE_UNAVAILABLE, INTERNAL_SERVER_ERROR).
//!
//! What a client sees of each is decided in one place on the GraphQL side, `graphql::errors`;
//! what a database error means for a client, next to its classification in `infra::db`.

use sea_orm::DbErr;

/// Every `errors[].extensions.code` of a top-level error, whoever raises it: the transport,
/// the document checks, async-graphql's own refusals, or a use case ([`AppError`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TopLevelCode {
    /// The HTTP request is not a GraphQL request (body, batch, missing document, persisted
    /// query extension).
    BadRequest,
    /// `Accept` allows neither JSON media type.
    NotAcceptable,
    /// The body is over `MAX_BODY_BYTES`.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// A mutation sent with GET.
    MethodNotAllowed,
    /// More mutations than the rate limits allow now (with `retryAfterSeconds`).
    RateLimited,
    /// A persisted query's hash that is not stored: send the document with it.
    PersistedQueryNotFound,
    /// Trusted documents only: no listed document has the id the request names.
    PersistedQueryNotInList,
    /// Trusted documents only: the request's document text is not listed.
    QueryNotInSafelist,
    GraphqlParseFailed,
    GraphqlValidationFailed,
    /// Over a limit of size, depth, shape or complexity.
    QueryTooComplex,
    /// A value that does not fit its type.
    BadUserInput,
    Unauthenticated,
    Forbidden,
    /// Try again (with `retryAfterSeconds`): the database or a writer cannot take it now.
    ServiceUnavailable,
    InternalServerError,
}

impl TopLevelCode {
    /// The code clients read.
    pub fn as_str(self) -> &'static str {
        match self {
            TopLevelCode::BadRequest => "BAD_REQUEST",
            TopLevelCode::NotAcceptable => "NOT_ACCEPTABLE",
            TopLevelCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            TopLevelCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            TopLevelCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            TopLevelCode::RateLimited => "RATE_LIMITED",
            TopLevelCode::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            TopLevelCode::PersistedQueryNotInList => "PERSISTED_QUERY_NOT_IN_LIST",
            TopLevelCode::QueryNotInSafelist => "QUERY_NOT_IN_SAFELIST",
            TopLevelCode::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            TopLevelCode::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            TopLevelCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            TopLevelCode::BadUserInput => "BAD_USER_INPUT",
            TopLevelCode::Unauthenticated => "UNAUTHENTICATED",
            TopLevelCode::Forbidden => "FORBIDDEN",
            TopLevelCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            TopLevelCode::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// A refused input field, raised by a service before it changes anything.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    /// Path of the field inside the mutation's `input`, dot-separated (e.g. `items.0.quantity`).
    pub field: String,
    pub message: String,
}

impl InvalidInput {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A refused argument of a query (no payload to carry a user error): BAD_USER_INPUT.
impl From<InvalidInput> for AppError {
    fn from(err: InvalidInput) -> Self {
        AppError::BadUserInput(err.to_string())
    }
}

/// The refusals that every write use case shares, whatever its domain.
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    /// The viewer's user does not exist (deleted after their credentials were issued).
    #[error("no such user")]
    UnknownUser,
    /// The database went away during the COMMIT: applied or not, nobody can tell here.
    #[error("the commit got no answer")]
    Unconfirmed,
    /// The writer's queue was past its bound: refused unapplied, nothing changed.
    #[error("too many writes waiting")]
    Overloaded,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Gives a domain error enum with a `Common(CommonError)` variant the conversions that `?`
/// needs: from [`CommonError`], [`InvalidInput`] and [`DbErr`].
macro_rules! common_error {
    ($domain:ty) => {
        impl From<$crate::error::CommonError> for $domain {
            fn from(err: $crate::error::CommonError) -> Self {
                Self::Common(err)
            }
        }

        impl From<$crate::error::InvalidInput> for $domain {
            fn from(err: $crate::error::InvalidInput) -> Self {
                Self::Common(err.into())
            }
        }

        impl From<sea_orm::DbErr> for $domain {
            fn from(err: sea_orm::DbErr) -> Self {
                Self::Common(err.into())
            }
        }
    };
}
pub(crate) use common_error;

/// Top-level errors, with their `extensions.code`.
///
/// Deliberately not `Display`: async-graphql would otherwise convert it through its blanket impl
/// and drop the code; [`From<AppError>`] for `async_graphql::Error` below is the only way out.
#[derive(Debug)]
pub enum AppError {
    Unauthenticated,
    InvalidCredentials(&'static str),
    Forbidden,
    BadUserInput(String),
    /// The database cannot be reached right now; nothing was changed.
    Unavailable,
    /// The database went away while committing a write: it may or may not have been applied.
    Unconfirmed,
    Internal(anyhow::Error),
}

impl AppError {
    /// Credentials that name no user (a made-up id, a token of a deleted user).
    pub const UNKNOWN_USER: AppError =
        AppError::InvalidCredentials("no user has these credentials");

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }

    pub fn code(&self) -> TopLevelCode {
        match self {
            AppError::Unauthenticated | AppError::InvalidCredentials(_) => {
                TopLevelCode::Unauthenticated
            }
            AppError::Forbidden => TopLevelCode::Forbidden,
            AppError::BadUserInput(_) => TopLevelCode::BadUserInput,
            AppError::Unavailable | AppError::Unconfirmed => TopLevelCode::ServiceUnavailable,
            AppError::Internal(_) => TopLevelCode::InternalServerError,
        }
    }

    /// What the client reads; never the cause of an internal error.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated => "authentication required".into(),
            AppError::InvalidCredentials(reason) => (*reason).into(),
            AppError::Forbidden => "not allowed for this user".into(),
            AppError::BadUserInput(message) => message.clone(),
            AppError::Unavailable => {
                "the service is temporarily unavailable; nothing was changed, try again".into()
            }
            AppError::Unconfirmed => "the database went away while saving this: it may or may \
                not have been applied. Send it again with the same idempotencyKey (or look it up) \
                before trying anything else"
                .into(),
            AppError::Internal(_) => "internal server error".into(),
        }
    }
}

/// Seconds a client is told to wait before retrying when the database cannot be reached.
pub const RETRY_AFTER_SECS: u64 = 1;
