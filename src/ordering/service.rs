//! Order use cases, as the resolvers and the expiry worker call them.
//!
//! New orders and payments go to the [`OrderWriter`], which applies many of them per transaction
//! ([`super::placing`]); cancellations, refunds and expiries run one per transaction
//! ([`super::lifecycle`]). Lock order, everywhere: the order row, then product rows by ascending
//! id, then coupons, then balance rows by ascending user id. Every check happens under those
//! locks, and either everything of a command is applied or nothing. What a commit changed is
//! announced after it ([`super::announce`]).

use std::time::Duration;

use chrono_tz::Tz;
use entity::order::{self, OrderStatus};
use sea_orm::DbErr;
use serde::Serialize;

use super::announce::Announcer;
use super::lifecycle;
use super::placing::Command;
use super::request::OrderRequest;
use super::writer::OrderWriter;
use crate::error::InvalidInput;
use crate::infra::batching::BatchSettings;
use crate::infra::db::Database;
use crate::infra::idempotency::IdempotentRequest;

#[derive(Copy, Clone, Debug)]
pub struct OrderSettings {
    /// How long a PENDING order holds its stock.
    pub pending_ttl: Duration,
    /// The business day of sales.
    pub time_zone: Tz,
}

#[derive(Clone)]
pub struct OrderingService {
    pub(super) db: Database,
    writer: OrderWriter,
    announcer: Announcer,
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
        status: OrderStatus,
    },
    #[error("coupon not usable: {0}")]
    CouponNotUsable(String),
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    /// The viewer's user does not exist (deleted after their credentials were issued).
    #[error("no such user")]
    UnknownUser,
    /// The database went away while committing: applied or not, nobody can tell here.
    #[error("the commit got no answer")]
    Unconfirmed,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Whether a new order is paid in the same transaction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Payment {
    Now,
    Later,
}

impl OrderingService {
    /// Starts the order writer (see [`OrderWriter`]).
    pub fn new(
        db: Database,
        announcer: Announcer,
        settings: OrderSettings,
        batches: BatchSettings,
    ) -> std::io::Result<Self> {
        let writer = OrderWriter::start(db.clone(), settings, batches, announcer.clone())?;
        Ok(Self {
            db,
            writer,
            announcer,
            settings,
        })
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
        self.writer
            .submit(Command::Place {
                user_id,
                request,
                payment,
                idempotency,
            })
            .await
    }

    /// Pays a PENDING order from the balance.
    pub async fn pay(
        &self,
        user_id: i64,
        order_id: i64,
        idempotency_key: Option<&str>,
    ) -> Result<order::Model, OrderError> {
        let idempotency = idempotent(user_id, idempotency_key, "payOrder", &order_id)?;
        self.writer
            .submit(Command::Pay {
                user_id,
                order_id,
                idempotency,
            })
            .await
    }

    /// Cancels a PENDING order (CANCELLED, stock released) or refunds a COMPLETED one (REFUNDED:
    /// balance refunded, stock restored, sales reversed). `owner` is `None` for an administrator,
    /// who may cancel anyone's order.
    pub async fn cancel(
        &self,
        owner: Option<i64>,
        order_id: i64,
        idempotency_key: Option<&str>,
    ) -> Result<order::Model, OrderError> {
        let idempotency = match owner {
            Some(user) => idempotent(user, idempotency_key, "cancelOrder", &order_id)?,
            None => None,
        };
        let changed = self
            .db
            .write(|| async {
                let txn = self.db.begin_write().await?;
                lifecycle::cancel(txn, owner, order_id, idempotency.as_ref(), &self.settings).await
            })
            .await??;
        self.announcer.announce(&changed.aftermath);
        Ok(changed.order)
    }

    /// Expires one overdue PENDING order; `false` when it was no longer PENDING or not overdue.
    pub async fn expire(&self, order_id: i64) -> Result<bool, DbErr> {
        let changed = self
            .db
            .write(|| async {
                let txn = self.db.begin_write().await?;
                lifecycle::expire(txn, order_id).await
            })
            .await?;
        Ok(match changed {
            Some(changed) => {
                self.announcer.announce(&changed.aftermath);
                true
            }
            None => false,
        })
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
