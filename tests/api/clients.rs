//! The clients that frontend teams use, run for real against a server started by the harness
//! (PostgreSQL + Redis when the run has them, else SQLite): the graphql-http server audit, the
//! playground (GraphiQL) in headless Chromium, and the example web app in `clients/web`.
//!
//! They need Node.js, each client's `npm ci`, and Chromium (`CHROMIUM`, default
//! `/usr/bin/chromium`), so they run when `TEST_CLIENTS` is set, as `.ci/run` does after
//! installing them; otherwise they say so and pass, except under `CI`, where they fail.
//! Screenshots go to `target/screenshots/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use commerce::config::Settings;

use crate::harness::{FreshDatabase, TestServer, server_backend, settings_on, sqlite};

/// The client folder `clients/<name>`, or `None` when this run does not test clients.
fn client(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(name);
    if std::env::var_os("TEST_CLIENTS").is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must test the clients: install them and set TEST_CLIENTS (see .ci/run)"
        );
        eprintln!("NOTE: TEST_CLIENTS is not set: clients/{name} was NOT tested");
        return None;
    }
    assert!(
        dir.join("node_modules").is_dir(),
        "clients/{name}/node_modules is missing: run `npm ci` there"
    );
    Some(dir)
}

/// Where a test's screenshot goes.
fn screenshot(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.png")).display().to_string()
}

/// Runs `node <script> <args>` in `dir` and fails the test, showing its output, unless it
/// exits 0 within two minutes.
async fn node(dir: &Path, script: &str, args: &[&str]) {
    let mut all = vec![script];
    all.extend_from_slice(args);
    run_in(dir, "node", &all).await;
}

/// Runs `program <args>` in `dir`; see [`node`].
async fn run_in(dir: &Path, program: &str, args: &[&str]) {
    let run = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .kill_on_drop(true)
        .output();
    let what = format!("{program} {}", args.join(" "));
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("{what} took over two minutes"))
        .unwrap_or_else(|err| panic!("{what}: {err} (is Node.js installed?)"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(output.status.success(), "{what} failed: {stdout}{stderr}");
}

/// A server on a fresh database: PostgreSQL + Redis when the run has them, else SQLite; with
/// `adjust`ed settings.
async fn fresh_server(adjust: impl FnOnce(&mut Settings)) -> (TestServer, FreshDatabase) {
    let backend = match server_backend().await {
        Some(backend) => backend,
        None => sqlite().await,
    };
    let database = FreshDatabase::create(backend).await;
    let mut settings = settings_on(backend, &database);
    adjust(&mut settings);
    let server = TestServer::start(backend.name, settings).await;
    (server, database)
}

/// Runs `node <script> <base URL of the server> <args>` in `dir` against a server on a fresh
/// database with `adjust`ed settings.
async fn run_client(dir: &Path, script: &str, args: &[&str], adjust: impl FnOnce(&mut Settings)) {
    let (server, database) = fresh_server(adjust).await;
    let base = server.url("");
    let mut all = vec![base.trim_end_matches('/')];
    all.extend_from_slice(args);
    node(dir, script, &all).await;
    server.stop();
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_over_http_audit_finds_nothing_to_warn_about() {
    let Some(dir) = client("audit") else { return };
    run_client(&dir, "audit.mjs", &["--strict"], |_| {}).await;
}

/// The app as a production deployment runs it: the server in trusted mode with the manifest
/// codegen writes from the app's documents, the page sending each by its hash only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_web_app_charges_orders_and_shows_the_ranking_pushed_by_the_subscription() {
    let Some(dir) = client("web") else { return };
    run_in(&dir, "npx", &["graphql-codegen"]).await;
    let manifest = dir.join("src/gql/persisted-documents.json");
    let trusted = |settings: &mut Settings| {
        settings.limits.trusted_documents = Some(manifest);
        // the test's own setup (ADMIN headers) runs documents the app does not ship
        settings.limits.trusted_documents_admins_free = true;
    };
    let screenshot = screenshot("web-app");
    run_client(&dir, "test/browser.mjs", &[&screenshot], trusted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_runs_scenario_one_and_a_subscription_with_every_other_origin_blocked() {
    let Some(dir) = client("playground") else {
        return;
    };
    run_client(
        &dir,
        "test/browser.mjs",
        &[&screenshot("playground")],
        |_| {},
    )
    .await;
}
