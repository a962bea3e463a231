//! Catalog use cases. Stock is always read from the database, so it is exact the moment an order
//! commits. What never changes about a product (there is no product update: name, price,
//! category, description) is kept in memory as [`ProductInfo`] once read, so reads that need no
//! stock (a ranking's products, an order's items) cost no query. Restocking is a conditional
//! increment and publishes the new stock after commit.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::product;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::error::{CommonError, InvalidInput, common_error};
use crate::infra::bus::{DomainEvent, EventBus};
use crate::infra::db::Database;
use crate::infra::paging::{Page, PageRequest};
use crate::infra::transact::{Abort, Attempt};
use crate::text::{free_text, required_text};

/// Most units a product may hold in stock.
pub const MAX_STOCK: i64 = 1_000_000_000;
/// Highest accepted price, in won.
pub const MAX_PRICE: i64 = 1_000_000_000;

/// Products whose [`ProductInfo`] is kept in memory at most.
const CACHED_PRODUCTS: u64 = 100_000;

#[derive(Clone)]
pub struct CatalogService {
    db: Database,
    bus: EventBus,
    infos: moka::sync::Cache<i64, Arc<ProductInfo>>,
}

/// What never changes about a product once it exists: safe to keep for the life of the process
/// and to share between instances' caches. Never holds the stock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductInfo {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: i64,
    pub created_at: DateTime<Utc>,
}

impl From<&product::Model> for ProductInfo {
    fn from(row: &product::Model) -> Self {
        Self {
            id: row.id,
            name: row.name.clone(),
            description: row.description.clone(),
            category: row.category.clone(),
            price: row.price,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Common(CommonError),
    #[error("product {0} not found")]
    ProductNotFound(i64),
}
common_error!(CatalogError);

/// A product to create, as an admin sent it.
#[derive(Clone, Debug)]
pub struct NewProduct {
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: i64,
    pub stock: i64,
}

impl NewProduct {
    fn validated(self) -> Result<NewProduct, InvalidInput> {
        let name = required_text("name", &self.name, 200)?;
        let category = required_text("category", &self.category, 100)?;
        free_text("description", &self.description, 10_000)?;
        if !(0..=MAX_PRICE).contains(&self.price) {
            return Err(InvalidInput::new(
                "price",
                format!("must be between 0 and {MAX_PRICE} won"),
            ));
        }
        if !(0..=MAX_STOCK).contains(&self.stock) {
            return Err(InvalidInput::new(
                "stock",
                format!("must be between 0 and {MAX_STOCK}"),
            ));
        }
        Ok(NewProduct {
            name,
            category,
            ..self
        })
    }
}

impl CatalogService {
    pub fn new(db: Database, bus: EventBus) -> Self {
        Self {
            db,
            bus,
            infos: moka::sync::Cache::new(CACHED_PRODUCTS),
        }
    }

    pub async fn get(&self, id: i64) -> Result<Option<product::Model>, DbErr> {
        let row = product::Entity::find_by_id(id)
            .one(&self.db.reads())
            .await?;
        if let Some(row) = &row {
            self.remember(row);
        }
        Ok(row)
    }

    /// Several products by id (one query).
    pub async fn get_many(&self, ids: &[i64]) -> Result<HashMap<i64, product::Model>, DbErr> {
        let rows = product::Entity::find()
            .filter(product::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db.reads())
            .await?;
        rows.iter().for_each(|row| self.remember(row));
        Ok(rows.into_iter().map(|p| (p.id, p)).collect())
    }

    /// The unchanging part of a product, if it was read before (no query).
    pub fn cached_info(&self, id: i64) -> Option<Arc<ProductInfo>> {
        self.infos.get(&id)
    }

    fn remember(&self, row: &product::Model) {
        if !self.infos.contains_key(&row.id) {
            self.infos.insert(row.id, Arc::new(ProductInfo::from(row)));
        }
    }

    /// The live stock of several products (one query).
    pub async fn stock_of(&self, ids: &[i64]) -> Result<HashMap<i64, i64>, DbErr> {
        let rows: Vec<(i64, i64)> = product::Entity::find()
            .select_only()
            .column(product::Column::Id)
            .column(product::Column::Stock)
            .filter(product::Column::Id.is_in(ids.iter().copied()))
            .into_tuple()
            .all(&self.db.reads())
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Products by ascending id, optionally of one category.
    pub async fn list(
        &self,
        category: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<product::Model>, DbErr> {
        let mut scope = product::Entity::find();
        if let Some(category) = category {
            scope = scope.filter(product::Column::Category.eq(category));
        }
        let total = scope.clone().count(&self.db.reads()).await?;
        if let Some(after) = page.after {
            scope = scope.filter(product::Column::Id.gt(after));
        }
        let rows = scope
            .order_by_asc(product::Column::Id)
            .limit(page.first + 1)
            .all(&self.db.reads())
            .await?;
        Ok(Page::from_overfetch(rows, page, total))
    }

    pub async fn create(&self, new: NewProduct) -> Result<product::Model, CatalogError> {
        let new = new.validated()?;
        let now = Utc::now();
        let created = product::ActiveModel {
            name: Set(new.name),
            description: Set(new.description),
            category: Set(new.category),
            price: Set(new.price),
            stock: Set(new.stock),
            received: Set(new.stock),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(self.db.conn())
        .await?;
        Ok(created)
    }

    /// Adds `quantity` units to a product's stock.
    pub async fn restock(
        &self,
        product_id: i64,
        quantity: i64,
    ) -> Result<product::Model, CatalogError> {
        if !(1..=MAX_STOCK).contains(&quantity) {
            return Err(InvalidInput::new(
                "quantity",
                format!("must be between 1 and {MAX_STOCK}"),
            )
            .into());
        }
        let restocked = self
            .db
            .transact(|txn| async move { restock_in(&txn, product_id, quantity).await })
            .await?;
        self.bus.publish(DomainEvent::StockChanged {
            product_id: restocked.id,
            stock: restocked.stock,
        });
        Ok(restocked)
    }
}

/// Adds `quantity` units, refused when the product does not exist or would hold more than
/// [`MAX_STOCK`].
async fn restock_in(
    txn: &DatabaseTransaction,
    product_id: i64,
    quantity: i64,
) -> Attempt<product::Model, CatalogError> {
    let updated = product::Entity::update_many()
        .col_expr(
            product::Column::Stock,
            Expr::col(product::Column::Stock).add(quantity),
        )
        .col_expr(
            product::Column::Received,
            Expr::col(product::Column::Received).add(quantity),
        )
        .col_expr(product::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(product::Column::Id.eq(product_id))
        .filter(product::Column::Stock.lte(MAX_STOCK - quantity))
        .exec(txn)
        .await?;
    let current = product::Entity::find_by_id(product_id).one(txn).await?;
    match (updated.rows_affected, current) {
        (_, None) => Err(Abort::Refused(CatalogError::ProductNotFound(product_id))),
        (0, Some(_)) => Err(Abort::Refused(
            InvalidInput::new("quantity", format!("stock may not exceed {MAX_STOCK}")).into(),
        )),
        (_, Some(product)) => Ok(product),
    }
}
