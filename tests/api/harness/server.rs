//! The server under test: started in-process on port 0 ([`TestServer::start`]), or attached to
//! one running as a separate process ([`TestServer::attach`]), with the handles a test needs
//! besides the API (its database, its Redis keys, its statement counter, stopping it).

use commerce::app::Application;
use commerce::config::Settings;
use tokio_util::sync::CancellationToken;

/// A server running in-process on an ephemeral port (or elsewhere, when attached).
pub struct TestServer {
    pub backend: &'static str,
    pub base: String,
    pub ws_url: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    database: commerce::infra::db::Database,
    /// The shared subscriptions of a server in this process (`None` for one attached).
    feeds: Option<commerce::http::Feeds>,
    redis: Option<(String, String)>,
    /// The settings it was started with (a second instance can share its database).
    pub settings: Settings,
}

impl TestServer {
    pub async fn start(backend: &'static str, settings: Settings) -> Self {
        let app = Application::build(settings.clone())
            .await
            .unwrap_or_else(|e| panic!("[{backend}] server failed to start: {e:#}"));
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        let database = app.database();
        let feeds = app.shared_feeds();
        tokio::spawn(app.run_until_stopped());
        let mut server = Self::new(
            backend,
            format!("http://{addr}"),
            shutdown,
            database,
            settings,
        );
        server.feeds = Some(feeds);
        server
    }

    /// A client of a server running elsewhere (a separate process) on the same database.
    pub async fn attach(backend: &'static str, settings: Settings, base: &str) -> Self {
        let database = commerce::infra::db::Database::connect(
            settings.database.database_url(),
            2,
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("the database answers");
        Self::new(
            backend,
            base.to_owned(),
            CancellationToken::new(),
            database,
            settings,
        )
    }

    fn new(
        backend: &'static str,
        base: String,
        shutdown: CancellationToken,
        database: commerce::infra::db::Database,
        settings: Settings,
    ) -> Self {
        Self {
            backend,
            ws_url: format!("{}/graphql", base.replacen("http", "ws", 1)),
            base,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                // the server answers within its request timeout (10 s by default): past twice that, a
                // request hangs, and the test fails naming it instead of waiting forever
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
            shutdown,
            database,
            feeds: None,
            redis: settings
                .redis
                .redis_url
                .clone()
                .map(|url| (url, settings.redis.redis_key_prefix.clone())),
            settings,
        }
    }

    /// Deletes every Redis key of this server, as a Redis restart or flush would; returns how
    /// many there were (0 without Redis).
    pub async fn flush_redis(&self) -> usize {
        let Some((url, prefix)) = &self.redis else {
            return 0;
        };
        let client = redis::Client::open(url.as_str()).expect("a Redis URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("DEL");
        }
        keys.len()
    }

    /// How many shared subscription executions the server started and runs (a server in this
    /// process only).
    pub fn shared_feeds(&self) -> commerce::http::FeedCounts {
        self.feeds
            .as_ref()
            .expect("a server started by this test")
            .counts()
    }

    /// The server's database handle, to arrange history no API can write (past days' sales).
    pub fn database(&self) -> &commerce::infra::db::Database {
        &self.database
    }

    /// What stops the server, for whoever outlives the `TestServer` value.
    pub(super) fn stopper(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the server (in-flight requests finish).
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// SQL statements the server has executed so far.
    pub fn statements_executed(&self) -> u64 {
        self.database.statements_executed()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
