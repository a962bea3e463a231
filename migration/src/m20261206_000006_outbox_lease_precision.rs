//! Outbox leases to the microsecond on MySQL/MariaDB.
//!
//! `outbox_events.next_attempt_at` is both the retry time and the lease of a claimed event: a
//! relay pushes it a few send timeouts ahead and must be sure no other relay claims the event
//! before that instant. MySQL's `TIMESTAMP` keeps whole seconds (MariaDB truncates the fraction,
//! MySQL rounds it), so a lease could end up to a second before the instant the relay meant, and
//! a second relay sent an event the first was still sending. PostgreSQL's `timestamptz` and
//! SQLite's text already keep microseconds; this makes MySQL's column `TIMESTAMP(6)` too. The
//! explicit default keeps MySQL from giving the column `ON UPDATE CURRENT_TIMESTAMP` where
//! `explicit_defaults_for_timestamp` is off.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const MICROSECONDS: &str = "ALTER TABLE outbox_events MODIFY next_attempt_at \
    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)";
const SECONDS: &str = "ALTER TABLE outbox_events MODIFY next_attempt_at \
    TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        on_mysql(manager, MICROSECONDS).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        on_mysql(manager, SECONDS).await
    }
}

async fn on_mysql(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::MySql {
        manager.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}
