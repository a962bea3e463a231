//! The `Product` object: a product with its exact live stock, read from the cached product info
//! and the request's DataLoaders, and its in-stock alternatives.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, ID, SimpleObject};
use chrono::{DateTime, Utc};
use entity::product;

use super::loaders::{ProductLoader, StockLoader};
use crate::catalog::alternatives::SharedAlternatives;
use crate::catalog::service::{CatalogService, ProductInfo};
use crate::error::AppError;
use crate::graphql::scalars::Won;

/// A product with its exact live stock.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct Product {
    #[graphql(skip)]
    product_id: i64,
    /// The product's id.
    pub id: ID,
    /// The product's name.
    pub name: String,
    /// Free text; may be empty.
    pub description: String,
    /// The category, as `products(category:)` filters by it.
    pub category: String,
    /// Unit price in won.
    pub price: Won,
    /// When the product was added to the catalog.
    pub created_at: DateTime<Utc>,
    /// The stock read together with the row; `None` when built from the cached [`ProductInfo`]:
    /// then read live (batched per request) only if a client asks for it.
    #[graphql(skip)]
    stock_read: Option<i64>,
}

impl From<product::Model> for Product {
    fn from(row: product::Model) -> Self {
        Self {
            product_id: row.id,
            id: ID(row.id.to_string()),
            name: row.name,
            description: row.description,
            category: row.category,
            price: Won(row.price),
            created_at: row.created_at,
            stock_read: Some(row.stock),
        }
    }
}

impl From<&ProductInfo> for Product {
    fn from(info: &ProductInfo) -> Self {
        Self {
            product_id: info.id,
            id: ID(info.id.to_string()),
            name: info.name.clone(),
            description: info.description.clone(),
            category: info.category.clone(),
            price: Won(info.price),
            created_at: info.created_at,
            stock_read: None,
        }
    }
}

impl Product {
    /// A product by id for a field of another object (a ranking entry, an order line): from the
    /// cached [`ProductInfo`] when there is one (no query), else through the request's
    /// [`ProductLoader`]. `None` when it does not exist.
    pub async fn load(ctx: &Context<'_>, id: i64) -> async_graphql::Result<Option<Product>> {
        if let Some(info) = ctx.data_unchecked::<CatalogService>().cached_info(id) {
            return Ok(Some(Product::from(&*info)));
        }
        let row = ctx
            .data_unchecked::<DataLoader<ProductLoader>>()
            .load_one(id)
            .await
            .map_err(AppError::from)?;
        Ok(row.map(Product::from))
    }

    async fn live_stock(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        if let Some(stock) = self.stock_read {
            return Ok(stock);
        }
        let stock = ctx
            .data_unchecked::<DataLoader<StockLoader>>()
            .load_one(self.product_id)
            .await
            .map_err(AppError::from)?;
        Ok(stock.unwrap_or(0))
    }
}

#[ComplexObject]
impl Product {
    /// Units available right now.
    async fn stock(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(i32::try_from(self.live_stock(ctx).await?).unwrap_or(i32::MAX))
    }

    /// True when at least one unit is available.
    async fn in_stock(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.live_stock(ctx).await? > 0)
    }

    /// In-stock products of the same category, best sellers of the last three days first.
    async fn alternatives(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 3, desc = "How many at most; clamped to 1 to 20.")] limit: i32,
    ) -> async_graphql::Result<Vec<Product>> {
        Product::alternatives_to(ctx, self.product_id, &self.category, limit).await
    }
}

impl Product {
    /// Up to `limit` (clamped to 1 to 20) in-stock products of `category` that could stand in
    /// for `product_id`, best sellers of the last three days first.
    pub async fn alternatives_to(
        ctx: &Context<'_>,
        product_id: i64,
        category: &str,
        limit: i32,
    ) -> async_graphql::Result<Vec<Product>> {
        let alternatives = ctx
            .data_unchecked::<SharedAlternatives>()
            .alternatives(product_id, category, limit.clamp(1, 20) as u64)
            .await
            .map_err(AppError::from)?;
        Ok(alternatives.into_iter().map(Product::from).collect())
    }
}
