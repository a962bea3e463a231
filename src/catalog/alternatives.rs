//! Products that could stand in for one (same category, in stock). What sells best is the
//! ranking's to know: it implements [`Alternatives`], and the schema hands it to the catalog's
//! resolvers as [`SharedAlternatives`], so the catalog does not depend on the ranking.

use std::sync::Arc;

use entity::product;
use sea_orm::DbErr;

#[async_trait::async_trait]
pub trait Alternatives: Send + Sync {
    /// In-stock products of `category` other than `product_id`, best first, at most `limit`.
    async fn alternatives(
        &self,
        product_id: i64,
        category: &str,
        limit: u64,
    ) -> Result<Vec<product::Model>, DbErr>;
}

/// The [`Alternatives`] in the schema's data.
pub type SharedAlternatives = Arc<dyn Alternatives>;
