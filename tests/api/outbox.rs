//! The outbox: every completed (and refunded) order reaches the data platform exactly once, in
//! order per order, through outages, rejections, a wrong platform URL, restarts and two sending
//! instances; orders never wait for it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use commerce::config::Settings;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::harness::{
    FreshDatabase, MockPlatform, ServerProcess, TestServer, backends, id_of, items,
    on_every_backend, on_every_backend_with, sample, settings_on,
};

const PLACE: &str = "mutation($items: [OrderItemInput!]!) { placeOrder(input: {items: $items}) { order { id status total } userErrors { code } } }";
const STATS: &str = "{ outboxStats { pending failed sent oldestPendingAge circuitState } }";

/// Settings for fast retries against `platform`.
fn relay_to(platform: &MockPlatform) -> impl Fn(&mut Settings) + '_ {
    move |settings| {
        settings.outbox.data_platform_url = Some(platform.events_url());
        settings.outbox.outbox_retry_base_ms = 20;
        settings.outbox.outbox_retry_max_ms = 200;
        settings.outbox.outbox_poll_ms = 50;
        settings.outbox.outbox_breaker_threshold = 3;
        settings.outbox.outbox_breaker_cooldown_ms = 300;
        settings.outbox.outbox_timeout_ms = 1_000;
    }
}

async fn shop(server: &TestServer, stock: i64) -> (i64, i64) {
    let (user, [product]) = server
        .shop("shopper", 10_000_000, [("이어폰", "오디오", 1_000, stock)])
        .await;
    (user, product)
}

async fn place(server: &TestServer, user: i64, product: i64) -> Value {
    let data = server
        .user(user)
        .data(PLACE, json!({ "items": items(&[(product, 1)]) }))
        .await;
    assert_eq!(data["placeOrder"]["userErrors"], json!([]), "{data}");
    data["placeOrder"]["order"].clone()
}

async fn stats(server: &TestServer) -> Value {
    server.admin().data(STATS, json!({})).await["outboxStats"].clone()
}

