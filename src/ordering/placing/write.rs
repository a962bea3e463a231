//! Writing what the accepted commands of a batch decided, one multi-row statement per table:
//! new orders (inserted at once: the rest needs their ids), then, added to the batch's
//! [`Writes`] to go in one round trip, their items, status changes, stock, coupons, balances and
//! their ledger, payments with their sales and outbox events, and the idempotency keys.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{order, order_item, payment};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryTrait, Set};

use super::{Answer, Command, Effects, NewOrder, OrderReceipt, StoredKeys, Working};
use crate::balance::accounts::{self, Movement};
use crate::catalog::stock;
use crate::coupon::redemption::{self, Hold};
use crate::infra::idempotency::{self, IdempotentRequest};
use crate::infra::writes::Writes;
use crate::ordering::event::{PricedLine, order_event};
use crate::ordering::model::{OrderSettings, Payment};
use crate::ordering::rows;
use crate::outbox::{self, NewEvent};
use crate::ranking::sales::{self, Sale};
use entity::order::OrderStatus;
use entity::payment::PaymentStatus;

/// Rows per multi-row insert (well below every database's limit on bound parameters).
const ROWS_PER_INSERT: usize = 1_000;

/// Stands for the id of the order a command places until it is inserted (never a real id).
pub(super) fn placeholder(index: usize) -> i64 {
    -1 - index as i64
}

/// Inserts the new orders and adds to `writes` everything else the accepted commands do;
/// returns the ids of the new orders by placeholder, and the new orders as stored.
pub(super) async fn write(
    conn: &impl ConnectionTrait,
    writes: &mut Writes,
    effects: &Effects,
    working: &Working,
    now: DateTime<Utc>,
    settings: &OrderSettings,
) -> Result<(HashMap<i64, i64>, HashMap<i64, order::Model>), DbErr> {
    let inserted = insert_orders(conn, &effects.new_orders, now, settings).await?;
    let id_of: HashMap<usize, i64> = effects
        .new_orders
        .iter()
        .zip(&inserted)
        .map(|((index, _), order)| (*index, order.id))
        .collect();
    let items: Vec<order_item::ActiveModel> = effects
        .new_orders
        .iter()
        .flat_map(|(index, order)| {
            let id = id_of[index];
            order.lines.iter().map(move |line| order_item::ActiveModel {
                order_id: Set(id),
                product_id: Set(line.product_id),
                quantity: Set(line.quantity),
                unit_price: Set(line.unit_price),
                ..Default::default()
            })
        })
        .collect();
    for chunk in items.chunks(ROWS_PER_INSERT) {
        writes.insert(order_item::Entity::insert_many(chunk.iter().cloned()).into_query());
    }
    rows::set_status(writes, &effects.paid, OrderStatus::Completed, now);
    rows::set_status(writes, &effects.expired, OrderStatus::Expired, now);
    stock::change(writes, &effects.stock, now);

    let mut holds: Vec<(i64, Hold)> = effects
        .released
        .iter()
        .map(|coupon| (*coupon, Hold::Released))
        .collect();
    for (index, order) in &effects.new_orders {
        if let Some(coupon_id) = order.coupon_id {
            let order_id = id_of[index];
            let hold = match order.payment {
                Payment::Now => Hold::Used { order_id, at: now },
                Payment::Later => Hold::Reserved { order_id },
            };
            holds.push((coupon_id, hold));
        }
    }
    for order_id in &effects.paid {
        if let Some(coupon_id) = working.orders.get(order_id).and_then(|o| o.user_coupon_id) {
            let order_id = *order_id;
            holds.push((coupon_id, Hold::Used { order_id, at: now }));
        }
    }
    redemption::set(writes, &holds);

    let movements: Vec<Movement> = effects
        .movements
        .iter()
        .map(|(index, movement)| Movement {
            order_id: movement.order_id.or_else(|| id_of.get(index).copied()),
            ..movement.clone()
        })
        .collect();
    accounts::apply(writes, &movements, now);
    let placed = id_of
        .into_iter()
        .map(|(index, id)| (placeholder(index), id))
        .collect();
    Ok((placed, inserted.into_iter().map(|o| (o.id, o)).collect()))
}

