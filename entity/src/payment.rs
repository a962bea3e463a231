//! `payments`: the payment of an order from the balance (one per order).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub order_id: i64,
    pub user_id: i64,
    pub amount: i64,
    pub status: PaymentStatus,
    pub paid_at: DateTimeUtc,
    pub refunded_at: Option<DateTimeUtc>,
}

/// Whether the payment stands or was given back.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum PaymentStatus {
    #[sea_orm(string_value = "SUCCESS")]
    Success,
    #[sea_orm(string_value = "REFUNDED")]
    Refunded,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
