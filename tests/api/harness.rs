//! The test harness: real backends, a real server per test, and a small GraphQL client.
//!
//! Backends come from `TEST_DATABASE_URL` (PostgreSQL), `TEST_MYSQL_URL` and `TEST_REDIS_URL`;
//! when none is set and a Docker daemon answers, testcontainers starts PostgreSQL 16, MySQL 8 and
//! Redis 7; otherwise the tests run on embedded SQLite only, and say so. SQLite (embedded, with
//! in-process backends) always runs. Every test gets a fresh database on each backend and talks
//! to a server started in-process on port 0, over real HTTP and WebSocket.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use commerce::app::Application;
use commerce::config::Settings;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// One kind of database (plus Redis or not) that every test runs against.
#[derive(Clone, Debug)]
pub struct Backend {
    pub name: &'static str,
    kind: Kind,
    /// Server URL of the database without a database name (PostgreSQL, MySQL).
    admin_url: String,
    pub redis_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Postgres,
    Mysql,
    Sqlite,
}

static BACKENDS: OnceCell<Vec<Backend>> = OnceCell::const_new();
static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Every backend available to this run (always at least SQLite).
pub async fn backends() -> &'static [Backend] {
    BACKENDS.get_or_init(discover).await
}

async fn discover() -> Vec<Backend> {
    let mut postgres = std::env::var("TEST_DATABASE_URL").ok();
    let mut mysql = std::env::var("TEST_MYSQL_URL").ok();
    let mut redis = std::env::var("TEST_REDIS_URL").ok();
    if postgres.is_none() && mysql.is_none() && redis.is_none() {
        match containers::start().await {
            Some(urls) => (postgres, mysql, redis) = (Some(urls.0), Some(urls.1), Some(urls.2)),
            None => eprintln!(
                "NOTE: no TEST_DATABASE_URL / TEST_MYSQL_URL / TEST_REDIS_URL and no Docker daemon: \
                 running on embedded SQLite only; PostgreSQL, MySQL and Redis were NOT exercised"
            ),
        }
    }
    let mut found = vec![Backend {
        name: "sqlite",
        kind: Kind::Sqlite,
        admin_url: String::new(),
        redis_url: None,
    }];
    if let Some(url) = postgres {
        found.push(Backend {
            name: "postgres+redis",
            kind: Kind::Postgres,
            admin_url: url,
            redis_url: redis.clone(),
        });
    }
    if let Some(url) = mysql {
        found.push(Backend {
            name: "mysql",
            kind: Kind::Mysql,
            admin_url: url,
            redis_url: None,
        });
    }
    found
}

/// Test containers, used only when no URL was given and Docker answers.
mod containers {
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};
    use testcontainers_modules::{mysql, postgres, redis};
    use tokio::sync::OnceCell;

    type Running = (
        ContainerAsync<postgres::Postgres>,
        ContainerAsync<mysql::Mysql>,
        ContainerAsync<redis::Redis>,
    );
    /// Kept alive for the whole test binary.
    static RUNNING: OnceCell<Running> = OnceCell::const_new();

    pub async fn start() -> Option<(String, String, String)> {
        let running = RUNNING
            .get_or_try_init(|| async {
                let pg = postgres::Postgres::default()
                    .with_tag("16-alpine")
                    .start()
                    .await?;
                let my = mysql::Mysql::default().with_tag("8.4").start().await?;
                let rd = redis::Redis::default().with_tag("7-alpine").start().await?;
                Ok::<_, testcontainers_modules::testcontainers::TestcontainersError>((pg, my, rd))
            })
            .await
            .ok()?;
        let (pg, my, rd) = running;
        Some((
            format!(
                "postgres://postgres:postgres@127.0.0.1:{}/postgres",
                pg.get_host_port_ipv4(5432).await.ok()?
            ),
            format!(
                "mysql://root@127.0.0.1:{}/test",
                my.get_host_port_ipv4(3306).await.ok()?
            ),
            format!(
                "redis://127.0.0.1:{}",
                rd.get_host_port_ipv4(6379).await.ok()?
            ),
        ))
    }
}

/// Runs `test` once per available backend, each time against a fresh database and server.
pub async fn on_every_backend<F, Fut>(test: F)
where
    F: Fn(TestServer) -> Fut,
    Fut: Future<Output = ()>,
{
    on_every_backend_with(|_| {}, test).await
}

