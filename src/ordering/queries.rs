//! Reading orders: one order, a user's orders page by page, and the items and payments of many
//! orders at once (for the DataLoaders), and the overdue PENDING orders (for the expiry worker).

use std::collections::HashMap;

use chrono::Utc;
use entity::order::{self, OrderStatus};
use entity::{order_item, payment};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::rows;
use super::service::OrderingService;
use crate::infra::paging::{Page, PageRequest};

impl OrderingService {
    pub async fn get(&self, order_id: i64) -> Result<Option<order::Model>, DbErr> {
        order::Entity::find_by_id(order_id)
            .one(&self.db.reads())
            .await
    }

    /// A user's orders, newest first, optionally of one status.
    pub async fn list_for_user(
        &self,
        user_id: i64,
        status: Option<OrderStatus>,
        page: PageRequest,
    ) -> Result<Page<order::Model>, DbErr> {
        let mut scope = order::Entity::find().filter(order::Column::UserId.eq(user_id));
        if let Some(status) = status {
            scope = scope.filter(order::Column::Status.eq(status));
        }
        let total = scope.clone().count(&self.db.reads()).await?;
        if let Some(after) = page.after {
            scope = scope.filter(order::Column::Id.lt(after));
        }
        let rows = scope
            .order_by_desc(order::Column::Id)
            .limit(page.first + 1)
            .all(&self.db.reads())
            .await?;
        Ok(Page::from_overfetch(rows, page, total))
    }

    /// The items of several orders (one query), by order id.
    pub async fn items_of(
        &self,
        order_ids: &[i64],
    ) -> Result<HashMap<i64, Vec<order_item::Model>>, DbErr> {
        rows::items_of(&self.db.reads(), order_ids.iter().copied()).await
    }

    /// The payments of several orders (one query), by order id.
    pub async fn payments_of(
        &self,
        order_ids: &[i64],
    ) -> Result<HashMap<i64, payment::Model>, DbErr> {
        let rows = payment::Entity::find()
            .filter(payment::Column::OrderId.is_in(order_ids.iter().copied()))
            .all(&self.db.reads())
            .await?;
        Ok(rows.into_iter().map(|p| (p.order_id, p)).collect())
    }

    /// Ids of PENDING orders past their expiry, oldest first.
    pub async fn overdue(&self, limit: u64) -> Result<Vec<i64>, DbErr> {
        order::Entity::find()
            .select_only()
            .column(order::Column::Id)
            .filter(order::Column::Status.eq(OrderStatus::Pending))
            .filter(order::Column::ExpiresAt.lte(Utc::now()))
            .order_by_asc(order::Column::ExpiresAt)
            .limit(limit)
            .into_tuple()
            .all(self.db.conn())
            .await
    }
}
