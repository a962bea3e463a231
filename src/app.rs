//! The application: builds everything from [`Settings`], binds the listener, and serves until
//! stopped (Ctrl-C, SIGTERM, or the handle's token for tests).

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
use crate::graphql::limits::DocumentLimits;
use crate::graphql::{QueryLimits, build_schema};
use crate::http::limits::MutationLimits;
use crate::http::{HttpLimits, HttpState, router};
use crate::infra::bus::EventBus;
use crate::infra::db::Database;
use crate::ordering::announce::Announcer;
use crate::ordering::model::OrderSettings;
use crate::ordering::service::OrderingService;
use crate::outbox::breaker::CircuitBreaker;
use crate::outbox::relay::{OutboxSignal, Relay, RelaySettings};
use crate::outbox::service::OutboxService;
use crate::ranking::service::RankingService;
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
}

impl Application {
    /// Validates the settings, connects and migrates the database (seeding demo data into the
    /// embedded default), connects Redis when set, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        // the metrics recorder is process-wide: install it before anything records
        crate::observability::prometheus();
        crate::infra::meters::register(
            crate::graphql::business_outcomes(),
            crate::verification::INVARIANTS.map(crate::verification::Invariant::name),
        );
        let mut db = Database::connect(
            settings.database_url(),
            settings.db_max_connections(),
            settings.db_acquire_timeout(),
        )
        .await
        .context("cannot connect to DATABASE_URL")?;
        db.migrate().await.context("cannot migrate the database")?;
        if settings.is_embedded_default() && crate::seed::seed_demo(&db).await? {
            tracing::info!("seeded the embedded database with the demo data");
        }
        // keys, scripts and channels of this database only, whatever prefix another shares
        let namespace = format!(
            "{}{}:",
            settings.redis_key_prefix,
            db.installation_id()
                .await
                .context("cannot read the installation id")?
        );
        let servers = settings.redis_servers()?;
        let redis = match &servers {
            Some(servers) => Some(
                servers
                    .connect(Some(crate::infra::redis::RESPONSE_TIMEOUT))
                    .await
                    .context("cannot connect to REDIS_URL")?,
            ),
            None => None,
        };
        let shutdown = CancellationToken::new();
        let workers = TaskTracker::new();
        let replica_urls = settings.database_read_urls();
        if !replica_urls.is_empty() {
            let replicas = db
                .connect_replicas(
                    &replica_urls,
                    settings.db_max_connections(),
                    settings.replica_max_lag(),
                )
                .await
                .context("cannot use DATABASE_READ_URL")?;
            workers.spawn(replicas.monitor(shutdown.clone()));
        }
        let bus = match servers {
            Some(servers) => EventBus::redis(
                servers,
                format!("{namespace}events"),
                EVENT_BUFFER,
                shutdown.clone(),
            ),
            None => EventBus::in_process(EVENT_BUFFER),
        };
        let shared_cache = redis.clone().map(|conn| (conn, namespace.clone()));
        let ranking = RankingService::new(
            db.clone(),
            settings.time_zone,
            shared_cache,
            bus.clone(),
            settings.ranking_refresh(),
        );
        let deliveries = OutboxSignal::default();
        let breaker = match RelaySettings::from_settings(&settings) {
            Some(relay_settings) => {
                let breaker = Arc::new(Mutex::new(CircuitBreaker::new(
                    relay_settings.breaker_threshold,
                    relay_settings.breaker_cool_down,
                )));
                let relay = Relay::new(db.clone(), relay_settings, breaker.clone())
                    .context("cannot build the HTTP client for DATA_PLATFORM_URL")?;
                workers.spawn(relay.run(deliveries.clone(), shutdown.clone()));
                Some(breaker)
            }
            None => {
                tracing::warn!(
                    "DATA_PLATFORM_URL is not set: outbox events stay PENDING until it is"
                );
                None
            }
        };
        let outbox = OutboxService::new(db.clone(), breaker, deliveries.clone());
        let ordering = OrderingService::new(
            db.clone(),
            Announcer::new(bus.clone(), ranking.sales_signal(), deliveries),
            OrderSettings {
                pending_ttl: settings.order_ttl(),
                time_zone: settings.time_zone,
            },
            settings.order_batches(),
        )
        .context("cannot start the order writer")?;
        workers.spawn(crate::ordering::expiry::run(
            ordering.clone(),
            settings.order_expiry_sweep(),
            shutdown.clone(),
        ));
        if let Some(every) = settings.verify_interval() {
            workers.spawn(crate::verification::worker::run(
                db.clone(),
                every,
                shutdown.clone(),
            ));
        }
        workers.spawn(crate::ranking::worker::run(
            ranking.clone(),
            bus.clone(),
            shutdown.clone(),
        ));
        let gate = match &redis {
            Some(conn) => CouponGate::redis(conn.clone(), &namespace),
            None => CouponGate::in_process(),
        };
        let state = AppState {
            coupons: CouponService::new(db.clone(), gate)
                .context("cannot start the coupon writer")?,
            outbox,
            ordering,
            ranking,
            users: UserService::new(db.clone()),
            balance: BalanceService::new(
                db.clone(),
                BalanceLimits {
                    max_charge: settings.max_charge_amount,
                    max_balance: settings.max_balance,
                },
            ),
            catalog: CatalogService::new(db.clone(), bus.clone()),
            db: db.clone(),
            redis,
            bus,
        };
        let schema = build_schema(
            state.clone(),
            QueryLimits {
                document: DocumentLimits::from_settings(&settings),
                max_complexity: settings.max_query_complexity as usize,
                disable_introspection: settings.disable_introspection,
            },
        );
        let connections = TaskTracker::new();
        let documents = Documents::new(state.redis.clone().map(|conn| (conn, namespace.clone())));
        let http_state = HttpState {
            schema,
            app: state,
            auth: Authenticator::new(
                settings.effective_auth_mode(),
                settings.jwt_secret.as_ref().map(|s| s.expose()),
            ),
            limits: HttpLimits {
                max_body_bytes: settings.max_body_bytes as usize,
                document: DocumentLimits::from_settings(&settings),
                max_batch: settings.max_batch as usize,
                ws_init_timeout: settings.ws_init_timeout(),
                ws_max_connections: settings.ws_max_connections,
                ws_max_subscriptions: settings.ws_max_subscriptions as usize,
                request_timeout: Duration::from_secs(settings.request_timeout_secs),
            },
            mutation_limits: MutationLimits::new(
                settings.rate_limit_user_per_sec,
                settings.rate_limit_user_burst,
                settings.rate_limit_ip_per_sec,
                settings.rate_limit_ip_burst,
            ),
            allowed_origins: settings.allowed_origins(),
            documents,
            shutdown: shutdown.clone(),
            connections: connections.clone(),
            open_sockets: Arc::new(AtomicU64::new(0)),
        };
        let listener = bind(settings.bind)
            .with_context(|| format!("cannot listen on BIND {}", settings.bind))?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            router: router(http_state),
            shutdown,
            workers,
            connections,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
            db,
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
