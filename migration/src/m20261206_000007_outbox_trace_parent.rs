//! `outbox_events.trace_parent`: the W3C `traceparent` of the work that wrote the event (when
//! traces are exported), so its delivery, however much later, continues that trace.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OutboxEvents {
    Table,
    TraceParent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OutboxEvents::Table)
                    .add_column(string_len_null(OutboxEvents::TraceParent, 64))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OutboxEvents::Table)
                    .drop_column(OutboxEvents::TraceParent)
                    .to_owned(),
            )
            .await
    }
}
