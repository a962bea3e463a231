//! Balance use cases. A charge is one short transaction: a conditional increment of the balance
//! row (which also enforces the ceiling, under the row lock), a ledger row with `balance_after`,
//! and the idempotency record when a key was sent.

use chrono::Utc;
use entity::balance;
use entity::balance_ledger::{self, LedgerKind};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::accounts::{self, Movement};
use crate::error::{CommonError, InvalidInput, common_error};
use crate::infra::db::Database;
use crate::infra::idempotency::IdempotentRequest;
use crate::infra::meters::CHARGED_WON;
use crate::infra::paging::{Page, PageRequest};
use crate::infra::transact::{Abort, Attempt};

/// Limits on charges, from the settings.
#[derive(Copy, Clone, Debug)]
pub struct BalanceLimits {
    pub max_charge: i64,
    pub max_balance: i64,
}

impl BalanceLimits {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            max_charge: settings.balance.max_charge_amount,
            max_balance: settings.balance.max_balance,
        }
    }
}

#[derive(Clone)]
pub struct BalanceService {
    db: Database,
    limits: BalanceLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error(transparent)]
    Common(CommonError),
    #[error("the balance {balance} would exceed {max}")]
    LimitExceeded { balance: i64, max: i64 },
}
common_error!(BalanceError);

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
            .one(&self.db.reads())
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
        let total = of_user.clone().count(&self.db.reads()).await?;
        let mut query = of_user;
        if let Some(after) = page.after {
            query = query.filter(balance_ledger::Column::Id.lt(after));
        }
        let rows = query
            .order_by_desc(balance_ledger::Column::Id)
            .limit(page.first + 1)
            .all(&self.db.reads())
            .await?;
        Ok(Page::from_overfetch(rows, page, total))
    }

    /// Adds `amount` won to the user's balance; returns the ledger entry.
    #[tracing::instrument(name = "charge balance", skip_all)]
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
            .transact_once(
                idempotency.as_ref(),
                |_| async { Ok(()) },
                |txn, receipt| async move { replayed(&txn, receipt).await },
                |txn, ()| async move { self.charge_in(&txn, user_id, amount).await },
            )
            .await?;
        metrics::counter!(CHARGED_WON).increment(amount as u64);
        Ok(entry)
    }

    /// The charge itself, under the balance row's lock: refused over the ceiling.
    async fn charge_in(
        &self,
        txn: &DatabaseTransaction,
        user_id: i64,
        amount: i64,
    ) -> Attempt<(balance_ledger::Model, ChargeReceipt), BalanceError> {
        let Some(balance) = accounts::lock(txn, [user_id]).await?.get(&user_id).copied() else {
            return Err(Abort::Refused(CommonError::UnknownUser.into()));
        };
        if balance > self.limits.max_balance - amount {
            return Err(Abort::Refused(BalanceError::LimitExceeded {
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
        let entry = accounts::apply_one(txn, charge, Utc::now()).await?;
        let receipt = ChargeReceipt {
            ledger_entry_id: entry.id,
        };
        Ok((entry, receipt))
    }
}

/// The entry a repeated charge answers with.
async fn replayed(
    txn: &DatabaseTransaction,
    receipt: ChargeReceipt,
) -> Attempt<balance_ledger::Model, BalanceError> {
    let entry = balance_ledger::Entity::find_by_id(receipt.ledger_entry_id)
        .one(txn)
        .await?;
    Ok(entry.ok_or_else(|| DbErr::RecordNotFound("replayed ledger entry".into()))?)
}
