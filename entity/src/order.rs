//! `orders`: one purchase of several products, with its life-cycle status.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    /// `PENDING`, `COMPLETED`, `CANCELLED`, `EXPIRED` or `REFUNDED`.
    pub status: String,
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

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
