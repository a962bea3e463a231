//! GraphQL surface of the catalog: `products`, `product`, admin `createProduct` and
//! `restockProduct`, and the `stockChanged` subscription.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject, Subscription};
use futures_util::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

pub mod loaders;
pub mod product;

use super::service::{CatalogError, NewProduct};
use crate::catalog::service::CatalogService;
use crate::error::{AppError, InvalidInput};
use crate::graphql::context::viewer;
use crate::graphql::errors::{Counted, ErrorCode, Failure, Outcomes, Payload, Refusal, UserError};
use crate::graphql::pagination::{IdConnection, page_request};
use crate::graphql::scalars::Won;
use crate::graphql::scalars::parse_id;
use crate::infra::bus::DomainEvent;
use crate::infra::bus::EventBus;
use product::Product;

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// Products by ascending id (a Relay connection), optionally of one category.
    #[graphql(complexity = "2 + first.clamp(0, 100) as usize * child_complexity")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "Page size, 1 to 100 (else BAD_USER_INPUT).")] first: i32,
        #[graphql(
            desc = "The `pageInfo.endCursor` of the previous page; omit for the first page."
        )]
        after: Option<String>,
        #[graphql(desc = "Only this exact category; omit for all.")] category: Option<String>,
    ) -> async_graphql::Result<IdConnection<Product>> {
        let request = page_request(first, after.as_deref())?;
        if let Some(category) = &category {
            crate::text::storable("category", category).map_err(AppError::from)?;
        }
        let page = ctx
            .data_unchecked::<CatalogService>()
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
    async fn product(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The product's id; one that is not a product id is BAD_USER_INPUT.")]
        id: ID,
    ) -> async_graphql::Result<Option<Product>> {
        let id =
            parse_id(&id).ok_or_else(|| AppError::BadUserInput("id is not a product id".into()))?;
        Ok(ctx
            .data_unchecked::<CatalogService>()
            .get(id)
            .await
            .map_err(AppError::from)?
            .map(Product::from))
    }
}

/// A new product of the catalog.
#[derive(InputObject)]
pub struct CreateProductInput {
    /// One line, 1 to 200 characters (trimmed).
    pub name: String,
    /// Unit price in won, 0 to 1,000,000,000.
    pub price: Won,
    /// Units in stock to start with, 0 to 1,000,000,000.
    #[graphql(default)]
    pub stock: i32,
    /// One line, 1 to 100 characters (trimmed); `products(category:)` matches it exactly.
    pub category: String,
    /// Free text, line breaks allowed, at most 10,000 characters.
    #[graphql(default)]
    pub description: String,
}

/// Units to add to a product's stock.
#[derive(InputObject)]
pub struct RestockProductInput {
    /// The product to restock.
    pub product_id: ID,
    /// Units to add: 1 to 1,000,000,000, and the stock may not exceed 1,000,000,000.
    pub quantity: i32,
}

/// The result of `createProduct` or `restockProduct`: the product as stored, or why nothing
/// changed.
#[derive(SimpleObject)]
pub struct ProductPayload {
    /// The product created or restocked; null when refused.
    pub product: Option<Product>,
    /// Why nothing changed; empty on success.
    pub user_errors: Vec<UserError>,
}

impl Payload<entity::product::Model> for ProductPayload {
    fn success(row: entity::product::Model) -> Self {
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
    /// Adds a product to the catalog. Admin only (FORBIDDEN otherwise). `userErrors`:
    /// INVALID_INPUT.
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The product to create.")] input: CreateProductInput,
    ) -> async_graphql::Result<ProductPayload> {
        viewer(ctx).require_admin()?;
        let new = NewProduct {
            name: input.name,
            description: input.description,
            category: input.category,
            price: input.price.0,
            stock: i64::from(input.stock),
        };
        ProductPayload::resolve(
            &CREATE_PRODUCT,
            ctx.data_unchecked::<CatalogService>().create(new).await,
        )
    }

    /// Adds units to a product's stock and pushes it to `stockChanged`. Admin only (FORBIDDEN
    /// otherwise). `userErrors`: INVALID_INPUT, NOT_FOUND (no such product).
    async fn restock_product(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The product and the units to add.")] input: RestockProductInput,
    ) -> async_graphql::Result<ProductPayload> {
        viewer(ctx).require_admin()?;
        let result = match parse_id(&input.product_id) {
            None => Err(CatalogError::from(InvalidInput::new(
                "productId",
                "is not a product id",
            ))),
            Some(id) => {
                ctx.data_unchecked::<CatalogService>()
                    .restock(id, i64::from(input.quantity))
                    .await
            }
        };
        ProductPayload::resolve(&RESTOCK_PRODUCT, result)
    }
}

/// A product's stock after a change.
pub struct StockUpdate {
    product_id: i64,
    stock: i64,
}

/// A product's stock right after an order, cancellation, expiry or restock committed.
#[Object]
impl StockUpdate {
    /// The product whose stock changed.
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Product>> {
        Ok(ctx
            .data_unchecked::<CatalogService>()
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
    /// Without `productIds`, every product. Listeners of the same document and variables share
    /// one execution; one that falls 64 messages behind skips to the oldest change still kept.
    async fn stock_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only these products (an id that is not a product id is \
                          BAD_USER_INPUT); omit for every product.")]
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
        let events = BroadcastStream::new(ctx.data_unchecked::<EventBus>().subscribe());
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

const CREATE_PRODUCT: Counted<CatalogError> = Counted::new("createProduct");
const RESTOCK_PRODUCT: Counted<CatalogError> = Counted::new("restockProduct");

/// The mutations of the catalog whose outcomes are counted.
pub static COUNTED: [Outcomes; 2] = [CREATE_PRODUCT.outcomes(), RESTOCK_PRODUCT.outcomes()];

/// The codes that `From<CatalogError> for Failure` below comes to.
impl Refusal for CatalogError {
    const CODES: &'static [ErrorCode] = &[ErrorCode::NotFound];
}

/// What a client sees of each refusal.
impl From<CatalogError> for Failure {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::Common(err) => err.into(),
            CatalogError::ProductNotFound(id) => Failure::user(UserError::simple(
                ErrorCode::NotFound,
                format!("product {id} does not exist"),
                &["input", "productId"],
            )),
        }
    }
}
