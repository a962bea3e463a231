//! `coupon_events`: first-come-first-served coupon events (CHECK issued_quantity <= total).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "coupon_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub discount_type: DiscountType,
    /// Percent (1..=100) or won.
    pub discount_value: i64,
    pub total_quantity: i64,
    pub issued_quantity: i64,
    pub starts_at: DateTimeUtc,
    /// `None`: open until the coupons run out.
    pub ends_at: Option<DateTimeUtc>,
    /// Issued coupons expire this many days after issue...
    pub valid_days: Option<i32>,
    /// ...or at this fixed instant.
    pub valid_until: Option<DateTimeUtc>,
    pub min_order_amount: i64,
    pub created_at: DateTimeUtc,
}

/// How an event's coupons discount an order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum DiscountType {
    /// `discount_value` percent off.
    #[sea_orm(string_value = "PERCENT")]
    Percent,
    /// `discount_value` won off.
    #[sea_orm(string_value = "FIXED")]
    Fixed,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
