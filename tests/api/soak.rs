//! A soak: a server process (PostgreSQL, Redis, the data platform, all private) under a steady
//! mix for `SOAK_SECS` (120 s by default; an hour by hand): orders and reads at fixed rates,
//! WebSocket listeners of the ranking, a coupon event opening every 20 s with more takers than
//! coupons, and the data platform failing for 10 s of every 30. Every `SOAK_SAMPLE_SECS` (5) it
//! samples the server's resident memory, open files, database pool connections, the outbox's
//! PENDING events, Redis's memory and the tables' sizes, writes them to
//! `target/soak/samples.csv`, and fails when one that should level off keeps growing over the
//! second half (a least-squares slope whose growth over that half is more than its allowance).
//! Rates: `SOAK_ORDERS_PER_SEC` (40), `SOAK_READS_PER_SEC` (80), `SOAK_LISTENERS` (200).

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::harness::{
    MockPlatform, PrivatePostgres, PrivateRedis, ServerProcess, TestServer, items, sample,
    test_settings,
};
use crate::ws_client::{Socket, initialised, receive, send};

const PLACE: &str = "mutation($items: [OrderItemInput!]!) { placeOrder(input: {items: $items}) { order { id } userErrors { code } } }";
const ISSUE: &str = "mutation($id: ID!) { issueCoupon(input: {eventId: $id}) { coupon { id } userErrors { code } } }";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// One sample of what should level off, and of what grows with the data.
#[derive(Debug, Clone)]
struct Sample {
    at: f64,
    rss_mib: f64,
    open_files: f64,
    pool_connections: f64,
    outbox_pending: f64,
    redis_mib: f64,
    orders_mib: f64,
    outbox_mib: f64,
}

/// A series that must not grow without bound, and how much growth over the second half it
/// is allowed (a warm-up or a burst is not a leak).
struct Bounded {
    name: &'static str,
    value: fn(&Sample) -> f64,
    allowance: f64,
}

const BOUNDED: [Bounded; 5] = [
    Bounded {
        name: "resident memory (MiB)",
        value: |s| s.rss_mib,
        allowance: 24.0,
    },
    Bounded {
        name: "open files",
        value: |s| s.open_files,
        allowance: 40.0,
    },
    Bounded {
        name: "pool connections",
        value: |s| s.pool_connections,
        allowance: 8.0,
    },
    Bounded {
        name: "outbox PENDING",
        value: |s| s.outbox_pending,
        allowance: 2_000.0,
    },
    Bounded {
        name: "Redis memory (MiB)",
        value: |s| s.redis_mib,
        allowance: 8.0,
    },
];

/// Least-squares slope of `(x, y)`, per unit of x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), (px, py)| (x + px / n, y + py / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

async fn redis_mib(url: &str) -> f64 {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|bytes| bytes.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1_048_576.0
}

async fn table_mib(server: &TestServer, table: &str) -> f64 {
    use sea_orm::ConnectionTrait;
    let conn = server.database().conn();
    let sql = format!("SELECT pg_total_relation_size('{table}')::bigint");
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            sql,
        ))
        .await
        .expect("a size")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("bytes") as f64 / 1_048_576.0
}

async fn take_sample(
    process: &ServerProcess,
    server: &TestServer,
    redis_url: &str,
    began: Instant,
) -> Sample {
    let metrics = server.metrics().await;
    let pool: f64 = ["idle", "in_use"]
        .iter()
        .filter_map(|state| {
            sample(
                &metrics,
                &format!("commerce_db_pool_connections{{state=\"{state}\"}}"),
            )
        })
        .sum();
    Sample {
        at: began.elapsed().as_secs_f64(),
        rss_mib: process.resident_kib() as f64 / 1024.0,
        open_files: process.open_files() as f64,
        pool_connections: pool,
        outbox_pending: sample(&metrics, "commerce_outbox_pending").unwrap_or(0.0),
        redis_mib: redis_mib(redis_url).await,
        orders_mib: table_mib(server, "orders").await,
        outbox_mib: table_mib(server, "outbox_events").await,
    }
}

/// Sends `request(n)` `rate` times a second until `until`; counts the answers that are not ok.
async fn steady<F, Fut>(rate: u64, until: Instant, request: F) -> (u64, Vec<String>)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0;
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut failures = vec![];
    use futures_util::StreamExt;
    while Instant::now() < until {
        tokio::select! {
            _ = tick.tick() => {
                in_flight.push(request(sent));
                sent += 1;
            }
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => {
                if let Err(why) = outcome { failures.push(why); }
            }
        }
    }
    while let Some(outcome) = in_flight.next().await {
        if let Err(why) = outcome {
            failures.push(why);
        }
    }
    (sent, failures)
}

fn ok_data(answer: &Value, field: &str) -> Result<(), String> {
    match &answer["data"][field] {
        Value::Null => Err(answer.to_string()),
        data if data["userErrors"].as_array().is_some_and(|e| !e.is_empty()) => {
            Err(answer.to_string())
        }
        _ => Ok(()),
    }
}

