//! Order use cases, as the resolvers and the expiry worker call them.
//!
//! New orders and payments go to the [`OrderWriter`], which applies many of them per transaction
//! ([`super::placing`]); cancellations, refunds and expiries run one per transaction
//! ([`super::lifecycle`]). Lock order, everywhere: the order row, then product rows by ascending
//! id, then coupons, then balance rows by ascending user id. Every check happens under those
//! locks, and either everything of a command is applied or nothing. What a commit changed is
//! announced after it ([`super::announce`]).

use entity::order;
use sea_orm::DbErr;
use serde::Serialize;
use tracing::Span;

use super::announce::Announcer;
use super::lifecycle;
use super::model::{OrderError, OrderSettings, Payment};
use super::placing::Command;
use super::request::OrderRequest;
use super::writer::OrderWriter;
use crate::infra::batching::BatchSettings;
use crate::infra::db::Database;
use crate::infra::idempotency::IdempotentRequest;
use crate::telemetry::traceparent;

#[derive(Clone)]
pub struct OrderingService {
    pub(super) db: Database,
    writer: OrderWriter,
    announcer: Announcer,
    settings: OrderSettings,
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
    #[tracing::instrument(name = "place order", skip_all)]
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
                trace_parent: traceparent(&Span::current()),
            })
            .await
    }

    /// Pays a PENDING order from the balance.
    #[tracing::instrument(name = "pay order", skip_all)]
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
                trace_parent: traceparent(&Span::current()),
            })
            .await
    }

    /// Cancels a PENDING order (CANCELLED, stock released) or refunds a COMPLETED one (REFUNDED:
    /// balance refunded, stock restored, sales reversed). `owner` is `None` for an administrator,
    /// who may cancel anyone's order.
    #[tracing::instrument(name = "cancel order", skip_all)]
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
            .transact_once(
                idempotency.as_ref(),
                |txn| async move { lifecycle::lock_own(&txn, owner, order_id).await },
                |txn, receipt| async move { lifecycle::replay(&txn, receipt).await },
                |txn, order| async move { lifecycle::cancel(&txn, order, &self.settings).await },
            )
            .await?;
        self.announcer.announce(&changed.aftermath);
        Ok(changed.order)
    }

    /// Expires one overdue PENDING order; `false` when it was no longer PENDING or not overdue.
    pub async fn expire(&self, order_id: i64) -> Result<bool, DbErr> {
        let changed = self
            .db
            .transact(|txn| async move { lifecycle::expire(&txn, order_id).await })
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
