//! What a client sees of a failed use case, decided in one place.
//!
//! Two kinds reach a client:
//! - **User errors** (business outcomes): data in the payload's `userErrors`, typed through the
//!   [`UserError`] interface with an [`ErrorCode`].
//! - **Top-level errors** ([`AppError`]): `errors[].extensions.code` such as UNAUTHENTICATED,
//!   FORBIDDEN, BAD_USER_INPUT or INTERNAL_SERVER_ERROR. An internal error is logged with its
//!   whole cause chain and reaches the client only as INTERNAL_SERVER_ERROR.
//!
//! The shared refusals ([`CommonError`], [`InvalidInput`]) are mapped here; each domain maps its
//! own error enum to a [`Failure`] next to its resolvers (`<domain>/graphql.rs`), and declares
//! there which codes it can come to ([`Refusal`]): each [`Counted`] mutation's outcomes are
//! counted in `commerce_business_outcomes_total`, every one of them from start-up.

use std::marker::PhantomData;

use async_graphql::{ComplexObject, Context, Enum, ErrorExtensions, ID, Interface, SimpleObject};

use crate::catalog::graphql::product::Product;
use crate::catalog::service::CatalogService;
use crate::coupon::graphql::event::CouponEvent;
use crate::coupon::service::CouponService;
use crate::error::{AppError, CommonError, InvalidInput, RETRY_AFTER_SECS};
use crate::graphql::scalars::Won;
use crate::infra::meters::BUSINESS_OUTCOMES;

/// Codes of the business outcomes reported in `userErrors`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Enum)]
pub enum ErrorCode {
    /// An input field is malformed or out of range; `field` names it.
    InvalidInput,
    /// The product, order or coupon event named by `field` does not exist (or is not the
    /// viewer's).
    NotFound,
    /// The `idempotencyKey` was already used with another request.
    IdempotencyKeyReused,
    /// The charge would take the balance over its ceiling (BalanceLimitError).
    BalanceLimitExceeded,
    /// A line asks for more units than the product has (OutOfStockError, one per line).
    OutOfStock,
    /// The balance does not cover the order's total (InsufficientBalanceError).
    InsufficientBalance,
    /// The order's status does not allow this (e.g. paying an order that is not PENDING).
    InvalidStateTransition,
    /// The coupon cannot pay part of this order (not the viewer's, not AVAILABLE, expired, or
    /// the subtotal is below its `minOrderAmount`); `message` says which.
    CouponNotUsable,
    /// The coupon event has no coupons left (CouponExhaustedError).
    CouponExhausted,
    /// The viewer already holds this event's coupon: one per user.
    CouponAlreadyIssued,
    /// The coupon event has not started yet or has ended.
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
    field(
        name = "code",
        ty = "&ErrorCode",
        desc = "What went wrong, for programs."
    ),
    field(
        name = "message",
        ty = "&String",
        desc = "What went wrong, for people (English)."
    ),
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
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people (English).
    pub message: String,
    /// Path of the input field at fault, if any.
    pub field: Option<Vec<String>>,
}

/// A charge would take the balance over its ceiling.
#[derive(Clone, Debug, SimpleObject)]
pub struct BalanceLimitError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people (English).
    pub message: String,
    /// Path of the input field at fault, if any.
    pub field: Option<Vec<String>>,
    /// The balance now, in won.
    pub balance: Won,
    /// The most won a balance may hold.
    pub max_balance: Won,
}

/// A line asks for more units than the product has.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct OutOfStockError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people (English).
    pub message: String,
    /// Path of the input field at fault, if any.
    pub field: Option<Vec<String>>,
    /// The product short of stock.
    pub product_id: ID,
    /// Units the order asks for (all its lines of the product together).
    pub requested: i32,
    /// Units in stock now.
    pub available: i32,
}

#[ComplexObject]
impl OutOfStockError {
    /// In-stock products of the same category, best sellers first.
    async fn alternatives(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 3, desc = "How many at most; clamped to 1 to 20.")] limit: i32,
    ) -> async_graphql::Result<Vec<Product>> {
        let id = self.product_id.parse::<i64>().unwrap_or_default();
        let catalog = ctx.data_unchecked::<CatalogService>();
        let Some(product) = catalog.get(id).await.map_err(AppError::from)? else {
            return Ok(vec![]);
        };
        Product::alternatives_to(ctx, product.id, &product.category, limit).await
    }
}

/// The balance does not cover the order.
#[derive(Clone, Debug, SimpleObject)]
pub struct InsufficientBalanceError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people (English).
    pub message: String,
    /// Path of the input field at fault, if any.
    pub field: Option<Vec<String>>,
    /// The balance now, in won.
    pub balance: Won,
    /// The order's total, in won.
    pub required: Won,
}

