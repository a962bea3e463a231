//! The installation: one row naming this database for good, so that what lives outside it (the
//! Redis keys and channels of a deployment) can never be mistaken for another database's.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Installation {
    Table,
    Id,
    Uuid,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Installation::Table)
                    .col(small_integer(Installation::Id).primary_key())
                    .col(string_len_uniq(Installation::Uuid, 36))
                    .col(timestamp_with_time_zone(Installation::CreatedAt))
                    // exactly one row
                    .check(Expr::col(Installation::Id).eq(1))
                    .to_owned(),
            )
            .await?;
        // made here, once: a copy of the database (a restored backup) keeps it, a new one differs
        let insert = Query::insert()
            .into_table(Installation::Table)
            .columns([
                Installation::Id,
                Installation::Uuid,
                Installation::CreatedAt,
            ])
            .values_panic([
                1.into(),
                uuid::Uuid::new_v4().to_string().into(),
                Expr::current_timestamp(),
            ])
            .to_owned();
        manager.exec_stmt(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Installation::Table).to_owned())
            .await
    }
}
