//! After an order is placed: cancelling a PENDING order (its stock and coupon released), refunding
//! a COMPLETED one (balance, stock and coupon back, sales reversed, ORDER_REFUNDED event), and
//! expiring an overdue PENDING order. One transaction per order, under its row lock (the first
//! step of the global lock order), through the domains' own primitives.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::balance_ledger::LedgerKind;
use entity::order::{self, OrderStatus};
use entity::payment::PaymentStatus;
use entity::{order_item, payment};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryTrait,
};

use super::announce::Aftermath;
use super::event::{PricedLine, order_event};
use super::model::{OrderError, OrderSettings};
use super::placing::OrderReceipt;
use super::rows;
use crate::balance::accounts::{self, Movement};
use crate::catalog::stock;
use crate::coupon::redemption::{self, Hold};
use crate::infra::transact::{Abort, Attempt};
use crate::infra::writes::Writes;
use crate::outbox;
use crate::ranking::sales;

/// A committed change of one order: the order as stored, and what to announce.
pub struct Changed {
    pub order: order::Model,
    pub aftermath: Aftermath,
}

/// Locks an order for a change; refused as not found when it is not `owner`'s (`None`: an
/// administrator, who may change anyone's).
pub async fn lock_own(
    txn: &DatabaseTransaction,
    owner: Option<i64>,
    order_id: i64,
) -> Attempt<order::Model, OrderError> {
    rows::lock(txn, &[order_id])
        .await?
        .remove(&order_id)
        .filter(|o| owner.is_none_or(|user| o.user_id == user))
        .ok_or(Abort::Refused(OrderError::OrderNotFound))
}

/// The answer of a repeated cancellation: the order as it is now, nothing to announce.
pub async fn replay(
    txn: &DatabaseTransaction,
    receipt: OrderReceipt,
) -> Attempt<Changed, OrderError> {
    Ok(Changed {
        order: rows::load_one(txn, receipt.order_id).await?,
        aftermath: Aftermath::default(),
    })
}

/// Cancels a locked PENDING order, or refunds a locked COMPLETED one.
pub async fn cancel(
    txn: &DatabaseTransaction,
    order: order::Model,
    settings: &OrderSettings,
) -> Attempt<(Changed, OrderReceipt), OrderError> {
    let now = Utc::now();
    let order_id = order.id;
    let items = rows::items_of(txn, [order_id])
        .await?
        .remove(&order_id)
        .unwrap_or_default();
    let mut writes = Writes::new(txn.get_database_backend());
    let aftermath = match order.status {
        OrderStatus::Pending => {
            let cancelled = OrderStatus::Cancelled;
            release(txn, &mut writes, &order, &items, cancelled, now).await?
        }
        OrderStatus::Completed => refund(txn, &mut writes, &order, &items, now, settings).await?,
        OrderStatus::Cancelled | OrderStatus::Expired | OrderStatus::Refunded => {
            return Err(Abort::Refused(OrderError::InvalidState {
                action: "cancel",
                status: order.status,
            }));
        }
    };
    writes.send(txn).await?;
    let order = rows::load_one(txn, order_id).await?;
    if order.status == OrderStatus::Refunded {
        let lines: Vec<PricedLine> = items.iter().map(PricedLine::from).collect();
        let names = rows::product_names(txn, lines.iter().map(|l| l.product_id)).await?;
        let event = order_event(&order, &lines, &names);
        outbox::enqueue(&mut writes, outbox::ORDER_REFUNDED, order_id, event);
        writes.send(txn).await?;
    }
    Ok((Changed { order, aftermath }, OrderReceipt { order_id }))
}

/// Expires an order; `None` when it is no longer PENDING or not yet overdue.
pub async fn expire(txn: &DatabaseTransaction, order_id: i64) -> Attempt<Option<Changed>, DbErr> {
    let now = Utc::now();
    let order = rows::lock(txn, &[order_id])
        .await?
        .remove(&order_id)
        .filter(|o| o.status == OrderStatus::Pending && o.expires_at.is_some_and(|at| at <= now));
    let Some(order) = order else {
        return Ok(None);
    };
    let items = rows::items_of(txn, [order_id])
        .await?
        .remove(&order_id)
        .unwrap_or_default();
    let mut writes = Writes::new(txn.get_database_backend());
    let aftermath = release(txn, &mut writes, &order, &items, OrderStatus::Expired, now).await?;
    writes.send(txn).await?;
    let order = rows::load_one(txn, order_id).await?;
    Ok(Some(Changed { order, aftermath }))
}

/// Gives the stock of a locked order back and releases its coupon: the shared part of a
/// cancellation, an expiry and a refund. Moves the order to `new_status`. Locks the products now;
/// the writes go to `writes`.
async fn release(
    conn: &impl ConnectionTrait,
    writes: &mut Writes,
    order: &order::Model,
    items: &[order_item::Model],
    new_status: OrderStatus,
    now: DateTime<Utc>,
) -> Result<Aftermath, DbErr> {
    let products = stock::lock(conn, items.iter().map(|i| i.product_id)).await?;
    let returned: BTreeMap<i64, i64> = items.iter().map(|i| (i.product_id, i.quantity)).collect();
    stock::change(writes, &returned, now);
    if let Some(coupon_id) = order.user_coupon_id {
        redemption::set(writes, &[(coupon_id, Hold::Released)]);
    }
    rows::set_status(writes, &[order.id], new_status, now);
    Ok(Aftermath {
        stock: returned
            .iter()
            .map(|(id, quantity)| (*id, products.get(id).map_or(0, |p| p.stock) + quantity))
            .collect(),
        ..Aftermath::default()
    })
}

/// Refunds a locked COMPLETED order: stock and coupon back, the balance credited (ledger
/// REFUND), the payment REFUNDED, the sales reversed on the day they were recorded. Locks now;
/// the writes go to `writes`.
async fn refund(
    conn: &impl ConnectionTrait,
    writes: &mut Writes,
    order: &order::Model,
    items: &[order_item::Model],
    now: DateTime<Utc>,
    settings: &OrderSettings,
) -> Result<Aftermath, DbErr> {
    let mut aftermath = release(conn, writes, order, items, OrderStatus::Refunded, now).await?;
    let balance = accounts::lock(conn, [order.user_id])
        .await?
        .get(&order.user_id)
        .copied()
        .ok_or_else(|| DbErr::RecordNotFound(format!("balance of user {}", order.user_id)))?;
    let credit = Movement {
        user_id: order.user_id,
        kind: LedgerKind::Refund,
        amount: order.total,
        balance_after: balance + order.total,
        order_id: Some(order.id),
    };
    accounts::apply(writes, &[credit], now);
    writes.update(
        payment::Entity::update_many()
            .col_expr(
                payment::Column::Status,
                Expr::value(PaymentStatus::Refunded),
            )
            .col_expr(payment::Column::RefundedAt, Expr::value(now))
            .filter(payment::Column::OrderId.eq(order.id))
            .into_query(),
    );
    let sold: Vec<sales::Sale> = items
        .iter()
        .map(|item| PricedLine::from(item).sale())
        .collect();
    let day = sales::sales_date(order.paid_at.unwrap_or(now), settings.time_zone);
    sales::reverse(writes, day, &sold);
    aftermath.refunded = order.total;
    aftermath.sales_changed = true;
    Ok(aftermath)
}
