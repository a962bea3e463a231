//! `product_sales_daily`: units and revenue sold per product and business day, kept by the
//! payment and refund transactions; the ranking reads this, never the orders.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "product_sales_daily")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sales_date: Date,
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: i64,
    pub quantity: i64,
    pub revenue: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
