//! The coupons' DataLoader: coupons with their events, fetched once per batch of coupon ids in a
//! request (attached fresh to every request by [`crate::schema::prepare`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use sea_orm::DbErr;

use crate::coupon::service::{CouponOfEvent, CouponService};

pub struct CouponLoader(pub CouponService);

impl Loader<i64> for CouponLoader {
    type Value = CouponOfEvent;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, CouponOfEvent>, Self::Error> {
        self.0.coupons_by_id(keys).await.map_err(Arc::new)
    }
}
