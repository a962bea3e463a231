//! Read replicas (PostgreSQL streaming standbys, `DATABASE_READ_URL`): which reads may leave the
//! primary, and where they go.
//!
//! A monitor samples, every [`POLL`], the primary's WAL position (taken *before* asking, so every
//! commit finished before the sample's instant is at or below its position) and each replica's
//! replayed position. A replica's lag is how long ago the primary first wrote past what the
//! replica has replayed; a replica that does not answer, is not a standby, or lags past
//! `REPLICA_MAX_LAG_MS` is skipped until it catches up.
//!
//! Reads carry a [`Freshness`] (task-local, set per request or job): any replica within the lag
//! bound, "every write that finished before instant T", or the primary (mutations). The writes of a viewer are remembered by this instance, so a
//! viewer's reads right after their own write are fresh since that write: they go to a replica
//! that has replayed the first primary position sampled after it, or to the primary while none
//! has (read-your-writes). Background work with its own freshness (the ranking after new sales)
//! does the same. A read that a replica cannot answer (down, cut, cancelled by recovery) runs
//! again on the primary: a replica never costs a client an error. Everything inside a write
//! transaction goes to the primary, as do all statements that are not queries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};
use tokio_util::sync::CancellationToken;

use crate::infra::meters::{DB_READS, REPLICA_LAG, REPLICA_USABLE};

/// How often positions are sampled.
pub const POLL: Duration = Duration::from_millis(100);
/// Longest wait for one replica's answer to the monitor.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Samples of the primary kept beyond the lag bound.
const HISTORY_MARGIN: Duration = Duration::from_secs(5);
/// Most samples of the primary kept for a replica further behind than the bound (an hour of a
/// primary that writes all the time): past it, a lag reads as at least that old.
const MAX_HISTORY: usize = 36_000;

/// What the reads of a request or job must see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Freshness {
    /// Any replica within the lag bound will do.
    #[default]
    Any,
    /// Every write that finished before this instant.
    Since(Instant),
    /// Everything, up to the reader's own writes in progress: the primary (mutations and what
    /// their payloads read).
    Latest,
}

tokio::task_local! {
    /// The freshness of the reads of the running request or job.
    static FRESHNESS: Freshness;
}

/// The freshness in force for the current task ([`Freshness::Any`] outside a scope).
pub fn current_freshness() -> Freshness {
    FRESHNESS.try_with(|fresh| *fresh).unwrap_or_default()
}

/// Runs `work` with reads of `freshness`.
pub async fn reading<F: std::future::Future>(freshness: Freshness, work: F) -> F::Output {
    FRESHNESS.scope(freshness, work).await
}

/// Spawns a task whose reads keep the current task's freshness (for DataLoaders, which load
/// in tasks of their own).
pub fn spawn_keeping_freshness<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(FRESHNESS.scope(current_freshness(), work))
}

/// The replicas of one primary, their last known state, and the writes this instance saw.
pub struct Replicas {
    primary: DatabaseConnection,
    replicas: Vec<Replica>,
    /// (instant the sample was asked for, the primary's WAL position then), oldest first.
    history: Mutex<VecDeque<(Instant, u64)>>,
    max_lag: Duration,
    /// When each viewer's last write finished (forgotten once every usable replica has it).
    writes: moka::sync::Cache<i64, Instant>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field(
                "replicas",
                &self.replicas.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .field("max_lag", &self.max_lag)
            .finish()
    }
}

struct Replica {
    /// `host:port/database`, without credentials: the metrics' label and the logs' name.
    name: String,
    conn: DatabaseConnection,
    state: Mutex<ReplicaState>,
}

#[derive(Clone, Debug, Default)]
struct ReplicaState {
    /// WAL position replayed at the last probe.
    replayed: u64,
    usable: bool,
    /// Why it is skipped, when it is (logged when it changes).
    problem: Option<String>,
}

