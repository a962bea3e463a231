//! GraphQL surface of orders: `placeOrder`, `createOrder`, `payOrder`, `cancelOrder`, `order(id)`
//! and the `Order` type (items, products, payments and coupons through per-request DataLoaders).

pub mod loaders;

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{order, order_item, payment};

use super::model::{LineProblem, OrderError, Payment};
use super::request::{OrderRequest, RawLine};
use crate::catalog::graphql::product::Product;
use crate::coupon::graphql::Coupon;
use crate::coupon::graphql::loaders::CouponLoader;
use crate::error::{AppError, InvalidInput};
use crate::graphql::context::viewer;
use crate::graphql::errors::{
    Counted, ErrorCode, Failure, InsufficientBalanceError, OutOfStockError, Outcomes, Payload,
    Refusal, UserError,
};
use crate::graphql::scalars::Won;
use crate::graphql::scalars::parse_id;
use crate::ordering::service::OrderingService;
use loaders::{OrderItemsLoader, PaymentLoader};

/// Where an order stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Enum)]
pub enum OrderStatus {
    /// Created, stock held until `expiresAt`, waiting for `payOrder`.
    Pending,
    /// Paid.
    Completed,
    /// Cancelled before payment; stock released.
    Cancelled,
    /// Not paid in time; stock released.
    Expired,
    /// Cancelled after payment; balance refunded, stock restored.
    Refunded,
}

impl From<order::OrderStatus> for OrderStatus {
    fn from(status: order::OrderStatus) -> Self {
        match status {
            order::OrderStatus::Pending => OrderStatus::Pending,
            order::OrderStatus::Completed => OrderStatus::Completed,
            order::OrderStatus::Cancelled => OrderStatus::Cancelled,
            order::OrderStatus::Expired => OrderStatus::Expired,
            order::OrderStatus::Refunded => OrderStatus::Refunded,
        }
    }
}

impl From<OrderStatus> for order::OrderStatus {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Pending => order::OrderStatus::Pending,
            OrderStatus::Completed => order::OrderStatus::Completed,
            OrderStatus::Cancelled => order::OrderStatus::Cancelled,
            OrderStatus::Expired => order::OrderStatus::Expired,
            OrderStatus::Refunded => order::OrderStatus::Refunded,
        }
    }
}

/// An order of one or more products.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct Order {
    #[graphql(skip)]
    order_id: i64,
    /// The order's id.
    pub id: ID,
    /// Where the order stands.
    pub status: OrderStatus,
    /// Sum of the lines at their unit prices.
    pub subtotal: Won,
    /// What the coupon takes off the subtotal, in won; 0 without a coupon.
    pub discount: Won,
    /// What the balance pays: subtotal minus discount.
    pub total: Won,
    /// When the order was placed.
    pub created_at: DateTime<Utc>,
    /// When it was paid; null if it never was.
    pub paid_at: Option<DateTime<Utc>>,
    /// Until when a PENDING order holds its stock.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was cancelled or refunded; null otherwise.
    pub cancelled_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    coupon_id: Option<i64>,
}

impl From<order::Model> for Order {
    fn from(row: order::Model) -> Self {
        Self {
            order_id: row.id,
            id: ID(row.id.to_string()),
            status: row.status.into(),
            subtotal: Won(row.subtotal),
            discount: Won(row.discount),
            total: Won(row.total),
            created_at: row.created_at,
            paid_at: row.paid_at,
            expires_at: row.expires_at,
            cancelled_at: row.cancelled_at,
            coupon_id: row.user_coupon_id,
        }
    }
}

