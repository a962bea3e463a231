//! The catalog's DataLoaders: products and their live stock, fetched once per batch of ids in a
//! request (attached fresh to every request by [`crate::schema::prepare`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::product;
use sea_orm::DbErr;

use crate::catalog::service::CatalogService;

pub struct ProductLoader(pub CatalogService);
pub struct StockLoader(pub CatalogService);

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
