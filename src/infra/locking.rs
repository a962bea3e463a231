//! Locking many rows in the global lock order: by ascending key, `SELECT … FOR UPDATE` (which
//! SeaORM leaves out on SQLite, whose writers are serialized instead; see [`super::db`]).

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

/// Locks the rows of `E` whose `key` is one of `keys`, in ascending order of it; returns them in
/// that order (unknown keys are absent).
pub async fn lock_ascending<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    key: E::Column,
    keys: impl IntoIterator<Item = i64>,
) -> Result<Vec<E::Model>, DbErr> {
    let mut keys: Vec<i64> = keys.into_iter().collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(vec![]);
    }
    E::find()
        .filter(key.is_in(keys))
        .order_by_asc(key)
        .lock_exclusive()
        .all(conn)
        .await
}
