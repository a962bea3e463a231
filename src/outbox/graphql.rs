//! GraphQL surface of the outbox (administrators): `outboxStats` and `retryFailedDeliveries`.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::service::OutboxService;
use crate::error::AppError;
use crate::graphql::context::viewer;

/// Delivery of events to the data platform.
#[derive(SimpleObject)]
pub struct OutboxStats {
    /// Events waiting to be sent (or retried).
    pub pending: u64,
    /// Events given up on (rejected by the platform, or out of attempts);
    /// `retryFailedDeliveries` re-queues them.
    pub failed: u64,
    /// Events the data platform has accepted, as far as they are kept (`OUTBOX_RETENTION_SECS`).
    pub sent: u64,
    /// Seconds the oldest PENDING event has waited; null when none waits.
    pub oldest_pending_age: Option<f64>,
    /// When the oldest PENDING event was written; null when none waits.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// CLOSED, OPEN, HALF_OPEN, or DISABLED when no data platform is configured.
    pub circuit_state: String,
}

/// The result of `retryFailedDeliveries`.
#[derive(SimpleObject)]
pub struct RetryFailedDeliveriesPayload {
    /// How many FAILED events were put back in the queue.
    pub requeued: u64,
}

#[derive(Default)]
pub struct OutboxQuery;

#[Object]
impl OutboxQuery {
    /// The outbox at a glance. Admin only (FORBIDDEN otherwise).
    async fn outbox_stats(&self, ctx: &Context<'_>) -> async_graphql::Result<OutboxStats> {
        viewer(ctx).require_admin()?;
        let stats = ctx
            .data_unchecked::<OutboxService>()
            .stats()
            .await
            .map_err(AppError::from)?;
        Ok(OutboxStats {
            pending: stats.pending,
            failed: stats.failed,
            sent: stats.sent,
            oldest_pending_age: stats
                .oldest_pending_at
                .map(|at| (Utc::now() - at).num_milliseconds().max(0) as f64 / 1_000.0),
            oldest_pending_at: stats.oldest_pending_at,
            circuit_state: stats.circuit_state.to_owned(),
        })
    }
}

#[derive(Default)]
pub struct OutboxMutation;

#[Object]
impl OutboxMutation {
    /// Re-queues every FAILED delivery. Admin only (FORBIDDEN otherwise).
    async fn retry_failed_deliveries(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<RetryFailedDeliveriesPayload> {
        viewer(ctx).require_admin()?;
        let requeued = ctx
            .data_unchecked::<OutboxService>()
            .retry_failed()
            .await
            .map_err(AppError::from)?;
        Ok(RetryFailedDeliveriesPayload { requeued })
    }
}
