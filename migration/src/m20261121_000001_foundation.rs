//! Users, balances and their ledger, the product catalog and idempotency keys.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Balances {
    Table,
    UserId,
    Amount,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BalanceLedger {
    Table,
    Id,
    UserId,
    Kind,
    Amount,
    BalanceAfter,
    OrderId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    Name,
    Description,
    Category,
    Price,
    Stock,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Id,
    UserId,
    IdemKey,
    Operation,
    RequestHash,
    Response,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(big_pk_auto(Users::Id))
                    .col(string_len(Users::Name, 100))
                    .col(string_len(Users::Role, 16))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Balances::Table)
                    .col(big_integer(Balances::UserId).primary_key())
                    .col(big_integer(Balances::Amount))
                    .col(timestamp_with_time_zone(Balances::UpdatedAt))
                    .check(Expr::col(Balances::Amount).gte(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Balances::Table, Balances::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BalanceLedger::Table)
                    .col(big_pk_auto(BalanceLedger::Id))
                    .col(big_integer(BalanceLedger::UserId))
                    .col(string_len(BalanceLedger::Kind, 16))
                    .col(big_integer(BalanceLedger::Amount))
                    .col(big_integer(BalanceLedger::BalanceAfter))
                    .col(big_integer_null(BalanceLedger::OrderId))
                    .col(timestamp_with_time_zone(BalanceLedger::CreatedAt))
                    .check(Expr::col(BalanceLedger::BalanceAfter).gte(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(BalanceLedger::Table, BalanceLedger::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_balance_ledger_user_id")
                    .table(BalanceLedger::Table)
                    .col(BalanceLedger::UserId)
                    .col(BalanceLedger::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .col(big_pk_auto(Products::Id))
                    .col(string_len(Products::Name, 200))
                    .col(text(Products::Description))
                    .col(string_len(Products::Category, 100))
                    .col(big_integer(Products::Price))
                    .col(big_integer(Products::Stock))
                    .col(timestamp_with_time_zone(Products::CreatedAt))
                    .col(timestamp_with_time_zone(Products::UpdatedAt))
                    .check(Expr::col(Products::Price).gte(0))
                    .check(Expr::col(Products::Stock).gte(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_products_category")
                    .table(Products::Table)
                    .col(Products::Category)
                    .col(Products::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(big_pk_auto(IdempotencyKeys::Id))
                    .col(big_integer(IdempotencyKeys::UserId))
                    .col(string_len(IdempotencyKeys::IdemKey, 200))
                    .col(string_len(IdempotencyKeys::Operation, 64))
                    .col(string_len(IdempotencyKeys::RequestHash, 64))
                    .col(text(IdempotencyKeys::Response))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_idempotency_keys_user_key")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::UserId)
                    .col(IdempotencyKeys::IdemKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            Products::Table.into_iden(),
            BalanceLedger::Table.into_iden(),
            Balances::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
