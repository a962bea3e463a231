//! Typed settings of the server, read from command-line flags and environment variables.
//!
//! Every setting has a flag and an environment variable (`commerce --help` lists them). Nothing
//! here is global: [`Settings`] is built once in `main` (or by a test) and handed to
//! [`crate::app::Application::build`]. [`Settings::validate`] refuses inconsistent combinations
//! with one line that names the setting and the reason.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, FromArgMatches, ValueEnum};

use crate::infra::batching::BatchSettings;
use crate::infra::redis::RedisServers;

/// The highest depth limit a setting may ask for: it keeps the bracket nesting the GraphQL parser
/// sees shallow enough for its recursion.
pub const MAX_CONFIGURABLE_DEPTH: u64 = 64;

/// The embedded default database: an SQLite file, created on first run and seeded with demo data.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/commerce.db?mode=rwc";

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Trust `x-user-id` / `x-role` headers as sent (loopback binds only).
    Dev,
    /// Verify `Authorization: Bearer <HS256 JWT>`.
    Jwt,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// All settings of the server, by subsystem (`commerce --help` lists them under these headings).
/// Flags win over environment variables.
#[derive(Clone, Debug, Args)]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub redis: RedisSettings,
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub balance: BalanceSettings,
    #[command(flatten)]
    pub orders: OrderWriterSettings,
    #[command(flatten)]
    pub outbox: OutboxSettings,
    #[command(flatten)]
    pub ranking: RankingSettings,
    #[command(flatten)]
    pub verification: VerificationSettings,
}

/// The database, its read replicas and its connections.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseSettings {
    /// Database URL: postgres://, mysql:// or sqlite://. Default: an SQLite file under ./data/,
    /// created, migrated and seeded with demo data on first run.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Read replicas of a PostgreSQL DATABASE_URL (streaming standbys), comma-separated
    /// postgres:// URLs: catalog, listings, order history and the ranking are read there. Unset:
    /// every read goes to DATABASE_URL.
    #[arg(long, env = "DATABASE_READ_URL", global = true)]
    pub database_read_url: Option<String>,

    /// A read replica whose replay is further behind the primary than this, in milliseconds, is
    /// skipped until it catches up.
    #[arg(long, env = "REPLICA_MAX_LAG_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000), global = true)]
    pub replica_max_lag_ms: u64,

    /// Maximum database connections in the requests' pool (default: twice the cores, at least
    /// 10; the batch writers have their own connections, one per lane).
    #[arg(long, env = "DB_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: Option<u32>,

    /// How long a request waits for a free database connection, in milliseconds.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=600_000), global = true)]
    pub db_acquire_timeout_ms: u64,
}

/// Redis, shared by the instances of one deployment.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisSettings {
    /// Redis URL: redis://host:port for one server; redis+cluster://host:port,host:port (or a
    /// comma-separated list of redis:// URLs) for the seed nodes of a Redis Cluster. Unset:
    /// in-process cache, coupon gate and event bus (one instance).
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key this server writes (several deployments may share a Redis).
    #[arg(
        long,
        env = "REDIS_KEY_PREFIX",
        default_value = "commerce:",
        global = true
    )]
    pub redis_key_prefix: String,
}

/// Listening, logging, stopping and what every HTTP request may take.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerSettings {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8000", global = true)]
    pub bind: SocketAddr,

    /// Log format: text for people, json for machines. The level comes from RUST_LOG (default info).
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Seconds a stopping server waits for requests, subscriptions and workers to finish.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=3600), global = true)]
    pub shutdown_grace_secs: u64,

    /// Longest time one HTTP request may take, in seconds (then 503 SERVICE_UNAVAILABLE with
    /// Retry-After). 10 s: a store gone silent (a network blackhole) is answered within it.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub request_timeout_secs: u64,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(256..=104_857_600), global = true)]
    pub max_body_bytes: u64,

    /// Web origins whose pages may call the API: `*` or a comma-separated list such as
    /// `https://shop.example.com,http://localhost:5173`. Default: any in dev mode, none but the
    /// server's own in jwt mode.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", global = true)]
    pub cors_allowed_origins: Option<AllowedOrigins>,
}