/// Polls `outboxStats` until `field` reads `expected`: the platform records an event before the
/// relay marks it SENT, so the two are only eventually in step.
async fn stats_reach(server: &TestServer, field: &str, expected: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = stats(server).await;
        if stats[field] == json!(expected) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "outboxStats.{field} never reached {expected}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts the platform back to answering 200; how many events it holds so far.
async fn recovered(platform: &MockPlatform) -> usize {
    platform.control(json!({ "recover": true })).await;
    platform.received().await["events"]
        .as_array()
        .unwrap()
        .len()
}

/// Polls `/readyz` until its `dataPlatform` reads `expected`; returns it.
async fn readiness_says(server: &TestServer, expected: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready: Value = server.get("/readyz").await.json().await.unwrap();
        if ready["dataPlatform"] == json!(expected) {
            return ready;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never said the data platform is {expected}: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `/metrics` until `series` reaches `at_least`.
async fn metric_reaches(server: &TestServer, series: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let value = sample(&server.metrics().await, series);
        if value.is_some_and(|v| v >= at_least) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {at_least}: {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const MISDIRECTED: &str = "commerce_outbox_deliveries_total{result=\"misdirected\"}";

/// The breaker opens after this many failures in a row (see [`relay_to`]).
const THRESHOLD: f64 = 3.0;

/// How many deliveries were answered 401/403/404/405 so far (process-wide).
async fn misdirected(server: &TestServer) -> f64 {
    sample(&server.metrics().await, MISDIRECTED).unwrap_or(0.0)
}

/// Checks that a burst of `orders` against a platform answering 404 to everything is held:
/// `/readyz` says so, and after several probes no event was given up on. `before`: what
/// [`misdirected`] read before the burst.
async fn held_while_misdirected(server: &TestServer, orders: i64, before: f64) {
    let ready = readiness_says(server, "misconfigured").await;
    assert_eq!(ready["status"], json!("degraded"), "{ready}");
    assert!(
        ready["dataPlatformProblem"]
            .as_str()
            .is_some_and(|p| p.contains("404") && p.contains("DATA_PLATFORM_URL")),
        "{ready}"
    );
    // the breaker opened, then probed (and failed) three times more
    metric_reaches(server, MISDIRECTED, before + THRESHOLD + 3.0).await;
    let held = stats(server).await;
    assert_eq!(
        (
            held["failed"].clone(),
            held["pending"].clone(),
            held["circuitState"] != json!("CLOSED")
        ),
        (json!(0), json!(orders), true),
        "no event given up on: {held}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_answering_404_to_everything_holds_the_burst_and_gets_it_once_when_fixed() {
    let platform = MockPlatform::start().await;
    on_every_backend_with(relay_to(&platform), |server| {
        let platform = &platform;
        async move {
            let known = recovered(platform).await;
            let duplicates = platform.received().await["duplicates"].clone();
            platform.control(json!({ "failWith": 404 })).await;
            let before = misdirected(&server).await;
            let (user, product) = shop(&server, 100).await;
            for _ in 0..20 {
                place(&server, user, product).await;
            }
            held_while_misdirected(&server, 20, before).await;

            platform.control(json!({ "recover": true })).await;
            held_events_arrive_once(platform, &server, known, duplicates).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_platform_url_holds_the_events_logs_it_once_and_they_arrive_once_after_the_fix() {
    let platform = MockPlatform::start().await;
    for backend in backends().await {
        let database = FreshDatabase::create(backend).await;
        let mut settings = settings_on(backend, &database);
        relay_to(&platform)(&mut settings);
        // the platform's base URL instead of its /events path: 404 to every event
        settings.outbox.data_platform_url = Some(platform.base.clone());
        let (mut process, server) = ServerProcess::start(backend.name, &settings).await;
        let known = recovered(&platform).await;
        let duplicates = platform.received().await["duplicates"].clone();
        let (user, product) = shop(&server, 100).await;
        for _ in 0..20 {
            place(&server, user, product).await;
        }
        held_while_misdirected(&server, 20, 0.0).await;
        // a process of its own: its gauges are its own
        let metrics = server.metrics().await;
        assert_eq!(
            sample(&metrics, "commerce_data_platform_misconfigured"),
            Some(1.0)
        );
        let log = process.log();
        let about_the_platform: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("data platform"))
            .collect();
        assert_eq!(
            about_the_platform.len(),
            1,
            "[{}] said once, not per event:\n{log}",
            backend.name
        );
        assert!(about_the_platform[0].contains("DATA_PLATFORM_URL"), "{log}");

        // the operator fixes the URL and restarts the server
        process.kill();
        process.set_env("DATA_PLATFORM_URL", &platform.events_url());
        process.resume().await;
        held_events_arrive_once(&platform, &server, known, duplicates).await;
        drop(process);
        database.remove().await;
    }
}

/// Once the platform is reachable again: the 20 held events arrive, none twice, and the outbox
/// and readiness are clear. `known`/`duplicates`: what the platform had seen before.
async fn held_events_arrive_once(
    platform: &MockPlatform,
    server: &TestServer,
    known: usize,
    duplicates: Value,
) {
    let received = platform.wait_for(known + 20, Duration::from_secs(30)).await;
    assert_eq!(arrivals(&received)[known..].len(), 20);
    let done = stats_reach(server, "sent", 20).await;
    assert_eq!(
        (done["failed"].clone(), done["pending"].clone()),
        (json!(0), json!(0))
    );
    readiness_says(server, "ok").await;
    assert_eq!(
        platform.received().await["duplicates"],
        duplicates,
        "each event once"
    );
}

/// (order id, event type) in arrival order.
fn arrivals(received: &Value) -> Vec<(i64, String)> {
    received["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["order"]["id"].as_i64().unwrap(),
                e["eventType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_order_reaches_the_platform_right_away_exactly_once() {
    let platform = MockPlatform::start().await;
    on_every_backend_with(
        |settings| {
            relay_to(&platform)(settings);
            // only the wake-up after commit can deliver within the test
            settings.outbox.outbox_poll_ms = 600_000;
        },
        |server| {
            let platform = &platform;
            async move {
                let before = platform.received().await["events"].as_array().unwrap().len();
                let (user, product) = shop(&server, 10).await;
                let sent = Instant::now();
                let order = place(&server, user, product).await;
                let received = platform.wait_for(before + 1, Duration::from_secs(5)).await;
                eprintln!("[{}] order to platform: {:?}", server.backend, sent.elapsed());
                let event = received["events"].as_array().unwrap().last().unwrap().clone();
                assert_eq!(event["eventType"], json!("ORDER_COMPLETED"));
                assert!(event["eventId"].as_str().is_some_and(|id| id.len() == 36));
                let shipped = &event["order"];
                assert_eq!(shipped["id"].as_i64(), Some(id_of(&order["id"])));
                assert_eq!(shipped["userId"], json!(user));
                assert_eq!(shipped["status"], json!("COMPLETED"));
                assert_eq!((shipped["subtotal"].clone(), shipped["discount"].clone(), shipped["total"].clone()), (json!(1_000), json!(0), json!(1_000)));
                assert_eq!(shipped["items"], json!([{ "productId": product, "productName": "이어폰", "quantity": 1, "unitPrice": 1_000, "lineTotal": 1_000 }]));
                assert!(shipped["paidAt"].is_string() && shipped["createdAt"].is_string());
                tokio::time::sleep(Duration::from_millis(200)).await;
                let after = platform.received().await;
                assert_eq!(after["duplicates"], json!(0));
                let stats = stats_reach(&server, "sent", 1).await;
                assert_eq!((stats["sent"].clone(), stats["pending"].clone(), stats["circuitState"].clone()), (json!(1), json!(0), json!("CLOSED")));
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_platform_down_for_the_whole_burst_gets_everything_once_in_order_afterwards() {
    let platform = MockPlatform::start().await;
    on_every_backend_with(relay_to(&platform), |server| {
        let platform = &platform;
        async move {
            platform.control(json!({ "recover": true })).await;
            let before = platform.received().await;
            let known = before["events"].as_array().unwrap().len();
            let calls_before = before["calls"].as_u64().unwrap();
            platform.control(json!({ "failWith": 503 })).await;
            let (user, product) = shop(&server, 1_000).await;

            let started = Instant::now();
            let orders = join_all((0..100).map(|_| place(&server, user, product))).await;
            let elapsed = started.elapsed();
            eprintln!("[{}] 100 orders with the platform down: {elapsed:?}", server.backend);
            // ten of them are refunded while the platform is still down
            for order in orders.iter().take(10) {
                server
                    .user(user)
                    .data("mutation($id: ID!) { cancelOrder(input: {orderId: $id}) { order { status } } }", json!({ "id": order["id"] }))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            let down = platform.received().await;
            let calls = down["calls"].as_u64().unwrap() - calls_before;
            let pending = stats(&server).await;
            eprintln!("[{}] platform down: {calls} calls for 110 events, stats {pending}", server.backend);
            assert!(calls < 110, "the breaker stops the calls: {calls}");
            assert_eq!(pending["pending"], json!(110));
            assert_ne!(pending["circuitState"], json!("CLOSED"));

            platform.control(json!({ "recover": true })).await;
            let received = platform.wait_for(known + 110, Duration::from_secs(30)).await;
            let mine: Vec<(i64, String)> = arrivals(&received)[known..].to_vec();
            assert_eq!(mine.len(), 110);
            let mut seen: HashMap<i64, Vec<String>> = HashMap::new();
            for (order, kind) in &mine {
                seen.entry(*order).or_default().push(kind.clone());
            }
            assert_eq!(seen.len(), 100, "every order arrived");
            for order in &orders[..10] {
                assert_eq!(seen[&id_of(&order["id"])], vec!["ORDER_COMPLETED", "ORDER_REFUNDED"], "in order per order");
            }
            for order in &orders[10..] {
                assert_eq!(seen[&id_of(&order["id"])], vec!["ORDER_COMPLETED"]);
            }
            let done = stats_reach(&server, "sent", 110).await;
            assert_eq!((done["pending"].clone(), done["failed"].clone(), done["sent"].clone()), (json!(0), json!(0), json!(110)));
        }
    })
    .await;
}

/// The first failures of an outage put their events off for their backoff (a minute here, up to
/// OUTBOX_RETRY_MAX_MS in production) before the breaker opens; when the platform answers again
/// they go at once with the rest, not a minute later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_put_off_by_an_outage_go_as_soon_as_the_platform_answers_again() {
    let platform = MockPlatform::start().await;
    let relay = relay_to(&platform);
    let slow_retries = |settings: &mut Settings| {
        relay(settings);
        settings.outbox.outbox_retry_base_ms = 60_000;
        settings.outbox.outbox_retry_max_ms = 600_000;
    };
    on_every_backend_with(slow_retries, |server| {
        let platform = &platform;
        async move {
            let known = recovered(platform).await;
            platform.control(json!({ "failWith": 503 })).await;
            let (user, product) = shop(&server, 100).await;
            for _ in 0..5 {
                place(&server, user, product).await;
            }
            let opened = Instant::now() + Duration::from_secs(10);
            while stats(&server).await["circuitState"] == json!("CLOSED") {
                assert!(Instant::now() < opened, "the breaker opens");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            platform.control(json!({ "recover": true })).await;
            let recovered_at = Instant::now();
            let received = platform.wait_for(known + 5, Duration::from_secs(10)).await;
            assert_eq!(arrivals(&received)[known..].len(), 5);
            eprintln!(
                "[{}] 5 events put off by an outage delivered {:?} after the recovery",
                server.backend,
                recovered_at.elapsed()
            );
        }
    })
    .await;
}

/// SENT events older than OUTBOX_RETENTION_SECS are deleted; PENDING ones never are; `commerce
/// verify` stays clean (it knows how far the retention pruned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_events_past_the_retention_are_deleted_pending_ones_kept_and_verify_stays_clean() {
    let platform = MockPlatform::start().await;
    let relay = relay_to(&platform);
    let short_retention = |settings: &mut Settings| {
        relay(settings);
        settings.outbox.outbox_retention_secs = 1;
    };
    on_every_backend_with(short_retention, |server| {
        let platform = &platform;
        async move {
            let known = recovered(platform).await;
            let (user, product) = shop(&server, 100).await;
            place(&server, user, product).await;
            let refunded = place(&server, user, product).await;
            server
                .user(user)
                .data(
                    "mutation($id: ID!) { cancelOrder(input: {orderId: $id}) { order { status } } }",
                    json!({ "id": refunded["id"] }),
                )
                .await;
            platform.wait_for(known + 3, Duration::from_secs(10)).await;
            // delivered, then deleted a second later
            stats_reach(&server, "sent", 0).await;
            platform.control(json!({ "failWith": 503 })).await;
            place(&server, user, product).await;
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            let kept = stats(&server).await;
            assert_eq!((kept["pending"].clone(), kept["sent"].clone()), (json!(1), json!(0)), "{kept}");
            let url = server.settings.database.database_url().to_owned();
            let (code, report) = crate::verify::verify_command(url, &[]).await;
            assert_eq!(code, 0, "[{}] commerce verify: {report}", server.backend);
            platform.control(json!({ "recover": true })).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_and_rejections_wait_for_an_admin() {
    let platform = MockPlatform::start().await;
    on_every_backend_with(relay_to(&platform), |server| {
        let platform = &platform;
        async move {
            let known = recovered(platform).await;
            let (user, product) = shop(&server, 10).await;

            platform
                .control(json!({ "failWith": 500, "times": 2 }))
                .await;
            place(&server, user, product).await;
            platform.wait_for(known + 1, Duration::from_secs(10)).await;

            platform.control(json!({ "drop": true })).await;
            place(&server, user, product).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            platform.control(json!({ "recover": true })).await;
            platform.wait_for(known + 2, Duration::from_secs(10)).await;

            platform.control(json!({ "failWith": 400 })).await;
            place(&server, user, product).await;
            stats_reach(&server, "failed", 1).await;
            platform.control(json!({ "recover": true })).await;
            let requeued = server
                .admin()
                .data("mutation { retryFailedDeliveries { requeued } }", json!({}))
                .await;
            assert_eq!(requeued["retryFailedDeliveries"]["requeued"], json!(1));
            platform.wait_for(known + 3, Duration::from_secs(10)).await;
            let done = stats_reach(&server, "sent", 3).await;
            assert_eq!(
                (done["failed"].clone(), done["sent"].clone()),
                (json!(0), json!(3))
            );
            let customer = server.user(user).post(STATS, json!({})).await;
            assert_eq!(
                customer["errors"][0]["extensions"]["code"],
                json!("FORBIDDEN")
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sending_instances_never_send_one_event_twice() {
    let platform = MockPlatform::start().await;
    on_every_backend_with(relay_to(&platform), |server| {
        let platform = &platform;
        async move {
            platform.control(json!({ "recover": true })).await;
            platform.control(json!({ "delayMs": 20 })).await;
            let before = platform.received().await;
            let known = before["events"].as_array().unwrap().len();
            let second = TestServer::start(server.backend, server.settings.clone()).await;
            let (user, product) = shop(&server, 1_000).await;
            let orders = join_all((0..100).map(|i| {
                let target = if i % 2 == 0 { &server } else { &second };
                place(target, user, product)
            }))
            .await;
            let received = platform
                .wait_for(known + orders.len(), Duration::from_secs(30))
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let after = platform.received().await;
            eprintln!(
                "[{}] two senders: calls {}, duplicates {}, overlaps {}",
                server.backend, after["calls"], after["duplicates"], after["overlaps"]
            );
            assert_eq!(
                after["overlaps"], before["overlaps"],
                "no event was sent twice at the same time"
            );
            assert_eq!(
                after["duplicates"], before["duplicates"],
                "no event was sent twice"
            );
            assert_eq!(arrivals(&received)[known..].len(), 100);
            platform.control(json!({ "delayMs": 0 })).await;
            second.stop();
        }
    })
    .await;
}

/// A lease ends at the instant its sender meant, to the microsecond, on every backend: MySQL's
/// `TIMESTAMP` kept whole seconds (MariaDB cut the fraction off), so a lease could end up to a
/// second early and a second sender sent an event the first was still sending.
#[tokio::test]
async fn an_outbox_lease_keeps_its_microseconds() {
    use entity::outbox_event;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

    on_every_backend(|server| async move {
        let (user, product) = shop(&server, 10).await;
        let order = place(&server, user, product).await;
        let order_id: i64 = id_of(&order["id"]);
        let conn = server.database().conn();
        let lease = chrono::DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678912Z")
            .unwrap()
            .to_utc();
        outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::NextAttemptAt, Expr::value(lease))
            .filter(outbox_event::Column::AggregateId.eq(order_id))
            .exec(conn)
            .await
            .unwrap();
        let stored = outbox_event::Entity::find()
            .filter(outbox_event::Column::AggregateId.eq(order_id))
            .select_only()
            .column(outbox_event::Column::NextAttemptAt)
            .into_tuple::<chrono::DateTime<chrono::Utc>>()
            .all(conn)
            .await
            .unwrap();
        assert_eq!(
            stored,
            vec![lease],
            "[{}] the lease as stored",
            server.backend
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pending_at_a_stop_are_delivered_after_the_restart() {
    let platform = MockPlatform::start().await;
    on_every_backend_with(relay_to(&platform), |server| {
        let platform = &platform;
        async move {
            let known = recovered(platform).await;
            platform.control(json!({ "drop": true })).await;
            let (user, product) = shop(&server, 100).await;
            for _ in 0..5 {
                place(&server, user, product).await;
            }
            server.stop();
            tokio::time::sleep(Duration::from_millis(300)).await;
            platform.control(json!({ "recover": true })).await;
            let restarted = TestServer::start(server.backend, server.settings.clone()).await;
            platform.wait_for(known + 5, Duration::from_secs(15)).await;
            stats_reach(&restarted, "sent", 5).await;
            restarted.stop();
        }
    })
    .await;
}

/// The batch's writes carry their values in the statement's text on PostgreSQL (one round trip):
/// quotes, backslashes and other characters a statement could trip on arrive exactly, in the
/// stored key and in the event shipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_and_backslashes_in_names_and_keys_arrive_exactly() {
    const NAME: &str = r#"Kim's "Pro" \ mouse \' $1 E'' 🖱 ');--"#;
    const KEY: &str = r#"it's \"the\" key \\ $$ ';--"#;
    const KEYED: &str = "mutation($items: [OrderItemInput!]!, $key: String) { placeOrder(input: {items: $items, idempotencyKey: $key}) { order { id items { product { name } } } userErrors { code } } }";
    let platform = MockPlatform::start().await;
    on_every_backend_with(relay_to(&platform), |server| {
        let platform = &platform;
        async move {
            let before = platform.received().await["events"]
                .as_array()
                .unwrap()
                .len();
            let (user, [product]) = server
                .shop("shopper", 10_000, [(NAME, "마우스", 1_000, 5)])
                .await;
            let variables = json!({ "items": items(&[(product, 1)]), "key": KEY });
            let first = server.user(user).data(KEYED, variables.clone()).await;
            assert_eq!(first["placeOrder"]["userErrors"], json!([]), "{first}");
            let again = server.user(user).data(KEYED, variables).await;
            assert_eq!(again["placeOrder"]["order"], first["placeOrder"]["order"]);
            assert_eq!(
                first["placeOrder"]["order"]["items"],
                json!([{ "product": { "name": NAME } }])
            );
            let received = platform.wait_for(before + 1, Duration::from_secs(5)).await;
            let event = received["events"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .clone();
            let order_id = id_of(&first["placeOrder"]["order"]["id"]);
            assert_eq!(event["order"]["id"].as_i64(), Some(order_id));
            assert_eq!(event["order"]["items"][0]["productName"], json!(NAME));
        }
    })
    .await;
}
