//! Ranking reads: the top sellers (served from memory, backed by Redis when configured, computed
//! from `product_sales_daily`) and in-stock alternatives to a product.
//!
//! Freshness: ordering calls [`SalesSignal::sales_changed`] after a payment or refund commits;
//! the [`super::worker`] recomputes at once, or at the end of the refresh interval when it
//! recomputed less than an interval ago (one instance at a time with Redis), and
//! announces the new ranking on the bus; every instance then reloads it and tells its
//! `rankingChanged` subscribers. A failing Redis is skipped (the database answers); a failing
//! computation keeps the last good ranking.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::{product, product_sales_daily};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use tokio::sync::{Mutex, Notify, RwLock, broadcast};

use super::sales::sales_date;
use super::snapshot::{MAX_ENTRIES, RankedProduct, RankingSnapshot};
use crate::catalog::alternatives::Alternatives;
use crate::infra::bus::{DomainEvent, EventBus};
use crate::infra::db::Database;
use crate::infra::meters::RANKING_CACHE;
use crate::infra::redis::RedisConnection;
use crate::infra::replicas::{Freshness, reading};

/// How many recent days of sales order the alternatives.
const RECENT_DAYS: u64 = 3;
/// How many candidates of a category are weighed.
const CANDIDATES: u64 = 200;
/// The ranking every instance keeps warm.
pub const DEFAULT_DAYS: u32 = 3;
/// How long the lock on recomputing outlives an instance that died holding it.
const REFRESH_LOCK_LEASE: Duration = Duration::from_secs(10);
/// Longest wait for Redis on a read before the database answers instead.
const REDIS_TIMEOUT: Duration = Duration::from_millis(200);

/// Told by ordering that sales changed (cheap: one short lock and a wake-up): when the latest
/// change was committed, so that the recomputation reads at least that fresh (read replicas),
/// and a wake-up for the worker, which recomputes at once unless it did within the refresh
/// interval.
#[derive(Clone, Debug, Default)]
pub struct SalesSignal(Arc<SalesSignalInner>);

#[derive(Debug, Default)]
struct SalesSignalInner {
    latest: std::sync::Mutex<Option<Instant>>,
    wake: Notify,
}

impl SalesSignal {
    pub fn sales_changed(&self) {
        *self.0.latest.lock().expect("sales signal") = Some(Instant::now());
        self.0.wake.notify_one();
    }

    /// Waits for a sale signalled since the last wait (one that came meanwhile counts).
    pub async fn sold(&self) {
        self.0.wake.notified().await;
    }

    fn take(&self) -> Option<Instant> {
        self.0.latest.lock().expect("sales signal").take()
    }
}

struct Cached {
    snapshot: Arc<RankingSnapshot>,
    loaded: Instant,
}

#[derive(Clone)]
pub struct RankingService {
    db: Database,
    time_zone: Tz,
    redis: Option<(RedisConnection, String)>,
    bus: EventBus,
    /// At most one recomputation per interval; with Redis also how long a local copy is trusted.
    refresh: Duration,
    local: Arc<RwLock<HashMap<u32, Cached>>>,
    /// One loader at a time per process (the others serve what is there).
    loading: Arc<Mutex<()>>,
    signal: SalesSignal,
    /// Days whose local ranking changed: what `rankingChanged` streams listen to.
    updates: broadcast::Sender<u32>,
}

impl RankingService {
    pub fn new(
        db: Database,
        time_zone: Tz,
        redis: Option<(RedisConnection, String)>,
        bus: EventBus,
        refresh: Duration,
    ) -> Self {
        let (updates, _) = broadcast::channel(256);
        Self {
            db,
            time_zone,
            redis,
            bus,
            refresh,
            local: Arc::new(RwLock::new(HashMap::new())),
            loading: Arc::new(Mutex::new(())),
            signal: SalesSignal::default(),
            updates,
        }
    }

    pub fn sales_signal(&self) -> SalesSignal {
        self.signal.clone()
    }

