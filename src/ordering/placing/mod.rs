//! Placing and paying orders, many in one transaction (group commit).
//!
//! A batch of commands (`placeOrder`, `createOrder`, `payOrder`, in arrival order) is applied in
//! one transaction, in the global lock order: the order rows to pay, then every product touched
//! (ascending id), then every coupon, then every balance (ascending user id). Idempotency keys are
//! looked up under those locks. Each command is then decided in memory, in arrival order, with
//! exactly the rules of a single order against what the commands before it left (stock, balances,
//! coupons, order statuses): a refusal changes nothing and never changes another command's
//! outcome. What the accepted commands do is then written with one statement per table (new
//! orders first, the rest in one round trip on PostgreSQL, see [`Writes`]), the orders are read
//! back as stored, and the caller commits.
//!
//! A batch of one is the single-order path: the same code, about the same statements.
//!
//! Here: the batch and its working rows, locking, and the order of the steps; [`decide`]: each
//! command's rules in memory; [`write`]: the statements that store what was decided.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use chrono::{DateTime, Utc};
use entity::{idempotency_key, order, order_item};
use sea_orm::{ConnectionTrait, DbErr};
use serde::{Deserialize, Serialize};

mod decide;
#[cfg(test)]
mod tests;
mod write;

use super::announce::Aftermath;
use super::event::PricedLine;
use super::model::{OrderError, OrderSettings, Payment};
use super::request::OrderRequest;
use super::rows;
use crate::balance::accounts::{self, Movement};
use crate::catalog::stock;
use crate::coupon::redemption::{self, Redeemable};
use crate::infra::batching::Applied;
use crate::infra::db::AttemptError;
use crate::infra::idempotency::{self, IdempotentRequest, contended_if_taken};
use crate::infra::writes::Writes;
use decide::{pay, place, replayed};
use write::{placeholder, record_keys, record_payments, write};

/// The largest batch whose writes go in one round trip (PostgreSQL). Measured on 2 cores
/// (BENCHMARKS.md, "A batch's writes in one round trip"): at 1,000 orders/s (batches of 4-8)
/// one round trip took 5-17% off the server's CPU per order; flat out (batches of ~30, where
/// round trips are already few per order) it cost PostgreSQL 20-50% more CPU per order, parsing
/// and planning every value, and 7-23% of the throughput.
const ONE_ROUND_TRIP_UP_TO: usize = 10;

/// One request for the order writer.
#[derive(Clone, Debug)]
pub enum Command {
    Place {
        user_id: i64,
        request: OrderRequest,
        payment: Payment,
        idempotency: Option<IdempotentRequest>,
        /// The request's trace context (W3C `traceparent`), when traces are exported: the
        /// order's outbox delivery continues it.
        trace_parent: Option<String>,
    },
    Pay {
        user_id: i64,
        order_id: i64,
        idempotency: Option<IdempotentRequest>,
        /// As for `Place`.
        trace_parent: Option<String>,
    },
}

impl Command {
    fn user_id(&self) -> i64 {
        match self {
            Command::Place { user_id, .. } | Command::Pay { user_id, .. } => *user_id,
        }
    }

    fn trace_parent(&self) -> Option<&String> {
        match self {
            Command::Place { trace_parent, .. } | Command::Pay { trace_parent, .. } => {
                trace_parent.as_ref()
            }
        }
    }

    /// The rows it locks first: the lowest product it orders, or (a payment) its user.
    pub fn lock_key(&self) -> i64 {
        match self {
            Command::Place { request, .. } => {
                request.product_ids().into_iter().min().unwrap_or_default()
            }
            Command::Pay { user_id, .. } => -*user_id,
        }
    }

    fn idempotency(&self) -> Option<&IdempotentRequest> {
        match self {
            Command::Place { idempotency, .. } | Command::Pay { idempotency, .. } => {
                idempotency.as_ref()
            }
        }
    }
}

/// What an order mutation stores under its idempotency key, and returns when replayed.
#[derive(Serialize, Deserialize)]
pub struct OrderReceipt {
    pub order_id: i64,
}

/// What one command came to: its order as committed, or why not.
pub type Outcome = Result<order::Model, OrderError>;

/// How a command is answered once the batch is written.
enum Answer {
    /// With the order it placed (a placeholder id until inserted), paid, or replayed.
    Order(i64),
    /// With the order of an earlier command of the batch that was sent with the same key.
    SameAs(usize),
    Refused(OrderError),
}