/// What `/readyz` shows of a replica.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplicaStatus {
    pub name: String,
    pub usable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Replicas {
    /// `replicas`: each replica's name (no credentials) and pool.
    pub fn new(
        primary: DatabaseConnection,
        replicas: Vec<(String, DatabaseConnection)>,
        max_lag: Duration,
    ) -> Self {
        let replicas = replicas
            .into_iter()
            .map(|(name, conn)| {
                metrics::gauge!(REPLICA_USABLE, "replica" => name.clone()).set(0.0);
                Replica {
                    name,
                    conn,
                    state: Mutex::new(ReplicaState {
                        problem: Some("not probed yet".into()),
                        ..ReplicaState::default()
                    }),
                }
            })
            .collect();
        Self {
            primary,
            replicas,
            history: Mutex::new(VecDeque::new()),
            max_lag,
            writes: moka::sync::Cache::builder()
                .time_to_live(max_lag + HISTORY_MARGIN)
                .build(),
            next: AtomicUsize::new(0),
        }
    }

    /// Remembers that `user_id`'s write just finished: their next reads must see it.
    pub fn wrote(&self, user_id: i64) {
        self.writes.insert(user_id, Instant::now());
    }

    /// The freshness `user_id`'s reads need now: since their last write, if it is recent.
    pub fn freshness_for(&self, user_id: Option<i64>) -> Freshness {
        user_id
            .and_then(|id| self.writes.get(&id))
            .map_or(Freshness::Any, Freshness::Since)
    }

    /// A replica fresh enough for `freshness`, or `None` (the primary) when no usable replica
    /// is known to have replayed that far.
    fn pick(&self, freshness: Freshness) -> Option<&Replica> {
        let needed = match freshness {
            Freshness::Any => 0,
            // the first sample asked for after `since` covers every write finished before it
            Freshness::Since(since) => {
                let history = self.history.lock().expect("replica history");
                history.iter().find(|(at, _)| *at > since)?.1
            }
            Freshness::Latest => return None,
        };
        let count = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| &self.replicas[(start + offset) % count])
            .find(|replica| {
                let state = replica.state.lock().expect("replica state");
                state.usable && state.replayed >= needed
            })
    }

    /// The replicas' state, for `/readyz`.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        self.replicas
            .iter()
            .map(|replica| {
                let state = replica.state.lock().expect("replica state").clone();
                ReplicaStatus {
                    name: replica.name.clone(),
                    usable: state.usable,
                    problem: state.problem,
                }
            })
            .collect()
    }

    /// Samples positions every [`POLL`] until `shutdown`.
    pub async fn monitor(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.probe().await,
            }
        }
    }

    async fn probe(&self) {
        let asked = Instant::now();
        // on the primary's own trouble (it shows on the write path) the last samples stay valid
        if let Ok(Some(position)) = wal_position(&self.primary, "pg_current_wal_lsn()").await {
            let mut history = self.history.lock().expect("replica history");
            // only the first sample of a position tells when the primary wrote past it
            if history.back().is_none_or(|(_, last)| *last != position) {
                history.push_back((asked, position));
            }
        }
        let replayed = futures_util::future::join_all(self.replicas.iter().map(|replica| {
            tokio::time::timeout(
                PROBE_TIMEOUT,
                wal_position(&replica.conn, "pg_last_wal_replay_lsn()"),
            )
        }))
        .await;
        let mut slowest: Option<u64> = None;
        for (replica, answer) in self.replicas.iter().zip(replayed) {
            if let Ok(Ok(Some(position))) = answer {
                slowest = Some(slowest.map_or(position, |s| s.min(position)));
            }
            let verdict = match answer {
                Ok(Ok(Some(position))) => {
                    let lag = self.lag_behind(position);
                    metrics::gauge!(REPLICA_LAG, "replica" => replica.name.clone())
                        .set(lag.as_secs_f64());
                    if lag <= self.max_lag {
                        Ok(position)
                    } else {
                        Err(format!("lags {} ms behind the primary", lag.as_millis()))
                    }
                }
                Ok(Ok(None)) => Err("is not a standby (not in recovery)".to_owned()),
                Ok(Err(err)) => Err(format!("does not answer: {err}")),
                Err(_) => Err(format!(
                    "does not answer within {} ms",
                    PROBE_TIMEOUT.as_millis()
                )),
            };
            replica.settle(verdict);
        }
        self.forget_history(slowest);
    }

    /// Drops the samples no lag needs any more: older than the bound (and a margin) and already
    /// replayed by the slowest replica that answered, so that a replica far behind reads as
    /// far behind as it is, not as the age of the oldest sample kept.
    fn forget_history(&self, slowest: Option<u64>) {
        let keep = self.max_lag + HISTORY_MARGIN;
        let mut history = self.history.lock().expect("replica history");
        while history.len() > 1
            && history.front().is_some_and(|(at, position)| {
                history.len() > MAX_HISTORY
                    || (at.elapsed() > keep && slowest.is_none_or(|s| *position <= s))
            })
        {
            history.pop_front();
        }
    }

    /// How long ago the primary first wrote past `replayed` (zero when nothing is missing).
    fn lag_behind(&self, replayed: u64) -> Duration {
        let history = self.history.lock().expect("replica history");
        history
            .iter()
            .find(|(_, position)| *position > replayed)
            .map_or(Duration::ZERO, |(at, _)| at.elapsed())
    }
}