    pub fn refresh_interval(&self) -> Duration {
        self.refresh
    }

    /// Notifications that the ranking of some `days` changed here.
    pub fn updates(&self) -> broadcast::Receiver<u32> {
        self.updates.subscribe()
    }

    fn today(&self) -> NaiveDate {
        sales_date(Utc::now(), self.time_zone)
    }

    /// The top sellers of the last `days` days (1..=30), from memory when fresh.
    pub async fn top_sellers(&self, days: u32) -> Result<Arc<RankingSnapshot>, DbErr> {
        let stale = {
            let local = self.local.read().await;
            match local.get(&days) {
                Some(cached) if self.is_fresh(cached) => {
                    RANKING_CACHE.increment("hit", 1);
                    return Ok(cached.snapshot.clone());
                }
                Some(cached) => Some(cached.snapshot.clone()),
                None => None,
            }
        };
        // one loader at a time; while it works, the others serve the stale copy if there is one
        let _loading = match (&stale, self.loading.try_lock()) {
            (_, Ok(guard)) => guard,
            (Some(stale), Err(_)) => return Ok(stale.clone()),
            (None, Err(_)) => self.loading.lock().await,
        };
        if let Some(cached) = self.local.read().await.get(&days)
            && self.is_fresh(cached)
        {
            return Ok(cached.snapshot.clone());
        }
        RANKING_CACHE.increment("miss", 1);
        if let Some(shared) = self.read_shared(days).await {
            return Ok(self.keep(shared).await.0);
        }
        match self.compute(days).await {
            Ok(fresh) => {
                self.write_shared(&fresh).await;
                Ok(self.keep(fresh).await.0)
            }
            Err(err) => match stale {
                Some(stale) => {
                    tracing::warn!(%err, days, "ranking: computation failed; serving the last good ranking");
                    Ok(stale)
                }
                None => Err(err),
            },
        }
    }

    fn is_fresh(&self, cached: &Cached) -> bool {
        cached.snapshot.to == self.today()
            && (self.redis.is_none()
                || cached.loaded.elapsed() < self.refresh.max(Duration::from_secs(1)) * 2)
    }

    /// Keeps a snapshot unless a newer one is already kept (computations and loads may finish
    /// out of order); tells the subscribers when the ranking changed. Returns what is kept now
    /// and whether it changed.
    async fn keep(&self, snapshot: RankingSnapshot) -> (Arc<RankingSnapshot>, bool) {
        let days = snapshot.days;
        let mut local = self.local.write().await;
        if let Some(current) = local.get_mut(&days)
            && current.snapshot.computed_at > snapshot.computed_at
        {
            return (current.snapshot.clone(), false);
        }
        let snapshot = Arc::new(snapshot);
        let previous = local.insert(
            days,
            Cached {
                snapshot: snapshot.clone(),
                loaded: Instant::now(),
            },
        );
        drop(local);
        let changed = previous.is_none_or(|p| !p.snapshot.same_ranking(&snapshot));
        if changed {
            let _ = self.updates.send(days);
        }
        (snapshot, changed)
    }

