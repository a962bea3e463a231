//! Schema migrations of the commerce service.
//!
//! Written with sea-query builders only, so the same migration runs on PostgreSQL, MySQL/MariaDB
//! and SQLite. Invariants that must hold whatever the code does (non-negative balances and stock,
//! one idempotency key per user) are CHECK and UNIQUE constraints here.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_foundation;
mod m20261121_000002_orders;
mod m20261121_000003_coupons;
mod m20261202_000004_installation;
mod m20261202_000005_product_received;
mod m20261206_000006_outbox_lease_precision;
mod m20261206_000007_outbox_trace_parent;
mod m20261206_000008_outbox_retention;
mod m20261206_000009_timestamps_to_the_microsecond;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_foundation::Migration),
            Box::new(m20261121_000002_orders::Migration),
            Box::new(m20261121_000003_coupons::Migration),
            Box::new(m20261202_000004_installation::Migration),
            Box::new(m20261202_000005_product_received::Migration),
            Box::new(m20261206_000006_outbox_lease_precision::Migration),
            Box::new(m20261206_000007_outbox_trace_parent::Migration),
            Box::new(m20261206_000008_outbox_retention::Migration),
            Box::new(m20261206_000009_timestamps_to_the_microsecond::Migration),
        ]
    }
}
