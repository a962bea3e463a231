//! Order use cases and their transactions.
//!
//! Lock order, everywhere: the order row (pay, cancel, expire), then product rows by ascending id,
//! then the user's balance row. Every check happens under those locks and either everything is
//! applied or nothing (a refusal rolls back). Transactions aborted by the database (deadlock,
//! serialization failure) are retried by [`Database::write`]. Stock changes are published after
//! commit.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use entity::{balance, order, order_item, payment, product};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::request::{OrderLine, OrderRequest};
use crate::balance::service::{PAYMENT, REFUND, append_ledger};
use crate::coupon::service as coupons;
use crate::error::InvalidInput;
use crate::infra::bus::{DomainEvent, EventBus};
use crate::infra::db::{AttemptError, Database, WriteTxn};
use crate::infra::idempotency::{IdempotentRequest, Lookup};
use crate::infra::paging::{Page, PageRequest};
use crate::outbox;
use crate::outbox::relay::OutboxSignal;
use crate::ranking::sales::{self, Sale};
use crate::ranking::service::SalesSignal;

/// Order statuses as stored.
pub mod status {
    pub const PENDING: &str = "PENDING";
    pub const COMPLETED: &str = "COMPLETED";
    pub const CANCELLED: &str = "CANCELLED";
    pub const EXPIRED: &str = "EXPIRED";
    pub const REFUNDED: &str = "REFUNDED";
}

#[derive(Copy, Clone, Debug)]
pub struct OrderSettings {
    /// How long a PENDING order holds its stock.
    pub pending_ttl: Duration,
    /// The business day of sales.
    pub time_zone: Tz,
}

#[derive(Clone)]
pub struct OrderingService {
    db: Database,
    bus: EventBus,
    sales: SalesSignal,
    deliveries: OutboxSignal,
    settings: OrderSettings,
}

/// Why one line of an order cannot be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineProblem {
    ProductNotFound {
        product_id: i64,
    },
    OutOfStock {
        product_id: i64,
        requested: i64,
        available: i64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("some lines cannot be served")]
    Lines(Vec<LineProblem>),
    #[error("balance {balance} is less than {required}")]
    InsufficientBalance { balance: i64, required: i64 },
    #[error("order not found")]
    OrderNotFound,
    #[error("cannot {action} an order that is {status}")]
    InvalidState {
        action: &'static str,
        status: String,
    },
    #[error("coupon not usable: {0}")]
    CouponNotUsable(String),
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    /// The viewer's user does not exist (deleted after their credentials were issued).
    #[error("no such user")]
    UnknownUser,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Whether a new order is paid in the same transaction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Payment {
    Now,
    Later,
}

/// What an order mutation returns, also when replayed.
#[derive(Serialize, Deserialize)]
struct OrderReceipt {
    order_id: i64,
}

/// The result of an attempt: the order and the stock it left behind (to publish after commit).
struct Applied {
    order: order::Model,
    stock: Vec<(i64, i64)>,
    /// Sales were recorded or reversed (the ranking must look again).
    sold: bool,
}

type Attempt = Result<Result<Applied, OrderError>, AttemptError>;

/// The money side of a payment.
#[derive(Copy, Clone, Debug)]
struct Charge {
    user_id: i64,
    order_id: i64,
    total: i64,
    /// The locked balance before the payment.
    balance_before: i64,
}

/// An order line with its price, as sales and events see it.
#[derive(Copy, Clone, Debug)]
struct PricedLine {
    product_id: i64,
    quantity: i64,
    unit_price: i64,
}

impl From<&order_item::Model> for PricedLine {
    fn from(item: &order_item::Model) -> Self {
        Self {
            product_id: item.product_id,
            quantity: item.quantity,
            unit_price: item.unit_price,
        }
    }
}

impl OrderingService {
    pub fn new(
        db: Database,
        bus: EventBus,
        sales: SalesSignal,
        deliveries: OutboxSignal,
        settings: OrderSettings,
    ) -> Self {
        Self {
            db,
            bus,
            sales,
            deliveries,
            settings,
        }
    }

