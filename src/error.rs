//! Errors, and the one place where domain errors become what a client sees.
//!
//! Two kinds reach a client:
//! - **User errors** (business outcomes): data in the payload's `userErrors`, typed through the
//!   [`UserError`] interface with an [`ErrorCode`].
//! - **Top-level errors** ([`AppError`]): `errors[].extensions.code` such as UNAUTHENTICATED,
//!   FORBIDDEN, BAD_USER_INPUT or INTERNAL_SERVER_ERROR. An internal error is logged with its
//!   whole cause chain and reaches the client only as INTERNAL_SERVER_ERROR.
//!
//! Each domain's error enum is mapped to a [`Failure`] below, and nowhere else.

use async_graphql::{ComplexObject, Context, Enum, ErrorExtensions, ID, Interface, SimpleObject};
use sea_orm::DbErr;

use crate::balance::service::BalanceError;
use crate::catalog::graphql::Product;
use crate::catalog::service::CatalogError;
use crate::coupon::graphql::CouponEvent;
use crate::coupon::service::CouponError;
use crate::graphql::scalars::Won;
use crate::observability::record_outcome;
use crate::ordering::service::{LineProblem, OrderError};
use crate::state::AppState;
use crate::users::service::UserAdminError;

/// Codes of the business outcomes reported in `userErrors`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Enum)]
pub enum ErrorCode {
    InvalidInput,
    NotFound,
    IdempotencyKeyReused,
    BalanceLimitExceeded,
    OutOfStock,
    InsufficientBalance,
    InvalidStateTransition,
    CouponNotUsable,
    CouponExhausted,
    CouponAlreadyIssued,
    CouponEventNotActive,
}

impl ErrorCode {
    /// The name clients see (also the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::BalanceLimitExceeded => "BALANCE_LIMIT_EXCEEDED",
            ErrorCode::OutOfStock => "OUT_OF_STOCK",
            ErrorCode::InsufficientBalance => "INSUFFICIENT_BALANCE",
            ErrorCode::InvalidStateTransition => "INVALID_STATE_TRANSITION",
            ErrorCode::CouponNotUsable => "COUPON_NOT_USABLE",
            ErrorCode::CouponExhausted => "COUPON_EXHAUSTED",
            ErrorCode::CouponAlreadyIssued => "COUPON_ALREADY_ISSUED",
            ErrorCode::CouponEventNotActive => "COUPON_EVENT_NOT_ACTIVE",
        }
    }
}

/// A business outcome reported as data.
#[derive(Clone, Debug, Interface)]
#[graphql(
    field(name = "code", ty = "&ErrorCode"),
    field(name = "message", ty = "&String"),
    field(
        name = "field",
        ty = "&Option<Vec<String>>",
        desc = "Path of the input field at fault, if any."
    )
)]
pub enum UserError {
    Simple(SimpleUserError),
    BalanceLimit(BalanceLimitError),
    OutOfStock(OutOfStockError),
    InsufficientBalance(InsufficientBalanceError),
    CouponExhausted(CouponExhaustedError),
}

/// A user error with no details beyond its code, message and field.
#[derive(Clone, Debug, SimpleObject)]
pub struct SimpleUserError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<Vec<String>>,
}

/// A charge would take the balance over its ceiling.
#[derive(Clone, Debug, SimpleObject)]
pub struct BalanceLimitError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<Vec<String>>,
    pub balance: Won,
    pub max_balance: Won,
}

/// A line asks for more units than the product has.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct OutOfStockError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<Vec<String>>,
    pub product_id: ID,
    pub requested: i32,
    pub available: i32,
}

#[ComplexObject]
impl OutOfStockError {
    /// In-stock products of the same category, best sellers first.
    async fn alternatives(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 3)] limit: i32,
    ) -> async_graphql::Result<Vec<Product>> {
        let state = ctx.data_unchecked::<AppState>();
        let id = self.product_id.parse::<i64>().unwrap_or_default();
        let Some(product) = state.catalog.get(id).await.map_err(AppError::from)? else {
            return Ok(vec![]);
        };
        let alternatives = state
            .ranking
            .alternatives(product.id, &product.category, limit.clamp(1, 20) as u64)
            .await
            .map_err(AppError::from)?;
        Ok(alternatives.into_iter().map(Product::from).collect())
    }
}

/// The balance does not cover the order.
#[derive(Clone, Debug, SimpleObject)]
pub struct InsufficientBalanceError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<Vec<String>>,
    pub balance: Won,
    pub required: Won,
}

/// The event has no coupons left.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct CouponExhaustedError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<Vec<String>>,
    pub event_id: ID,
}

