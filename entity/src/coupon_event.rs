//! `coupon_events`: first-come-first-served coupon events (CHECK issued_quantity <= total).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "coupon_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    /// `PERCENT` or `FIXED`.
    pub discount_type: String,
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

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
