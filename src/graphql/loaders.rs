//! Per-request DataLoaders: products, live stock, order items, payments and coupons (with their
//! events) are fetched once per batch of keys, so a list of orders with their items, products and
//! coupons costs a constant number of queries.
//! Created for every request (never shared between viewers).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{order_item, payment, product};
use sea_orm::DbErr;

use crate::coupon::service::CouponOfEvent;
use crate::state::AppState;

pub struct ProductLoader(AppState);
pub struct StockLoader(AppState);
pub struct OrderItemsLoader(AppState);
pub struct PaymentLoader(AppState);
pub struct CouponLoader(AppState);

impl Loader<i64> for ProductLoader {
    type Value = product::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, product::Model>, Self::Error> {
        self.0.catalog.get_many(keys).await.map_err(Arc::new)
    }
}

impl Loader<i64> for StockLoader {
    type Value = i64;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, i64>, Self::Error> {
        self.0.catalog.stock_of(keys).await.map_err(Arc::new)
    }
}

impl Loader<i64> for OrderItemsLoader {
    type Value = Vec<order_item::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        self.0.ordering.items_of(keys).await.map_err(Arc::new)
    }
}

impl Loader<i64> for PaymentLoader {
    type Value = payment::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, payment::Model>, Self::Error> {
        self.0.ordering.payments_of(keys).await.map_err(Arc::new)
    }
}

impl Loader<i64> for CouponLoader {
    type Value = CouponOfEvent;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, CouponOfEvent>, Self::Error> {
        self.0.coupons.coupons_by_id(keys).await.map_err(Arc::new)
    }
}

/// Adds a fresh set of loaders to a request.
pub fn attach(request: async_graphql::Request, state: &AppState) -> async_graphql::Request {
    request
        .data(DataLoader::new(ProductLoader(state.clone()), tokio::spawn))
        .data(DataLoader::new(StockLoader(state.clone()), tokio::spawn))
        .data(DataLoader::new(
            OrderItemsLoader(state.clone()),
            tokio::spawn,
        ))
        .data(DataLoader::new(PaymentLoader(state.clone()), tokio::spawn))
        .data(DataLoader::new(CouponLoader(state.clone()), tokio::spawn))
}