    /// Places an order paid at once (COMPLETED) or held for later payment (PENDING).
    pub async fn place(
        &self,
        user_id: i64,
        request: OrderRequest,
        payment: Payment,
        idempotency_key: Option<&str>,
    ) -> Result<order::Model, OrderError> {
        let operation = match payment {
            Payment::Now => "placeOrder",
            Payment::Later => "createOrder",
        };
        let idempotency = idempotent(user_id, idempotency_key, operation, &request)?;
        let applied = self
            .db
            .write(|| self.place_attempt(user_id, &request, payment, idempotency.as_ref()))
            .await??;
        Ok(self.published(applied))
    }

    /// Pays a PENDING order from the balance.
    pub async fn pay(
        &self,
        user_id: i64,
        order_id: i64,
        idempotency_key: Option<&str>,
    ) -> Result<order::Model, OrderError> {
        let idempotency = idempotent(user_id, idempotency_key, "payOrder", &order_id)?;
        let applied = self
            .db
            .write(|| self.pay_attempt(user_id, order_id, idempotency.as_ref()))
            .await??;
        Ok(self.published(applied))
    }

    /// Cancels a PENDING order (CANCELLED, stock released) or refunds a COMPLETED one (REFUNDED:
    /// balance refunded, stock restored, sales reversed). `as_admin` may cancel anyone's order.
    pub async fn cancel(
        &self,
        user_id: Option<i64>,
        order_id: i64,
        idempotency_key: Option<&str>,
    ) -> Result<order::Model, OrderError> {
        let idempotency = match user_id {
            Some(user) => idempotent(user, idempotency_key, "cancelOrder", &order_id)?,
            None => None,
        };
        let applied = self
            .db
            .write(|| self.cancel_attempt(user_id, order_id, idempotency.as_ref()))
            .await??;
        Ok(self.published(applied))
    }

    /// Expires one overdue PENDING order; `false` when it was no longer PENDING or not overdue.
    pub async fn expire(&self, order_id: i64) -> Result<bool, DbErr> {
        let applied = self.db.write(|| self.expire_attempt(order_id)).await?;
        Ok(match applied {
            Some(applied) => {
                self.published(applied);
                true
            }
            None => false,
        })
    }

    /// Ids of PENDING orders past their expiry, oldest first.
    pub async fn overdue(&self, limit: u64) -> Result<Vec<i64>, DbErr> {
        order::Entity::find()
            .select_only()
            .column(order::Column::Id)
            .filter(order::Column::Status.eq(status::PENDING))
            .filter(order::Column::ExpiresAt.lte(Utc::now()))
            .order_by_asc(order::Column::ExpiresAt)
            .limit(limit)
            .into_tuple()
            .all(self.db.conn())
            .await
    }

    pub async fn get(&self, order_id: i64) -> Result<Option<order::Model>, DbErr> {
        order::Entity::find_by_id(order_id)
            .one(self.db.conn())
            .await
    }

