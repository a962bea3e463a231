//! A full disk under the database: PostgreSQL (a private server whose data directory, WAL and
//! log live on a small tmpfs) and SQLite (its file there). Shoppers order and read while a
//! ballast file takes all but a few kilobytes: every answer is a success or SERVICE_UNAVAILABLE
//! with `retryAfterSeconds` (never an internal error), within the request time limit. Once the
//! ballast is removed the same server orders normally again by itself, and `commerce verify`
//! finds every invariant intact: nothing was half-written.

use std::time::{Duration, Instant};

use crate::harness::{PrivatePostgres, SmallDisk, TestServer, test_settings};
use crate::network::{shoppers, time_to_normal};

/// What the ballast leaves free: a few pages of tables and indexes.
const LEFT_FREE: u64 = 256 * 1024;
/// How long the shoppers keep at it once the disk is (nearly) full.
const FULL_FOR: Duration = Duration::from_secs(8);
const SHOPPERS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_postgresql_refuses_as_unavailable_and_heals_alone() {
    let disk = SmallDisk::mount(192);
    let postgres = PrivatePostgres::start_in(disk.path()).await;
    let url = postgres.create_database("shop").await;
    through_a_full_disk("postgres-small-disk", url, &disk).await;
    drop(postgres);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_sqlite_refuses_as_unavailable_and_heals_alone() {
    let disk = SmallDisk::mount(64);
    let url = format!(
        "sqlite://{}?mode=rwc",
        disk.path().join("shop.db").display()
    );
    through_a_full_disk("sqlite-small-disk", url, &disk).await;
}

async fn through_a_full_disk(backend: &'static str, url: String, disk: &SmallDisk) {
    let server = TestServer::start(backend, test_settings(url.clone())).await;
    let (buyer, [product]) = server
        .shop(
            "buyer",
            10_000_000,
            [("이어폰", "오디오", 1_000, 1_000_000)],
        )
        .await;
    let mut users = vec![];
    for n in 0..SHOPPERS {
        users.push(server.customer(&format!("shopper{n}"), 10_000_000).await);
    }
    disk.fill(LEFT_FREE);
    let full = shoppers(&server, &users, product, Instant::now() + FULL_FOR).await;
    let left = disk.available();
    disk.free();
    let normal_after = time_to_normal(&server, buyer, product).await;
    eprintln!(
        "[{backend}] disk full ({left} bytes left at the end): {} answers, longest {:?}, {:?}; orders normal {normal_after:?} after space was freed",
        full.answers, full.longest, full.outcomes
    );
    assert!(full.wrong.is_empty(), "{:?}", full.wrong);
    assert!(
        full.outcomes
            .keys()
            .any(|outcome| outcome.starts_with("SERVICE_UNAVAILABLE")),
        "the disk filled up and orders were refused: {:?}",
        full.outcomes
    );
    server.stop();
    let (code, report) = crate::verify::verify_command(url, &[]).await;
    assert_eq!(code, 0, "commerce verify: {report}");
}
