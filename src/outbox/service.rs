//! Outbox reports and operations for administrators.

use chrono::{DateTime, Utc};
use entity::outbox_event::{self, OutboxStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::relay::{OutboxSignal, SharedBreaker, breaker_state};
use crate::infra::db::Database;

#[derive(Clone)]
pub struct OutboxService {
    db: Database,
    /// `None` when no data platform is configured (events wait).
    breaker: Option<SharedBreaker>,
    signal: OutboxSignal,
}

/// The outbox at a glance.
#[derive(Clone, Debug)]
pub struct OutboxStats {
    pub pending: u64,
    pub failed: u64,
    pub sent: u64,
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// `CLOSED`, `OPEN`, `HALF_OPEN`, or `DISABLED` without a data platform.
    pub circuit_state: &'static str,
}

impl OutboxService {
    pub fn new(db: Database, breaker: Option<SharedBreaker>, signal: OutboxSignal) -> Self {
        Self {
            db,
            breaker,
            signal,
        }
    }

    pub fn signal(&self) -> OutboxSignal {
        self.signal.clone()
    }

    pub async fn stats(&self) -> Result<OutboxStats, DbErr> {
        let count = |wanted: OutboxStatus| {
            outbox_event::Entity::find()
                .filter(outbox_event::Column::Status.eq(wanted))
                .count(self.db.conn())
        };
        let oldest_pending_at = outbox_event::Entity::find()
            .select_only()
            .column(outbox_event::Column::CreatedAt)
            .filter(outbox_event::Column::Status.eq(OutboxStatus::Pending))
            .order_by_asc(outbox_event::Column::Id)
            .into_tuple::<DateTime<Utc>>()
            .one(self.db.conn())
            .await?;
        let circuit_state = match &self.breaker {
            Some(breaker) => breaker_state(breaker).await.as_str(),
            None => "DISABLED",
        };
        Ok(OutboxStats {
            pending: count(OutboxStatus::Pending).await?,
            failed: count(OutboxStatus::Failed).await?,
            sent: count(OutboxStatus::Sent).await?,
            oldest_pending_at,
            circuit_state,
        })
    }

    /// Puts every FAILED event back in the queue, due now; returns how many.
    pub async fn retry_failed(&self) -> Result<u64, DbErr> {
        let requeued = outbox_event::Entity::update_many()
            .col_expr(
                outbox_event::Column::Status,
                Expr::value(OutboxStatus::Pending),
            )
            .col_expr(outbox_event::Column::Attempts, Expr::value(0))
            .col_expr(outbox_event::Column::NextAttemptAt, Expr::value(Utc::now()))
            .filter(outbox_event::Column::Status.eq(OutboxStatus::Failed))
            .exec(self.db.conn())
            .await?
            .rows_affected;
        self.signal.wake();
        Ok(requeued)
    }
}