#[ComplexObject]
impl CouponExhaustedError {
    /// Active events that still have coupons.
    async fn alternatives(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<CouponEvent>> {
        let state = ctx.data_unchecked::<AppState>();
        let id = self.event_id.parse::<i64>().unwrap_or_default();
        let events = state
            .coupons
            .alternatives(id)
            .await
            .map_err(AppError::from)?;
        Ok(events.into_iter().map(CouponEvent::from).collect())
    }
}

impl UserError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            UserError::Simple(e) => e.code,
            UserError::BalanceLimit(e) => e.code,
            UserError::OutOfStock(e) => e.code,
            UserError::InsufficientBalance(e) => e.code,
            UserError::CouponExhausted(e) => e.code,
        }
    }

    pub fn simple(code: ErrorCode, message: impl Into<String>, field: &[&str]) -> Self {
        UserError::Simple(SimpleUserError {
            code,
            message: message.into(),
            field: (!field.is_empty()).then(|| field.iter().map(|s| (*s).to_owned()).collect()),
        })
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

    fn into_user_error(self) -> UserError {
        let mut path = vec!["input".to_owned()];
        path.extend(self.field.split('.').map(str::to_owned));
        UserError::Simple(SimpleUserError {
            code: ErrorCode::InvalidInput,
            message: self.message,
            field: Some(path),
        })
    }
}

/// A refused argument of a query (no payload to carry a user error): BAD_USER_INPUT.
impl From<InvalidInput> for AppError {
    fn from(err: InvalidInput) -> Self {
        AppError::BadUserInput(err.to_string())
    }
}

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

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated | AppError::InvalidCredentials(_) => "UNAUTHENTICATED",
            AppError::Forbidden => "FORBIDDEN",
            AppError::BadUserInput(_) => "BAD_USER_INPUT",
            AppError::Unavailable | AppError::Unconfirmed => "SERVICE_UNAVAILABLE",
            AppError::Internal(_) => "INTERNAL_SERVER_ERROR",
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

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        AppError::from_database(&err).unwrap_or_else(|| AppError::internal(err))
    }
}

/// A database error shared by a DataLoader's waiters.
impl From<std::sync::Arc<DbErr>> for AppError {
    fn from(err: std::sync::Arc<DbErr>) -> Self {
        AppError::from_database(&err).unwrap_or_else(|| AppError::internal(anyhow::anyhow!(err)))
    }
}

impl AppError {
    /// What a database error means for the client when it is not a bug: unavailable (retry), or
    /// a value no database column can hold (a missing input check, answered as bad input).
    fn from_database(err: &DbErr) -> Option<AppError> {
        if crate::infra::db::is_unavailable(err) {
            tracing::warn!(error = %err, "database unavailable");
            Some(AppError::Unavailable)
        } else if crate::infra::db::is_unstorable_value(err) {
            tracing::warn!(error = %err, "a value the database cannot store reached it");
            Some(AppError::BadUserInput(
                "a text or number in the request cannot be stored".into(),
            ))
        } else {
            None
        }
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if let AppError::Internal(cause) = &err {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let code = err.code();
        let retry = matches!(err, AppError::Unavailable | AppError::Unconfirmed);
        async_graphql::Error::new(err.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if retry {
                ext.set("retryAfterSeconds", RETRY_AFTER_SECS);
            }
        })
    }
}

/// What a failed use case becomes: user errors in the payload, or a top-level error.
#[derive(Debug)]
pub enum Failure {
    User(Vec<UserError>),
    App(AppError),
}

impl From<AppError> for Failure {
    fn from(err: AppError) -> Self {
        Failure::App(err)
    }
}

impl From<InvalidInput> for Failure {
    fn from(err: InvalidInput) -> Self {
        Failure::User(vec![err.into_user_error()])
    }
}

fn user(error: UserError) -> Failure {
    Failure::User(vec![error])
}

impl From<BalanceError> for Failure {
    fn from(err: BalanceError) -> Self {
        match err {
            BalanceError::Invalid(invalid) => invalid.into(),
            BalanceError::LimitExceeded { balance, max } => {
                user(UserError::BalanceLimit(BalanceLimitError {
                    code: ErrorCode::BalanceLimitExceeded,
                    message: format!("a balance may not exceed {max} won"),
                    field: Some(vec!["input".into(), "amount".into()]),
                    balance: Won(balance),
                    max_balance: Won(max),
                }))
            }
            BalanceError::IdempotencyKeyReused => user(UserError::simple(
                ErrorCode::IdempotencyKeyReused,
                "this idempotencyKey was already used with another request",
                &["input", "idempotencyKey"],
            )),
            BalanceError::UnknownUser => Failure::App(AppError::UNKNOWN_USER),
            BalanceError::Db(err) => Failure::App(err.into()),
        }
    }
}

impl From<CatalogError> for Failure {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::Invalid(invalid) => invalid.into(),
            CatalogError::ProductNotFound(id) => user(UserError::simple(
                ErrorCode::NotFound,
                format!("product {id} does not exist"),
                &["input", "productId"],
            )),
            CatalogError::Db(err) => Failure::App(err.into()),
        }
    }
}