    /// A user's orders, newest first, optionally of one status.
    pub async fn list_for_user(
        &self,
        user_id: i64,
        status: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<order::Model>, DbErr> {
        let mut scope = order::Entity::find().filter(order::Column::UserId.eq(user_id));
        if let Some(status) = status {
            scope = scope.filter(order::Column::Status.eq(status));
        }
        let total = scope.clone().count(self.db.conn()).await?;
        if let Some(after) = page.after {
            scope = scope.filter(order::Column::Id.lt(after));
        }
        let rows = scope
            .order_by_desc(order::Column::Id)
            .limit(page.first + 1)
            .all(self.db.conn())
            .await?;
        Ok(Page::from_overfetch(rows, page, total))
    }

    /// The items of several orders (one query), by order id.
    pub async fn items_of(
        &self,
        order_ids: &[i64],
    ) -> Result<HashMap<i64, Vec<order_item::Model>>, DbErr> {
        let rows = order_item::Entity::find()
            .filter(order_item::Column::OrderId.is_in(order_ids.iter().copied()))
            .order_by_asc(order_item::Column::Id)
            .all(self.db.conn())
            .await?;
        let mut by_order: HashMap<i64, Vec<order_item::Model>> = HashMap::new();
        for row in rows {
            by_order.entry(row.order_id).or_default().push(row);
        }
        Ok(by_order)
    }

    /// The payments of several orders (one query), by order id.
    pub async fn payments_of(
        &self,
        order_ids: &[i64],
    ) -> Result<HashMap<i64, payment::Model>, DbErr> {
        let rows = payment::Entity::find()
            .filter(payment::Column::OrderId.is_in(order_ids.iter().copied()))
            .all(self.db.conn())
            .await?;
        Ok(rows.into_iter().map(|p| (p.order_id, p)).collect())
    }

    fn published(&self, applied: Applied) -> order::Model {
        if applied.sold {
            // a payment or refund: new sales for the ranking, a new event for the data platform
            self.sales.sales_changed();
            self.deliveries.wake();
            let total = u64::try_from(applied.order.total).unwrap_or(0);
            if applied.order.status == status::REFUNDED {
                metrics::counter!("refunded_won_total").increment(total);
            } else {
                metrics::counter!("revenue_won_total").increment(total);
            }
        }
        for (product_id, stock) in applied.stock {
            self.bus
                .publish(DomainEvent::StockChanged { product_id, stock });
        }
        applied.order
    }

    async fn place_attempt(
        &self,
        user_id: i64,
        request: &OrderRequest,
        payment: Payment,
        idempotency: Option<&IdempotentRequest>,
    ) -> Attempt {
        let txn = self.db.begin_write().await?;
        if let Some(replayed) = replay(&*txn, idempotency).await? {
            txn.rollback().await?;
            return Ok(replayed);
        }
        let products = lock_products(&*txn, &request.product_ids()).await?;
        let problems = line_problems(&request.lines, &products);
        if !problems.is_empty() {
            txn.rollback().await?;
            return Ok(Err(OrderError::Lines(problems)));
        }
        let priced: Vec<(OrderLine, i64)> = request
            .lines
            .iter()
            .map(|line| (*line, products[&line.product_id].price))
            .collect();
        let subtotal: i64 = priced
            .iter()
            .map(|(line, price)| line.quantity * price)
            .sum();
        let now = Utc::now();
        let coupon = match request.coupon_id {
            None => None,
            Some(coupon_id) => {
                match coupons::apply(&*txn, user_id, coupon_id, subtotal, now).await? {
                    Ok(applied) => Some(applied),
                    Err(coupons::NotUsable(reason)) => {
                        txn.rollback().await?;
                        return Ok(Err(OrderError::CouponNotUsable(reason)));
                    }
                }
            }
        };
        let discount = coupon.map_or(0, |c| c.discount);
        let total = subtotal - discount;
        let Some(balance) = lock_balance(&*txn, user_id).await? else {
            txn.rollback().await?;
            return Ok(Err(OrderError::UnknownUser));
        };
        if balance < total {
            txn.rollback().await?;
            return Ok(Err(OrderError::InsufficientBalance {
                balance,
                required: total,
            }));
        }
        let mut stock = Vec::with_capacity(priced.len());
        for (line, _) in &priced {
            if !take_stock(&*txn, line.product_id, line.quantity).await? {
                return Err(AttemptError::Contended);
            }
            stock.push((
                line.product_id,
                products[&line.product_id].stock - line.quantity,
            ));
        }
        // written in its final state at once: COMPLETED and paid, or PENDING until `expires_at`
        let (initial_status, expires_at, paid_at) = match payment {
            Payment::Now => (status::COMPLETED, None, Some(now)),
            Payment::Later => (status::PENDING, Some(now + self.settings.pending_ttl), None),
        };
        let order = order::Entity::insert(order::ActiveModel {
            user_id: Set(user_id),
            status: Set(initial_status.to_owned()),
            subtotal: Set(subtotal),
            discount: Set(discount),
            total: Set(total),
            user_coupon_id: Set(coupon.map(|c| c.coupon_id)),
            expires_at: Set(expires_at),
            created_at: Set(now),
            updated_at: Set(now),
            paid_at: Set(paid_at),
            cancelled_at: Set(None),
            ..Default::default()
        })
        .exec_with_returning(&*txn)
        .await?;
        let order_id = order.id;
        let items: Vec<order_item::ActiveModel> = priced
            .iter()
            .map(|(line, price)| order_item::ActiveModel {
                order_id: Set(order_id),
                product_id: Set(line.product_id),
                quantity: Set(line.quantity),
                unit_price: Set(*price),
                ..Default::default()
            })
            .collect();
        order_item::Entity::insert_many(items)
            .exec_without_returning(&*txn)
            .await?;
        if let Some(coupon) = coupon {
            let used_at = (payment == Payment::Now).then_some(now);
            coupons::hold(&*txn, coupon.coupon_id, order_id, used_at).await?;
        }
        if payment == Payment::Now {
            let lines: Vec<PricedLine> = priced
                .iter()
                .map(|(line, price)| PricedLine {
                    product_id: line.product_id,
                    quantity: line.quantity,
                    unit_price: *price,
                })
                .collect();
            let names = products
                .iter()
                .map(|(id, p)| (*id, p.name.clone()))
                .collect();
            let charge = Charge {
                user_id,
                order_id,
                total,
                balance_before: balance,
            };
            self.complete_payment(&*txn, charge, &order, &lines, &names, now)
                .await?;
        }
        finish(txn, idempotency, order, stock, payment == Payment::Now).await
    }

    async fn pay_attempt(
        &self,
        user_id: i64,
        order_id: i64,
        idempotency: Option<&IdempotentRequest>,
    ) -> Attempt {
        let txn = self.db.begin_write().await?;
        let Some(order) = lock_order(&*txn, order_id, Some(user_id)).await? else {
            txn.rollback().await?;
            return Ok(Err(OrderError::OrderNotFound));
        };
        // looked up under the order's lock: a repeat that waited for it finds the first result
        if let Some(replayed) = replay(&*txn, idempotency).await? {
            txn.rollback().await?;
            return Ok(replayed);
        }
        if order.status != status::PENDING {
            txn.rollback().await?;
            return Ok(Err(OrderError::InvalidState {
                action: "pay",
                status: order.status,
            }));
        }
        let now = Utc::now();
        if order.expires_at.is_some_and(|at| at <= now) {
            // overdue: expire it now, so a payment racing the expiry worker has one outcome
            let stock = self.release(&*txn, &order, status::EXPIRED, now).await?;
            txn.commit().await?;
            self.published(Applied {
                order: order.clone(),
                stock,
                sold: false,
            });
            return Ok(Err(OrderError::InvalidState {
                action: "pay",
                status: status::EXPIRED.to_owned(),
            }));
        }
        let items = load_items(&*txn, order_id).await?;
        let Some(balance) = lock_balance(&*txn, user_id).await? else {
            txn.rollback().await?;
            return Ok(Err(OrderError::UnknownUser));
        };
        if balance < order.total {
            txn.rollback().await?;
            return Ok(Err(OrderError::InsufficientBalance {
                balance,
                required: order.total,
            }));
        }
        let names = product_names(&*txn, &items).await?;
        let charge = Charge {
            user_id,
            order_id,
            total: order.total,
            balance_before: balance,
        };
        let lines: Vec<PricedLine> = items.iter().map(PricedLine::from).collect();
        if let Some(coupon_id) = order.user_coupon_id {
            coupons::hold(&*txn, coupon_id, order_id, Some(now)).await?;
        }
        let order = mark_paid(&*txn, &order, now).await?;
        self.complete_payment(&*txn, charge, &order, &lines, &names, now)
            .await?;
        finish(txn, idempotency, order, vec![], true).await
    }

    async fn cancel_attempt(
        &self,
        user_id: Option<i64>,
        order_id: i64,
        idempotency: Option<&IdempotentRequest>,
    ) -> Attempt {
        let txn = self.db.begin_write().await?;
        let Some(order) = lock_order(&*txn, order_id, user_id).await? else {
            txn.rollback().await?;
            return Ok(Err(OrderError::OrderNotFound));
        };
        // looked up under the order's lock: a repeat that waited for it finds the first result
        if let Some(replayed) = replay(&*txn, idempotency).await? {
            txn.rollback().await?;
            return Ok(replayed);
        }
        let now = Utc::now();
        let refunded = order.status == status::COMPLETED;
        let stock = match order.status.as_str() {
            status::PENDING => self.release(&*txn, &order, status::CANCELLED, now).await?,
            status::COMPLETED => self.refund(&*txn, &order, now).await?,
            _ => {
                txn.rollback().await?;
                return Ok(Err(OrderError::InvalidState {
                    action: "cancel",
                    status: order.status,
                }));
            }
        };
        let order = load_order(&*txn, order_id).await?;
        finish(txn, idempotency, order, stock, refunded).await
    }

    async fn expire_attempt(&self, order_id: i64) -> Result<Option<Applied>, AttemptError> {
        let txn = self.db.begin_write().await?;
        let now = Utc::now();
        let order = lock_order(&*txn, order_id, None).await?;
        let Some(order) = order
            .filter(|o| o.status == status::PENDING && o.expires_at.is_some_and(|at| at <= now))
        else {
            txn.rollback().await?;
            return Ok(None);
        };
        let stock = self.release(&*txn, &order, status::EXPIRED, now).await?;
        let order = load_order(&*txn, order_id).await?;
        txn.commit().await?;
        Ok(Some(Applied {
            order,
            stock,
            sold: false,
        }))
    }

    /// Deducts the total from the (locked) balance and completes the order: payment, ledger,
    /// sales of the day and the ORDER_COMPLETED outbox event.
    async fn complete_payment(
        &self,
        conn: &impl ConnectionTrait,
        charge: Charge,
        order: &order::Model,
        lines: &[PricedLine],
        names: &HashMap<i64, String>,
        now: DateTime<Utc>,
    ) -> Result<(), AttemptError> {
        let Charge {
            user_id,
            order_id,
            total,
            ..
        } = charge;
        let deducted = balance::Entity::update_many()
            .col_expr(
                balance::Column::Amount,
                Expr::col(balance::Column::Amount).sub(total),
            )
            .col_expr(balance::Column::UpdatedAt, Expr::value(now))
            .filter(balance::Column::UserId.eq(user_id))
            .filter(balance::Column::Amount.gte(total))
            .exec(conn)
            .await?;
        if deducted.rows_affected != 1 {
            return Err(AttemptError::Contended);
        }
        append_ledger(
            conn,
            charge.user_id,
            PAYMENT,
            -charge.total,
            charge.balance_before - charge.total,
            Some(charge.order_id),
        )
        .await?;
        payment::Entity::insert(payment::ActiveModel {
            order_id: Set(order_id),
            user_id: Set(user_id),
            amount: Set(total),
            status: Set("SUCCESS".to_owned()),
            paid_at: Set(now),
            refunded_at: Set(None),
            ..Default::default()
        })
        .exec_without_returning(conn)
        .await?;
        let day = sales::sales_date(now, self.settings.time_zone);
        sales::record(conn, day, &sales_of(lines)).await?;
        outbox::enqueue(
            conn,
            outbox::ORDER_COMPLETED,
            order_id,
            order_event(order, lines, names),
        )
        .await?;
        Ok(())
    }

    /// Gives a PENDING order's stock back and moves it to `new_status` (CANCELLED or EXPIRED).
    async fn release(
        &self,
        conn: &impl ConnectionTrait,
        order: &order::Model,
        new_status: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, i64)>, AttemptError> {
        let items = load_items(conn, order.id).await?;
        let stock = restore_stock(conn, &items).await?;
        if let Some(coupon_id) = order.user_coupon_id {
            coupons::release(conn, coupon_id).await?;
        }
        set_status(conn, order.id, new_status, now).await?;
        Ok(stock)
    }

    /// Refunds a COMPLETED order: stock back, balance back (ledger REFUND), payment REFUNDED,
    /// sales reversed on the day they were recorded, ORDER_REFUNDED outbox event.
    async fn refund(
        &self,
        conn: &impl ConnectionTrait,
        order: &order::Model,
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, i64)>, AttemptError> {
        let items = load_items(conn, order.id).await?;
        let stock = restore_stock(conn, &items).await?;
        if let Some(coupon_id) = order.user_coupon_id {
            coupons::release(conn, coupon_id).await?;
        }
        let balance = lock_balance(conn, order.user_id)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("balance of user {}", order.user_id)))?;
        balance::Entity::update_many()
            .col_expr(
                balance::Column::Amount,
                Expr::col(balance::Column::Amount).add(order.total),
            )
            .col_expr(balance::Column::UpdatedAt, Expr::value(now))
            .filter(balance::Column::UserId.eq(order.user_id))
            .exec(conn)
            .await?;
        append_ledger(
            conn,
            order.user_id,
            REFUND,
            order.total,
            balance + order.total,
            Some(order.id),
        )
        .await?;
        payment::Entity::update_many()
            .col_expr(payment::Column::Status, Expr::value("REFUNDED"))
            .col_expr(payment::Column::RefundedAt, Expr::value(now))
            .filter(payment::Column::OrderId.eq(order.id))
            .exec(conn)
            .await?;
        let paid_at = order.paid_at.unwrap_or(now);
        let lines: Vec<PricedLine> = items.iter().map(PricedLine::from).collect();
        sales::reverse(
            conn,
            sales::sales_date(paid_at, self.settings.time_zone),
            &sales_of(&lines),
        )
        .await?;
        set_status(conn, order.id, status::REFUNDED, now).await?;
        let refunded = load_order(conn, order.id).await?;
        let names = product_names(conn, &items).await?;
        outbox::enqueue(
            conn,
            outbox::ORDER_REFUNDED,
            order.id,
            order_event(&refunded, &lines, &names),
        )
        .await?;
        Ok(stock)
    }
}

