//! Stock rows, as the order use cases change them inside their transactions: lock the products
//! (ascending id, the global lock order), then move units with one statement for any number of
//! products, sent with the transaction's other writes ([`Writes`]). The catalog owns these rows;
//! ordering only calls these.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use entity::product;
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryTrait};

use crate::infra::locking::lock_ascending;
use crate::infra::writes::Writes;

/// Locks the products (ascending id) and returns them by id; unknown ids are absent.
pub async fn lock(
    conn: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, product::Model>, DbErr> {
    let rows = lock_ascending::<product::Entity>(conn, product::Column::Id, ids).await?;
    Ok(rows.into_iter().map(|p| (p.id, p)).collect())
}

/// Adds to `writes` the change of the stock of locked products by `deltas` (negative: units
/// taken, positive: units given back), one statement for all. The caller has checked the result
/// stays >= 0 under the lock; the table's CHECK refuses it otherwise.
pub fn change(writes: &mut Writes, deltas: &BTreeMap<i64, i64>, now: DateTime<Utc>) {
    let deltas: Vec<(i64, i64)> = deltas
        .iter()
        .filter(|(_, d)| **d != 0)
        .map(|(p, d)| (*p, *d))
        .collect();
    if deltas.is_empty() {
        return;
    }
    let mut by_product = CaseStatement::new();
    for (product_id, delta) in &deltas {
        by_product = by_product.case(Expr::col(product::Column::Id).eq(*product_id), *delta);
    }
    let statement = product::Entity::update_many()
        .col_expr(
            product::Column::Stock,
            Expr::col(product::Column::Stock).add(Expr::expr(by_product.finally(0))),
        )
        .col_expr(product::Column::UpdatedAt, Expr::value(now))
        .filter(product::Column::Id.is_in(deltas.iter().map(|(id, _)| *id)))
        .into_query();
    writes.update_exactly(statement, deltas.len() as u64);
}