/// How requests are authenticated.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthSettings {
    /// How requests are authenticated. Default: jwt when JWT_SECRET is set, dev otherwise.
    #[arg(long, env = "AUTH_MODE", value_enum, global = true)]
    pub auth_mode: Option<AuthMode>,

    /// HS256 secret for JWTs (at least 32 bytes).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<Secret>,
}

/// What one client may ask: documents, batches, rate limits and WebSockets.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitSettings {
    /// Most operations in one batched request.
    #[arg(long, env = "MAX_BATCH", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000), global = true)]
    pub max_batch: u64,

    /// Deepest accepted field nesting of a query (introspection has its own bound).
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = 12, value_parser = clap::value_parser!(u64).range(2..=MAX_CONFIGURABLE_DEPTH), global = true)]
    pub max_query_depth: u64,

    /// Deepest accepted field nesting under `__schema` / `__type` (GraphiQL's and codegen
    /// tools' standard introspection queries are 13 deep).
    #[arg(long, env = "MAX_INTROSPECTION_DEPTH", default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=MAX_CONFIGURABLE_DEPTH), global = true)]
    pub max_introspection_depth: u64,

    /// Highest accepted query complexity (1 per field, lists multiplied by their page size);
    /// also the most selections a document may hold once its fragments are expanded.
    #[arg(long, env = "MAX_QUERY_COMPLEXITY", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(10..=1_000_000), global = true)]
    pub max_query_complexity: u64,

    /// Longest accepted GraphQL document, in bytes.
    #[arg(long, env = "MAX_QUERY_BYTES", default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(64..=10_485_760), global = true)]
    pub max_query_bytes: u64,

    /// Most lexical tokens (names, punctuation, values) in a GraphQL document.
    #[arg(long, env = "MAX_QUERY_TOKENS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=1_000_000), global = true)]
    pub max_query_tokens: u64,

    /// Most mutation fields in one operation (each one counts against the rate limits).
    #[arg(long, env = "MAX_MUTATION_FIELDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000), global = true)]
    pub max_mutation_fields: u64,

    /// A manifest of the only documents clients may run (trusted documents): Apollo's
    /// persisted-query manifest or a `{"<sha256>": "<document>"}` map (graphql-codegen's client
    /// preset). Unset: any document may run.
    #[arg(long, env = "TRUSTED_DOCUMENTS", global = true)]
    pub trusted_documents: Option<std::path::PathBuf>,

    /// With TRUSTED_DOCUMENTS: administrators may still run any document, and the playground is
    /// served (for them). Off: the playground is refused too.
    #[arg(
        long,
        env = "TRUSTED_DOCUMENTS_ADMINS_FREE",
        default_value_t = false,
        global = true
    )]
    pub trusted_documents_admins_free: bool,

    /// Turn off introspection and field suggestions (production).
    #[arg(
        long,
        env = "DISABLE_INTROSPECTION",
        default_value_t = false,
        global = true
    )]
    pub disable_introspection: bool,

    /// Mutations per second one user may send (0: unlimited); bursts up to RATE_LIMIT_USER_BURST.
    #[arg(
        long,
        env = "RATE_LIMIT_USER_PER_SEC",
        default_value_t = 50,
        global = true
    )]
    pub rate_limit_user_per_sec: u32,

    #[arg(long, env = "RATE_LIMIT_USER_BURST", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_user_burst: u32,

    /// Mutations per second one client IP may send (0: unlimited, the default: behind a load
    /// balancer every request comes from its address).
    #[arg(
        long,
        env = "RATE_LIMIT_IP_PER_SEC",
        default_value_t = 0,
        global = true
    )]
    pub rate_limit_ip_per_sec: u32,

    #[arg(long, env = "RATE_LIMIT_IP_BURST", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_ip_burst: u32,

    /// Most WebSocket connections at once (further upgrades get 503).
    #[arg(long, env = "WS_MAX_CONNECTIONS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub ws_max_connections: u64,

    /// Most operations running on one WebSocket connection.
    #[arg(long, env = "WS_MAX_SUBSCRIPTIONS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000), global = true)]
    pub ws_max_subscriptions: u64,

    /// Seconds a WebSocket client has to send `connection_init`.
    #[arg(long, env = "WS_INIT_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub ws_init_timeout_secs: u64,
}

