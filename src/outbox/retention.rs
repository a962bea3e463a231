//! The outbox's retention: SENT events older than `OUTBOX_RETENTION_SECS` are deleted, so the
//! table holds days of deliveries, not every one ever made (about 0.8 KiB an event: 3 GiB a day
//! at 40 orders a second). PENDING and FAILED events are never deleted.
//!
//! Each pass first records how far it prunes (`installation.outbox_pruned_before`, whole
//! seconds), then deletes at most [`CHUNK`] rows per statement until none is left: `commerce
//! verify` accepts a paid order without its events only when they were created before that
//! instant, so a pass cut short by a crash never reads as a lost event. Several instances may
//! prune at once: deleting twice deletes nothing.

use std::time::Duration;

use chrono::{DurationRound, Utc};
use entity::installation;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Statement};
use tokio_util::sync::CancellationToken;

use crate::infra::db::Database;

/// Rows deleted per statement: short statements, short locks.
const CHUNK: u64 = 1_000;
/// The longest wait between passes.
const MOST_EVERY: Duration = Duration::from_secs(600);

/// Runs until `shutdown` is cancelled: a pass every min(`retention`, 10 minutes).
pub async fn run(db: Database, retention: Duration, shutdown: CancellationToken) {
    let every = retention.min(MOST_EVERY).max(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match prune(&db, retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "outbox retention: deleted sent events"),
            Err(err) => tracing::warn!(error = %err, "outbox retention failed; retrying next pass"),
        }
    }
}

/// One pass: deletes the SENT events created more than `retention` ago; how many.
pub async fn prune(db: &Database, retention: Duration) -> Result<u64, DbErr> {
    let before = (Utc::now() - retention)
        .duration_trunc(chrono::TimeDelta::seconds(1))
        .map_err(|err| DbErr::Custom(err.to_string()))?;
    installation::Entity::update_many()
        .col_expr(
            installation::Column::OutboxPrunedBefore,
            Expr::value(before),
        )
        .filter(installation::Column::Id.eq(1_i16))
        .filter(
            installation::Column::OutboxPrunedBefore
                .is_null()
                .or(installation::Column::OutboxPrunedBefore.lt(before)),
        )
        .exec(db.conn())
        .await?;
    let backend = db.conn().get_database_backend();
    let [sent, created] = match backend {
        sea_orm::DbBackend::Postgres => ["$1", "$2"],
        _ => ["?", "?"],
    };
    // the inner SELECT is wrapped once more: MySQL refuses a DELETE whose subquery reads its table
    let sql = format!(
        "DELETE FROM outbox_events WHERE id IN (SELECT id FROM (SELECT id FROM outbox_events \
         WHERE status = {sent} AND created_at < {created} ORDER BY id LIMIT {CHUNK}) AS due)"
    );
    let mut deleted = 0;
    loop {
        let statement = Statement::from_sql_and_values(
            backend,
            &sql,
            [
                entity::outbox_event::OutboxStatus::Sent.into(),
                before.into(),
            ],
        );
        let done = db.conn().execute_raw(statement).await?.rows_affected();
        deleted += done;
        if done < CHUNK {
            return Ok(deleted);
        }
    }
}
