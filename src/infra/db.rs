//! The database: connecting, migrating, and running write transactions safely on every backend.
//!
//! Write use cases run through [`Database::write`], which
//! - serializes writers on SQLite (which has no `SELECT ... FOR UPDATE`): an in-process gate plus
//!   `BEGIN IMMEDIATE`, so the invariants hold there exactly as under row locks elsewhere;
//! - retries, a bounded number of times with jittered backoff, an attempt that the database
//!   aborted for a deadlock, a serialization failure or a lock timeout, or that lost a race it
//!   detected itself ([`AttemptError::Contended`]). No such abort reaches a client.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx;
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    RuntimeErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::AppError;
use crate::infra::replicas::{Freshness, Reads, Replicas, reading};

/// How many times a write transaction is attempted before its error is returned.
const MAX_ATTEMPTS: usize = 10;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 1_024;
/// A pooled connection idle this long is pinged before it is handed out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// The database handle shared by every service.
#[derive(Clone, Debug)]
pub struct Database {
    conn: DatabaseConnection,
    /// One writer at a time on SQLite; `None` on PostgreSQL and MySQL, where row locks do this.
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// SQL statements executed since start (for metrics and the N+1 tests).
    statements: Arc<AtomicU64>,
    /// What [`Database::another_pool`] connects with.
    url: Arc<str>,
    acquire_timeout: Duration,
    /// Read replicas (`DATABASE_READ_URL`); `None`: every read goes to this pool.
    replicas: Option<Arc<Replicas>>,
}

/// Why one attempt of a write transaction ended without a result.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The attempt lost a race it detected itself (e.g. a key claimed concurrently): run it again.
    #[error("lost a race with a concurrent transaction")]
    Contended,
}

impl AttemptError {
    fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Contended => true,
            AttemptError::Db(err) => is_transient(err),
        }
    }
}

/// A write transaction; on SQLite it also holds the writer gate until it ends.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

