//! GraphQL surface of the ranking: `topSellers` and the `rankingChanged` subscription.

use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Enum, Object, SimpleObject, Subscription};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::snapshot::{self, MAX_ENTRIES, RankingSnapshot};
use crate::catalog::graphql::product::Product;
use crate::error::AppError;
use crate::graphql::feeds::SharedExecution;
use crate::graphql::scalars::Won;
use crate::ranking::service::RankingService;

/// Longest window, in days.
pub const MAX_DAYS: i32 = 30;

/// The best-selling products over the last `days` business days, today included.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct TopSellers {
    /// Length of the window in business days, today included.
    pub days: i32,
    /// First business day of the window.
    pub from: NaiveDate,
    /// Last business day of the window (today).
    pub to: NaiveDate,
    /// When this ranking was computed (it is served from a cache).
    pub computed_at: DateTime<Utc>,
    /// Units sold in the window, all products.
    pub total_quantity: i32,
    /// Won of the units sold in the window at their unit prices (before discounts), all
    /// products.
    pub total_revenue: Won,
    #[graphql(skip)]
    snapshot: Arc<RankingSnapshot>,
    #[graphql(skip)]
    limit: usize,
}

impl TopSellers {
    fn new(snapshot: Arc<RankingSnapshot>, limit: usize) -> Self {
        Self {
            days: snapshot.days as i32,
            from: snapshot.from,
            to: snapshot.to,
            computed_at: snapshot.computed_at,
            total_quantity: i32::try_from(snapshot.total_quantity).unwrap_or(i32::MAX),
            total_revenue: Won(snapshot.total_revenue),
            snapshot,
            limit,
        }
    }
}

#[ComplexObject]
impl TopSellers {
    /// Best first: by units sold, then revenue, then product id.
    async fn entries(&self) -> Vec<TopSeller> {
        self.snapshot
            .entries
            .iter()
            .take(self.limit)
            .enumerate()
            .map(|(index, entry)| TopSeller {
                rank: index as i32 + 1,
                product_id: entry.product_id,
                quantity: i32::try_from(entry.quantity).unwrap_or(i32::MAX),
                revenue: Won(entry.revenue),
            })
            .collect()
    }
}

/// One product of a ranking.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct TopSeller {
    /// 1 for the best seller.
    pub rank: i32,
    #[graphql(skip)]
    product_id: i64,
    /// Units of it sold in the window.
    pub quantity: i32,
    /// Won of its units sold in the window at their unit prices (before discounts).
    pub revenue: Won,
}

#[ComplexObject]
impl TopSeller {
    /// The product.
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Product>> {
        Product::load(ctx, self.product_id).await
    }
}

/// How a product's rank changed between two rankings.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Enum)]
pub enum RankMovement {
    /// A better (smaller) rank than before.
    Up,
    /// A worse (larger) rank than before.
    Down,
    /// The same rank as before.
    Same,
    /// Not among the first `limit` before.
    New,
    /// No longer among the first `limit`.
    Dropped,
}

/// How one product moved in the ranking.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex)]
pub struct RankChange {
    #[graphql(skip)]
    product_id: i64,
    /// Null when it dropped out.
    pub rank: Option<i32>,
    /// Null when it is new.
    pub previous_rank: Option<i32>,
    /// Up, down, the same, new or dropped.
    pub movement: RankMovement,
}

#[ComplexObject]
impl RankChange {
    /// The product that moved.
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Product>> {
        Product::load(ctx, self.product_id).await
    }
}

impl From<snapshot::Change> for RankChange {
    fn from(change: snapshot::Change) -> Self {
        Self {
            product_id: change.product_id,
            rank: change.rank.map(|r| r as i32),
            previous_rank: change.previous_rank.map(|r| r as i32),
            movement: match change.movement {
                snapshot::Movement::Up => RankMovement::Up,
                snapshot::Movement::Down => RankMovement::Down,
                snapshot::Movement::Same => RankMovement::Same,
                snapshot::Movement::New => RankMovement::New,
                snapshot::Movement::Dropped => RankMovement::Dropped,
            },
        }
    }
}

