//! The expiry worker: every sweep, expires PENDING orders past their `expires_at` and releases
//! their stock. Each order is expired in its own transaction under its row lock, re-checking the
//! status there, so several instances (or a payment racing the worker) never apply it twice.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::service::OrderingService;

/// Orders looked at per sweep.
const BATCH: u64 = 200;

/// Runs until `shutdown` is cancelled.
pub async fn run(service: OrderingService, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(err) = sweep(&service).await {
            tracing::warn!(error = %err, "order expiry sweep failed; retrying next sweep");
        }
    }
}

async fn sweep(service: &OrderingService) -> Result<(), sea_orm::DbErr> {
    let mut expired = 0;
    for order_id in service.overdue(BATCH).await? {
        if service.expire(order_id).await? {
            expired += 1;
        }
    }
    if expired > 0 {
        tracing::info!(expired, "expired overdue pending orders");
    }
    Ok(())
}
