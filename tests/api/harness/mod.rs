//! The test harness: real backends, a real server per test, and a small GraphQL client.
//!
//! A test is usually `on_every_backend(|server| async move { ... })`: it runs once per backend
//! the run has (SQLite always; PostgreSQL + Redis and MySQL when their URLs are set, see
//! [`backends`]), each time on a fresh database with a server started in-process on port 0,
//! spoken to over real HTTP and WebSocket. Inside, a test arranges what it needs through the API
//! (`fixtures`: `server.shop(..)`, `server.customers(..)`), acts as someone (`client`:
//! `server.user(id).data(query, variables)`), and checks what the API then shows
//! (`invariants` after races). Tests that break things (a database restart, a killed server, a
//! Redis outage) start their own servers of them (`processes`), never the shared ones.
//!
//! - `backends`: which databases and Redis the run has; a fresh database per test.
//! - `server`: the in-process server ([`TestServer`]).
//! - `client`: callers, GraphQL requests and reading their answers.
//! - `fixtures`: the setups tests repeat.
//! - `invariants`: stock, ledger and the checks after a race.
//! - `processes`: private Redis/PostgreSQL servers, a private Redis Cluster, the server binary,
//!   the mock data platform, and the one guard that stops each.
//! - `otlp`: a receiver of the traces a server exports.

mod backends;
mod client;
mod fixtures;
mod invariants;
mod otlp;
mod processes;
mod proxy;
mod server;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use commerce::config::Settings;
use futures_util::FutureExt;

pub use backends::{Backend, FreshDatabase, backends, server_backend, sqlite};
pub use client::{error_code, id_of, items, sample};
pub use invariants::{assert_invariants, ledger, stock, units_in_orders};
pub use otlp::OtlpReceiver;
pub use processes::{
    MockPlatform, PrivatePostgres, PrivateRedis, PrivateRedisCluster, ServerProcess, SmallDisk,
};
pub use proxy::{Fault, FaultProxy};
pub use server::TestServer;

/// Runs `test` once per available backend, each time against a fresh database and server.
pub async fn on_every_backend<F, Fut>(test: F)
where
    F: Fn(TestServer) -> Fut,
    Fut: Future<Output = ()>,
{
    on_every_backend_with(|_| {}, test).await
}

/// Like [`on_every_backend`], with settings adjusted before the server starts. A backend that
/// fails does not hide the others: each one runs, and the test then fails naming every backend
/// that failed (each one's own message is printed above it).
pub async fn on_every_backend_with<S, F, Fut>(adjust: S, test: F)
where
    S: Fn(&mut Settings),
    F: Fn(TestServer) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut failed = vec![];
    for backend in backends().await {
        let database = FreshDatabase::create(backend).await;
        let mut settings = settings_on(backend, &database);
        adjust(&mut settings);
        let server = TestServer::start(backend.name, settings).await;
        let stop = server.stopper();
        eprintln!("[{}] running", backend.name);
        let run = within(
            format!("[{}] the test", backend.name),
            ONE_BACKEND_BOUND,
            test(server),
        );
        if let Err(panic) = AssertUnwindSafe(run).catch_unwind().await {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic without a message");
            failed.push(format!("[{}] {message}", backend.name));
        }
        stop.cancel();
        within(
            format!("[{}] removing its database", backend.name),
            ONE_BACKEND_BOUND,
            database.remove(),
        )
        .await;
    }
    assert!(
        failed.is_empty(),
        "failed on {} backend(s):\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// The longest a test may take on one backend: every test takes seconds, so one still running
/// after this hangs, and fails naming its backend instead of holding the whole run.
const ONE_BACKEND_BOUND: Duration = Duration::from_secs(300);

/// Awaits `step`, failing the test with `what` if it takes longer than `bound`.
pub async fn within<T>(
    what: impl std::fmt::Display,
    bound: Duration,
    step: impl Future<Output = T>,
) -> T {
    match tokio::time::timeout(bound, step).await {
        Ok(done) => done,
        Err(_) => panic!("{what} did not finish within {bound:?}"),
    }
}

/// The settings of a server on `database` of `backend`, with the backend's Redis if it has one.
pub fn settings_on(backend: &Backend, database: &FreshDatabase) -> Settings {
    let mut settings = test_settings(database.url.clone());
    settings.redis.redis_url = backend.redis_url.clone();
    // tests share one Redis: each server keeps to its own keys
    settings.redis.redis_key_prefix = format!("{}:", database.name);
    settings
}

/// The settings of an in-process test server on `url`: every default, except two that would
/// make a test's outcome hang on how busy the machine running it is. Orders wait for their
/// writer up to the request timeout (batches.rs tests the bound with a tiny one), and the
/// writers run at the tests' priority (the lower one is unit-tested in infra::batching).
pub fn test_settings(url: impl Into<String>) -> Settings {
    let mut settings = Settings::for_database(url);
    settings.orders.order_queue_max_wait_ms = 30_000;
    settings.orders.order_writer_nice = 0;
    settings
}