impl Database {
    /// Connects with a bounded pool; on SQLite also turns on WAL so readers never wait for writers.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, DbErr> {
        if let Some(path) = sqlite_file_path(url)
            && let Some(parent) = std::path::Path::new(&path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", parent.display())))?;
        }
        let conn =
            sea_orm::Database::connect(options(url, max_connections, acquire_timeout)).await?;
        let sqlite_writer = match conn.get_database_backend() {
            DbBackend::Sqlite => {
                conn.execute_unprepared("PRAGMA journal_mode=WAL").await?;
                Some(Arc::new(Mutex::new(())))
            }
            _ => None,
        };
        Ok(Self::with_pool(
            conn,
            sqlite_writer,
            Arc::new(AtomicU64::new(0)),
            url,
            acquire_timeout,
        ))
    }

    fn with_pool(
        mut conn: DatabaseConnection,
        sqlite_writer: Option<Arc<Mutex<()>>>,
        statements: Arc<AtomicU64>,
        url: &str,
        acquire_timeout: Duration,
    ) -> Self {
        let counter = statements.clone();
        conn.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        Self {
            conn,
            sqlite_writer,
            statements,
            url: url.into(),
            acquire_timeout,
            replicas: None,
        }
    }

    /// Connects a pool of `max_connections` to each replica URL and routes reads to them from
    /// now on (PostgreSQL only). The returned handle's monitor must run for them to be used.
    pub async fn connect_replicas(
        &mut self,
        urls: &[String],
        max_connections: u32,
        max_lag: Duration,
    ) -> Result<Arc<Replicas>, DbErr> {
        let mut pools = Vec::with_capacity(urls.len());
        for url in urls {
            let mut options = options(url, max_connections, self.acquire_timeout);
            // a replica that is down at start-up is skipped, not fatal
            options.min_connections(0).connect_lazy(true);
            let mut conn = sea_orm::Database::connect(options).await?;
            let counter = self.statements.clone();
            conn.set_metric_callback(move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
            });
            pools.push((public_name(url), conn));
        }
        let replicas = Arc::new(Replicas::new(self.conn.clone(), pools, max_lag));
        self.replicas = Some(replicas.clone());
        Ok(replicas)
    }

    /// A second pool of `max_connections` on the same database, sharing this handle's SQLite
    /// writer gate and statement count: for work running on a runtime of its own (the batch
    /// writers), whose connections must be driven by that runtime.
    pub async fn another_pool(&self, max_connections: u32) -> Result<Self, DbErr> {
        let conn =
            sea_orm::Database::connect(options(&self.url, max_connections, self.acquire_timeout))
                .await?;
        Ok(Self::with_pool(
            conn,
            self.sqlite_writer.clone(),
            self.statements.clone(),
            &self.url,
            self.acquire_timeout,
        ))
    }

    /// The primary's connection pool, for statements outside a transaction and reads that must
    /// see the latest commit.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// A connection for reads that a replica may serve (catalog, listings, history, ranking):
    /// a replica fresh enough for the current request or job, else the primary. See
    /// [`crate::infra::replicas`].
    pub fn reads(&self) -> Reads<'_> {
        Reads::route(&self.conn, self.replicas.as_deref())
    }

    /// Runs a request's `work` with the freshness its reads need: the primary when it writes,
    /// else fresh since the viewer's last write; when it writes, remembers afterwards that the
    /// viewer wrote (read-your-writes). Without replicas it just runs `work`.
    pub async fn serve<F: Future>(&self, user_id: Option<i64>, writes: bool, work: F) -> F::Output {
        let Some(replicas) = &self.replicas else {
            return work.await;
        };
        let freshness = if writes {
            Freshness::Latest
        } else {
            replicas.freshness_for(user_id)
        };
        let output = reading(freshness, work).await;
        if let (true, Some(user_id)) = (writes, user_id) {
            replicas.wrote(user_id);
        }
        output
    }

    /// The read replicas, when there are any.
    pub fn replicas(&self) -> Option<&Arc<Replicas>> {
        self.replicas.as_ref()
    }

    /// How many SQL statements this handle (and its clones) executed so far.
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Connections in the pool: (open, idle).
    pub fn pool_usage(&self) -> (u32, usize) {
        match self.backend() {
            DbBackend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            DbBackend::MySql => {
                let pool = self.conn.get_mysql_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = self.conn.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        }
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.conn, None).await
    }

    /// The id that names this database for good (made by the migration; a restored copy keeps
    /// it). Whatever this deployment keeps outside the database is namespaced by it.
    pub async fn installation_id(&self) -> Result<String, DbErr> {
        use sea_orm::EntityTrait;
        entity::installation::Entity::find_by_id(1_i16)
            .one(&self.conn)
            .await?
            .map(|row| row.uuid)
            .ok_or_else(|| DbErr::RecordNotFound("the installation row (run migrate)".into()))
    }

    /// Answers when the database takes a trivial query.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }

    /// Begins one write transaction (on SQLite: takes the writer gate, then `BEGIN IMMEDIATE`).
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        let gate = match &self.sqlite_writer {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        };
        let txn = self
            .conn
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: gate.as_ref().map(|_| SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        Ok(WriteTxn { txn, _gate: gate })
    }

    /// Runs `attempt` until it succeeds or fails for a reason other than a transient abort.
    ///
    /// Each attempt begins, and commits or rolls back, its own transaction (see
    /// [`Database::begin_write`]); a business refusal is part of `T`, not an error here.
    pub async fn write<T, F, Fut>(&self, attempt: F) -> Result<T, DbErr>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(2))
            .with_max_delay(Duration::from_millis(100))
            .with_max_times(MAX_ATTEMPTS - 1)
            .with_jitter();
        attempt
            .retry(policy)
            .when(AttemptError::is_retryable)
            .notify(|err, delay| tracing::debug!(%err, ?delay, "retrying write transaction"))
            .await
            .map_err(|err| match err {
                AttemptError::Db(err) => err,
                AttemptError::Contended => DbErr::Custom(format!(
                    "write transaction still contended after {MAX_ATTEMPTS} attempts"
                )),
            })
    }
}

/// What PostgreSQL itself bounds on our sessions, whatever happens to the process or the
/// network: a statement running longer than any request may (the request's answer is long
/// gone: it held locks for nothing), and a transaction left open by a client that went silent
/// (a network blackhole, a frozen process) holding its row locks until TCP gives up, which can
/// be hours. Both end the statement or session; the transaction rolls back.
const POSTGRES_SESSION_LIMITS: [(&str, &str); 2] = [
    ("statement_timeout", "30s"),
    ("idle_in_transaction_session_timeout", "60s"),
];

/// How every pool connects.
fn options(url: &str, max_connections: u32, acquire_timeout: Duration) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(acquire_timeout)
        .connect_timeout(acquire_timeout)
        // sqlx pings a pooled connection on every acquire by default: a second round trip
        // per statement. Busy connections are proven by use; only one that sat idle (and may
        // have been cut meanwhile) is pinged first.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
        .sqlx_logging(false)
        // the order writer's multi-row statements take one shape per batch size: keep them
        // all prepared (sqlx keeps 100 per connection by default)
        .map_sqlx_postgres_opts(|o| {
            o.statement_cache_capacity(STATEMENT_CACHE)
                .options(POSTGRES_SESSION_LIMITS)
        })
        .map_sqlx_mysql_opts(|o| o.statement_cache_capacity(STATEMENT_CACHE))
        .map_sqlx_sqlite_opts(|o| o.statement_cache_capacity(STATEMENT_CACHE));
    options
}

