//! The application: builds everything from [`Settings`], binds the listener, and serves until
//! stopped (Ctrl-C, SIGTERM, or the handle's token for tests).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::balance::service::{BalanceLimits, BalanceService};
use crate::catalog::service::CatalogService;
use crate::config::Settings;
use crate::coupon::gate::CouponGate;
use crate::coupon::service::CouponService;
use crate::graphql::documents::Documents;
use crate::graphql::trusted::TrustedDocuments;
use crate::http::limits::MutationLimits;
use crate::http::{Feeds, HttpLimits, HttpState, router};
use crate::infra::bus::EventBus;
use crate::infra::db::Database;
use crate::infra::files;
use crate::infra::redis::RedisConnection;
use crate::ordering::announce::Announcer;
use crate::ordering::model::OrderSettings;
use crate::ordering::service::OrderingService;
use crate::outbox::breaker::CircuitBreaker;
use crate::outbox::relay::{OutboxSignal, Relay, RelaySettings};
use crate::outbox::service::OutboxService;
use crate::ranking::service::RankingService;
use crate::schema::{QueryLimits, build_schema};
use crate::state::AppState;
use crate::users::service::UserService;

/// Events a slow receiver may fall behind before it skips ahead.
const EVENT_BUFFER: usize = 4096;

/// Connections waiting to be accepted: a burst of a thousand shoppers must not overflow it.
const LISTEN_BACKLOG: u32 = 4096;

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    shutdown: CancellationToken,
    workers: TaskTracker,
    /// WebSocket connections.
    connections: TaskTracker,
    grace: Duration,
    db: Database,
    feeds: Feeds,
}

impl Application {
    /// Validates the settings, connects and migrates the database (seeding demo data into the
    /// embedded default), connects Redis when set, starts the services and their workers, and
    /// binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        let open_files = files::raise_open_file_limit();
        tracing::info!(?open_files, "open-file limit");
        install_metrics();
        let background = Background::default();
        let db = open_database(&settings, &background).await?;
        let shared = Shared::connect(&settings, &db, &background).await?;
        let state = start_services(&settings, db.clone(), &shared, &background)?;
        let connections = TaskTracker::new();
        let query_limits = QueryLimits::from_settings(&settings);
        let http_state = HttpState {
            schema: build_schema(state.clone(), query_limits),
            app: state,
            auth: Authenticator::new(
                settings.auth.effective_auth_mode(),
                settings.auth.jwt_secret.as_ref().map(|s| s.expose()),
            ),
            limits: HttpLimits::from_settings(&settings, query_limits.document, open_files),
            mutation_limits: MutationLimits::from_settings(&settings),
            allowed_origins: settings.allowed_origins(),
            documents: Documents::new(shared.cache()),
            trusted: trusted_documents(&settings)?,
            shutdown: background.shutdown.clone(),
            connections: connections.clone(),
            open_sockets: Arc::new(AtomicU64::new(0)),
            feeds: Feeds::default(),
        };
        let feeds = http_state.feeds.clone();
        let listener = bind(settings.server.bind)
            .with_context(|| format!("cannot listen on BIND {}", settings.server.bind))?;
        Ok(Self {
            local_addr: listener.local_addr()?,
            listener,
            router: router(http_state),
            shutdown: background.shutdown,
            workers: background.workers,
            connections,
            grace: Duration::from_secs(settings.server.shutdown_grace_secs),
            db,
            feeds,
        })
    }

    /// The bound address (the real port when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The database handle (e.g. to read how many statements ran).
    pub fn database(&self) -> Database {
        self.db.clone()
    }

    /// The public subscriptions its listeners share (e.g. to count their executions).
    pub fn shared_feeds(&self) -> Feeds {
        self.feeds.clone()
    }

    /// Cancelling this token stops the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until Ctrl-C, SIGTERM or the shutdown token.
    ///
    /// Stopping: no new connections; in-flight requests and transactions finish; WebSocket
    /// connections are closed with 1001; workers stop after their current step. Whatever is not
    /// done within the grace period is abandoned (transactions then roll back).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let token = self.shutdown.clone();
        let requested = token.clone();
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(self.listener, service).with_graceful_shutdown(async move {
            tokio::select! {
                _ = requested.cancelled() => {}
                _ = shutdown_signal() => {}
            }
            tracing::info!("stopping: finishing in-flight work");
            requested.cancel();
        });
        let served = tokio::spawn(async move { server.await });
        token.cancelled().await;
        self.workers.close();
        self.connections.close();
        let drained = tokio::time::timeout(self.grace, async {
            let served = served.await;
            self.connections.wait().await;
            self.workers.wait().await;
            served
        })
        .await;
        match drained {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(std::io::Error::other(join)),
            Err(_) => {
                tracing::warn!(grace = ?self.grace, "stopped before everything finished");
                Ok(())
            }
        }
    }
}

