//! The orders' DataLoaders: items and payments, fetched once per batch of order ids in a
//! request (attached fresh to every request by [`crate::schema::prepare`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::{order_item, payment};
use sea_orm::DbErr;

use crate::ordering::service::OrderingService;

pub struct OrderItemsLoader(pub OrderingService);
pub struct PaymentLoader(pub OrderingService);

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
