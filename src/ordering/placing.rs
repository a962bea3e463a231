//! Placing and paying orders, many in one transaction (group commit).
//!
//! A batch of commands (`placeOrder`, `createOrder`, `payOrder`, in arrival order) is applied in
//! one transaction, in the global lock order: the order rows to pay, then every product touched
//! (ascending id), then every coupon, then every balance (ascending user id). Idempotency keys are
//! looked up under those locks. Each command is then decided in memory, in arrival order, with
//! exactly the rules of a single order against what the commands before it left (stock, balances,
//! coupons, order statuses): a refusal changes nothing and never changes another command's
//! outcome. What the accepted commands do is then written with one statement per table, the
//! orders are read back as stored, and the caller commits.
//!
//! A batch of one is the single-order path: the same code, about the same statements.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use entity::balance_ledger::LedgerKind;
use entity::order::{self, OrderStatus};
use entity::payment::PaymentStatus;
use entity::user_coupon::CouponStatus;
use entity::{idempotency_key, order_item, payment};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, Set};
use serde::{Deserialize, Serialize};

use super::announce::Aftermath;
use super::event::{PricedLine, order_event};
use super::request::OrderRequest;
use super::rows;
use super::service::{LineProblem, OrderError, OrderSettings, Payment};
use crate::balance::accounts::{self, Movement};
use crate::catalog::stock;
use crate::coupon::redemption::{self, Hold, Redeemable};
use crate::infra::db::AttemptError;
use crate::infra::idempotency::{self, IdempotentRequest, Lookup};
use crate::outbox::{self, NewEvent};
use crate::ranking::sales::{self, Sale};

/// Rows per multi-row insert (well below every database's limit on bound parameters).
const ROWS_PER_INSERT: usize = 1_000;

/// One request for the order writer.
#[derive(Clone, Debug)]
pub enum Command {
    Place {
        user_id: i64,
        request: OrderRequest,
        payment: Payment,
        idempotency: Option<IdempotentRequest>,
    },
    Pay {
        user_id: i64,
        order_id: i64,
        idempotency: Option<IdempotentRequest>,
    },
}

impl Command {
    fn user_id(&self) -> i64 {
        match self {
            Command::Place { user_id, .. } | Command::Pay { user_id, .. } => *user_id,
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

/// A batch applied (not yet committed): one outcome per command, in order.
pub struct Applied {
    pub outcomes: Vec<Outcome>,
    pub aftermath: Aftermath,
}

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

/// Applies `commands` in `conn`'s transaction; the caller commits. An error means nothing of the
/// batch may be committed.
pub async fn apply(
    conn: &impl ConnectionTrait,
    commands: &[Command],
    settings: &OrderSettings,
) -> Result<Applied, AttemptError> {
    let now = Utc::now();
    let (mut working, stored) = lock_and_read(conn, commands).await?;
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
        } else if let Some(answer) = replayed(command, commands, &stored, &claimed) {
            answer
        } else {
            let decided = match command {
                Command::Place {
                    user_id,
                    request,
                    payment,
                    ..
                } => place(
                    &mut working,
                    &mut effects,
                    index,
                    *user_id,
                    request,
                    *payment,
                    now,
                ),
                Command::Pay { order_id, .. } => {
                    pay(&mut working, &mut effects, index, *order_id, now)
                }
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

    let (placed, mut stored_orders) = write(conn, &effects, &working, now, settings).await?;
    // every other order answered with (paid, replayed), as stored
    let mut wanted: Vec<i64> = vec![];
    for answer in &mut answers {
        if let Answer::Order(id) = answer {
            *id = placed.get(id).copied().unwrap_or(*id);
            if !stored_orders.contains_key(id) {
                wanted.push(*id);
            }
        }
    }
    stored_orders.extend(rows::load(conn, wanted).await?);
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
    record_payments(conn, &paid, &stored_orders, &working.names, now, settings).await?;
    record_keys(conn, commands, &answers, &stored).await?;

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
    Ok(Applied {
        outcomes,
        aftermath,
    })
}

type StoredKeys = HashMap<(i64, String), idempotency_key::Model>;

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
    OrderError::Db(DbErr::RecordNotFound(format!("order {id}")))
}

/// The answer of a command whose key was used before (in the database, or earlier in the batch).
fn replayed(
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
            Answer::Refused(OrderError::IdempotencyKeyReused)
        });
    }
    match request.judge::<OrderReceipt>(stored.get(&key)) {
        Ok(Lookup::New) => None,
        Ok(Lookup::Replay(receipt)) => Some(Answer::Order(receipt.order_id)),
        Ok(Lookup::Reused) => Some(Answer::Refused(OrderError::IdempotencyKeyReused)),
        Err(err) => Some(Answer::Refused(OrderError::Db(err))),
    }
}

/// Decides a new order against the working rows: every line, then the coupon, then the balance.
fn place(
    working: &mut Working,
    effects: &mut Effects,
    index: usize,
    user_id: i64,
    request: &OrderRequest,
    payment: Payment,
    now: DateTime<Utc>,
) -> Result<Answer, OrderError> {
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
    let lines: Vec<PricedLine> = request
        .lines
        .iter()
        .map(|line| PricedLine {
            product_id: line.product_id,
            quantity: line.quantity,
            unit_price: working.prices[&line.product_id],
        })
        .collect();
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
        .ok_or(OrderError::UnknownUser)?;
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

/// Decides a payment of a (locked) PENDING order of the viewer's.
fn pay(
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
        .ok_or(OrderError::UnknownUser)?;
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

/// Stands for the id of the order a command places until it is inserted (never a real id).
fn placeholder(index: usize) -> i64 {
    -1 - index as i64
}

/// Writes what the accepted commands do; returns the ids of the new orders by placeholder, and
/// the new orders as stored.
async fn write(
    conn: &impl ConnectionTrait,
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
        order_item::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(conn)
            .await?;
    }
    rows::set_status(conn, &effects.paid, OrderStatus::Completed, now).await?;
    rows::set_status(conn, &effects.expired, OrderStatus::Expired, now).await?;
    stock::change(conn, &effects.stock, now).await?;

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
    redemption::set(conn, &holds).await?;

    let movements: Vec<Movement> = effects
        .movements
        .iter()
        .map(|(index, movement)| Movement {
            order_id: movement.order_id.or_else(|| id_of.get(index).copied()),
            ..movement.clone()
        })
        .collect();
    accounts::apply(conn, &movements, now).await?;
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

/// The payment rows, the sales of the day and the events for the data platform of every order
/// paid in the batch (their ledger rows were written with the balances).
async fn record_payments(
    conn: &impl ConnectionTrait,
    paid: &[(i64, Vec<PricedLine>)],
    stored: &HashMap<i64, order::Model>,
    names: &HashMap<i64, String>,
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
        });
    }
    for chunk in payments.chunks(ROWS_PER_INSERT) {
        payment::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(conn)
            .await?;
    }
    sales::record(conn, sales::sales_date(now, settings.time_zone), &sold).await?;
    outbox::enqueue_many(conn, events).await
}

/// Stores the result of every accepted command sent with a key (a replay stores nothing new).
async fn record_keys(
    conn: &impl ConnectionTrait,
    commands: &[Command],
    answers: &[Answer],
    stored: &StoredKeys,
) -> Result<(), AttemptError> {
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
    idempotency::record_many(conn, &keys).await
}
