//! Backup and restore as README.md describes them: a backup taken while orders run (pg_dump,
//! mariadb-dump --single-transaction, SQLite's VACUUM INTO) restores into a new database that
//! passes `commerce verify`; a backup taken after the orders restores into a database on which a
//! new server serves the same balances and stock as the original.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::harness::{
    Backend, FreshDatabase, TestServer, backends, items, on_every_backend_with, settings_on, stock,
    within,
};
use crate::verify::verify_command;

const BUYERS: usize = 6;
const PRODUCTS: usize = 4;

/// What a backup is made of on each kind of database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Postgres,
    Mysql,
    Sqlite,
}

fn kind_of(url: &str) -> Kind {
    if url.starts_with("postgres") {
        Kind::Postgres
    } else if url.starts_with("mysql") {
        Kind::Mysql
    } else {
        Kind::Sqlite
    }
}

fn sqlite_path(url: &str) -> PathBuf {
    let path = url.trim_start_matches("sqlite://");
    PathBuf::from(path.split('?').next().unwrap_or(path))
}

/// `host`, `port`, `user` and database name of a MySQL URL, as mariadb-dump and mariadb take them.
fn mysql_args(url: &str) -> Vec<String> {
    let url = url::Url::parse(url).unwrap();
    vec![
        format!("--host={}", url.host_str().unwrap()),
        format!("--port={}", url.port().unwrap_or(3306)),
        format!("--user={}", url.username()),
        url.path().trim_start_matches('/').to_owned(),
    ]
}

/// The longest a backup tool may take on this test's few hundred rows: one still running after
/// this waits on something (a lock), and the test fails naming it.
const TOOL_BOUND: Duration = Duration::from_secs(60);