#[ComplexObject]
impl Order {
    /// The coupon that discounts this order.
    async fn coupon(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Coupon>> {
        let Some(id) = self.coupon_id else {
            return Ok(None);
        };
        let coupon = ctx
            .data_unchecked::<DataLoader<CouponLoader>>()
            .load_one(id)
            .await
            .map_err(AppError::from)?;
        Ok(coupon.map(|(coupon, event)| Coupon::new(coupon, event)))
    }

    /// The lines, one per product.
    async fn items(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<OrderItem>> {
        let items = ctx
            .data_unchecked::<DataLoader<OrderItemsLoader>>()
            .load_one(self.order_id)
            .await
            .map_err(AppError::from)?;
        Ok(items
            .unwrap_or_default()
            .into_iter()
            .map(OrderItem::from)
            .collect())
    }

    /// The payment, once paid.
    async fn payment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<PaymentInfo>> {
        let payment = ctx
            .data_unchecked::<DataLoader<PaymentLoader>>()
            .load_one(self.order_id)
            .await
            .map_err(AppError::from)?;
        Ok(payment.map(PaymentInfo::from))
    }
}

/// One line of an order, at the unit price of the time of ordering.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct OrderItem {
    #[graphql(skip)]
    product_id: i64,
    /// Units ordered.
    pub quantity: i32,
    /// The product's price in won when the order was placed.
    pub unit_price: Won,
    /// `quantity` times `unitPrice`, in won.
    pub line_total: Won,
}

impl From<order_item::Model> for OrderItem {
    fn from(row: order_item::Model) -> Self {
        Self {
            product_id: row.product_id,
            quantity: i32::try_from(row.quantity).unwrap_or(i32::MAX),
            unit_price: Won(row.unit_price),
            line_total: Won(row.unit_price * row.quantity),
        }
    }
}

#[ComplexObject]
impl OrderItem {
    /// The product ordered.
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Product>> {
        Product::load(ctx, self.product_id).await
    }
}

/// Where a payment stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Enum)]
pub enum PaymentStatus {
    /// Taken from the balance.
    Success,
    /// Given back to the balance when the order was cancelled.
    Refunded,
}

impl From<payment::PaymentStatus> for PaymentStatus {
    fn from(status: payment::PaymentStatus) -> Self {
        match status {
            payment::PaymentStatus::Success => PaymentStatus::Success,
            payment::PaymentStatus::Refunded => PaymentStatus::Refunded,
        }
    }
}

/// The payment of an order from the balance.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "Payment")]
pub struct PaymentInfo {
    /// The payment's id.
    pub id: ID,
    /// Won taken from the balance: the order's `total`.
    pub amount: Won,
    /// Whether it was refunded.
    pub status: PaymentStatus,
    /// When it was taken.
    pub paid_at: DateTime<Utc>,
    /// When it was given back; null unless REFUNDED.
    pub refunded_at: Option<DateTime<Utc>>,
}

impl From<payment::Model> for PaymentInfo {
    fn from(row: payment::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            amount: Won(row.amount),
            status: row.status.into(),
            paid_at: row.paid_at,
            refunded_at: row.refunded_at,
        }
    }
}

/// One line of a new order.
#[derive(InputObject)]
pub struct OrderItemInput {
    /// The product to order.
    pub product_id: ID,
    /// Units, 1 to 1000 (also for all lines of one product together).
    pub quantity: i32,
}

/// A new order, for `placeOrder` or `createOrder`.
#[derive(InputObject)]
pub struct PlaceOrderInput {
    /// The lines, 1 to 100; several lines of one product add up.
    pub items: Vec<OrderItemInput>,
    /// One of the viewer's AVAILABLE coupons.
    pub coupon_id: Option<ID>,
    /// Optional key (1 to 200 characters): sending the same request again with it returns the
    /// first result.
    pub idempotency_key: Option<String>,
}

/// The PENDING order to pay.
#[derive(InputObject)]
pub struct PayOrderInput {
    /// One of the viewer's orders.
    pub order_id: ID,
    /// Optional key (1 to 200 characters): sending the same request again with it returns the
    /// first result.
    pub idempotency_key: Option<String>,
}

/// The order to cancel or refund.
#[derive(InputObject)]
pub struct CancelOrderInput {
    /// One of the viewer's orders (administrators: any order).
    pub order_id: ID,
    /// Optional key (1 to 200 characters): sending the same request again with it returns the
    /// first result. Ignored for administrators.
    pub idempotency_key: Option<String>,
}