fn idempotent(
    user_id: i64,
    key: Option<&str>,
    operation: &'static str,
    request: &impl Serialize,
) -> Result<Option<IdempotentRequest>, OrderError> {
    Ok(IdempotentRequest::new(user_id, key, operation, request)?)
}

/// Ends a successful attempt: stores the idempotent result, commits, and returns the order as
/// committed.
async fn finish(
    txn: WriteTxn,
    idempotency: Option<&IdempotentRequest>,
    order: order::Model,
    stock: Vec<(i64, i64)>,
    sold: bool,
) -> Attempt {
    if let Some(request) = idempotency {
        let receipt = OrderReceipt { order_id: order.id };
        request.record(&*txn, &receipt).await?;
    }
    txn.commit().await?;
    Ok(Ok(Applied { order, stock, sold }))
}

/// The stored result of an earlier request with the same key, if any.
async fn replay(
    conn: &impl ConnectionTrait,
    idempotency: Option<&IdempotentRequest>,
) -> Result<Option<Result<Applied, OrderError>>, DbErr> {
    let Some(request) = idempotency else {
        return Ok(None);
    };
    Ok(match request.lookup::<OrderReceipt>(conn).await? {
        Lookup::New => None,
        Lookup::Reused => Some(Err(OrderError::IdempotencyKeyReused)),
        Lookup::Replay(receipt) => Some(Ok(Applied {
            order: load_order(conn, receipt.order_id).await?,
            stock: vec![],
            sold: false,
        })),
    })
}