/// Inserts the new orders; returns them as stored, in order. One statement where the database
/// returns many rows (PostgreSQL, SQLite); one insert per order and one read on MySQL, which
/// returns only the first id of a multi-row insert (and not every lock mode makes the others
/// consecutive).
async fn insert_orders(
    conn: &impl ConnectionTrait,
    orders: &[(usize, NewOrder)],
    now: DateTime<Utc>,
    settings: &OrderSettings,
) -> Result<Vec<order::Model>, DbErr> {
    let rows: Vec<order::ActiveModel> = orders
        .iter()
        .map(|(_, new)| {
            let (initial_status, expires_at, paid_at) = match new.payment {
                Payment::Now => (OrderStatus::Completed, None, Some(now)),
                Payment::Later => (OrderStatus::Pending, Some(now + settings.pending_ttl), None),
            };
            order::ActiveModel {
                user_id: Set(new.user_id),
                status: Set(initial_status),
                subtotal: Set(new.subtotal),
                discount: Set(new.discount),
                total: Set(new.total),
                user_coupon_id: Set(new.coupon_id),
                expires_at: Set(expires_at),
                created_at: Set(now),
                updated_at: Set(now),
                paid_at: Set(paid_at),
                cancelled_at: Set(None),
                ..Default::default()
            }
        })
        .collect();
    if conn.get_database_backend() == DbBackend::MySql {
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            ids.push(order::Entity::insert(row).exec(conn).await?.last_insert_id);
        }
        let mut stored = rows::load(conn, ids.clone()).await?;
        return ids
            .iter()
            .map(|id| {
                stored
                    .remove(id)
                    .ok_or_else(|| DbErr::RecordNotFound(format!("order {id}")))
            })
            .collect();
    }
    let mut inserted = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut returned = order::Entity::insert_many(chunk.iter().cloned())
            .exec_with_returning(conn)
            .await?;
        // ids come from a sequence in the order of the rows; RETURNING's order is not promised
        returned.sort_unstable_by_key(|o| o.id);
        inserted.extend(returned);
    }
    Ok(inserted)
}

/// Adds to `writes` the payment rows, the sales of the day and the events for the data platform
/// of every order paid in the batch (their ledger rows go with the balances).
pub(super) fn record_payments(
    writes: &mut Writes,
    paid: &[(i64, Vec<PricedLine>)],
    stored: &HashMap<i64, order::Model>,
    names: &HashMap<i64, String>,
    traces: &HashMap<i64, &String>,
    now: DateTime<Utc>,
    settings: &OrderSettings,
) -> Result<(), DbErr> {
    if paid.is_empty() {
        return Ok(());
    }
    let mut payments = Vec::with_capacity(paid.len());
    let mut sold: Vec<Sale> = vec![];
    let mut events = Vec::with_capacity(paid.len());
    for (id, lines) in paid {
        let order = stored
            .get(id)
            .ok_or_else(|| DbErr::RecordNotFound(format!("order {id}")))?;
        payments.push(payment::ActiveModel {
            order_id: Set(order.id),
            user_id: Set(order.user_id),
            amount: Set(order.total),
            status: Set(PaymentStatus::Success),
            paid_at: Set(now),
            refunded_at: Set(None),
            ..Default::default()
        });
        sold.extend(lines.iter().map(PricedLine::sale));
        events.push(NewEvent {
            event_type: outbox::ORDER_COMPLETED,
            aggregate_id: order.id,
            payload: order_event(order, lines, names),
            trace_parent: traces.get(id).map(|trace| (*trace).clone()),
        });
    }
    for chunk in payments.chunks(ROWS_PER_INSERT) {
        writes.insert(payment::Entity::insert_many(chunk.iter().cloned()).into_query());
    }
    let day = sales::sales_date(now, settings.time_zone);
    sales::record(writes, day, &sold);
    outbox::enqueue_many(writes, events);
    Ok(())
}

/// Adds to `writes` the result of every accepted command sent with a key (a replay stores nothing
/// new).
pub(super) fn record_keys(
    writes: &mut Writes,
    commands: &[Command],
    answers: &[Answer],
    stored: &StoredKeys,
) {
    let keys: Vec<(&IdempotentRequest, String)> = commands
        .iter()
        .zip(answers)
        .filter_map(|(command, answer)| match answer {
            Answer::Order(id) => {
                let receipt = serde_json::to_string(&OrderReceipt { order_id: *id }).ok()?;
                Some((command.idempotency()?, receipt))
            }
            Answer::SameAs(_) | Answer::Refused(_) => None,
        })
        .filter(|(request, _)| !stored.contains_key(&(request.user_id, request.key.clone())))
        .collect();
    idempotency::record_many(writes, &keys);
}
