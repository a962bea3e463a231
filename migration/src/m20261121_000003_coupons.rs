//! Coupon events and the coupons issued from them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CouponEvents {
    Table,
    Id,
    Name,
    DiscountType,
    DiscountValue,
    TotalQuantity,
    IssuedQuantity,
    StartsAt,
    EndsAt,
    ValidDays,
    ValidUntil,
    MinOrderAmount,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserCoupons {
    Table,
    Id,
    EventId,
    UserId,
    Status,
    IssuedAt,
    ExpiresAt,
    OrderId,
    UsedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CouponEvents::Table)
                    .col(big_pk_auto(CouponEvents::Id))
                    .col(string_len(CouponEvents::Name, 200))
                    .col(string_len(CouponEvents::DiscountType, 16))
                    .col(big_integer(CouponEvents::DiscountValue))
                    .col(big_integer(CouponEvents::TotalQuantity))
                    .col(big_integer(CouponEvents::IssuedQuantity))
                    .col(timestamp_with_time_zone(CouponEvents::StartsAt))
                    .col(timestamp_with_time_zone_null(CouponEvents::EndsAt))
                    .col(integer_null(CouponEvents::ValidDays))
                    .col(timestamp_with_time_zone_null(CouponEvents::ValidUntil))
                    .col(big_integer(CouponEvents::MinOrderAmount))
                    .col(timestamp_with_time_zone(CouponEvents::CreatedAt))
                    .check(Expr::col(CouponEvents::IssuedQuantity).gte(0))
                    .check(
                        Expr::col(CouponEvents::IssuedQuantity)
                            .lte(Expr::col(CouponEvents::TotalQuantity)),
                    )
                    .check(Expr::col(CouponEvents::DiscountValue).gt(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserCoupons::Table)
                    .col(big_pk_auto(UserCoupons::Id))
                    .col(big_integer(UserCoupons::EventId))
                    .col(big_integer(UserCoupons::UserId))
                    .col(string_len(UserCoupons::Status, 16))
                    .col(timestamp_with_time_zone(UserCoupons::IssuedAt))
                    .col(timestamp_with_time_zone(UserCoupons::ExpiresAt))
                    .col(big_integer_null(UserCoupons::OrderId))
                    .col(timestamp_with_time_zone_null(UserCoupons::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserCoupons::Table, UserCoupons::EventId)
                            .to(CouponEvents::Table, CouponEvents::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserCoupons::Table, UserCoupons::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_user_coupons_event_user")
                    .table(UserCoupons::Table)
                    .col(UserCoupons::EventId)
                    .col(UserCoupons::UserId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_coupons_user")
                    .table(UserCoupons::Table)
                    .col(UserCoupons::UserId)
                    .col(UserCoupons::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            UserCoupons::Table.into_iden(),
            CouponEvents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
