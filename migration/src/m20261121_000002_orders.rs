//! Orders with their items and payments, daily sales per product, and the outbox.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    UserId,
    Status,
    Subtotal,
    Discount,
    Total,
    UserCouponId,
    ExpiresAt,
    CreatedAt,
    UpdatedAt,
    PaidAt,
    CancelledAt,
}

#[derive(DeriveIden)]
enum OrderItems {
    Table,
    Id,
    OrderId,
    ProductId,
    Quantity,
    UnitPrice,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    OrderId,
    UserId,
    Amount,
    Status,
    PaidAt,
    RefundedAt,
}

#[derive(DeriveIden)]
enum ProductSalesDaily {
    Table,
    SalesDate,
    ProductId,
    Quantity,
    Revenue,
}

#[derive(DeriveIden)]
enum OutboxEvents {
    Table,
    Id,
    EventId,
    EventType,
    AggregateId,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .col(big_pk_auto(Orders::Id))
                    .col(big_integer(Orders::UserId))
                    .col(string_len(Orders::Status, 16))
                    .col(big_integer(Orders::Subtotal))
                    .col(big_integer(Orders::Discount))
                    .col(big_integer(Orders::Total))
                    .col(big_integer_null(Orders::UserCouponId))
                    .col(timestamp_with_time_zone_null(Orders::ExpiresAt))
                    .col(timestamp_with_time_zone(Orders::CreatedAt))
                    .col(timestamp_with_time_zone(Orders::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Orders::PaidAt))
                    .col(timestamp_with_time_zone_null(Orders::CancelledAt))
                    .check(Expr::col(Orders::Total).gte(0))
                    .check(Expr::col(Orders::Discount).gte(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Orders::Table, Orders::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_orders_user_id")
                    .table(Orders::Table)
                    .col(Orders::UserId)
                    .col(Orders::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_orders_status_expires_at")
                    .table(Orders::Table)
                    .col(Orders::Status)
                    .col(Orders::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrderItems::Table)
                    .col(big_pk_auto(OrderItems::Id))
                    .col(big_integer(OrderItems::OrderId))
                    .col(big_integer(OrderItems::ProductId))
                    .col(big_integer(OrderItems::Quantity))
                    .col(big_integer(OrderItems::UnitPrice))
                    .check(Expr::col(OrderItems::Quantity).gt(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OrderItems::Table, OrderItems::OrderId)
                            .to(Orders::Table, Orders::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(OrderItems::Table, OrderItems::ProductId)
                            .to(Products::Table, Products::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_order_items_order_id")
                    .table(OrderItems::Table)
                    .col(OrderItems::OrderId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(big_pk_auto(Payments::Id))
                    .col(big_integer_uniq(Payments::OrderId))
                    .col(big_integer(Payments::UserId))
                    .col(big_integer(Payments::Amount))
                    .col(string_len(Payments::Status, 16))
                    .col(timestamp_with_time_zone(Payments::PaidAt))
                    .col(timestamp_with_time_zone_null(Payments::RefundedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Payments::Table, Payments::OrderId)
                            .to(Orders::Table, Orders::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ProductSalesDaily::Table)
                    .col(date(ProductSalesDaily::SalesDate))
                    .col(big_integer(ProductSalesDaily::ProductId))
                    .col(big_integer(ProductSalesDaily::Quantity))
                    .col(big_integer(ProductSalesDaily::Revenue))
                    .primary_key(
                        Index::create()
                            .col(ProductSalesDaily::SalesDate)
                            .col(ProductSalesDaily::ProductId),
                    )
                    .check(Expr::col(ProductSalesDaily::Quantity).gte(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OutboxEvents::Table)
                    .col(big_pk_auto(OutboxEvents::Id))
                    .col(string_len_uniq(OutboxEvents::EventId, 64))
                    .col(string_len(OutboxEvents::EventType, 32))
                    .col(big_integer(OutboxEvents::AggregateId))
                    .col(text(OutboxEvents::Payload))
                    .col(string_len(OutboxEvents::Status, 16))
                    .col(integer(OutboxEvents::Attempts))
                    .col(timestamp_with_time_zone(OutboxEvents::NextAttemptAt))
                    .col(text_null(OutboxEvents::LastError))
                    .col(timestamp_with_time_zone(OutboxEvents::CreatedAt))
                    .col(timestamp_with_time_zone_null(OutboxEvents::SentAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_events_due")
                    .table(OutboxEvents::Table)
                    .col(OutboxEvents::Status)
                    .col(OutboxEvents::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OutboxEvents::Table.into_iden(),
            ProductSalesDaily::Table.into_iden(),
            Payments::Table.into_iden(),
            OrderItems::Table.into_iden(),
            Orders::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