/// An order to insert.
struct NewOrder {
    user_id: i64,
    payment: Payment,
    lines: Vec<PricedLine>,
    subtotal: i64,
    discount: i64,
    total: i64,
    coupon_id: Option<i64>,
}

/// What the accepted commands change, gathered while deciding.
#[derive(Default)]
struct Effects {
    /// Orders to insert, with the index of the command that placed each.
    new_orders: Vec<(usize, NewOrder)>,
    /// PENDING orders paid now.
    paid: Vec<i64>,
    /// PENDING orders found overdue by a payment: expired now.
    expired: Vec<i64>,
    /// Stock changes by product.
    stock: BTreeMap<i64, i64>,
    /// Coupons released by expired orders.
    released: Vec<i64>,
    /// Balance movements (payments) in the order they happen, with their command's index.
    movements: Vec<(usize, Movement)>,
}

/// The rows the batch works on, as the commands decided so far left them.
struct Working {
    stock: HashMap<i64, i64>,
    prices: HashMap<i64, i64>,
    names: HashMap<i64, String>,
    balances: HashMap<i64, i64>,
    coupons: HashMap<i64, Redeemable>,
    orders: HashMap<i64, order::Model>,
    items: HashMap<i64, Vec<order_item::Model>>,
}

/// The trace context of the command that paid each order (a new order by its id, a PENDING
/// one by the first payment of it in the batch: a later one is refused).
fn traces_of_paid<'a>(
    commands: &'a [Command],
    placed: &HashMap<i64, i64>,
) -> HashMap<i64, &'a String> {
    let mut traces = HashMap::new();
    for (index, command) in commands.iter().enumerate() {
        let Some(trace_parent) = command.trace_parent() else {
            continue;
        };
        let order_id = match command {
            Command::Place { .. } => placed.get(&placeholder(index)).copied(),
            Command::Pay { order_id, .. } => Some(*order_id),
        };
        if let Some(order_id) = order_id {
            traces.entry(order_id).or_insert(trace_parent);
        }
    }
    traces
}

/// Applies `commands` in `conn`'s transaction; the caller commits. An error means nothing of the
/// batch may be committed.
pub async fn apply(
    conn: &impl ConnectionTrait,
    commands: &[Command],
    settings: &OrderSettings,
) -> Result<Applied<Outcome, Aftermath>, AttemptError> {
    let now = Utc::now();
    let locking_started = Instant::now();
    let (mut working, stored) = lock_and_read(conn, commands).await?;
    let locking = locking_started.elapsed();
    let (effects, mut answers) = decide_all(commands, &mut working, &stored, now);
    let backend = conn.get_database_backend();
    let mut writes = if commands.len() <= ONE_ROUND_TRIP_UP_TO {
        Writes::new(backend)
    } else {
        Writes::one_by_one(backend)
    };
    let (placed, mut stored_orders) =
        write(conn, &mut writes, &effects, &working, now, settings).await?;
    // every other order answered with (paid, replayed), as stored: after this batch's writes
    let mut wanted: Vec<i64> = vec![];
    for answer in &mut answers {
        if let Answer::Order(id) = answer {
            *id = placed.get(id).copied().unwrap_or(*id);
            if !stored_orders.contains_key(id) {
                wanted.push(*id);
            }
        }
    }
    if !wanted.is_empty() {
        writes.send(conn).await?;
        stored_orders.extend(rows::load(conn, wanted).await?);
    }
    let mut paid: Vec<(i64, Vec<PricedLine>)> = effects
        .paid
        .iter()
        .map(|id| {
            let items = working.items.get(id).into_iter().flatten();
            (*id, items.map(PricedLine::from).collect())
        })
        .collect();
    for (index, new) in &effects.new_orders {
        if new.payment == Payment::Now {
            paid.push((placed[&placeholder(*index)], new.lines.clone()));
        }
    }
    let traces = traces_of_paid(commands, &placed);
    let names = &working.names;
    record_payments(
        &mut writes,
        &paid,
        &stored_orders,
        names,
        &traces,
        now,
        settings,
    )?;
    record_keys(&mut writes, commands, &answers, &stored);
    writes.send(conn).await.map_err(contended_if_taken)?;

    let aftermath = Aftermath {
        stock: effects
            .stock
            .keys()
            .filter_map(|id| Some((*id, *working.stock.get(id)?)))
            .collect(),
        revenue: paid
            .iter()
            .filter_map(|(id, _)| stored_orders.get(id))
            .map(|o| o.total)
            .sum(),
        refunded: 0,
        sales_changed: !paid.is_empty(),
    };
    let outcomes = outcomes_of(answers, &stored_orders);
    Ok(Applied {
        outcomes,
        aftermath,
        locking,
    })
}

