//! Outbox reports and operations for administrators, and how the data platform answers (for
//! `/readyz` and the metrics).

use chrono::{DateTime, Utc};
use entity::outbox_event::{self, OutboxStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::breaker::{BreakerState, Fault};
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
    pub platform: PlatformHealth,
}

/// How the data platform answers, as the relay last found it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PlatformHealth {
    /// No data platform is configured: events wait.
    Disabled,
    /// It takes events (the breaker is closed).
    Answering,
    /// Down or failing: the breaker is open.
    Unavailable,
    /// It answers this status (401, 403, 404, 405) to every event: a wrong `DATA_PLATFORM_URL`
    /// or credentials. The breaker is open; events wait for the fix.
    Misdirected(u16),
}

impl PlatformHealth {
    /// Its name in `/readyz`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformHealth::Disabled => "disabled",
            PlatformHealth::Answering => "ok",
            PlatformHealth::Unavailable => "unavailable",
            PlatformHealth::Misdirected(_) => "misconfigured",
        }
    }

    /// What an operator should read, when something is wrong.
    pub fn problem(self) -> Option<String> {
        match self {
            PlatformHealth::Disabled | PlatformHealth::Answering => None,
            PlatformHealth::Unavailable => {
                Some("the data platform keeps failing; deliveries are paused and probed".to_owned())
            }
            PlatformHealth::Misdirected(status) => Some(format!(
                "the data platform answers {status} to every event: check DATA_PLATFORM_URL \
                 (its /events path) and credentials; events wait as PENDING"
            )),
        }
    }
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

    /// How the data platform answers now (no database query).
    pub async fn platform(&self) -> PlatformHealth {
        self.circuit().await.1
    }

    async fn circuit(&self) -> (&'static str, PlatformHealth) {
        let Some(breaker) = &self.breaker else {
            return ("DISABLED", PlatformHealth::Disabled);
        };
        let (state, fault) = breaker_state(breaker).await;
        let health = match (state, fault) {
            (BreakerState::Closed, _) => PlatformHealth::Answering,
            (_, Some(Fault::Misdirected(status))) => PlatformHealth::Misdirected(status),
            _ => PlatformHealth::Unavailable,
        };
        (state.as_str(), health)
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
        let (circuit_state, platform) = self.circuit().await;
        Ok(OutboxStats {
            pending: count(OutboxStatus::Pending).await?,
            failed: count(OutboxStatus::Failed).await?,
            sent: count(OutboxStatus::Sent).await?,
            oldest_pending_at,
            circuit_state,
            platform,
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
