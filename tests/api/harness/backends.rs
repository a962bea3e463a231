//! Which databases (and Redis) a run has, and a fresh database on one of them per test.
//!
//! Backends come from `TEST_DATABASE_URL` (PostgreSQL), `TEST_MYSQL_URL` and `TEST_REDIS_URL`;
//! when none is set and a Docker daemon answers, testcontainers starts PostgreSQL 16, MySQL 8 and
//! Redis 7; otherwise the tests run on embedded SQLite only, and say so. SQLite (embedded, with
//! in-process backends) always runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tokio::sync::OnceCell;

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

/// The embedded SQLite backend (always there).
pub async fn sqlite() -> &'static Backend {
    backends()
        .await
        .iter()
        .find(|b| b.kind == Kind::Sqlite)
        .expect("SQLite")
}

/// The first backend with a database server (PostgreSQL preferred), with Redis when it has one;
/// `None` when this run has SQLite only.
pub async fn server_backend() -> Option<&'static Backend> {
    backends().await.iter().find(|b| b.kind != Kind::Sqlite)
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

/// A database made for one test, dropped afterwards (by [`FreshDatabase::remove`]).
pub struct FreshDatabase {
    pub url: String,
    /// Unique in this run: also a good Redis key prefix.
    pub name: String,
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
                    // what PostgreSQL's WITH (FORCE) does: a session of a stopped in-process
                    // server still inside a transaction holds metadata locks DROP would wait on
                    let sessions = admin
                        .query_all_raw(Statement::from_string(
                            DbBackend::MySql,
                            format!(
                                "SELECT id FROM information_schema.processlist WHERE db = '{}'",
                                self.name
                            ),
                        ))
                        .await
                        .unwrap_or_default();
                    for session in sessions {
                        if let Ok(id) = session.try_get_by_index::<u64>(0) {
                            let _ = admin.execute_unprepared(&format!("KILL {id}")).await;
                        }
                    }
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