/// Decides every command in turn on the rows as the earlier ones left them: what they change,
/// and how each is answered.
fn decide_all(
    commands: &[Command],
    working: &mut Working,
    stored: &StoredKeys,
    now: DateTime<Utc>,
) -> (Effects, Vec<Answer>) {
    let mut effects = Effects::default();
    let mut answers: Vec<Answer> = Vec::with_capacity(commands.len());
    // keys taken by accepted commands of this batch: a repeat gets their order
    let mut claimed: HashMap<(i64, String), usize> = HashMap::new();
    for (index, command) in commands.iter().enumerate() {
        let answer = if let Command::Pay {
            user_id, order_id, ..
        } = command
            && working
                .orders
                .get(order_id)
                .is_none_or(|o| o.user_id != *user_id)
        {
            Answer::Refused(OrderError::OrderNotFound)
        } else if let Some(answer) = replayed(command, commands, stored, &claimed) {
            answer
        } else {
            let decided = match command {
                Command::Place {
                    user_id,
                    request,
                    payment,
                    ..
                } => place(
                    working,
                    &mut effects,
                    index,
                    *user_id,
                    request,
                    *payment,
                    now,
                ),
                Command::Pay { order_id, .. } => pay(working, &mut effects, index, *order_id, now),
            };
            if decided.is_ok()
                && let Some(request) = command.idempotency()
            {
                claimed.insert((request.user_id, request.key.clone()), index);
            }
            decided.unwrap_or_else(Answer::Refused)
        };
        answers.push(answer);
    }

    (effects, answers)
}

/// The outcome of each command: its order as stored, or why it was refused.
fn outcomes_of(answers: Vec<Answer>, stored_orders: &HashMap<i64, order::Model>) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(answers.len());
    for answer in answers {
        let outcome = match answer {
            Answer::Order(id) => stored_orders.get(&id).cloned().ok_or_else(|| missing(id)),
            Answer::SameAs(earlier) => match &outcomes[earlier] {
                Ok(order) => Ok(order.clone()),
                Err(_) => Err(missing(earlier as i64)),
            },
            Answer::Refused(err) => Err(err),
        };
        outcomes.push(outcome);
    }
    outcomes
}

pub(super) type StoredKeys = HashMap<(i64, String), idempotency_key::Model>;

/// Locks every row the batch may change, in the global lock order (order rows, products,
/// coupons, balances), and reads the idempotency keys under those locks.
async fn lock_and_read(
    conn: &impl ConnectionTrait,
    commands: &[Command],
) -> Result<(Working, StoredKeys), DbErr> {
    let to_pay: Vec<i64> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Pay { order_id, .. } => Some(*order_id),
            Command::Place { .. } => None,
        })
        .collect();
    let orders = rows::lock(conn, &to_pay).await?;
    let keyed: Vec<&IdempotentRequest> = commands.iter().filter_map(Command::idempotency).collect();
    let stored = idempotency::lookup_many(conn, &keyed).await?;
    let paying: Vec<i64> = orders.keys().copied().collect();
    let items = rows::items_of(conn, paying).await?;
    let product_ids: Vec<i64> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Place { request, .. } => Some(request.product_ids()),
            Command::Pay { .. } => None,
        })
        .flatten()
        .chain(items.values().flatten().map(|item| item.product_id))
        .collect();
    let products = stock::lock(conn, product_ids).await?;
    let coupon_ids: Vec<i64> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Place { request, .. } => request.coupon_id,
            Command::Pay { .. } => None,
        })
        .chain(orders.values().filter_map(|o| o.user_coupon_id))
        .collect();
    let coupons = redemption::lock(conn, coupon_ids).await?;
    let users: Vec<i64> = commands.iter().map(Command::user_id).collect();
    let balances = accounts::lock(conn, users).await?;
    let working = Working {
        stock: products.values().map(|p| (p.id, p.stock)).collect(),
        prices: products.values().map(|p| (p.id, p.price)).collect(),
        names: products.into_values().map(|p| (p.id, p.name)).collect(),
        balances,
        coupons,
        orders,
        items,
    };
    Ok((working, stored))
}

fn missing(id: i64) -> OrderError {
    OrderError::from(DbErr::RecordNotFound(format!("order {id}")))
}