/// Like [`on_every_backend`], with settings adjusted before the server starts.
pub async fn on_every_backend_with<S, F, Fut>(adjust: S, test: F)
where
    S: Fn(&mut Settings),
    F: Fn(TestServer) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends().await {
        let database = FreshDatabase::create(backend).await;
        let mut settings = Settings::for_database(database.url.clone());
        settings.redis_url = backend.redis_url.clone();
        // tests share one Redis: each server keeps to its own keys
        settings.redis_key_prefix = format!("{}:", database.name);
        adjust(&mut settings);
        let server = TestServer::start(backend.name, settings).await;
        let stop = server.shutdown.clone();
        eprintln!("[{}] running", backend.name);
        test(server).await;
        stop.cancel();
        database.remove().await;
    }
}

/// A database made for one test, dropped afterwards.
pub struct FreshDatabase {
    pub url: String,
    name: String,
    backend: Backend,
}

impl FreshDatabase {
    pub async fn create(backend: &Backend) -> Self {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!(
            "commerce_t_{}_{}_{}",
            std::process::id(),
            stamp % 1_000_000_000,
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        );
        let url = match backend.kind {
            Kind::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                format!("sqlite://{}?mode=rwc", path.display())
            }
            Kind::Postgres | Kind::Mysql => {
                let admin = Database::connect(&backend.admin_url)
                    .await
                    .expect("connect to the test database server");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create a test database");
                admin.close().await.ok();
                replace_database_name(&backend.admin_url, &name)
            }
        };
        Self {
            url,
            name,
            backend: backend.clone(),
        }
    }

    pub async fn remove(self) {
        match self.backend.kind {
            Kind::Sqlite => {
                let path = std::env::temp_dir().join(format!("{}.db", self.name));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Kind::Postgres => {
                if let Ok(admin) = Database::connect(&self.backend.admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                            self.name
                        ))
                        .await;
                }
            }
            Kind::Mysql => {
                if let Ok(admin) = Database::connect(&self.backend.admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {}", self.name))
                        .await;
                }
            }
        }
    }
}