/// The event has no coupons left.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct CouponExhaustedError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people (English).
    pub message: String,
    /// Path of the input field at fault, if any.
    pub field: Option<Vec<String>>,
    /// The event that ran out.
    pub event_id: ID,
}

#[ComplexObject]
impl CouponExhaustedError {
    /// Up to 5 other events open now with coupons left.
    async fn alternatives(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<CouponEvent>> {
        let id = self.event_id.parse::<i64>().unwrap_or_default();
        let events = ctx
            .data_unchecked::<CouponService>()
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

/// A refused input field becomes an INVALID_INPUT user error naming `input.<field>`.
fn invalid_input(err: InvalidInput) -> UserError {
    let mut path = vec!["input".to_owned()];
    path.extend(err.field.split('.').map(str::to_owned));
    UserError::Simple(SimpleUserError {
        code: ErrorCode::InvalidInput,
        message: err.message,
        field: Some(path),
    })
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if let AppError::Internal(cause) = &err {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let code = err.code();
        let retry = matches!(err, AppError::Unavailable | AppError::Unconfirmed);
        async_graphql::Error::new(err.message()).extend_with(|_, ext| {
            ext.set("code", code.as_str());
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
        Failure::User(vec![invalid_input(err)])
    }
}

impl Failure {
    /// One user error.
    pub fn user(error: UserError) -> Self {
        Failure::User(vec![error])
    }
}

impl From<CommonError> for Failure {
    fn from(err: CommonError) -> Self {
        match err {
            CommonError::Invalid(invalid) => invalid.into(),
            CommonError::IdempotencyKeyReused => Failure::user(UserError::simple(
                ErrorCode::IdempotencyKeyReused,
                "this idempotencyKey was already used with another request",
                &["input", "idempotencyKey"],
            )),
            CommonError::UnknownUser => Failure::App(AppError::UNKNOWN_USER),
            CommonError::Unconfirmed => Failure::App(AppError::Unconfirmed),
            CommonError::Overloaded => Failure::App(AppError::Unavailable),
            CommonError::Db(err) => Failure::App(err.into()),
        }
    }
}

/// A domain's error type, with the user error codes it can come to besides those of the
/// [`CommonError`] it carries.
pub trait Refusal: Into<Failure> {
    const CODES: &'static [ErrorCode];
}

/// The user error codes every [`CommonError`] can come to.
static COMMON_CODES: [ErrorCode; 2] = [ErrorCode::InvalidInput, ErrorCode::IdempotencyKeyReused];

impl Refusal for CommonError {
    const CODES: &'static [ErrorCode] = &[];
}

/// A mutation whose outcomes are counted: its name (the `mutation` label) and the error type of
/// its use case, which decides the codes it can come to.
pub struct Counted<E> {
    name: &'static str,
    error: PhantomData<fn() -> E>,
}

/// A [`Counted`] mutation's series: its name and its codes.
pub struct Outcomes {
    name: &'static str,
    codes: &'static [ErrorCode],
}

impl<E: Refusal> Counted<E> {
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            error: PhantomData,
        }
    }

    pub const fn outcomes(&self) -> Outcomes {
        Outcomes {
            name: self.name,
            codes: E::CODES,
        }
    }
}

impl Outcomes {
    /// `(mutation, outcome)` for OK and each user error code it can come to.
    pub fn series(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        let codes = COMMON_CODES.iter().chain(self.codes).map(|c| c.as_str());
        std::iter::once("OK").chain(codes).map(|o| (self.name, o))
    }

    fn record(&self, outcome: &str) {
        metrics::counter!(BUSINESS_OUTCOMES, "mutation" => self.name, "outcome" => outcome.to_owned())
            .increment(1);
    }

    fn record_user_error(&self, code: ErrorCode) {
        debug_assert!(
            COMMON_CODES.contains(&code) || self.codes.contains(&code),
            "{} came to {code:?}: add it to the CODES of its Refusal",
            self.name
        );
        self.record(code.as_str());
    }
}

/// A mutation payload: built from the result, or from user errors.
pub trait Payload<T>: Sized {
    fn success(value: T) -> Self;
    fn failure(errors: Vec<UserError>) -> Self;

    /// Resolves a use case's result: user errors into the payload, the rest to the top level;
    /// counts the outcome of `mutation` (`commerce_business_outcomes_total`).
    fn resolve<E: Refusal>(
        mutation: &Counted<E>,
        result: Result<T, E>,
    ) -> async_graphql::Result<Self> {
        let counted = mutation.outcomes();
        match result.map_err(Into::into) {
            Ok(value) => {
                counted.record("OK");
                Ok(Self::success(value))
            }
            Err(Failure::User(errors)) => {
                for error in &errors {
                    counted.record_user_error(error.error_code());
                }
                Ok(Self::failure(errors))
            }
            Err(Failure::App(err)) => {
                counted.record(err.code().as_str());
                Err(err.into())
            }
        }
    }
}