impl From<UserAdminError> for Failure {
    fn from(err: UserAdminError) -> Self {
        match err {
            UserAdminError::Invalid(invalid) => invalid.into(),
            UserAdminError::Db(err) => Failure::App(err.into()),
        }
    }
}

impl From<OrderError> for Failure {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::Invalid(invalid) => invalid.into(),
            OrderError::Lines(problems) => Failure::User(
                problems
                    .into_iter()
                    .map(|problem| match problem {
                        LineProblem::ProductNotFound { product_id } => UserError::simple(
                            ErrorCode::NotFound,
                            format!("product {product_id} does not exist"),
                            &["input", "items"],
                        ),
                        LineProblem::OutOfStock {
                            product_id,
                            requested,
                            available,
                        } => UserError::OutOfStock(OutOfStockError {
                            code: ErrorCode::OutOfStock,
                            message: format!(
                                "product {product_id} has {available} in stock, {requested} requested"
                            ),
                            field: Some(vec!["input".into(), "items".into()]),
                            product_id: ID(product_id.to_string()),
                            requested: i32::try_from(requested).unwrap_or(i32::MAX),
                            available: i32::try_from(available).unwrap_or(i32::MAX),
                        }),
                    })
                    .collect(),
            ),
            OrderError::InsufficientBalance { balance, required } => {
                user(UserError::InsufficientBalance(InsufficientBalanceError {
                    code: ErrorCode::InsufficientBalance,
                    message: format!("the balance of {balance} won does not cover {required} won"),
                    field: None,
                    balance: Won(balance),
                    required: Won(required),
                }))
            }
            OrderError::OrderNotFound => user(UserError::simple(
                ErrorCode::NotFound,
                "no such order",
                &["input", "orderId"],
            )),
            OrderError::InvalidState { action, status } => user(UserError::simple(
                ErrorCode::InvalidStateTransition,
                format!("cannot {action} an order that is {status}"),
                &["input", "orderId"],
            )),
            OrderError::CouponNotUsable(reason) => user(UserError::simple(
                ErrorCode::CouponNotUsable,
                reason,
                &["input", "couponId"],
            )),
            OrderError::IdempotencyKeyReused => user(UserError::simple(
                ErrorCode::IdempotencyKeyReused,
                "this idempotencyKey was already used with another request",
                &["input", "idempotencyKey"],
            )),
            OrderError::UnknownUser => Failure::App(AppError::UNKNOWN_USER),
            OrderError::Unconfirmed => Failure::App(AppError::Unconfirmed),
            OrderError::Db(err) => Failure::App(err.into()),
        }
    }
}

impl From<CouponError> for Failure {
    fn from(err: CouponError) -> Self {
        match err {
            CouponError::Invalid(invalid) => invalid.into(),
            CouponError::EventNotFound(id) => user(UserError::simple(
                ErrorCode::NotFound,
                format!("coupon event {id} does not exist"),
                &["input", "eventId"],
            )),
            CouponError::Exhausted { event_id } => {
                user(UserError::CouponExhausted(CouponExhaustedError {
                    code: ErrorCode::CouponExhausted,
                    message: format!("coupon event {event_id} has no coupons left"),
                    field: Some(vec!["input".into(), "eventId".into()]),
                    event_id: ID(event_id.to_string()),
                }))
            }
            CouponError::AlreadyIssued(id) => user(UserError::simple(
                ErrorCode::CouponAlreadyIssued,
                format!("you already hold the coupon of event {id}"),
                &["input", "eventId"],
            )),
            CouponError::NotActive { event_id, reason } => user(UserError::simple(
                ErrorCode::CouponEventNotActive,
                format!("coupon event {event_id} is not open: {reason}"),
                &["input", "eventId"],
            )),
            CouponError::UnknownUser => Failure::App(AppError::UNKNOWN_USER),
            CouponError::Unconfirmed => Failure::App(AppError::Unconfirmed),
            CouponError::Db(err) => Failure::App(err.into()),
        }
    }
}

/// A mutation payload: built from the result, or from user errors.
pub trait Payload<T>: Sized {
    fn success(value: T) -> Self;
    fn failure(errors: Vec<UserError>) -> Self;

    /// Resolves a use case's result: user errors into the payload, the rest to the top level;
    /// counts the outcome of `mutation` (`business_outcomes_total`).
    fn resolve<E: Into<Failure>>(
        mutation: &'static str,
        result: Result<T, E>,
    ) -> async_graphql::Result<Self> {
        match result.map_err(Into::into) {
            Ok(value) => {
                record_outcome(mutation, "OK");
                Ok(Self::success(value))
            }
            Err(Failure::User(errors)) => {
                for error in &errors {
                    record_outcome(mutation, error.error_code().as_str());
                }
                Ok(Self::failure(errors))
            }
            Err(Failure::App(err)) => {
                record_outcome(mutation, err.code());
                Err(err.into())
            }
        }
    }
}
