//! GraphQL surface of the catalog: `products`, `product`, admin `createProduct` and
//! `restockProduct`, and the `stockChanged` subscription.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use entity::product;
use futures_util::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use super::service::{CatalogError, NewProduct, ProductInfo};
use crate::error::{AppError, InvalidInput, Payload, UserError};
use crate::graphql::loaders::{ProductLoader, StockLoader};
use crate::graphql::pagination::{IdConnection, page_request};
use crate::graphql::scalars::Won;
use crate::graphql::{parse_id, viewer};
use crate::infra::bus::DomainEvent;
use crate::state::AppState;

/// A product with its exact live stock.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct Product {
    #[graphql(skip)]
    product_id: i64,
    pub id: ID,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: Won,
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
        let state = ctx.data_unchecked::<AppState>();
        if let Some(info) = state.catalog.cached_info(id) {
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

    async fn in_stock(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.live_stock(ctx).await? > 0)
    }

    /// In-stock products of the same category, best sellers of the last three days first.
    async fn alternatives(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 3, desc = "1 to 20.")] limit: i32,
    ) -> async_graphql::Result<Vec<Product>> {
        let state = ctx.data_unchecked::<AppState>();
        let alternatives = state
            .ranking
            .alternatives(self.product_id, &self.category, limit.clamp(1, 20) as u64)
            .await
            .map_err(AppError::from)?;
        Ok(alternatives.into_iter().map(Product::from).collect())
    }
}

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// Products by ascending id (a Relay connection), optionally of one category.
    #[graphql(complexity = "2 + first.clamp(0, 100) as usize * child_complexity")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
        category: Option<String>,
    ) -> async_graphql::Result<IdConnection<Product>> {
        let request = page_request(first, after.as_deref())?;
        if let Some(category) = &category {
            crate::text::storable("category", category).map_err(AppError::from)?;
        }
        let state = ctx.data_unchecked::<AppState>();
        let page = state
            .catalog
            .list(category.as_deref(), request)
            .await
            .map_err(AppError::from)?;
        Ok(crate::graphql::pagination::connection(
            page,
            request.after.is_some(),
            |p| (p.id, Product::from(p)),
        ))
    }

    /// One product with its exact live stock; null when it does not exist.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Product>> {
        let id =
            parse_id(&id).ok_or_else(|| AppError::BadUserInput("id is not a product id".into()))?;
        let state = ctx.data_unchecked::<AppState>();
        Ok(state
            .catalog
            .get(id)
            .await
            .map_err(AppError::from)?
            .map(Product::from))
    }
}

#[derive(InputObject)]
pub struct CreateProductInput {
    pub name: String,
    pub price: Won,
    #[graphql(default)]
    pub stock: i32,
    pub category: String,
    #[graphql(default)]
    pub description: String,
}

#[derive(InputObject)]
pub struct RestockProductInput {
    pub product_id: ID,
    /// Units to add: positive.
    pub quantity: i32,
}

#[derive(SimpleObject)]
pub struct ProductPayload {
    pub product: Option<Product>,
    pub user_errors: Vec<UserError>,
}

impl Payload<product::Model> for ProductPayload {
    fn success(row: product::Model) -> Self {
        Self {
            product: Some(row.into()),
            user_errors: vec![],
        }
    }

    fn failure(user_errors: Vec<UserError>) -> Self {
        Self {
            product: None,
            user_errors,
        }
    }
}

#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    /// Adds a product to the catalog. Admin only.
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        input: CreateProductInput,
    ) -> async_graphql::Result<ProductPayload> {
        viewer(ctx).require_admin()?;
        let state = ctx.data_unchecked::<AppState>();
        let new = NewProduct {
            name: input.name,
            description: input.description,
            category: input.category,
            price: input.price.0,
            stock: i64::from(input.stock),
        };
        ProductPayload::resolve("createProduct", state.catalog.create(new).await)
    }

    /// Adds units to a product's stock. Admin only.
    async fn restock_product(
        &self,
        ctx: &Context<'_>,
        input: RestockProductInput,
    ) -> async_graphql::Result<ProductPayload> {
        viewer(ctx).require_admin()?;
        let state = ctx.data_unchecked::<AppState>();
        let result = match parse_id(&input.product_id) {
            None => Err(CatalogError::from(InvalidInput::new(
                "productId",
                "is not a product id",
            ))),
            Some(id) => state.catalog.restock(id, i64::from(input.quantity)).await,
        };
        ProductPayload::resolve("restockProduct", result)
    }
}

/// A product's stock after a change.
pub struct StockUpdate {
    product_id: i64,
    stock: i64,
}

#[Object]
impl StockUpdate {
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Product>> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(state
            .catalog
            .get(self.product_id)
            .await
            .map_err(AppError::from)?
            .map(Product::from))
    }

    /// The stock right after the change.
    async fn stock(&self) -> i32 {
        i32::try_from(self.stock).unwrap_or(i32::MAX)
    }
}

#[derive(Default)]
pub struct CatalogSubscription;

#[Subscription]
impl CatalogSubscription {
    /// Pushes a product's new stock after an order, cancellation, expiry or restock commits.
    /// Without `productIds`, every product.
    async fn stock_changed(
        &self,
        ctx: &Context<'_>,
        product_ids: Option<Vec<ID>>,
    ) -> async_graphql::Result<impl Stream<Item = StockUpdate> + use<>> {
        let filter = match product_ids {
            None => None,
            Some(ids) => Some(
                ids.iter()
                    .map(|id| {
                        parse_id(id).ok_or_else(|| {
                            AppError::BadUserInput(format!("{} is not a product id", id.as_str()))
                        })
                    })
                    .collect::<Result<Vec<i64>, AppError>>()?,
            ),
        };
        let state = ctx.data_unchecked::<AppState>();
        let events = BroadcastStream::new(state.bus.subscribe());
        Ok(events.filter_map(move |event| match event {
            Ok(DomainEvent::StockChanged { product_id, stock })
                if filter.as_ref().is_none_or(|ids| ids.contains(&product_id)) =>
            {
                Some(StockUpdate { product_id, stock })
            }
            _ => None,
        }))
    }
}