impl Replica {
    /// Records a probe's verdict: the replayed position, or why the replica is skipped.
    fn settle(&self, verdict: Result<u64, String>) {
        let mut state = self.state.lock().expect("replica state");
        match verdict {
            Ok(position) => {
                if state.problem.take().is_some() {
                    tracing::info!(replica = %self.name, "read replica in use");
                }
                state.replayed = position;
                state.usable = true;
            }
            Err(problem) => {
                if state.problem.as_deref() != Some(problem.as_str()) {
                    tracing::warn!(replica = %self.name, %problem, "read replica skipped");
                }
                state.problem = Some(problem);
                state.usable = false;
            }
        }
        metrics::gauge!(REPLICA_USABLE, "replica" => self.name.clone()).set(if state.usable {
            1.0
        } else {
            0.0
        });
    }

    /// Takes the replica out of use after a failed read, until a probe finds it well.
    fn failed(&self, err: &DbErr) {
        self.settle(Err(format!("a read failed: {err}")));
    }
}

/// A WAL position as a number of bytes (`None` when the function answers NULL: not a standby).
async fn wal_position(conn: &DatabaseConnection, function: &str) -> Result<Option<u64>, DbErr> {
    let sql = format!("SELECT ({function} - '0/0'::pg_lsn)::BIGINT AS position");
    let row = conn
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?;
    Ok(row
        .and_then(|row| row.try_get::<Option<i64>>("", "position").ok().flatten())
        .map(|position| position as u64))
}

/// Where a read runs: a replica fresh enough for the current task, else the primary. Use it as
/// a connection for queries (`.one(&db.reads())`); anything else it is given runs on the primary.
pub struct Reads<'a> {
    primary: &'a DatabaseConnection,
    /// `None` when no replica is configured (nothing to route or count).
    replicas: Option<&'a Replicas>,
    replica: Option<&'a Replica>,
}

impl<'a> Reads<'a> {
    /// Routes by the current task's freshness.
    pub(crate) fn route(primary: &'a DatabaseConnection, replicas: Option<&'a Replicas>) -> Self {
        let replica = replicas.and_then(|replicas| replicas.pick(current_freshness()));
        Self {
            primary,
            replicas,
            replica,
        }
    }

    /// Runs a query on the replica, or on the primary if the replica cannot answer it: down or
    /// cut (the replica is then skipped until a probe finds it well), a query cancelled by
    /// recovery, or a schema the replica has not replayed yet (a migration just applied).
    async fn query<T, F, Fut>(&self, stmt: Statement, run: F) -> Result<T, DbErr>
    where
        F: Fn(&'a DatabaseConnection, Statement) -> Fut,
        Fut: std::future::Future<Output = Result<T, DbErr>>,
    {
        if let Some(replica) = self.replica {
            match run(&replica.conn, stmt.clone()).await {
                Ok(answer) => {
                    DB_READS.increment("replica", 1);
                    return Ok(answer);
                }
                // the connection itself failed: skip the replica until a probe finds it well
                Err(err @ (DbErr::Conn(_) | DbErr::ConnectionAcquire(_))) => replica.failed(&err),
                Err(err) => {
                    tracing::debug!(replica = %replica.name, %err, "read again on the primary")
                }
            }
        }
        if self.replicas.is_some() {
            DB_READS.increment("primary", 1);
        }
        run(self.primary, stmt).await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Reads<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.primary.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.primary.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.primary.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.query(stmt, |conn, stmt| conn.query_one_raw(stmt))
            .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.query(stmt, |conn, stmt| conn.query_all_raw(stmt))
            .await
    }
}