/// Runs a backup or restore command; fails the test with its stderr unless it succeeds within
/// [`TOOL_BOUND`] (past it, the command is killed).
async fn run(command: &mut tokio::process::Command, what: &str) {
    let output = within(what, TOOL_BOUND, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Backs up the database at `url` into `file` while it serves, as the README says.
async fn back_up(url: &str, file: &Path) {
    match kind_of(url) {
        Kind::Postgres => {
            run(
                tokio::process::Command::new("pg_dump")
                    .args(["--format=custom", "--dbname", url, "--file"])
                    .arg(file),
                "pg_dump",
            )
            .await
        }
        Kind::Mysql => {
            run(
                tokio::process::Command::new("mariadb-dump")
                    .args(["--single-transaction", "--routines", "--triggers"])
                    .arg(format!("--result-file={}", file.display()))
                    .args(mysql_args(url)),
                "mariadb-dump",
            )
            .await
        }
        Kind::Sqlite => {
            let db = sea_orm::Database::connect(url).await.unwrap();
            let vacuum = format!("VACUUM INTO '{}'", file.display());
            within("VACUUM INTO", TOOL_BOUND, db.execute_unprepared(&vacuum))
                .await
                .unwrap();
            db.close().await.unwrap();
        }
    }
}

/// Restores `file` into the new, empty database `target`.
async fn restore(file: &Path, target: &FreshDatabase) {
    match kind_of(&target.url) {
        Kind::Postgres => {
            run(
                tokio::process::Command::new("pg_restore")
                    .args(["--no-owner", "--exit-on-error", "--dbname", &target.url])
                    .arg(file),
                "pg_restore",
            )
            .await
        }
        Kind::Mysql => {
            run(
                tokio::process::Command::new("mariadb")
                    .args(mysql_args(&target.url))
                    .arg(format!("--execute=source {}", file.display())),
                "mariadb --execute='source dump'",
            )
            .await
        }
        Kind::Sqlite => {
            std::fs::copy(file, sqlite_path(&target.url)).unwrap();
        }
    }
}

async fn count(url: &str, sql: &str) -> i64 {
    let db = sea_orm::Database::connect(url).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .expect("a row");
    let n = row.try_get_by_index::<i64>(0).unwrap();
    db.close().await.unwrap();
    n
}

/// Places small orders from every buyer at once until `stop` is set, counting them in `placed`.
async fn keep_ordering(
    server: &TestServer,
    buyers: &[i64],
    products: &[i64],
    stop: &AtomicBool,
    placed: &AtomicU64,
) {
    let query = "mutation($items: [OrderItemInput!]!) { placeOrder(input: {items: $items}) { order { status } userErrors { code } } }";
    let buyer = |i: usize| async move {
        let mut n = i;
        while !stop.load(Ordering::Relaxed) {
            let lines = [(products[n % products.len()], 1 + (n % 3) as i64)];
            let data = server
                .user(buyers[i])
                .data(query, json!({ "items": items(&lines) }))
                .await;
            assert_eq!(data["placeOrder"]["order"]["status"], "COMPLETED", "{data}");
            placed.fetch_add(1, Ordering::Relaxed);
            n += 1;
        }
    };
    futures_util::future::join_all((0..buyers.len()).map(buyer)).await;
}

async fn balances_and_stock(server: &TestServer, buyers: &[i64], products: &[i64]) -> Vec<i64> {
    let mut seen = vec![];
    for &buyer in buyers {
        seen.push(server.balance(buyer).await);
    }
    for &product in products {
        seen.push(stock(server, product).await);
    }
    seen
}

fn backend_named(name: &str, all: &'static [Backend]) -> &'static Backend {
    all.iter().find(|b| b.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_orders_run_restores_verified_and_serves_the_same_answers() {
    let all = backends().await;
    on_every_backend_with(
        |settings| {
            settings.limits.rate_limit_user_per_sec = 100_000;
            settings.limits.rate_limit_user_burst = 100_000;
        },
        |server| async move {
            let backend = backend_named(server.backend, all);
            let url = server.settings.database.database_url().to_owned();
            let mut buyers = vec![];
            for i in 0..BUYERS {
                buyers.push(server.customer(&format!("buyer {i}"), 5_000_000).await);
            }
            let mut products = vec![];
            for i in 0..PRODUCTS {
                let id = server
                    .create_product(&format!("item {i}"), "backup", 1_000 + i as i64, 100_000)
                    .await;
                products.push(id);
            }
            let dir = tempfile_dir(&server);

            // a backup while orders run: they are placed before, during and after it
            let (stop, placed) = (AtomicBool::new(false), AtomicU64::new(0));
            let hot = dir.join("hot.backup");
            let backup = async {
                while placed.load(Ordering::Relaxed) < 30 {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                back_up(&url, &hot).await;
                stop.store(true, Ordering::Relaxed);
            };
            tokio::join!(
                keep_ordering(&server, &buyers, &products, &stop, &placed),
                backup
            );
            let total = placed.load(Ordering::Relaxed);

            let restored = FreshDatabase::create(backend).await;
            restore(&hot, &restored).await;
            let (code, report) = verify_command(restored.url.clone(), &[]).await;
            assert_eq!(code, 0, "the hot backup verifies clean:\n{report}");
            let orders = count(&restored.url, "SELECT COUNT(*) FROM orders").await;
            eprintln!(
                "[{}] the hot backup holds {orders} of {total} orders",
                server.backend
            );
            assert!(
                (30..=total as i64).contains(&orders),
                "{orders} orders in the hot backup of {total}"
            );
            restored.remove().await;

            // a backup after the orders: a server on its restore answers as the original does
            let cold = dir.join("cold.backup");
            back_up(&url, &cold).await;
            let restored = FreshDatabase::create(backend).await;
            restore(&cold, &restored).await;
            let (code, report) = verify_command(restored.url.clone(), &[]).await;
            assert_eq!(code, 0, "{report}");
            // its own Redis keys: beside the original on one Redis, a copy needs another prefix
            let copy = TestServer::start(backend.name, settings_on(backend, &restored)).await;
            assert_eq!(
                balances_and_stock(&copy, &buyers, &products).await,
                balances_and_stock(&server, &buyers, &products).await,
                "balances and stock after restore"
            );
            assert_eq!(
                count(&restored.url, "SELECT COUNT(*) FROM orders").await,
                total as i64
            );
            copy.stop();
            restored.remove().await;
            std::fs::remove_dir_all(&dir).ok();
        },
    )
    .await;
}

/// A folder for this test's backup files.
fn tempfile_dir(server: &TestServer) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "commerce-backup-{}-{}",
        std::process::id(),
        server.backend.replace('+', "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
