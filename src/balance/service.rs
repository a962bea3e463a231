//! Balance use cases. A charge is one short transaction: a conditional increment of the balance
//! row (which also enforces the ceiling, under the row lock), a ledger row with `balance_after`,
//! and the idempotency record when a key was sent.

use chrono::Utc;
use entity::balance;
use entity::balance_ledger::{self, LedgerKind};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::accounts::{self, Movement};
use crate::error::InvalidInput;
use crate::infra::db::{AttemptError, Database};
use crate::infra::idempotency::{IdempotentRequest, Lookup};
use crate::infra::paging::{Page, PageRequest};

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
        let Some(balance) = accounts::lock(&*txn, [user_id])
            .await?
            .get(&user_id)
            .copied()
        else {
            txn.rollback().await?;
            return Ok(Err(BalanceError::UnknownUser));
        };
        if balance > self.limits.max_balance - amount {
            txn.rollback().await?;
            return Ok(Err(BalanceError::LimitExceeded {
                balance,
                max: self.limits.max_balance,
            }));
        }
        let charge = Movement {
            user_id,
            kind: LedgerKind::Charge,
            amount,
            balance_after: balance + amount,
            order_id: None,
        };
        let entry = accounts::apply_one(&*txn, charge, Utc::now()).await?;
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
