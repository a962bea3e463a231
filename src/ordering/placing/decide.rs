//! Deciding each command of a batch in memory, in arrival order, against the rows as the commands
//! before it left them: an idempotent replay, a new order (lines, coupon, balance), a payment.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::write::placeholder;
use super::{Answer, Command, Effects, NewOrder, OrderReceipt, StoredKeys, Working};
use crate::balance::accounts::Movement;
use crate::coupon::redemption::{self};
use crate::error::CommonError;
use crate::infra::idempotency::Lookup;
use crate::ordering::event::PricedLine;
use crate::ordering::model::{LineProblem, OrderError, Payment};
use crate::ordering::request::OrderRequest;
use entity::balance_ledger::LedgerKind;
use entity::order::OrderStatus;
use entity::user_coupon::CouponStatus;

/// The answer of a command whose key was used before (in the database, or earlier in the batch).
pub(super) fn replayed(
    command: &Command,
    commands: &[Command],
    stored: &StoredKeys,
    claimed: &HashMap<(i64, String), usize>,
) -> Option<Answer> {
    let request = command.idempotency()?;
    let key = (request.user_id, request.key.clone());
    if let Some(&earlier) = claimed.get(&key) {
        let first = commands[earlier].idempotency()?;
        return Some(if first.same_as(request) {
            Answer::SameAs(earlier)
        } else {
            Answer::Refused(OrderError::Common(CommonError::IdempotencyKeyReused))
        });
    }
    match request.judge::<OrderReceipt>(stored.get(&key)) {
        Ok(Lookup::New) => None,
        Ok(Lookup::Replay(receipt)) => Some(Answer::Order(receipt.order_id)),
        Ok(Lookup::Reused) => Some(Answer::Refused(OrderError::Common(
            CommonError::IdempotencyKeyReused,
        ))),
        Err(err) => Some(Answer::Refused(OrderError::from(err))),
    }
}

/// Decides a new order against the working rows: every line, then the coupon, then the balance.
pub(super) fn place(
    working: &mut Working,
    effects: &mut Effects,
    index: usize,
    user_id: i64,
    request: &OrderRequest,
    payment: Payment,
    now: DateTime<Utc>,
) -> Result<Answer, OrderError> {
    let lines = priced_lines(working, request)?;
    let subtotal: i64 = lines.iter().map(|l| l.quantity * l.unit_price).sum();
    let discount = match request.coupon_id {
        None => 0,
        Some(coupon_id) => {
            redemption::discount(working.coupons.get(&coupon_id), user_id, subtotal, now)
                .map_err(|reason| OrderError::CouponNotUsable(reason.0))?
        }
    };
    let total = subtotal - discount;
    let balance = *working
        .balances
        .get(&user_id)
        .ok_or(OrderError::Common(CommonError::UnknownUser))?;
    if balance < total {
        return Err(OrderError::InsufficientBalance {
            balance,
            required: total,
        });
    }
    for line in &lines {
        *working.stock.entry(line.product_id).or_default() -= line.quantity;
        *effects.stock.entry(line.product_id).or_default() -= line.quantity;
    }
    if let Some(coupon) = request
        .coupon_id
        .and_then(|id| working.coupons.get_mut(&id))
    {
        coupon.coupon.status = match payment {
            Payment::Now => CouponStatus::Used,
            Payment::Later => CouponStatus::Reserved,
        };
    }
    if payment == Payment::Now {
        debit(working, effects, index, user_id, total, None);
    }
    effects.new_orders.push((
        index,
        NewOrder {
            user_id,
            payment,
            lines,
            subtotal,
            discount,
            total,
            coupon_id: request.coupon_id,
        },
    ));
    Ok(Answer::Order(placeholder(index)))
}

/// Every line of `request` at its product's price, or every line that cannot be served (a
/// product that does not exist, or has fewer units than the line asks for).
fn priced_lines(working: &Working, request: &OrderRequest) -> Result<Vec<PricedLine>, OrderError> {
    let problems: Vec<LineProblem> = request
        .lines
        .iter()
        .filter_map(|line| match working.stock.get(&line.product_id) {
            None => Some(LineProblem::ProductNotFound {
                product_id: line.product_id,
            }),
            Some(&available) if available < line.quantity => Some(LineProblem::OutOfStock {
                product_id: line.product_id,
                requested: line.quantity,
                available,
            }),
            Some(_) => None,
        })
        .collect();
    if !problems.is_empty() {
        return Err(OrderError::Lines(problems));
    }
    Ok(request
        .lines
        .iter()
        .map(|line| PricedLine {
            product_id: line.product_id,
            quantity: line.quantity,
            unit_price: working.prices[&line.product_id],
        })
        .collect())
}

/// Decides a payment of a (locked) PENDING order of the viewer's.
pub(super) fn pay(
    working: &mut Working,
    effects: &mut Effects,
    index: usize,
    order_id: i64,
    now: DateTime<Utc>,
) -> Result<Answer, OrderError> {
    let order = working.orders[&order_id].clone();
    if order.status != OrderStatus::Pending {
        return Err(OrderError::InvalidState {
            action: "pay",
            status: order.status,
        });
    }
    if order.expires_at.is_some_and(|at| at <= now) {
        // overdue: expired here, so a payment racing the expiry worker has one outcome
        for item in working.items.get(&order_id).into_iter().flatten() {
            *working.stock.entry(item.product_id).or_default() += item.quantity;
            *effects.stock.entry(item.product_id).or_default() += item.quantity;
        }
        if let Some(coupon_id) = order.user_coupon_id {
            effects.released.push(coupon_id);
            if let Some(coupon) = working.coupons.get_mut(&coupon_id) {
                coupon.coupon.status = CouponStatus::Available;
            }
        }
        effects.expired.push(order_id);
        set_status(working, order_id, OrderStatus::Expired);
        return Err(OrderError::InvalidState {
            action: "pay",
            status: OrderStatus::Expired,
        });
    }
    let balance = *working
        .balances
        .get(&order.user_id)
        .ok_or(OrderError::Common(CommonError::UnknownUser))?;
    if balance < order.total {
        return Err(OrderError::InsufficientBalance {
            balance,
            required: order.total,
        });
    }
    if let Some(coupon) = order
        .user_coupon_id
        .and_then(|id| working.coupons.get_mut(&id))
    {
        coupon.coupon.status = CouponStatus::Used;
    }
    debit(
        working,
        effects,
        index,
        order.user_id,
        order.total,
        Some(order_id),
    );
    effects.paid.push(order_id);
    set_status(working, order_id, OrderStatus::Completed);
    Ok(Answer::Order(order_id))
}

fn set_status(working: &mut Working, order_id: i64, new_status: OrderStatus) {
    if let Some(order) = working.orders.get_mut(&order_id) {
        order.status = new_status;
    }
}

/// Takes a payment from a working balance; a new order's id is filled in once it is inserted.
fn debit(
    working: &mut Working,
    effects: &mut Effects,
    index: usize,
    user_id: i64,
    total: i64,
    order_id: Option<i64>,
) {
    let balance = working.balances.entry(user_id).or_default();
    *balance -= total;
    effects.movements.push((
        index,
        Movement {
            user_id,
            kind: LedgerKind::Payment,
            amount: -total,
            balance_after: *balance,
            order_id,
        },
    ));
}