async fn listeners(server: &TestServer, count: u64) -> Vec<Socket> {
    let mut sockets = vec![];
    for _ in 0..count {
        let mut socket = initialised(server, json!({})).await;
        send(&mut socket, json!({ "id": "r", "type": "subscribe", "payload": {
            "query": "subscription { rankingChanged(limit: 5) { topSellers { entries { quantity product { id } } } } }" } }))
        .await;
        receive(&mut socket).await;
        sockets.push(socket);
    }
    sockets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_steady_mix_grows_nothing_without_bound() {
    let secs = setting("SOAK_SECS", 120);
    let every = Duration::from_secs(setting("SOAK_SAMPLE_SECS", 5));
    let postgres = PrivatePostgres::start().await;
    let redis = PrivateRedis::start().await;
    let platform = MockPlatform::start().await;
    let mut settings = test_settings(postgres.create_database("soak").await);
    settings.redis.redis_url = Some(redis.url());
    settings.outbox.data_platform_url = Some(platform.events_url());
    settings.limits.rate_limit_user_per_sec = 0;
    let (process, server) = ServerProcess::start("soak", &settings).await;
    let server = &server;
    let mut products = vec![];
    for n in 0..10 {
        products.push(
            server
                .create_product(&format!("상품 {n}"), "soak", 100, 10_000_000)
                .await,
        );
    }
    let mut shoppers = vec![];
    for n in 0..20 {
        shoppers.push(server.customer(&format!("shopper {n}"), 10_000_000).await);
    }
    let (shoppers, products) = (&shoppers, &products);
    let sockets = listeners(server, setting("SOAK_LISTENERS", 200)).await;

    let began = Instant::now();
    let until = began + Duration::from_secs(secs);
    let orders = steady(setting("SOAK_ORDERS_PER_SEC", 40), until, |n| async move {
        let (user, product) = (
            shoppers[n as usize % shoppers.len()],
            products[n as usize % products.len()],
        );
        let answer = server
            .user(user)
            .post(PLACE, json!({ "items": items(&[(product, 1)]) }))
            .await;
        ok_data(&answer, "placeOrder")
    });
    let reads = steady(setting("SOAK_READS_PER_SEC", 80), until, |n| async move {
        let answer = if n % 2 == 0 {
            server
                .user(shoppers[n as usize % shoppers.len()])
                .post("{ me { balance } }", json!({}))
                .await
        } else {
            server
                .anonymous()
                .post("{ topSellers { entries { quantity } } }", json!({}))
                .await
        };
        if answer["errors"].is_null() {
            Ok(())
        } else {
            Err(answer.to_string())
        }
    });
    let coupons = async {
        let mut round = 0;
        while Instant::now() + Duration::from_secs(20) < until {
            let event = server
                .coupon_event(&format!("soak {round}"), "FIXED", 10, 10, json!({}))
                .await;
            let takers = join_all(shoppers.iter().map(|&user| async move {
                server.user(user).post(ISSUE, json!({ "id": event })).await
            }))
            .await;
            let issued = takers
                .iter()
                .filter(|answer| answer["data"]["issueCoupon"]["coupon"].is_object())
                .count();
            assert_eq!(issued, 10, "event {round}: {issued} of 10 issued");
            round += 1;
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
    };
    let flapping = async {
        while Instant::now() + Duration::from_secs(30) < until {
            tokio::time::sleep(Duration::from_secs(20)).await;
            platform.control(json!({ "failWith": 503 })).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
            platform.control(json!({ "recover": true })).await;
        }
    };
    let sampling = async {
        let mut samples = vec![];
        while Instant::now() < until {
            samples.push(take_sample(&process, server, &redis.url(), began).await);
            // as it goes: a run cut short still leaves what it sampled
            write_samples(&samples);
            tokio::time::sleep(every).await;
        }
        samples
    };
    let ((orders_sent, order_failures), (reads_sent, read_failures), (), (), samples) =
        tokio::join!(orders, reads, coupons, flapping, sampling);
    drop(sockets);

    eprintln!(
        "[soak] {secs} s: {orders_sent} orders ({} failed), {reads_sent} reads ({} failed); first and last samples:\n  {:?}\n  {:?}",
        order_failures.len(),
        read_failures.len(),
        samples.first(),
        samples.last()
    );
    assert!(
        order_failures.is_empty(),
        "{:?}",
        &order_failures[..order_failures.len().min(3)]
    );
    assert!(
        read_failures.is_empty(),
        "{:?}",
        &read_failures[..read_failures.len().min(3)]
    );
    let second_half: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= secs as f64 / 2.0)
        .collect();
    assert!(
        second_half.len() >= 3,
        "{} samples in the second half",
        second_half.len()
    );
    let span = second_half.last().unwrap().at - second_half[0].at;
    for bounded in &BOUNDED {
        let points: Vec<(f64, f64)> = second_half
            .iter()
            .map(|s| (s.at, (bounded.value)(s)))
            .collect();
        let growth = slope(&points) * span;
        eprintln!(
            "[soak] {}: {growth:+.1} over the second half ({span:.0} s)",
            bounded.name
        );
        assert!(
            growth <= bounded.allowance,
            "{} grows: {growth:+.1} over the second half, more than {}",
            bounded.name,
            bounded.allowance
        );
    }
}

/// `target/soak/samples.csv`, for charts and for the hour-long run's figures.
fn write_samples(samples: &[Sample]) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/soak");
    let _ = std::fs::create_dir_all(dir);
    let mut csv = String::from(
        "seconds,rss_mib,open_files,pool_connections,outbox_pending,redis_mib,orders_mib,outbox_events_mib\n",
    );
    for s in samples {
        csv.push_str(&format!(
            "{:.0},{:.1},{},{},{},{:.2},{:.2},{:.2}\n",
            s.at,
            s.rss_mib,
            s.open_files,
            s.pool_connections,
            s.outbox_pending,
            s.redis_mib,
            s.orders_mib,
            s.outbox_mib
        ));
    }
    let _ = std::fs::write(format!("{dir}/samples.csv"), csv);
}
