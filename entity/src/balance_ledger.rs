//! `balance_ledger`: every movement of a balance. `amount` is signed (charge and refund positive,
//! payment negative), so the entries of a user sum to their balance.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "balance_ledger")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub kind: LedgerKind,
    pub amount: i64,
    pub balance_after: i64,
    pub order_id: Option<i64>,
    pub created_at: DateTimeUtc,
}

/// What moved a balance.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum LedgerKind {
    #[sea_orm(string_value = "CHARGE")]
    Charge,
    #[sea_orm(string_value = "PAYMENT")]
    Payment,
    #[sea_orm(string_value = "REFUND")]
    Refund,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
