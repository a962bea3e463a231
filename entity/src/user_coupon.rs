//! `user_coupons`: coupons issued to users (UNIQUE (event_id, user_id): one per user and event).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_coupons")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub event_id: i64,
    pub user_id: i64,
    /// `AVAILABLE`, `RESERVED` (held by a PENDING order) or `USED`; an AVAILABLE coupon past
    /// `expires_at` reads as EXPIRED.
    pub status: String,
    pub issued_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// The order holding (RESERVED) or having used (USED) the coupon.
    pub order_id: Option<i64>,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