/// The prepaid balance.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Balance")]
pub struct BalanceSettings {
    /// Largest single charge, in won.
    #[arg(long, env = "MAX_CHARGE_AMOUNT", default_value_t = 10_000_000, value_parser = clap::value_parser!(i64).range(1..), global = true)]
    pub max_charge_amount: i64,

    /// Largest balance a user may hold, in won.
    #[arg(long, env = "MAX_BALANCE", default_value_t = 1_000_000_000, value_parser = clap::value_parser!(i64).range(1..), global = true)]
    pub max_balance: i64,
}

/// Orders: how long PENDING ones live, and their writers.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Orders")]
pub struct OrderWriterSettings {
    /// Seconds a PENDING order (createOrder) holds its stock and coupon before it expires.
    #[arg(long, env = "ORDER_TTL_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=604_800), global = true)]
    pub order_ttl_secs: u64,

    /// How often the expiry worker looks for overdue PENDING orders, in milliseconds.
    #[arg(long, env = "ORDER_EXPIRY_SWEEP_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000), global = true)]
    pub order_expiry_sweep_ms: u64,

    /// Most orders and payments applied in one transaction by the order writer.
    #[arg(long, env = "ORDER_BATCH_MAX", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1000), global = true)]
    pub order_batch_max: u64,

    /// How long a writer with a part-full batch waits for more orders, in microseconds (0: it
    /// never waits; a batch is whatever arrived while the previous one ran).
    #[arg(long, env = "ORDER_BATCH_LINGER_US", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000), global = true)]
    pub order_batch_linger_us: u64,

    /// Order writer lanes: transactions of orders running at once on this instance, each with
    /// its own queue and connection; an order goes to the lane of its lowest product (default:
    /// one per two cores, at least one).
    #[arg(long, env = "ORDER_WRITERS", value_parser = clap::value_parser!(u64).range(1..=64), global = true)]
    pub order_writers: Option<u64>,

    /// How long an order or payment may wait for its writer before it is refused unapplied with
    /// SERVICE_UNAVAILABLE (retryAfterSeconds), in milliseconds (0: it waits however long).
    #[arg(long, env = "ORDER_QUEUE_MAX_WAIT_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(0..=600_000), global = true)]
    pub order_queue_max_wait_ms: u64,

    /// How far below the requests' priority the order writer's threads run, in steps of nice
    /// value (Linux; 0: the same): reads and incoming requests take a saturated machine's cores
    /// first, and the writer's batches grow meanwhile.
    #[arg(long, env = "ORDER_WRITER_NICE", default_value_t = 10, value_parser = clap::value_parser!(i32).range(0..=19), global = true)]
    pub order_writer_nice: i32,
}

/// Delivering completed orders to the data platform.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Outbox")]
pub struct OutboxSettings {
    /// Where completed orders are delivered (POST, JSON), e.g. http://platform:9000/events.
    /// Unset: events wait in the outbox.
    #[arg(long, env = "DATA_PLATFORM_URL", global = true)]
    pub data_platform_url: Option<String>,

    /// How long one delivery may take, in milliseconds.
    #[arg(long, env = "OUTBOX_TIMEOUT_MS", default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(10..=600_000), global = true)]
    pub outbox_timeout_ms: u64,

    /// How often the relay looks for due retries, in milliseconds (it also wakes on every order).
    #[arg(long, env = "OUTBOX_POLL_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..=600_000), global = true)]
    pub outbox_poll_ms: u64,

    /// Events claimed per batch.
    #[arg(long, env = "OUTBOX_BATCH", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000), global = true)]
    pub outbox_batch: u64,

