//! `idempotency_keys`: the first successful result of a mutation sent with an idempotency key,
//! unique per (user, key).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub idem_key: String,
    /// The mutation the key was first used with, e.g. `chargeBalance`.
    pub operation: String,
    /// SHA-256 (hex) of the request's canonical form, to refuse a reuse with another request.
    pub request_hash: String,
    /// The stored result (JSON), e.g. `{"ledgerEntryId": 7}`.
    pub response: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