/// Locks the products (ascending id: the global lock order), by id.
async fn lock_products(
    conn: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<HashMap<i64, product::Model>, DbErr> {
    Ok(product::Entity::find()
        .filter(product::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(product::Column::Id)
        .lock_exclusive()
        .all(conn)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect())
}

/// Every line that cannot be served, all at once.
fn line_problems(lines: &[OrderLine], products: &HashMap<i64, product::Model>) -> Vec<LineProblem> {
    lines
        .iter()
        .filter_map(|line| match products.get(&line.product_id) {
            None => Some(LineProblem::ProductNotFound {
                product_id: line.product_id,
            }),
            Some(p) if p.stock < line.quantity => Some(LineProblem::OutOfStock {
                product_id: line.product_id,
                requested: line.quantity,
                available: p.stock,
            }),
            Some(_) => None,
        })
        .collect()
}

/// Locks the user's balance row; returns the amount (`None`: no such user).
async fn lock_balance(conn: &impl ConnectionTrait, user_id: i64) -> Result<Option<i64>, DbErr> {
    Ok(balance::Entity::find_by_id(user_id)
        .lock_exclusive()
        .one(conn)
        .await?
        .map(|b| b.amount))
}

/// Locks an order row; `None` when it does not exist or belongs to someone else.
async fn lock_order(
    conn: &impl ConnectionTrait,
    order_id: i64,
    owner: Option<i64>,
) -> Result<Option<order::Model>, DbErr> {
    let order = order::Entity::find_by_id(order_id)
        .lock_exclusive()
        .one(conn)
        .await?;
    Ok(order.filter(|o| owner.is_none_or(|user| o.user_id == user)))
}

/// Takes units from a locked product row; `false` if it no longer has them.
async fn take_stock(
    conn: &impl ConnectionTrait,
    product_id: i64,
    quantity: i64,
) -> Result<bool, DbErr> {
    let updated = product::Entity::update_many()
        .col_expr(
            product::Column::Stock,
            Expr::col(product::Column::Stock).sub(quantity),
        )
        .col_expr(product::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(product::Column::Id.eq(product_id))
        .filter(product::Column::Stock.gte(quantity))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Gives an order's units back (products locked in ascending id); returns the new stock.
async fn restore_stock(
    conn: &impl ConnectionTrait,
    items: &[order_item::Model],
) -> Result<Vec<(i64, i64)>, DbErr> {
    let ids: Vec<i64> = items.iter().map(|i| i.product_id).collect();
    let products = lock_products(conn, &ids).await?;
    let mut stock = Vec::with_capacity(items.len());
    let mut sorted: Vec<&order_item::Model> = items.iter().collect();
    sorted.sort_by_key(|i| i.product_id);
    for item in sorted {
        product::Entity::update_many()
            .col_expr(
                product::Column::Stock,
                Expr::col(product::Column::Stock).add(item.quantity),
            )
            .col_expr(product::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(product::Column::Id.eq(item.product_id))
            .exec(conn)
            .await?;
        let before = products.get(&item.product_id).map_or(0, |p| p.stock);
        stock.push((item.product_id, before + item.quantity));
    }
    Ok(stock)
}

/// Completes a locked PENDING order; returns it as now stored.
async fn mark_paid(
    conn: &impl ConnectionTrait,
    order: &order::Model,
    now: DateTime<Utc>,
) -> Result<order::Model, DbErr> {
    order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::value(status::COMPLETED))
        .col_expr(order::Column::PaidAt, Expr::value(now))
        .col_expr(
            order::Column::ExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(order::Column::UpdatedAt, Expr::value(now))
        .filter(order::Column::Id.eq(order.id))
        .exec(conn)
        .await?;
    // read back: the stored timestamps have the database's precision
    load_order(conn, order.id).await
}

async fn set_status(
    conn: &impl ConnectionTrait,
    order_id: i64,
    new_status: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut update = order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::value(new_status))
        .col_expr(order::Column::UpdatedAt, Expr::value(now));
    if new_status != status::EXPIRED {
        update = update.col_expr(order::Column::CancelledAt, Expr::value(now));
    }
    update
        .filter(order::Column::Id.eq(order_id))
        .exec(conn)
        .await?;
    Ok(())
}

async fn load_order(conn: &impl ConnectionTrait, order_id: i64) -> Result<order::Model, DbErr> {
    order::Entity::find_by_id(order_id)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("order {order_id}")))
}

async fn load_items(
    conn: &impl ConnectionTrait,
    order_id: i64,
) -> Result<Vec<order_item::Model>, DbErr> {
    order_item::Entity::find()
        .filter(order_item::Column::OrderId.eq(order_id))
        .order_by_asc(order_item::Column::ProductId)
        .all(conn)
        .await
}

async fn product_names(
    conn: &impl ConnectionTrait,
    items: &[order_item::Model],
) -> Result<HashMap<i64, String>, DbErr> {
    let rows: Vec<(i64, String)> = product::Entity::find()
        .select_only()
        .column(product::Column::Id)
        .column(product::Column::Name)
        .filter(product::Column::Id.is_in(items.iter().map(|i| i.product_id)))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

fn sales_of(lines: &[PricedLine]) -> Vec<Sale> {
    lines
        .iter()
        .map(|l| Sale {
            product_id: l.product_id,
            quantity: l.quantity,
            revenue: l.quantity * l.unit_price,
        })
        .collect()
}

/// The order as the data platform receives it.
fn order_event(
    order: &order::Model,
    lines: &[PricedLine],
    names: &HashMap<i64, String>,
) -> serde_json::Value {
    json!({
        "order": {
            "id": order.id,
            "userId": order.user_id,
            "status": order.status,
            "items": lines.iter().map(|i| json!({
                "productId": i.product_id,
                "productName": names.get(&i.product_id),
                "quantity": i.quantity,
                "unitPrice": i.unit_price,
                "lineTotal": i.quantity * i.unit_price,
            })).collect::<Vec<_>>(),
            "subtotal": order.subtotal,
            "discount": order.discount,
            "total": order.total,
            "couponId": order.user_coupon_id,
            "createdAt": order.created_at.to_rfc3339(),
            "paidAt": order.paid_at.map(|t| t.to_rfc3339()),
            "cancelledAt": order.cancelled_at.map(|t| t.to_rfc3339()),
        }
    })
}
