//! Every instant on MySQL/MariaDB becomes `DATETIME(6)`: to the microsecond and up to the year
//! 9999, as PostgreSQL's `timestamptz` and SQLite's text already keep them.
//!
//! MySQL's `TIMESTAMP` (what SeaORM creates for a `timestamp_with_time_zone`) had two faults:
//! - it keeps whole seconds (MariaDB truncates the fraction, MySQL rounds it): a coupon event
//!   created with `startsAt` 00:00:00.250 opened at 00:00:00, and a PENDING order expired up to a
//!   second before the instant the server meant;
//! - it ends on 2038-01-19: a coupon event ending in 2040 was stored with no end at all (MariaDB
//!   writes NULL for an instant out of range in a nullable column).
//!
//! `DATETIME` holds the UTC wall time the server writes (sqlx sets the session's `time_zone` to
//! +00:00, so `NOW()` and the stored values agree). Columns that may be null keep
//! `DEFAULT NULL`; the others get an explicit `DEFAULT CURRENT_TIMESTAMP(6)` (the server always
//! writes them itself). Migration 000006 had made the outbox lease `TIMESTAMP(6)`; it moves too.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, column, nullable)
const COLUMNS: [(&str, &str, bool); 25] = [
    ("users", "created_at", false),
    ("balances", "updated_at", false),
    ("balance_ledger", "created_at", false),
    ("products", "created_at", false),
    ("products", "updated_at", false),
    ("idempotency_keys", "created_at", false),
    ("orders", "expires_at", true),
    ("orders", "created_at", false),
    ("orders", "updated_at", false),
    ("orders", "paid_at", true),
    ("orders", "cancelled_at", true),
    ("payments", "paid_at", false),
    ("payments", "refunded_at", true),
    ("outbox_events", "created_at", false),
    ("outbox_events", "sent_at", true),
    ("outbox_events", "next_attempt_at", false),
    ("coupon_events", "starts_at", false),
    ("coupon_events", "ends_at", true),
    ("coupon_events", "valid_until", true),
    ("coupon_events", "created_at", false),
    ("user_coupons", "issued_at", false),
    ("user_coupons", "expires_at", false),
    ("user_coupons", "used_at", true),
    ("installation", "created_at", false),
    ("installation", "outbox_pruned_before", true),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        alter_on_mysql(manager, |_| ("DATETIME", "(6)")).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        alter_on_mysql(manager, |column| match column {
            "next_attempt_at" => ("TIMESTAMP", "(6)"),
            _ => ("TIMESTAMP", ""),
        })
        .await
    }
}

/// Gives every column of [`COLUMNS`] the type and fractional digits `of(column)` (e.g.
/// `("DATETIME", "(6)")`), one statement per table.
async fn alter_on_mysql(
    manager: &SchemaManager<'_>,
    of: impl Fn(&str) -> (&'static str, &'static str),
) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::MySql {
        return Ok(());
    }
    let mut tables: Vec<&str> = COLUMNS.iter().map(|(table, _, _)| *table).collect();
    tables.dedup();
    for table in tables {
        let changes: Vec<String> = COLUMNS
            .iter()
            .filter(|(in_table, _, _)| *in_table == table)
            .map(|(_, column, nullable)| {
                let (ty, digits) = of(column);
                let null = if *nullable {
                    "NULL DEFAULT NULL".to_owned()
                } else {
                    format!("NOT NULL DEFAULT CURRENT_TIMESTAMP{digits}")
                };
                format!("MODIFY {column} {ty}{digits} {null}")
            })
            .collect();
        let sql = format!("ALTER TABLE {table} {}", changes.join(", "));
        manager.get_connection().execute_unprepared(&sql).await?;
    }
    Ok(())
}