fn replace_database_name(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a database URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// A server running in-process on an ephemeral port.
pub struct TestServer {
    pub backend: &'static str,
    pub base: String,
    pub ws_url: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    database: commerce::infra::db::Database,
    redis: Option<(String, String)>,
    /// The settings it was started with (a second instance can share its database).
    pub settings: Settings,
}

impl TestServer {
    pub async fn start(backend: &'static str, settings: Settings) -> Self {
        let redis = settings
            .redis_url
            .clone()
            .map(|url| (url, settings.redis_key_prefix.clone()));
        let app = Application::build(settings.clone())
            .await
            .unwrap_or_else(|e| panic!("[{backend}] server failed to start: {e:#}"));
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        let database = app.database();
        tokio::spawn(app.run_until_stopped());
        Self {
            backend,
            base: format!("http://{addr}"),
            ws_url: format!("ws://{addr}/graphql"),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("an HTTP client"),
            shutdown,
            database,
            redis,
            settings,
        }
    }

    /// A client of a server running elsewhere (a separate process) on the same database.
    pub async fn attach(backend: &'static str, settings: Settings, base: &str) -> Self {
        let database = commerce::infra::db::Database::connect(
            settings.database_url(),
            2,
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("the database answers");
        Self {
            backend,
            base: base.to_owned(),
            ws_url: format!("{}/graphql", base.replacen("http", "ws", 1)),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("an HTTP client"),
            shutdown: CancellationToken::new(),
            database,
            redis: settings
                .redis_url
                .clone()
                .map(|url| (url, settings.redis_key_prefix.clone())),
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

    /// The server's database handle, to arrange history no API can write (past days' sales).
    pub fn database(&self) -> &commerce::infra::db::Database {
        &self.database
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

    pub fn anonymous(&self) -> Caller<'_> {
        Caller {
            server: self,
            headers: vec![],
        }
    }

    pub fn user(&self, id: i64) -> Caller<'_> {
        Caller {
            server: self,
            headers: vec![("x-user-id", id.to_string())],
        }
    }

    pub fn admin(&self) -> Caller<'_> {
        Caller {
            server: self,
            headers: vec![("x-role", "ADMIN".to_owned())],
        }
    }

    /// Creates a customer through the admin API; returns its id.
    pub async fn create_user(&self, name: &str) -> i64 {
        let data = self
            .admin()
            .data(
                "mutation($name: String!) { createUser(input: {name: $name}) { user { id } userErrors { code message } } }",
                json!({ "name": name }),
            )
            .await;
        id_of(&data["createUser"]["user"]["id"])
    }

    /// Creates a product through the admin API; returns its id.
    pub async fn create_product(&self, name: &str, category: &str, price: i64, stock: i64) -> i64 {
        let data = self
            .admin()
            .data(
                "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { code message } } }",
                json!({ "input": { "name": name, "category": category, "price": price, "stock": stock } }),
            )
            .await;
        id_of(&data["createProduct"]["product"]["id"])
    }

    /// Charges a user's balance through the API.
    pub async fn charge(&self, user: i64, amount: i64) {
        let data = self
            .user(user)
            .data(
                "mutation($amount: Won!) { chargeBalance(input: {amount: $amount}) { balance userErrors { code } } }",
                json!({ "amount": amount }),
            )
            .await;
        assert_eq!(
            data["chargeBalance"]["userErrors"],
            json!([]),
            "[{}] charge",
            self.backend
        );
    }

    pub async fn balance(&self, user: i64) -> i64 {
        self.user(user).data("{ me { balance } }", json!({})).await["me"]["balance"]
            .as_i64()
            .expect("a balance")
    }
}

/// Parses a GraphQL `ID` holding a number.
pub fn id_of(value: &Value) -> i64 {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a numeric ID: {value}"))
}

/// Who sends a request.
pub struct Caller<'a> {
    server: &'a TestServer,
    headers: Vec<(&'static str, String)>,
}

impl Caller<'_> {
    /// POSTs an operation; returns the whole response body (`data` and `errors`).
    pub async fn post(&self, query: &str, variables: Value) -> Value {
        let mut request = self
            .server
            .http
            .post(self.server.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("the server answers");
        response.json().await.expect("a JSON body")
    }

    /// POSTs an operation that must succeed; returns its `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let body = self.post(query, variables).await;
        assert!(
            body.get("errors").is_none(),
            "[{}] unexpected errors: {body}",
            self.server.backend
        );
        body["data"].clone()
    }
}

/// The `extensions.code` of the first top-level error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// A Redis server of the test's own, on a spare port, that the test may stop and start again
/// (never the shared one other tests use). Killed when dropped.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a spare port");
        let mut redis = Self { port, child: None };
        redis.resume().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it answers.
    pub async fn resume(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "the private redis-server did not start on port {}",
            self.port
        );
    }

    /// Kills it (like a crash: nothing is kept).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The mock data platform (`commerce data-platform`), run in-process on a spare port.
pub struct MockPlatform {
    pub base: String,
    http: reqwest::Client,
}

impl MockPlatform {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a spare port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(commerce::data_platform::serve(listener));
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// The URL the server delivers to.
    pub fn events_url(&self) -> String {
        format!("{}/events", self.base)
    }

    /// Changes how the mock answers (see `commerce::data_platform`).
    pub async fn control(&self, behaviour: Value) {
        let response = self
            .http
            .post(format!("{}/control", self.base))
            .json(&behaviour)
            .send()
            .await
            .expect("the mock answers");
        assert!(response.status().is_success());
    }

    /// `{ events, calls, duplicates, overlaps }`.
    pub async fn received(&self) -> Value {
        self.http
            .get(self.events_url())
            .send()
            .await
            .expect("the mock answers")
            .json()
            .await
            .expect("JSON")
    }