/// The workers that run beside the requests, and what stops them.
#[derive(Default)]
struct Background {
    shutdown: CancellationToken,
    workers: TaskTracker,
}

impl Background {
    fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.workers.spawn(work);
    }
}

/// The metrics recorder is process-wide: installed before anything records, with every alerted
/// series at zero.
fn install_metrics() {
    crate::observability::prometheus();
    crate::infra::meters::register(
        crate::schema::business_outcomes(),
        crate::verification::INVARIANTS.map(crate::verification::Invariant::name),
    );
}

/// The database, migrated (and seeded when it is the embedded default), with its read replicas
/// watched when there are any.
async fn open_database(settings: &Settings, background: &Background) -> anyhow::Result<Database> {
    let mut db = Database::connect(
        settings.database.database_url(),
        settings.database.db_max_connections(),
        settings.database.db_acquire_timeout(),
    )
    .await
    .context("cannot connect to DATABASE_URL")?;
    db.migrate().await.context("cannot migrate the database")?;
    if settings.database.is_embedded_default() && crate::seed::seed_demo(&db).await? {
        tracing::info!("seeded the embedded database with the demo data");
    }
    let replica_urls = settings.database.database_read_urls();
    if !replica_urls.is_empty() {
        let replicas = db
            .connect_replicas(
                &replica_urls,
                settings.database.db_max_connections(),
                settings.database.replica_max_lag(),
            )
            .await
            .context("cannot use DATABASE_READ_URL")?;
        background.spawn(replicas.monitor(background.shutdown.clone()));
    }
    Ok(db)
}

/// What instances share besides the database: Redis (when set) under this database's namespace,
/// and the event bus (through Redis, else in-process).
struct Shared {
    /// Keys, scripts and channels of this database only, whatever prefix another shares.
    namespace: String,
    redis: Option<RedisConnection>,
    bus: EventBus,
}

impl Shared {
    async fn connect(
        settings: &Settings,
        db: &Database,
        background: &Background,
    ) -> anyhow::Result<Self> {
        let installation = db
            .installation_id()
            .await
            .context("cannot read the installation id")?;
        let namespace = format!("{}{installation}:", settings.redis.redis_key_prefix);
        let Some(servers) = settings.redis.redis_servers()? else {
            return Ok(Self {
                namespace,
                redis: None,
                bus: EventBus::in_process(EVENT_BUFFER),
            });
        };
        let redis = servers
            .connect(Some(crate::infra::redis::RESPONSE_TIMEOUT))
            .await
            .context("cannot connect to REDIS_URL")?;
        let channel = format!("{namespace}events");
        let bus = EventBus::redis(servers, channel, EVENT_BUFFER, background.shutdown.clone());
        Ok(Self {
            namespace,
            redis: Some(redis),
            bus,
        })
    }