    /// Attempts before an event is marked FAILED.
    #[arg(long, env = "OUTBOX_MAX_ATTEMPTS", default_value_t = 25, value_parser = clap::value_parser!(i32).range(1..=1000), global = true)]
    pub outbox_max_attempts: i32,

    /// First retry delay, in milliseconds (doubling, with jitter).
    #[arg(long, env = "OUTBOX_RETRY_BASE_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000), global = true)]
    pub outbox_retry_base_ms: u64,

    /// Longest retry delay, in milliseconds.
    #[arg(long, env = "OUTBOX_RETRY_MAX_MS", default_value_t = 600_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000), global = true)]
    pub outbox_retry_max_ms: u64,

    /// Failures in a row that open the circuit breaker.
    #[arg(long, env = "OUTBOX_BREAKER_THRESHOLD", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub outbox_breaker_threshold: u32,

    /// How long a SENT outbox event is kept, in seconds (0: forever): older ones are deleted,
    /// a thousand at a time, every min(this, 10 minutes). PENDING and FAILED events are kept.
    #[arg(long, env = "OUTBOX_RETENTION_SECS", default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(0..=315_360_000), global = true)]
    pub outbox_retention_secs: u64,

    /// How long the open breaker waits before probing, in milliseconds.
    #[arg(long, env = "OUTBOX_BREAKER_COOLDOWN_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000), global = true)]
    pub outbox_breaker_cooldown_ms: u64,
}

/// Sales days and the top sellers.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Ranking")]
pub struct RankingSettings {
    /// Time zone of the business day (sales days and rankings), an IANA name.
    #[arg(long, env = "TIME_ZONE", default_value = "Asia/Seoul", global = true)]
    pub time_zone: chrono_tz::Tz,

    /// Least time between two recomputations of the top sellers, in milliseconds (a sale after
    /// a quiet spell is recomputed at once; a burst within the interval is coalesced).
    #[arg(long, env = "RANKING_REFRESH_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=300_000), global = true)]
    pub ranking_refresh_ms: u64,
}

/// Checking the stored history against its invariants.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Verification")]
pub struct VerificationSettings {
    /// How often the server runs `commerce verify` and shows its result in /metrics, in seconds
    /// (0: never).
    #[arg(long, env = "VERIFY_INTERVAL_SECS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=604_800), global = true)]
    pub verify_interval_secs: u64,
}

/// `CORS_ALLOWED_ORIGINS`: the web origins whose pages may call the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: every origin.
    Any,
    /// Pages served from this machine (`http(s)://localhost`, `127.0.0.1` or `[::1]`, any
    /// port): the default of dev mode, whose `x-user-id` headers any other page could forge.
    Loopback,
    /// Exactly these `scheme://host[:port]` origins, in lower case (none: only the server's own
    /// pages).
    Listed(Vec<String>),
}

impl AllowedOrigins {
    /// Whether `origin` (`scheme://host[:port]`, as a browser sends it) is one of this machine's.
    pub fn is_loopback(origin: &str) -> bool {
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or("", |(host, _)| host),
            None => authority.split(':').next().unwrap_or(""),
        };
        matches!(scheme, "http" | "https")
            && (host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "::1")
    }
}

impl std::str::FromStr for AllowedOrigins {
    type Err = String;

    fn from_str(setting: &str) -> Result<Self, Self::Err> {
        if setting.trim() == "*" {
            return Ok(AllowedOrigins::Any);
        }
        let origins = setting
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                let is_origin = origin.split_once("://").is_some_and(|(scheme, authority)| {
                    matches!(scheme, "http" | "https")
                        && !authority.is_empty()
                        && authority.bytes().all(|b| b.is_ascii_graphic())
                        && !authority.contains(['/', '?', '#', '*', '@'])
                });
                if is_origin {
                    // browsers send origins in lower case
                    Ok(origin.to_ascii_lowercase())
                } else {
                    Err(format!(
                        "{origin:?} is not an origin: give `*` or a comma-separated list of \
                         http(s)://host[:port] without a path, e.g. \
                         https://shop.example.com,http://localhost:5173"
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowedOrigins::Listed(origins))
    }
}

/// A secret setting: never printed (Debug shows `***`).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

/// A setting that cannot work, with the reason; printed as one line at start-up.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct SettingsError {
    pub setting: &'static str,
    pub reason: String,
}

impl Settings {
    /// The defaults of every setting (as `commerce serve` takes them when given none; the
    /// environment is not read), on the database at `url`, listening on a free port of
    /// 127.0.0.1: where tests and tools start from.
    pub fn for_database(url: impl Into<String>) -> Self {
        let command =
            Self::augment_args(clap::Command::new("commerce")).mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(["commerce"])
            .expect("every setting has a default");
        let mut settings =
            Self::from_arg_matches(&matches).expect("the defaults are valid settings");
        settings.database.database_url = Some(url.into());
        settings.server.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        settings
    }

