//! Stock history: `products.received`, the units ever put into a product's stock (its stock when
//! created plus every restock). Orders only move units between the stock and themselves, so
//! `stock + units held by PENDING and COMPLETED orders = received` always holds; `commerce
//! verify` checks it. Existing rows are backfilled so that it holds for them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Products {
    Table,
    Received,
}

/// What every product received so far: what it holds plus what its live orders hold.
const BACKFILL: &str = "UPDATE products SET received = stock + COALESCE((
    SELECT SUM(order_items.quantity) FROM order_items
    JOIN orders ON orders.id = order_items.order_id
    WHERE order_items.product_id = products.id AND orders.status IN ('PENDING', 'COMPLETED')
), 0)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .add_column(big_integer(Products::Received).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(BACKFILL)
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .drop_column(Products::Received)
                    .to_owned(),
            )
            .await
    }
}
