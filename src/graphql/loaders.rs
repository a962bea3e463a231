//! Per-request DataLoaders: products, live stock, order items, payments and coupons (with their
//! events) are fetched once per batch of keys, so a list of orders with their items, products and
//! coupons costs a constant number of queries.
//! Created for every request (never shared between viewers).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{order_item, payment, product};
use sea_orm::DbErr;

use crate::catalog::service::CatalogService;
use crate::coupon::service::{CouponOfEvent, CouponService};
use crate::infra::replicas::spawn_keeping_freshness;
use crate::ordering::service::OrderingService;
use crate::state::AppState;

pub struct ProductLoader(CatalogService);
pub struct StockLoader(CatalogService);
pub struct OrderItemsLoader(OrderingService);
pub struct PaymentLoader(OrderingService);
pub struct CouponLoader(CouponService);

impl Loader<i64> for ProductLoader {
    type Value = product::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, product::Model>, Self::Error> {
        self.0.get_many(keys).await.map_err(Arc::new)
    }
}

impl Loader<i64> for StockLoader {
    type Value = i64;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, i64>, Self::Error> {
        self.0.stock_of(keys).await.map_err(Arc::new)
    }
}

impl Loader<i64> for OrderItemsLoader {
    type Value = Vec<order_item::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        self.0.items_of(keys).await.map_err(Arc::new)
    }
}

impl Loader<i64> for PaymentLoader {
    type Value = payment::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, payment::Model>, Self::Error> {
        self.0.payments_of(keys).await.map_err(Arc::new)
    }
}

impl Loader<i64> for CouponLoader {
    type Value = CouponOfEvent;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, CouponOfEvent>, Self::Error> {
        self.0.coupons_by_id(keys).await.map_err(Arc::new)
    }
}

/// Adds a fresh set of loaders to a request.
pub fn attach(request: async_graphql::Request, state: &AppState) -> async_graphql::Request {
    request
        .data(DataLoader::new(
            ProductLoader(state.catalog.clone()),
            spawn_keeping_freshness,
        ))
        .data(DataLoader::new(
            StockLoader(state.catalog.clone()),
            spawn_keeping_freshness,
        ))
        .data(DataLoader::new(
            OrderItemsLoader(state.ordering.clone()),
            spawn_keeping_freshness,
        ))
        .data(DataLoader::new(
            PaymentLoader(state.ordering.clone()),
            spawn_keeping_freshness,
        ))
        .data(DataLoader::new(
            CouponLoader(state.coupons.clone()),
            spawn_keeping_freshness,
        ))
}
