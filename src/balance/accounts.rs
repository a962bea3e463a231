//! Balance rows and their ledger, as payments and refunds change them inside the order use cases'
//! transactions: lock the balances (ascending user id, the last step of the global lock order),
//! then apply any number of movements with one update and one ledger insert (sent with the
//! transaction's other writes, [`Writes`]). Every movement writes its ledger row, so the entries
//! of a user always sum to the balance. The balance domain owns these rows; ordering only calls
//! these.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use entity::balance;
use entity::balance_ledger::{self, LedgerKind};
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryTrait,
    Set,
};

use crate::infra::locking::lock_ascending;
use crate::infra::writes::Writes;

/// Locks the balances of `users` (ascending id); returns the amounts of those that exist.
pub async fn lock(
    conn: &impl ConnectionTrait,
    users: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, i64>, DbErr> {
    let rows = lock_ascending::<balance::Entity>(conn, balance::Column::UserId, users).await?;
    Ok(rows.into_iter().map(|b| (b.user_id, b.amount)).collect())
}

/// One movement of a locked balance: what changes, and the balance after it (in the order the
/// movements happen).
#[derive(Clone, Debug)]
pub struct Movement {
    pub user_id: i64,
    pub kind: LedgerKind,
    /// Signed: a payment is negative.
    pub amount: i64,
    pub balance_after: i64,
    pub order_id: Option<i64>,
}

/// Applies one movement of a locked balance now; returns its ledger entry.
pub async fn apply_one(
    conn: &impl ConnectionTrait,
    movement: Movement,
    now: DateTime<Utc>,
) -> Result<balance_ledger::Model, DbErr> {
    let mut writes = Writes::new(conn.get_database_backend());
    update_balances(&mut writes, std::slice::from_ref(&movement), now);
    writes.send(conn).await?;
    ledger_row(&movement, now).insert(conn).await
}

/// Adds to `writes` the movements of locked balances: one update of every balance touched, one
/// insert of every ledger row. The caller has checked no balance goes below zero (the CHECK
/// refuses it).
pub fn apply(writes: &mut Writes, movements: &[Movement], now: DateTime<Utc>) {
    if movements.is_empty() {
        return;
    }
    update_balances(writes, movements, now);
    writes.insert(
        balance_ledger::Entity::insert_many(movements.iter().map(|m| ledger_row(m, now)))
            .into_query(),
    );
}

fn ledger_row(movement: &Movement, now: DateTime<Utc>) -> balance_ledger::ActiveModel {
    balance_ledger::ActiveModel {
        user_id: Set(movement.user_id),
        kind: Set(movement.kind),
        amount: Set(movement.amount),
        balance_after: Set(movement.balance_after),
        order_id: Set(movement.order_id),
        created_at: Set(now),
        ..Default::default()
    }
}

/// One update of every balance the movements touch (their sum per user).
fn update_balances(writes: &mut Writes, movements: &[Movement], now: DateTime<Utc>) {
    let mut net: BTreeMap<i64, i64> = BTreeMap::new();
    for movement in movements {
        *net.entry(movement.user_id).or_default() += movement.amount;
    }
    let mut by_user = CaseStatement::new();
    for (user_id, amount) in &net {
        by_user = by_user.case(Expr::col(balance::Column::UserId).eq(*user_id), *amount);
    }
    let statement = balance::Entity::update_many()
        .col_expr(
            balance::Column::Amount,
            Expr::col(balance::Column::Amount).add(Expr::expr(by_user.finally(0))),
        )
        .col_expr(balance::Column::UpdatedAt, Expr::value(now))
        .filter(balance::Column::UserId.is_in(net.keys().copied()))
        .into_query();
    writes.update_exactly(statement, net.len() as u64);
}