/// The result of an order mutation: the order as it is now, or why nothing changed.
// (its `viewer` field is resolved in users::graphql::payloads, next to `User`)
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct OrderPayload {
    /// The order placed, paid or cancelled; null when refused.
    pub order: Option<Order>,
    /// Why nothing changed (every failing line at once); empty on success.
    pub user_errors: Vec<UserError>,
}

impl Payload<order::Model> for OrderPayload {
    fn success(row: order::Model) -> Self {
        Self {
            order: Some(row.into()),
            user_errors: vec![],
        }
    }

    fn failure(user_errors: Vec<UserError>) -> Self {
        Self {
            order: None,
            user_errors,
        }
    }
}

fn order_request(input: &PlaceOrderInput) -> Result<OrderRequest, InvalidInput> {
    let lines: Vec<RawLine> = input
        .items
        .iter()
        .map(|item| RawLine {
            product_id: parse_id(&item.product_id),
            quantity: i64::from(item.quantity),
        })
        .collect();
    OrderRequest::parse(&lines, input.coupon_id.as_ref().map(parse_id))
}

fn order_id(id: &ID) -> Result<i64, OrderError> {
    parse_id(id).ok_or_else(|| InvalidInput::new("orderId", "is not an order id").into())
}

#[derive(Default)]
pub struct OrderingQuery;

#[Object]
impl OrderingQuery {
    /// One of the viewer's orders (administrators: any order); null when there is none.
    /// UNAUTHENTICATED without credentials.
    async fn order(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The order's id; one that is not an order id is BAD_USER_INPUT.")] id: ID,
    ) -> async_graphql::Result<Option<Order>> {
        let viewer = viewer(ctx);
        let user_id = viewer.user_id;
        if user_id.is_none() && !viewer.is_admin() {
            return Err(AppError::Unauthenticated.into());
        }
        let id =
            parse_id(&id).ok_or_else(|| AppError::BadUserInput("id is not an order id".into()))?;
        let order = ctx
            .data_unchecked::<OrderingService>()
            .get(id)
            .await
            .map_err(AppError::from)?;
        Ok(order
            .filter(|o| viewer.is_admin() || Some(o.user_id) == user_id)
            .map(Order::from))
    }
}

#[derive(Default)]
pub struct OrderingMutation;

#[Object]
impl OrderingMutation {
    /// Orders products and pays from the balance at once: COMPLETED, or nothing changes
    /// (signed-in users). `userErrors`: INVALID_INPUT, IDEMPOTENCY_KEY_REUSED, NOT_FOUND (a
    /// product), OUT_OF_STOCK (one per line), COUPON_NOT_USABLE, INSUFFICIENT_BALANCE.
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The lines, an optional coupon and an optional idempotency key.")]
        input: PlaceOrderInput,
    ) -> async_graphql::Result<OrderPayload> {
        place(ctx, input, Payment::Now).await
    }

    /// Orders products to pay later: PENDING, stock and coupon held until `expiresAt`
    /// (signed-in users). Refused like `placeOrder`, also when the balance does not cover the
    /// total now. `userErrors`: INVALID_INPUT, IDEMPOTENCY_KEY_REUSED, NOT_FOUND (a product),
    /// OUT_OF_STOCK (one per line), COUPON_NOT_USABLE, INSUFFICIENT_BALANCE.
    async fn create_order(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The lines, an optional coupon and an optional idempotency key.")]
        input: PlaceOrderInput,
    ) -> async_graphql::Result<OrderPayload> {
        place(ctx, input, Payment::Later).await
    }

    /// Pays a PENDING order of the viewer's from the balance: COMPLETED. `userErrors`:
    /// INVALID_INPUT, IDEMPOTENCY_KEY_REUSED, NOT_FOUND, INVALID_STATE_TRANSITION (not PENDING,
    /// or past `expiresAt`: then it is EXPIRED), INSUFFICIENT_BALANCE.
    async fn pay_order(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The order to pay.")] input: PayOrderInput,
    ) -> async_graphql::Result<OrderPayload> {
        let user_id = viewer(ctx).require_user()?;
        let result = match order_id(&input.order_id) {
            Ok(id) => {
                ctx.data_unchecked::<OrderingService>()
                    .pay(user_id, id, input.idempotency_key.as_deref())
                    .await
            }
            Err(err) => Err(err),
        };
        OrderPayload::resolve(&PAY_ORDER, result)
    }

    /// Cancels a PENDING order (CANCELLED) or refunds a COMPLETED one (REFUNDED); the viewer's
    /// own, or any for administrators. `userErrors`: INVALID_INPUT, IDEMPOTENCY_KEY_REUSED,
    /// NOT_FOUND, INVALID_STATE_TRANSITION (already CANCELLED, EXPIRED or REFUNDED).
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The order to cancel.")] input: CancelOrderInput,
    ) -> async_graphql::Result<OrderPayload> {
        let viewer = viewer(ctx);
        let owner = if viewer.is_admin() {
            None
        } else {
            Some(viewer.require_user()?)
        };
        let result = match order_id(&input.order_id) {
            Ok(id) => {
                ctx.data_unchecked::<OrderingService>()
                    .cancel(owner, id, input.idempotency_key.as_deref())
                    .await
            }
            Err(err) => Err(err),
        };
        OrderPayload::resolve(&CANCEL_ORDER, result)
    }
}

