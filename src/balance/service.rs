//! Balance use cases. A charge is one short transaction: a conditional increment of the balance
//! row (which also enforces the ceiling, under the row lock), a ledger row with `balance_after`,
//! and the idempotency record when a key was sent.

use chrono::Utc;
use entity::{balance, balance_ledger};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;
use crate::infra::db::{AttemptError, Database};
use crate::infra::idempotency::{IdempotentRequest, Lookup};
use crate::infra::paging::{Page, PageRequest};

/// Kinds of ledger entries.
pub const CHARGE: &str = "CHARGE";
pub const PAYMENT: &str = "PAYMENT";
pub const REFUND: &str = "REFUND";

/// Limits on charges, from the settings.
#[derive(Copy, Clone, Debug)]
pub struct BalanceLimits {
    pub max_charge: i64,
    pub max_balance: i64,
}

#[derive(Clone)]
pub struct BalanceService {
    db: Database,
    limits: BalanceLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("the balance {balance} would exceed {max}")]
    LimitExceeded { balance: i64, max: i64 },
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    /// The viewer's user does not exist (deleted after their credentials were issued).
    #[error("no such user")]
    UnknownUser,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What a charge returns, also when replayed: the ledger entry it wrote.
#[derive(Serialize, Deserialize)]
struct ChargeReceipt {
    ledger_entry_id: i64,
}

impl BalanceService {
    pub fn new(db: Database, limits: BalanceLimits) -> Self {
        Self { db, limits }
    }

    /// The user's balance; `None` when the user has no balance row (unknown user).
    pub async fn balance_of(&self, user_id: i64) -> Result<Option<i64>, DbErr> {
        Ok(balance::Entity::find_by_id(user_id)
            .one(self.db.conn())
            .await?
            .map(|b| b.amount))
    }

    /// The user's ledger, newest first.
    pub async fn history(
        &self,
        user_id: i64,
        page: PageRequest,
    ) -> Result<Page<balance_ledger::Model>, DbErr> {
        let of_user =
            balance_ledger::Entity::find().filter(balance_ledger::Column::UserId.eq(user_id));
        let total = of_user.clone().count(self.db.conn()).await?;
        let mut query = of_user;
        if let Some(after) = page.after {
            query = query.filter(balance_ledger::Column::Id.lt(after));
        }
        let rows = query
            .order_by_desc(balance_ledger::Column::Id)
            .limit(page.first + 1)
            .all(self.db.conn())
            .await?;
        Ok(Page::from_overfetch(rows, page, total))
    }

    /// Adds `amount` won to the user's balance; returns the ledger entry.
    pub async fn charge(
        &self,
        user_id: i64,
        amount: i64,
        idempotency_key: Option<&str>,
    ) -> Result<balance_ledger::Model, BalanceError> {
        if amount <= 0 {
            return Err(InvalidInput::new("amount", "must be a positive number of won").into());
        }
        if amount > self.limits.max_charge {
            return Err(InvalidInput::new(
                "amount",
                format!("at most {} won per charge", self.limits.max_charge),
            )
            .into());
        }
        let idempotency = IdempotentRequest::new(
            user_id,
            idempotency_key,
            "chargeBalance",
            &serde_json::json!({ "amount": amount }),
        )?;

        let entry = self
            .db
            .write(|| self.charge_attempt(user_id, amount, idempotency.as_ref()))
            .await??;
        metrics::counter!("charged_won_total").increment(amount as u64);
        Ok(entry)
    }

    async fn charge_attempt(
        &self,
        user_id: i64,
        amount: i64,
        idempotency: Option<&IdempotentRequest>,
    ) -> Result<Result<balance_ledger::Model, BalanceError>, AttemptError> {
        let txn = self.db.begin_write().await?;
        if let Some(request) = idempotency {
            match request.lookup::<ChargeReceipt>(&*txn).await? {
                Lookup::New => {}
                Lookup::Replay(receipt) => {
                    let entry = balance_ledger::Entity::find_by_id(receipt.ledger_entry_id)
                        .one(&*txn)
                        .await?
                        .ok_or_else(|| DbErr::RecordNotFound("replayed ledger entry".into()))?;
                    txn.rollback().await?;
                    return Ok(Ok(entry));
                }
                Lookup::Reused => {
                    txn.rollback().await?;
                    return Ok(Err(BalanceError::IdempotencyKeyReused));
                }
            }
        }
        let now = Utc::now();
        let updated = balance::Entity::update_many()
            .col_expr(
                balance::Column::Amount,
                Expr::col(balance::Column::Amount).add(amount),
            )
            .col_expr(balance::Column::UpdatedAt, Expr::value(now))
            .filter(balance::Column::UserId.eq(user_id))
            .filter(balance::Column::Amount.lte(self.limits.max_balance - amount))
            .exec(&*txn)
            .await?;
        if updated.rows_affected == 0 {
            let refusal = match balance::Entity::find_by_id(user_id).one(&*txn).await? {
                None => BalanceError::UnknownUser,
                Some(current) => BalanceError::LimitExceeded {
                    balance: current.amount,
                    max: self.limits.max_balance,
                },
            };
            txn.rollback().await?;
            return Ok(Err(refusal));
        }
        let balance_after = balance::Entity::find_by_id(user_id)
            .one(&*txn)
            .await?
            .map_or(amount, |b| b.amount);
        let entry = append_ledger(&*txn, user_id, CHARGE, amount, balance_after, None).await?;
        if let Some(request) = idempotency {
            request
                .record(
                    &*txn,
                    &ChargeReceipt {
                        ledger_entry_id: entry.id,
                    },
                )
                .await?;
        }
        txn.commit().await?;
        Ok(Ok(entry))
    }
}

/// Writes the ledger row of a movement that was just applied to the (locked) balance row.
pub async fn append_ledger(
    conn: &impl ConnectionTrait,
    user_id: i64,
    kind: &str,
    amount: i64,
    balance_after: i64,
    order_id: Option<i64>,
) -> Result<balance_ledger::Model, DbErr> {
    balance_ledger::ActiveModel {
        user_id: Set(user_id),
        kind: Set(kind.to_owned()),
        amount: Set(amount),
        balance_after: Set(balance_after),
        order_id: Set(order_id),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(conn)
    .await
}
