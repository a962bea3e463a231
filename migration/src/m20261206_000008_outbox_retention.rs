//! `installation.outbox_pruned_before`: SENT outbox events created before this instant may have
//! been deleted by the retention (`OUTBOX_RETENTION_SECS`), so `commerce verify` does not count
//! their absence as a lost event. Null: nothing was ever pruned.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Installation {
    Table,
    OutboxPrunedBefore,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Installation::Table)
                    .add_column(timestamp_with_time_zone_null(
                        Installation::OutboxPrunedBefore,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Installation::Table)
                    .drop_column(Installation::OutboxPrunedBefore)
                    .to_owned(),
            )
            .await
    }
}