    /// The ranking in Redis, if Redis answers in time and has today's.
    async fn read_shared(&self, days: u32) -> Option<RankingSnapshot> {
        let (conn, prefix) = self.redis.as_ref()?;
        let mut conn = conn.clone();
        let mut command = redis::cmd("GET");
        command.arg(format!("{prefix}ranking:{days}"));
        let read = command.query_async::<Option<String>>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, read).await {
            Ok(Ok(Some(json))) => serde_json::from_str::<RankingSnapshot>(&json)
                .ok()
                .filter(|s| s.to == self.today()),
            Ok(Ok(None)) => None,
            Ok(Err(err)) => {
                tracing::warn!(%err, "ranking: Redis read failed; using the database");
                None
            }
            Err(_) => {
                tracing::warn!("ranking: Redis read timed out; using the database");
                None
            }
        }
    }

    /// Stores the ranking in Redis; `false` when Redis did not take it.
    async fn write_shared(&self, snapshot: &RankingSnapshot) -> bool {
        let Some((conn, prefix)) = &self.redis else {
            return true;
        };
        let mut conn = conn.clone();
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{prefix}ranking:{}", snapshot.days))
            .arg(serde_json::to_string(snapshot).unwrap_or_default())
            .arg("EX")
            .arg(86_400);
        let write = command.query_async::<()>(&mut conn);
        let stored = matches!(tokio::time::timeout(REDIS_TIMEOUT, write).await, Ok(Ok(())));
        if !stored {
            tracing::warn!("ranking: cannot store the ranking in Redis");
        }
        stored
    }

    /// One worker round: recomputes the kept rankings if sales happened or the day changed, and
    /// announces those that changed. With Redis, only one instance computes at a time. Returns
    /// whether the round took a sale (the worker spaces those by the refresh interval).
    pub async fn refresh_if_needed(&self) -> bool {
        let tracked: BTreeSet<u32> = {
            let local = self.local.read().await;
            local.keys().copied().chain([DEFAULT_DAYS]).collect()
        };
        let today = self.today();
        let rolled_over = {
            let local = self.local.read().await;
            tracked
                .iter()
                .any(|days| local.get(days).is_none_or(|c| c.snapshot.to != today))
        };
        let sold = self.signal.take();
        if sold.is_none() && !rolled_over {
            return false;
        }
        let Some(lock) = self.acquire_refresh_lock().await else {
            // another instance is computing; look again next round
            self.signal.sales_changed();
            return sold.is_some();
        };
        // read no staler than the latest sale (a read replica that has not replayed it is skipped)
        let freshness = sold.map_or(Freshness::Any, Freshness::Since);
        for days in tracked {
            match reading(freshness, self.compute(days)).await {
                Ok(fresh) => {
                    if !self.write_shared(&fresh).await {
                        // try again next round, so the other instances get it too
                        self.signal.sales_changed();
                    }
                    if self.keep(fresh).await.1 {
                        self.bus.publish(DomainEvent::RankingUpdated { days });
                    }
                }
                Err(err) => {
                    tracing::warn!(%err, days, "ranking: recomputation failed; keeping the last good ranking");
                    self.signal.sales_changed();
                }
            }
        }
        self.release_refresh_lock(lock).await;
        sold.is_some()
    }

    /// The right to compute, across instances: `Some(token)` when this instance holds it (or
    /// there is no Redis, or Redis does not answer: computing then is safe, only possibly
    /// redundant). The lock expires by itself after [`REFRESH_LOCK_LEASE`] if its holder dies.
    async fn acquire_refresh_lock(&self) -> Option<String> {
        let token = uuid::Uuid::new_v4().to_string();
        let Some((conn, prefix)) = &self.redis else {
            return Some(token);
        };
        let mut conn = conn.clone();
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{prefix}ranking:lock"))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(REFRESH_LOCK_LEASE.as_millis() as u64);
        let lock = command.query_async::<Option<String>>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, lock).await {
            Ok(Ok(answer)) => answer.map(|_| token),
            _ => Some(token),
        }
    }

    /// Releases the lock if this instance still holds it (the next sale, here or elsewhere,
    /// is computed at once).
    async fn release_refresh_lock(&self, token: String) {
        let Some((conn, prefix)) = &self.redis else {
            return;
        };
        let mut conn = conn.clone();
        let release = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        );
        let mut invocation = release.key(format!("{prefix}ranking:lock"));
        invocation.arg(token);
        let released = invocation.invoke_async::<i64>(&mut conn);
        // not released: it expires after its lease
        let _ = tokio::time::timeout(REDIS_TIMEOUT, released).await;
    }

    /// Reacts to the bus: another instance's new ranking, or a resync after lost messages.
    pub async fn on_event(&self, event: &DomainEvent) {
        match event {
            DomainEvent::RankingUpdated { days } => {
                if let Some(shared) = self.read_shared(*days).await {
                    self.keep(shared).await;
                }
            }
            DomainEvent::Resync => {
                let tracked: Vec<u32> = self.local.read().await.keys().copied().collect();
                for days in tracked {
                    if let Some(shared) = self.read_shared(days).await {
                        self.keep(shared).await;
                    }
                }
            }
            DomainEvent::StockChanged { .. } => {}
        }
    }

    /// Computes the ranking from the daily sales (two queries). `computed_at` is when the
    /// reading started, so snapshots order by what they saw.
    pub async fn compute(&self, days: u32) -> Result<RankingSnapshot, DbErr> {
        let computed_at = Utc::now();
        let to = self.today();
        let from = to
            .checked_sub_days(Days::new(u64::from(days.saturating_sub(1))))
            .unwrap_or(to);
        let conn = self.db.reads();
        let backend = conn.get_database_backend();
        let (int, p1, p2) = match backend {
            DbBackend::Postgres => ("BIGINT", "$1", "$2"),
            DbBackend::MySql => ("SIGNED", "?", "?"),
            _ => ("INTEGER", "?", "?"),
        };
        let ranked = conn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT product_id, CAST(SUM(quantity) AS {int}) AS units, CAST(SUM(revenue) AS {int}) AS won \
                     FROM product_sales_daily WHERE sales_date >= {p1} AND sales_date <= {p2} \
                     GROUP BY product_id HAVING SUM(quantity) > 0 \
                     ORDER BY units DESC, won DESC, product_id ASC LIMIT {MAX_ENTRIES}"
                ),
                [from.into(), to.into()],
            ))
            .await?;
        let entries = ranked
            .iter()
            .map(|row| {
                Ok(RankedProduct {
                    product_id: row.try_get("", "product_id")?,
                    quantity: row.try_get("", "units")?,
                    revenue: row.try_get("", "won")?,
                })
            })
            .collect::<Result<Vec<_>, DbErr>>()?;
        let totals = conn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT CAST(COALESCE(SUM(quantity), 0) AS {int}) AS units, CAST(COALESCE(SUM(revenue), 0) AS {int}) AS won \
                     FROM product_sales_daily WHERE sales_date >= {p1} AND sales_date <= {p2}"
                ),
                [from.into(), to.into()],
            ))
            .await?;
        let (total_quantity, total_revenue) = match totals {
            Some(row) => (row.try_get("", "units")?, row.try_get("", "won")?),
            None => (0, 0),
        };
        Ok(RankingSnapshot {
            days,
            from,
            to,
            computed_at,
            total_quantity,
            total_revenue,
            entries,
        })
    }
}