    /// Redis and this database's namespace in it, for the caches shared between instances.
    fn cache(&self) -> Option<(RedisConnection, String)> {
        let redis = self.redis.clone()?;
        Some((redis, self.namespace.clone()))
    }
}

/// The relay to the data platform, started when one is configured; its circuit breaker.
fn start_relay(
    settings: &Settings,
    db: &Database,
    deliveries: &OutboxSignal,
    background: &Background,
) -> anyhow::Result<Option<Arc<Mutex<CircuitBreaker>>>> {
    let Some(relay_settings) = RelaySettings::from_settings(settings) else {
        tracing::warn!("DATA_PLATFORM_URL is not set: outbox events stay PENDING until it is");
        return Ok(None);
    };
    let breaker = Arc::new(Mutex::new(CircuitBreaker::new(
        relay_settings.breaker_threshold,
        relay_settings.breaker_cool_down,
    )));
    let relay = Relay::new(db.clone(), relay_settings, breaker.clone())
        .context("cannot build the HTTP client for DATA_PLATFORM_URL")?;
    background.spawn(relay.run(deliveries.clone(), background.shutdown.clone()));
    Ok(Some(breaker))
}

/// Every domain's service, with the workers they need (the relay, order expiry, the ranking's
/// refresh, the periodic verification).
fn start_services(
    settings: &Settings,
    db: Database,
    shared: &Shared,
    background: &Background,
) -> anyhow::Result<AppState> {
    let (bus, shutdown) = (&shared.bus, &background.shutdown);
    let ranking = RankingService::new(
        db.clone(),
        settings.ranking.time_zone,
        shared.cache(),
        bus.clone(),
        settings.ranking.ranking_refresh(),
    );
    background.spawn(crate::ranking::worker::run(
        ranking.clone(),
        bus.clone(),
        shutdown.clone(),
    ));
    let deliveries = OutboxSignal::default();
    let breaker = start_relay(settings, &db, &deliveries, background)?;
    let outbox = OutboxService::new(db.clone(), breaker, deliveries.clone());
    if let Some(retention) = settings.outbox.outbox_retention() {
        let pruning = crate::outbox::retention::run(db.clone(), retention, shutdown.clone());
        background.spawn(pruning);
    }
    let announcer = Announcer::new(bus.clone(), ranking.sales_signal(), deliveries);
    let ordering = OrderingService::new(
        db.clone(),
        announcer,
        OrderSettings::from_settings(settings),
        settings.orders.order_batches(),
    )
    .context("cannot start the order writer")?;
    background.spawn(crate::ordering::expiry::run(
        ordering.clone(),
        settings.orders.order_expiry_sweep(),
        shutdown.clone(),
    ));
    if let Some(every) = settings.verification.verify_interval() {
        let verifying = crate::verification::worker::run(db.clone(), every, shutdown.clone());
        background.spawn(verifying);
    }
    let gate = match &shared.redis {
        Some(conn) => CouponGate::redis(conn.clone(), &shared.namespace),
        None => CouponGate::in_process(),
    };
    Ok(AppState {
        coupons: CouponService::new(db.clone(), gate).context("cannot start the coupon writer")?,
        outbox,
        ordering,
        ranking,
        users: UserService::new(db.clone()),
        balance: BalanceService::new(db.clone(), BalanceLimits::from_settings(settings)),
        catalog: CatalogService::new(db.clone(), bus.clone()),
        db,
        redis: shared.redis.clone(),
        bus: bus.clone(),
    })
}

/// The trusted documents, when `TRUSTED_DOCUMENTS` names a manifest (read once, at start).
fn trusted_documents(settings: &Settings) -> anyhow::Result<Option<Arc<TrustedDocuments>>> {
    let Some(path) = &settings.limits.trusted_documents else {
        return Ok(None);
    };
    let documents = TrustedDocuments::load(path, settings.limits.trusted_documents_admins_free)?;
    Ok(Some(Arc::new(documents)))
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
