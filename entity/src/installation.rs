//! `installation`: the one row that names this database (made by the migration), and how far the
//! outbox's retention has pruned it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "installation")]
pub struct Model {
    /// Always 1.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i16,
    /// A random UUID, made when the schema was created.
    pub uuid: String,
    pub created_at: DateTimeUtc,
    /// SENT outbox events created before this instant may have been deleted
    /// (`OUTBOX_RETENTION_SECS`); null: none ever was.
    pub outbox_pruned_before: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