#[async_trait::async_trait]
impl Alternatives for RankingService {
    /// In-stock products of `category` other than `product_id`, by units sold in the last three
    /// days (then by id).
    async fn alternatives(
        &self,
        product_id: i64,
        category: &str,
        limit: u64,
    ) -> Result<Vec<product::Model>, DbErr> {
        let candidates = product::Entity::find()
            .filter(product::Column::Category.eq(category))
            .filter(product::Column::Stock.gt(0))
            .filter(product::Column::Id.ne(product_id))
            .order_by_asc(product::Column::Id)
            .limit(CANDIDATES)
            .all(&self.db.reads())
            .await?;
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let today = self.today();
        let since = today
            .checked_sub_days(Days::new(RECENT_DAYS - 1))
            .unwrap_or(today);
        let rows = product_sales_daily::Entity::find()
            .filter(product_sales_daily::Column::ProductId.is_in(candidates.iter().map(|p| p.id)))
            .filter(product_sales_daily::Column::SalesDate.gte(since))
            .all(&self.db.reads())
            .await?;
        let mut sold: HashMap<i64, i64> = HashMap::new();
        for row in rows {
            *sold.entry(row.product_id).or_default() += row.quantity;
        }
        let mut ranked = candidates;
        ranked.sort_by_key(|p| {
            (
                std::cmp::Reverse(sold.get(&p.id).copied().unwrap_or(0)),
                p.id,
            )
        });
        ranked.truncate(limit as usize);
        Ok(ranked)
    }
}