    /// Waits until the mock holds `count` unique events; returns what it received.
    pub async fn wait_for(&self, count: usize, within: std::time::Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let received = self.received().await;
            let have = received["events"].as_array().map_or(0, Vec::len);
            if have >= count {
                return received;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the platform got {have} of {count} events: {}",
                received["calls"]
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}

/// The `commerce` binary running as a separate process (killed when dropped), so a test can
/// SIGKILL it or run two of them.
pub struct ServerProcess {
    child: Option<std::process::Child>,
    pub base: String,
    env: Vec<(String, String)>,
}

impl ServerProcess {
    /// Starts `commerce serve` with `settings` (the fields tests set) on a spare port, and
    /// returns it with a [`TestServer`] that talks to it.
    pub async fn start(backend: &'static str, settings: &Settings) -> (Self, TestServer) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a spare port");
        let mut env = vec![
            (
                "DATABASE_URL".to_owned(),
                settings.database_url().to_owned(),
            ),
            ("BIND".to_owned(), format!("127.0.0.1:{port}")),
            (
                "REDIS_KEY_PREFIX".to_owned(),
                settings.redis_key_prefix.clone(),
            ),
            (
                "RANKING_REFRESH_MS".to_owned(),
                settings.ranking_refresh_ms.to_string(),
            ),
            (
                "OUTBOX_RETRY_BASE_MS".to_owned(),
                settings.outbox_retry_base_ms.to_string(),
            ),
            (
                "OUTBOX_RETRY_MAX_MS".to_owned(),
                settings.outbox_retry_max_ms.to_string(),
            ),
            (
                "OUTBOX_POLL_MS".to_owned(),
                settings.outbox_poll_ms.to_string(),
            ),
            (
                "RATE_LIMIT_USER_PER_SEC".to_owned(),
                settings.rate_limit_user_per_sec.to_string(),
            ),
            ("RUST_LOG".to_owned(), "warn".to_owned()),
        ];
        if let Some(url) = &settings.redis_url {
            env.push(("REDIS_URL".to_owned(), url.clone()));
        }
        if let Some(url) = &settings.data_platform_url {
            env.push(("DATA_PLATFORM_URL".to_owned(), url.clone()));
        }
        let mut process = Self {
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            env,
        };
        process.resume().await;
        let server = TestServer::attach(backend, settings.clone(), &process.base).await;
        (process, server)
    }

    /// Starts the process (again) and waits until it answers `/healthz`.
    pub async fn resume(&mut self) {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the commerce binary starts");
        self.child = Some(child);
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = client.get(format!("{}/healthz", self.base)).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the server process did not come up at {}", self.base);
    }

    /// The process's resident memory, in KiB (from `/proc`).
    pub fn resident_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("the process runs").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL server of the test's own (initdb on a spare port), that the test may stop and
/// start again; removed when dropped.
pub struct PrivatePostgres {
    pub port: u16,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl PrivatePostgres {
    pub async fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed under /usr/lib/postgresql")
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())
            .expect("initdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a spare port");
        let dir = std::env::temp_dir().join(format!("commerce-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a data directory");
        let postgres = Self { port, dir, bin };
        postgres.as_postgres(
            &["chown", "-R", "postgres", postgres.dir.to_str().unwrap()],
            true,
        );
        let initdb = postgres.bin.join("initdb");
        let data = postgres.dir.join("data");
        postgres.as_postgres(
            &[
                initdb.to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            false,
        );
        postgres.resume().await;
        postgres
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Runs a command as the `postgres` user when we are root (initdb refuses root).
    fn as_postgres(&self, command: &[&str], root_only: bool) {
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let status = match (is_root, root_only) {
            (true, true) => std::process::Command::new(command[0])
                .args(&command[1..])
                .status(),
            (true, false) => std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(command)
                .stdout(std::process::Stdio::null())
                .status(),
            (false, true) => return,
            (false, false) => std::process::Command::new(command[0])
                .args(&command[1..])
                .stdout(std::process::Stdio::null())
                .status(),
        };
        assert!(status.is_ok_and(|s| s.success()), "{command:?} failed");
    }

    /// Starts (again) and waits until it answers.
    pub async fn resume(&self) {
        self.start_now();
    }

    fn start_now(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.as_postgres(
            &[
                pg_ctl.to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
            false,
        );
    }

    /// Stops as an operator's restart does (`-m fast`): sessions are terminated (57P01) and
    /// their transactions rolled back; then starts again. `pg_ctl` blocks: the runtime's other
    /// tasks move to other threads meanwhile (multi-thread runtimes only).
    pub async fn restart(&self) {
        tokio::task::block_in_place(|| self.restart_now());
    }

    fn restart_now(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        self.as_postgres(
            &[
                pg_ctl.to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            false,
        );
        self.start_now();
    }

    /// Stops at once, like a crash (`-m immediate`).
    pub fn stop(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        self.as_postgres(
            &[
                pg_ctl.to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            false,
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let _ = std::process::Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                pg_ctl.to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
