//! The state every resolver reads from the GraphQL context: the domain services and the shared
//! infrastructure handles. Built once by `app`.

use crate::balance::service::BalanceService;
use crate::catalog::service::CatalogService;
use crate::coupon::service::CouponService;
use crate::infra::bus::EventBus;
use crate::infra::db::Database;
use crate::infra::redis::RedisConnection;
use crate::ordering::service::OrderingService;
use crate::outbox::service::OutboxService;
use crate::ranking::service::RankingService;
use crate::users::service::UserService;

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub redis: Option<RedisConnection>,
    pub bus: EventBus,
    pub users: UserService,
    pub balance: BalanceService,
    pub catalog: CatalogService,
    pub ordering: OrderingService,
    pub coupons: CouponService,
    pub outbox: OutboxService,
    pub ranking: RankingService,
}