    /// The web origins allowed to call the API from a browser: the setting, else this
    /// machine's pages in dev mode and none but the server's own in jwt mode.
    pub fn allowed_origins(&self) -> AllowedOrigins {
        self.server
            .cors_allowed_origins
            .clone()
            .unwrap_or(match self.auth.effective_auth_mode() {
                AuthMode::Dev => AllowedOrigins::Loopback,
                AuthMode::Jwt => AllowedOrigins::Listed(Vec::new()),
            })
    }
    /// Refuses combinations that cannot work or would be unsafe.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let url = self.database.database_url();
        if !["postgres://", "postgresql://", "mysql://", "sqlite:"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Err(SettingsError {
                setting: "DATABASE_URL",
                reason: "must start with postgres://, mysql:// or sqlite:".into(),
            });
        }
        let postgres =
            |url: &str| url.starts_with("postgres://") || url.starts_with("postgresql://");
        let replicas = self.database.database_read_urls();
        if self.database.database_read_url.is_some() && replicas.is_empty() {
            return Err(SettingsError {
                setting: "DATABASE_READ_URL",
                reason: "names no URL".into(),
            });
        }
        if !replicas.is_empty() && !postgres(url) {
            return Err(SettingsError {
                setting: "DATABASE_READ_URL",
                reason: "read replicas need a PostgreSQL DATABASE_URL".into(),
            });
        }
        if let Some(replica) = replicas.iter().find(|replica| !postgres(replica)) {
            return Err(SettingsError {
                setting: "DATABASE_READ_URL",
                reason: format!(
                    "each replica must be a postgres:// URL, not {:?}",
                    replica.split("://").next().unwrap_or_default()
                ),
            });
        }
        if let Some(url) = &self.outbox.data_platform_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(SettingsError {
                setting: "DATA_PLATFORM_URL",
                reason: "must start with http:// or https://".into(),
            });
        }
        self.redis.redis_servers()?;
        match self.auth.effective_auth_mode() {
            AuthMode::Dev if !self.server.bind.ip().is_loopback() => Err(SettingsError {
                setting: "AUTH_MODE",
                reason: format!(
                    "dev mode trusts x-user-id headers and is refused on the non-loopback address {}; set AUTH_MODE=jwt and JWT_SECRET",
                    self.server.bind
                ),
            }),
            AuthMode::Jwt => match &self.auth.jwt_secret {
                None => Err(SettingsError {
                    setting: "JWT_SECRET",
                    reason: "AUTH_MODE=jwt needs a secret".into(),
                }),
                Some(secret) if secret.expose().len() < 32 => Err(SettingsError {
                    setting: "JWT_SECRET",
                    reason: "must be at least 32 bytes long".into(),
                }),
                Some(_) => Ok(()),
            },
            AuthMode::Dev => Ok(()),
        }?;
        if self.balance.max_charge_amount > self.balance.max_balance {
            return Err(SettingsError {
                setting: "MAX_CHARGE_AMOUNT",
                reason: "cannot exceed MAX_BALANCE".into(),
            });
        }
        Ok(())
    }
}

impl DatabaseSettings {
    /// The database URL in force (the embedded default when none is set).
    pub fn database_url(&self) -> &str {
        self.database_url.as_deref().unwrap_or(DEFAULT_DATABASE_URL)
    }