async fn place(
    ctx: &Context<'_>,
    input: PlaceOrderInput,
    payment: Payment,
) -> async_graphql::Result<OrderPayload> {
    let user_id = viewer(ctx).require_user()?;
    let result = match order_request(&input) {
        Ok(request) => {
            ctx.data_unchecked::<OrderingService>()
                .place(user_id, request, payment, input.idempotency_key.as_deref())
                .await
        }
        Err(invalid) => Err(invalid.into()),
    };
    let mutation = match payment {
        Payment::Now => &PLACE_ORDER,
        Payment::Later => &CREATE_ORDER,
    };
    OrderPayload::resolve(mutation, result)
}

const PLACE_ORDER: Counted<OrderError> = Counted::new("placeOrder");
const CREATE_ORDER: Counted<OrderError> = Counted::new("createOrder");
const PAY_ORDER: Counted<OrderError> = Counted::new("payOrder");
const CANCEL_ORDER: Counted<OrderError> = Counted::new("cancelOrder");

/// The mutations of orders whose outcomes are counted.
pub static COUNTED: [Outcomes; 4] = [
    PLACE_ORDER.outcomes(),
    CREATE_ORDER.outcomes(),
    PAY_ORDER.outcomes(),
    CANCEL_ORDER.outcomes(),
];

/// The codes that `From<OrderError> for Failure` below comes to.
impl Refusal for OrderError {
    const CODES: &'static [ErrorCode] = &[
        ErrorCode::NotFound,
        ErrorCode::OutOfStock,
        ErrorCode::InsufficientBalance,
        ErrorCode::InvalidStateTransition,
        ErrorCode::CouponNotUsable,
    ];
}

/// What a client sees of each refusal.
impl From<OrderError> for Failure {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::Common(err) => err.into(),
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
                Failure::user(UserError::InsufficientBalance(InsufficientBalanceError {
                    code: ErrorCode::InsufficientBalance,
                    message: format!("the balance of {balance} won does not cover {required} won"),
                    field: None,
                    balance: Won(balance),
                    required: Won(required),
                }))
            }
            OrderError::OrderNotFound => Failure::user(UserError::simple(
                ErrorCode::NotFound,
                "no such order",
                &["input", "orderId"],
            )),
            OrderError::InvalidState { action, status } => Failure::user(UserError::simple(
                ErrorCode::InvalidStateTransition,
                format!("cannot {action} an order that is {status}"),
                &["input", "orderId"],
            )),
            OrderError::CouponNotUsable(reason) => Failure::user(UserError::simple(
                ErrorCode::CouponNotUsable,
                reason,
                &["input", "couponId"],
            )),
        }
    }
}