/// A ranking pushed to a subscriber, with what moved since the previous one it received.
#[derive(Clone, Debug, SimpleObject)]
pub struct RankingUpdate {
    /// The ranking now.
    pub top_sellers: TopSellers,
    /// Empty in the first message (the snapshot on subscribe).
    pub changes: Vec<RankChange>,
}

impl RankingUpdate {
    /// The ranking as a first message shows it: no changes.
    fn snapshot(ranking: Arc<RankingSnapshot>, limit: usize) -> Self {
        Self {
            top_sellers: TopSellers::new(ranking, limit),
            changes: vec![],
        }
    }
}

fn window(days: i32, limit: i32) -> Result<(u32, usize), AppError> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(AppError::BadUserInput(format!(
            "days must be between 1 and {MAX_DAYS}"
        )));
    }
    if !(1..=MAX_ENTRIES as i32).contains(&limit) {
        return Err(AppError::BadUserInput(format!(
            "limit must be between 1 and {MAX_ENTRIES}"
        )));
    }
    Ok((days as u32, limit as usize))
}

#[derive(Default)]
pub struct RankingQuery;

#[Object]
impl RankingQuery {
    /// Best sellers of the last `days` business days (today included), from the cache.
    #[graphql(complexity = "5 + limit.clamp(0, 50) as usize * child_complexity")]
    async fn top_sellers(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default = 3,
            desc = "Window length in business days, 1 to 30 (else BAD_USER_INPUT)."
        )]
        days: i32,
        #[graphql(default = 5, desc = "How many entries, 1 to 50 (else BAD_USER_INPUT).")]
        limit: i32,
    ) -> async_graphql::Result<TopSellers> {
        let (days, limit) = window(days, limit)?;
        let snapshot = ctx
            .data_unchecked::<RankingService>()
            .top_sellers(days)
            .await
            .map_err(AppError::from)?;
        Ok(TopSellers::new(snapshot, limit))
    }
}

#[derive(Default)]
pub struct RankingSubscription;

#[Subscription]
impl RankingSubscription {
    /// The ranking now, then again whenever the order of its first `limit` products changes.
    /// Every listener of the same document and variables is served by one execution. A listener
    /// that falls 64 messages behind skips to the latest ranking (its next message is the
    /// ranking now, with no changes, as on subscribe).
    async fn ranking_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default = 3,
            desc = "Window length in business days, 1 to 30 (else BAD_USER_INPUT)."
        )]
        days: i32,
        #[graphql(default = 5, desc = "How many entries, 1 to 50 (else BAD_USER_INPUT).")]
        limit: i32,
    ) -> async_graphql::Result<impl Stream<Item = RankingUpdate> + use<>> {
        let (days, limit) = window(days, limit)?;
        // shared by many listeners: after each change, the snapshot for those who join later
        let snapshots_too = ctx.data_opt::<SharedExecution>().is_some();
        let ranking = ctx.data_unchecked::<RankingService>().clone();
        let mut updates = ranking.updates();
        let first = ranking.top_sellers(days).await.map_err(AppError::from)?;
        Ok(async_stream::stream! {
            let mut shown = first.top_ids(limit);
            yield RankingUpdate::snapshot(first, limit);
            loop {
                match updates.recv().await {
                    Ok(updated) if updated != days => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
                let Ok(current) = ranking.top_sellers(days).await else { continue };
                let ids = current.top_ids(limit);
                if ids == shown {
                    continue;
                }
                let changes = snapshot::changes(&shown, &ids).into_iter().map(RankChange::from).collect();
                shown = ids;
                yield RankingUpdate { top_sellers: TopSellers::new(current.clone(), limit), changes };
                if snapshots_too {
                    yield RankingUpdate::snapshot(current, limit);
                }
            }
        })
    }
}
