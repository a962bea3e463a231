//! Statistics of the order tables that keep up with a fresh database (PostgreSQL).
//!
//! PostgreSQL plans the foreign-key check of every order item and payment (`orders.id` of the new
//! row) once per connection and keeps that plan until the table's statistics change. On a fresh
//! database whose empty tables were analyzed (by `vacuumdb --analyze`, a restore, an operator, or
//! autovacuum after the first few dozen orders) the plan is made for a table of a page or two: a
//! sequential scan, kept while `orders` grows by thousands of rows a second, ~3 scans of the whole
//! table per order until the next ANALYZE (issue #12; BENCHMARKS.md, "From a fresh database").
//! Never-analyzed tables are safe: the planner assumes them to be at least 10 pages.
//!
//! So once this instance has placed [`PLACED_BEFORE_CHECK`] orders, it looks whether the
//! statistics of `orders` still count fewer rows than that, and if so analyzes the order tables
//! once: every connection then re-plans its checks for the table as it is (an index scan).
//! Planning every execution instead (`plan_cache_mode = force_custom_plan`) was measured at ~28%
//! fewer orders per second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use crate::infra::db::Database;

/// Orders placed by this instance before it checks the statistics: `orders` is then a dozen
/// pages, past the size where reading it whole is the cheaper plan.
pub const PLACED_BEFORE_CHECK: u64 = 500;

/// Counts this instance's new orders and refreshes stale statistics once.
pub struct StatisticsWatch {
    db: Database,
    /// The runtime `db`'s connections belong to (the writer that counts runs on its own).
    runtime: tokio::runtime::Handle,
    placed: AtomicU64,
    checked: AtomicBool,
}

impl StatisticsWatch {
    /// Watches with `db`, whose connections are driven by the runtime this is called on.
    pub fn new(db: Database) -> Self {
        let postgres = db.backend() == DbBackend::Postgres;
        Self {
            db,
            runtime: tokio::runtime::Handle::current(),
            placed: AtomicU64::new(0),
            // MySQL and SQLite check foreign keys in the parent's index, with no plan to keep
            checked: AtomicBool::new(!postgres),
        }
    }

    /// Called after a commit that inserted `count` orders.
    pub fn placed(&self, count: u64) {
        if self.checked.load(Ordering::Relaxed) {
            return;
        }
        let placed = self.placed.fetch_add(count, Ordering::Relaxed) + count;
        if placed < PLACED_BEFORE_CHECK || self.checked.swap(true, Ordering::Relaxed) {
            return;
        }
        let db = self.db.clone();
        self.runtime.spawn(async move {
            match refresh_if_stale(&db).await {
                Ok(true) => tracing::info!(
                    "analyzed the order tables: their statistics predated the first {PLACED_BEFORE_CHECK} orders"
                ),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cannot refresh the order tables' statistics"),
            }
        });
    }
}

/// Analyzes the order tables when the statistics of `orders` count fewer rows than this
/// instance placed. Never analyzed (-1) counts too: harmless today, and the first ANALYZE, by
/// anyone, then already sees a filled table.
async fn refresh_if_stale(db: &Database) -> Result<bool, DbErr> {
    let stale = db
        .conn()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT reltuples < $1 AS stale FROM pg_class WHERE oid = 'orders'::regclass",
            [(PLACED_BEFORE_CHECK as f64).into()],
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "stale"))
        .transpose()?
        .unwrap_or(false);
    if stale {
        db.conn()
            .execute_unprepared("ANALYZE orders, order_items, payments")
            .await?;
    }
    Ok(stale)
}