/// What the database said, when the error is the database's answer to a statement.
enum Refusal<'a> {
    /// MySQL's error number.
    MySql(u16),
    /// PostgreSQL's SQLSTATE, or SQLite's extended result code.
    Code(std::borrow::Cow<'a, str>),
}

fn refusal(err: &DbErr) -> Option<Refusal<'_>> {
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx_err))
    | DbErr::Query(RuntimeErr::SqlxError(sqlx_err))) = err
    else {
        return None;
    };
    let db_err = sqlx_err.as_database_error()?;
    if let Some(mysql) = db_err.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return Some(Refusal::MySql(mysql.number()));
    }
    db_err.code().map(Refusal::Code)
}

/// True for an abort that a new attempt can overcome: deadlock, serialization failure, lock wait
/// timeout, SQLite busy.
pub fn is_transient(err: &DbErr) -> bool {
    match refusal(err) {
        // 1213 deadlock, 1205 lock wait timeout
        Some(Refusal::MySql(number)) => matches!(number, 1213 | 1205),
        // PostgreSQL: serialization_failure, deadlock_detected; SQLite: BUSY, LOCKED, BUSY_SNAPSHOT
        Some(Refusal::Code(code)) => matches!(code.as_ref(), "40001" | "40P01" | "5" | "6" | "517"),
        None => false,
    }
}

/// True when the database cannot be reached (down, restarting, shutting down, out of
/// connections, pool exhausted) or cannot take more now (its disk is full): worth a retry by the
/// client later, not a bug.
pub fn is_unavailable(err: &DbErr) -> bool {
    let runtime = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    if let RuntimeErr::SqlxError(sqlx_err) = runtime
        && matches!(
            sqlx_err.as_ref(),
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed
        )
    {
        return true;
    }
    match refusal(err) {
        // 1021 disk full, 1040 too many connections, 1053 server shutdown, 1077 normal shutdown,
        // 1114 table full (its disk), 1927 connection killed, 2006 gone away, 2013 lost connection
        Some(Refusal::MySql(number)) => matches!(
            number,
            1021 | 1040 | 1053 | 1077 | 1114 | 1927 | 2006 | 2013
        ),
        // PostgreSQL: class 08 (connection exception), class 53 (insufficient resources: 53100
        // disk full, 53200 out of memory, 53300 too many connections), 57P01 admin shutdown,
        // 57P02 crash shutdown, 57P03 cannot connect now; SQLite: 13 FULL (its disk)
        Some(Refusal::Code(code)) => {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "13")
        }
        None => false,
    }
}

/// True when the database refused a value it cannot store: text it cannot encode (NUL in
/// PostgreSQL), a number out of its column's range. Inputs are checked before they get here;
/// this is the backstop that keeps a missed check from being answered as an internal error.
pub fn is_unstorable_value(err: &DbErr) -> bool {
    match refusal(err) {
        // 1264 out of range, 1366 incorrect string value, 1406 data too long
        Some(Refusal::MySql(number)) => matches!(number, 1264 | 1366 | 1406),
        // PostgreSQL: 22001 string too long, 22003 numeric out of range, 22021 character not in
        // repertoire (NUL), 22P05 untranslatable character
        Some(Refusal::Code(code)) => matches!(code.as_ref(), "22001" | "22003" | "22021" | "22P05"),
        None => false,
    }
}

/// True when the error is a violated foreign key (a row naming one that does not exist).
pub fn is_foreign_key_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
    )
}

/// True when the error is a violated unique constraint.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// `host:port/database` of a database URL, without its credentials (for logs and metrics).
fn public_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

/// The file behind an `sqlite:` URL, if it names one.
fn sqlite_file_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| path.to_owned())
}

/// What a database error means for a client (the database's side of [`AppError`], next to the
/// classification above).
impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        client_meaning(&err).unwrap_or_else(|| AppError::internal(err))
    }
}

/// A database error shared by a DataLoader's waiters.
impl From<std::sync::Arc<DbErr>> for AppError {
    fn from(err: std::sync::Arc<DbErr>) -> Self {
        client_meaning(&err).unwrap_or_else(|| AppError::internal(anyhow::anyhow!(err)))
    }
}

/// What a database error means for the client when it is not a bug: unavailable (retry), or
/// a value no database column can hold (a missing input check, answered as bad input).
fn client_meaning(err: &DbErr) -> Option<AppError> {
    if is_unavailable(err) {
        tracing::warn!(error = %err, "database unavailable");
        Some(AppError::Unavailable)
    } else if is_unstorable_value(err) {
        tracing::warn!(error = %err, "a value the database cannot store reached it");
        Some(AppError::BadUserInput(
            "a text or number in the request cannot be stored".into(),
        ))
    } else {
        None
    }
}