    /// The read replicas' URLs (none when unset).
    pub fn database_read_urls(&self) -> Vec<String> {
        self.database_read_url
            .iter()
            .flat_map(|urls| urls.split(','))
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn replica_max_lag(&self) -> Duration {
        Duration::from_millis(self.replica_max_lag_ms)
    }

    /// True when no database was configured: the embedded SQLite file gets demo data.
    pub fn is_embedded_default(&self) -> bool {
        self.database_url.is_none()
    }

    /// The requests' pool size in force: as set, else twice the cores (at least 10).
    pub fn db_max_connections(&self) -> u32 {
        self.db_max_connections
            .unwrap_or_else(|| (2 * BatchSettings::machine_cores() as u32).max(10))
    }

    pub fn db_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms)
    }
}

impl AuthSettings {
    /// The authentication mode in force: explicit, else jwt when a secret is set, else dev.
    pub fn effective_auth_mode(&self) -> AuthMode {
        self.auth_mode.unwrap_or(if self.jwt_secret.is_some() {
            AuthMode::Jwt
        } else {
            AuthMode::Dev
        })
    }
}

impl OrderWriterSettings {
    pub fn order_ttl(&self) -> Duration {
        Duration::from_secs(self.order_ttl_secs)
    }

    /// How the order writer batches: lanes as set, else sized by the machine's cores.
    pub fn order_batches(&self) -> BatchSettings {
        BatchSettings {
            writers: self.order_writers.map_or_else(
                || BatchSettings::lanes_for(BatchSettings::machine_cores()),
                |n| n as usize,
            ),
            max: self.order_batch_max as usize,
            linger: Duration::from_micros(self.order_batch_linger_us),
            max_wait: (self.order_queue_max_wait_ms > 0)
                .then(|| Duration::from_millis(self.order_queue_max_wait_ms)),
            nice: self.order_writer_nice,
        }
    }

    pub fn order_expiry_sweep(&self) -> Duration {
        Duration::from_millis(self.order_expiry_sweep_ms)
    }
}

impl VerificationSettings {
    /// How often the server verifies the invariants; `None`: never.
    pub fn verify_interval(&self) -> Option<Duration> {
        (self.verify_interval_secs > 0).then(|| Duration::from_secs(self.verify_interval_secs))
    }
}

impl RankingSettings {
    pub fn ranking_refresh(&self) -> Duration {
        Duration::from_millis(self.ranking_refresh_ms)
    }
}

impl LimitSettings {
    pub fn ws_init_timeout(&self) -> Duration {
        Duration::from_secs(self.ws_init_timeout_secs)
    }
}

impl RedisSettings {
    /// The Redis server or cluster `REDIS_URL` names; `None` when it is unset.
    pub fn redis_servers(&self) -> Result<Option<RedisServers>, SettingsError> {
        self.redis_url
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|reason| SettingsError {
                setting: "REDIS_URL",
                reason,
            })
    }
}

impl OutboxSettings {
    /// How long a SENT event is kept; `None`: forever.
    pub fn outbox_retention(&self) -> Option<Duration> {
        (self.outbox_retention_secs > 0).then(|| Duration::from_secs(self.outbox_retention_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starting_settings_are_the_documented_defaults_and_valid() {
        let settings = Settings::for_database("sqlite::memory:");
        assert_eq!(settings.database.database_url(), "sqlite::memory:");
        assert_eq!(settings.server.bind, SocketAddr::from(([127, 0, 0, 1], 0)));
        // a few of README's table, one per kind of value
        assert_eq!(settings.limits.rate_limit_user_per_sec, 50);
        assert_eq!(settings.orders.order_queue_max_wait_ms, 1_000);
        assert_eq!(settings.orders.order_writers, None);
        assert_eq!(settings.redis.redis_key_prefix, "commerce:");
        assert_eq!(settings.ranking.time_zone, chrono_tz::Asia::Seoul);
        assert_eq!(settings.server.log_format, LogFormat::Text);
        settings.validate().expect("the defaults are consistent");
    }
}
