//! The order tables' own statements, shared by the use cases: locking orders, reading them and
//! their items back, and setting their status.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::order::{self, OrderStatus};
use entity::{order_item, product};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait,
};

use crate::infra::locking::lock_ascending;
use crate::infra::writes::Writes;

/// Locks the orders (ascending id, the first step of the global lock order), by id.
pub async fn lock(
    conn: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<HashMap<i64, order::Model>, DbErr> {
    let rows =
        lock_ascending::<order::Entity>(conn, order::Column::Id, ids.iter().copied()).await?;
    Ok(rows.into_iter().map(|o| (o.id, o)).collect())
}

/// Orders as stored (their timestamps have the database's precision), by id.
pub async fn load(
    conn: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, order::Model>, DbErr> {
    let ids: Vec<i64> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(order::Entity::find()
        .filter(order::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, o))
        .collect())
}

/// One order as stored.
pub async fn load_one(conn: &impl ConnectionTrait, id: i64) -> Result<order::Model, DbErr> {
    load(conn, [id])
        .await?
        .remove(&id)
        .ok_or_else(|| DbErr::RecordNotFound(format!("order {id}")))
}

/// The items of several orders (one query), by order id, ascending product id.
pub async fn items_of(
    conn: &impl ConnectionTrait,
    order_ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, Vec<order_item::Model>>, DbErr> {
    let ids: Vec<i64> = order_ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = order_item::Entity::find()
        .filter(order_item::Column::OrderId.is_in(ids))
        .order_by_asc(order_item::Column::OrderId)
        .order_by_asc(order_item::Column::ProductId)
        .all(conn)
        .await?;
    let mut by_order: HashMap<i64, Vec<order_item::Model>> = HashMap::new();
    for row in rows {
        by_order.entry(row.order_id).or_default().push(row);
    }
    Ok(by_order)
}

/// Products' names, for the events of the data platform.
pub async fn product_names(
    conn: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, String>, DbErr> {
    let ids: Vec<i64> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, String)> = product::Entity::find()
        .select_only()
        .column(product::Column::Id)
        .column(product::Column::Name)
        .filter(product::Column::Id.is_in(ids))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Adds to `writes` the move of locked orders to `new_status`: COMPLETED (paid now, no longer expiring), CANCELLED or
/// REFUNDED (cancelled now), or EXPIRED.
pub fn set_status(writes: &mut Writes, ids: &[i64], new_status: OrderStatus, now: DateTime<Utc>) {
    if ids.is_empty() {
        return;
    }
    let mut update = order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::value(new_status))
        .col_expr(order::Column::UpdatedAt, Expr::value(now));
    match new_status {
        OrderStatus::Completed => {
            update = update
                .col_expr(order::Column::PaidAt, Expr::value(now))
                .col_expr(
                    order::Column::ExpiresAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                );
        }
        OrderStatus::Cancelled | OrderStatus::Refunded => {
            update = update.col_expr(order::Column::CancelledAt, Expr::value(now));
        }
        OrderStatus::Pending | OrderStatus::Expired => {}
    }
    writes.update(
        update
            .filter(order::Column::Id.is_in(ids.iter().copied()))
            .into_query(),
    );
}
