//! `orders`: one purchase of several products, with its life-cycle status.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub status: OrderStatus,
    pub subtotal: i64,
    pub discount: i64,
    pub total: i64,
    pub user_coupon_id: Option<i64>,
    /// When a PENDING order stops holding its stock.
    pub expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub paid_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
}

/// Where an order is in its life cycle, stored as its name in capitals.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum OrderStatus {
    /// Created, stock (and coupon) held until `expires_at`, waiting for payment.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Paid.
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    /// Cancelled before payment.
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    /// Not paid in time.
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
    /// Cancelled after payment, the balance refunded.
    #[sea_orm(string_value = "REFUNDED")]
    Refunded,
}

/// The stored name (`PENDING`, ...), as messages and events show it.
impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_value())
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
