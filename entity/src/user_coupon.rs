//! `user_coupons`: coupons issued to users (UNIQUE (event_id, user_id): one per user and event).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_coupons")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub event_id: i64,
    pub user_id: i64,
    pub status: CouponStatus,
    pub issued_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// The order holding (RESERVED) or having used (USED) the coupon.
    pub order_id: Option<i64>,
    pub used_at: Option<DateTimeUtc>,
}

/// Where a coupon stands. The server writes AVAILABLE, RESERVED and USED; an AVAILABLE coupon
/// past `expires_at` reads as EXPIRED.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum CouponStatus {
    #[sea_orm(string_value = "AVAILABLE")]
    Available,
    /// Held by a PENDING order.
    #[sea_orm(string_value = "RESERVED")]
    Reserved,
    #[sea_orm(string_value = "USED")]
    Used,
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::coupon_event::Entity",
        from = "Column::EventId",
        to = "super::coupon_event::Column::Id"
    )]
    Event,
}

impl Related<super::coupon_event::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Event.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
