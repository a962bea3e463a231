//! Top sellers: the seeds' example over three days, refunds, the cache and its fallback when Redis
//! dies, live `rankingChanged` pushes, and two instances sharing one database and Redis.

use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use entity::product_sales_daily;
use sea_orm::{EntityTrait, Set};
use serde_json::{Value, json};

use crate::harness::{PrivateRedis, TestServer, error_code, id_of, items, on_every_backend_with};
use crate::ws_client::{initialised, receive, receive_within, send};

const TOP: &str = "query($days: Int!, $limit: Int!) { topSellers(days: $days, limit: $limit) {
  days from to computedAt totalQuantity totalRevenue entries { rank quantity revenue product { id name } } } }";

pub(crate) fn fast_ranking(settings: &mut commerce::config::Settings) {
    settings.ranking.ranking_refresh_ms = 100;
}

/// Records past sales straight into the daily table (no API writes yesterday).
async fn past_sales(server: &TestServer, days_ago: u64, product: i64, quantity: i64, price: i64) {
    let today = Utc::now()
        .with_timezone(&chrono_tz::Asia::Seoul)
        .date_naive();
    product_sales_daily::Entity::insert(product_sales_daily::ActiveModel {
        sales_date: Set(today.checked_sub_days(Days::new(days_ago)).unwrap()),
        product_id: Set(product),
        quantity: Set(quantity),
        revenue: Set(quantity * price),
    })
    .exec_without_returning(server.database().conn())
    .await
    .expect("history row");
}

pub(crate) async fn buy(server: &TestServer, user: i64, product: i64, quantity: i64) -> Value {
    let data = server
        .user(user)
        .data(
            "mutation($items: [OrderItemInput!]!) { placeOrder(input: {items: $items}) { order { id status } userErrors { code message } } }",
            json!({ "items": items(&[(product, quantity)]) }),
        )
        .await;
    assert_eq!(
        data["placeOrder"]["userErrors"],
        json!([]),
        "[{}] {data}",
        server.backend
    );
    data["placeOrder"]["order"].clone()
}

/// Polls `topSellers` until `check` accepts it (the worker recomputes on its cadence).
pub(crate) async fn top_until(
    server: &TestServer,
    days: i64,
    limit: i64,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let top = server
            .anonymous()
            .data(TOP, json!({ "days": days, "limit": limit }))
            .await["topSellers"]
            .clone();
        if check(&top) {
            return top;
        }
        assert!(
            Instant::now() < deadline,
            "[{}] the ranking never became right: {top}",
            server.backend
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn ranked_ids(top: &Value) -> Vec<i64> {
    top["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| id_of(&e["product"]["id"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_three_day_ranking_with_old_sales_and_refunds() {
    on_every_backend_with(fast_ranking, |server| async move {
        let gaming = server
            .create_product("게이밍 마우스", "마우스", 65_000, 1_000)
            .await;
        let earphones = server
            .create_product("이어폰", "오디오", 30_000, 1_000)
            .await;
        let keyboard = server
            .create_product("무선 키보드", "키보드", 45_000, 1_000)
            .await;
        let webcam = server.create_product("웹캠", "카메라", 30_000, 1_000).await;
        let monitor = server
            .create_product("모니터", "모니터", 120_000, 1_000)
            .await;
        // two earlier days of the window, and one day far outside it
        for (days_ago, product, quantity, price) in [
            (2, gaming, 100, 65_000),
            (1, gaming, 40, 65_000),
            (2, earphones, 120, 30_000),
            (1, earphones, 70, 30_000),
            (1, keyboard, 110, 45_000),
            (2, webcam, 80, 30_000),
            (1, monitor, 75, 120_000),
            (5, monitor, 10_000, 120_000),
        ] {
            past_sales(&server, days_ago, product, quantity, price).await;
        }
        let buyer = server.customer("buyer", 10_000_000).await;
        for (product, quantity) in [
            (gaming, 10),
            (earphones, 10),
            (keyboard, 10),
            (webcam, 10),
            (monitor, 5),
        ] {
            buy(&server, buyer, product, quantity).await;
        }
        // a refunded order does not count
        let refunded = buy(&server, buyer, webcam, 50).await;
        server
            .user(buyer)
            .data(
                "mutation($id: ID!) { cancelOrder(input: {orderId: $id}) { order { status } } }",
                json!({ "id": refunded["id"] }),
            )
            .await;

        let expected = vec![earphones, gaming, keyboard, webcam, monitor];
        let top = top_until(&server, 3, 5, |top| {
            ranked_ids(top) == expected && top["entries"][3]["quantity"] == json!(90)
        })
        .await;
        let entries = top["entries"].as_array().unwrap();
        let figures: Vec<(i64, i64, i64)> = entries
            .iter()
            .map(|e| {
                (
                    e["rank"].as_i64().unwrap(),
                    e["quantity"].as_i64().unwrap(),
                    e["revenue"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            figures,
            vec![
                (1, 200, 6_000_000),
                (2, 150, 9_750_000),
                (3, 120, 5_400_000),
                (4, 90, 2_700_000),
                (5, 80, 9_600_000)
            ]
        );
        assert_eq!(top["days"], json!(3));
        assert_eq!(top["totalQuantity"], json!(640));
        assert_eq!(top["totalRevenue"], json!(33_450_000));
        let one_day = server
            .anonymous()
            .data(TOP, json!({ "days": 1, "limit": 2 }))
            .await["topSellers"]
            .clone();
        assert_eq!(one_day["entries"].as_array().unwrap().len(), 2);
        assert_eq!(one_day["entries"][0]["quantity"], json!(10));

        for (days, limit) in [(0, 5), (31, 5), (3, 0), (3, 51)] {
            let body = server
                .anonymous()
                .post(TOP, json!({ "days": days, "limit": limit }))
                .await;
            assert_eq!(
                error_code(&body),
                "BAD_USER_INPUT",
                "days {days}, limit {limit}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_one_update_per_change_of_the_order() {
    on_every_backend_with(fast_ranking, |server| async move {
        let a = server.create_product("A", "c", 1_000, 1_000).await;
        let b = server.create_product("B", "c", 1_000, 1_000).await;
        let c = server.create_product("C", "c", 1_000, 1_000).await;
        let d = server.create_product("D", "c", 1_000, 1_000).await;
        let buyer = server.customer("buyer", 1_000_000).await;
        buy(&server, buyer, a, 30).await;
        buy(&server, buyer, b, 20).await;
        buy(&server, buyer, c, 10).await;
        top_until(&server, 3, 3, |top| ranked_ids(top) == vec![a, b, c]).await;

        let mut socket = initialised(&server, json!({})).await;
        send(&mut socket, json!({ "id": "r", "type": "subscribe", "payload": {
            "query": "subscription { rankingChanged(days: 3, limit: 3) { topSellers { entries { rank product { id } quantity } } changes { product { id } rank previousRank movement } } }" } })).await;
        let first = receive(&mut socket).await;
        let snapshot = &first["payload"]["data"]["rankingChanged"];
        assert_eq!(snapshot["changes"], json!([]));
        assert_eq!(ranked_ids(&snapshot["topSellers"]), vec![a, b, c]);

        // D jumps to the top: C drops out, A and B move down
        buy(&server, buyer, d, 40).await;
        let update = receive(&mut socket).await;
        let changed = &update["payload"]["data"]["rankingChanged"];
        assert_eq!(ranked_ids(&changed["topSellers"]), vec![d, a, b], "{update}");
        let moves: Vec<(i64, Value, Value, String)> = changed["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (id_of(&c["product"]["id"]), c["rank"].clone(), c["previousRank"].clone(), c["movement"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            moves,
            vec![
                (d, json!(1), Value::Null, "NEW".to_owned()),
                (a, json!(2), json!(1), "DOWN".to_owned()),
                (b, json!(3), json!(2), "DOWN".to_owned()),
                (c, Value::Null, json!(3), "DROPPED".to_owned()),
            ]
        );
        // sales that do not change the order push nothing
        buy(&server, buyer, d, 1).await;
        buy(&server, buyer, c, 1).await;
        assert_eq!(receive_within(&mut socket, Duration::from_millis(800)).await, None);
        // B overtakes A
        buy(&server, buyer, b, 15).await;
        let update = receive(&mut socket).await;
        let changed = &update["payload"]["data"]["rankingChanged"];
        assert_eq!(ranked_ids(&changed["topSellers"]), vec![d, b, a]);
        let movements: Vec<&str> = changed["changes"].as_array().unwrap().iter().map(|c| c["movement"].as_str().unwrap()).collect();
        assert_eq!(movements, vec!["SAME", "UP", "DOWN"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_rankings_and_stock_through_redis() {
    on_every_backend_with(fast_ranking, |server| async move {
        if server.settings.redis.redis_url.is_none() {
            eprintln!(
                "[{}] no Redis on this backend: the cross-instance part runs on the Redis backends",
                server.backend
            );
            return;
        }
        instances_share_rankings_and_stock(&server).await;
    })
    .await;
}

/// A second instance beside `server` (same settings: database and Redis): an order on the second
/// reaches `stockChanged` and `rankingChanged` subscribers of the first, and both serve the same
/// top sellers.
pub(crate) async fn instances_share_rankings_and_stock(server: &TestServer) {
    let second = TestServer::start(server.backend, server.settings.clone()).await;
    let product = server.create_product("웹캠", "카메라", 30_000, 100).await;
    let buyer = server.customer("buyer", 1_000_000).await;

    let mut on_a = initialised(server, json!({})).await;
    send(&mut on_a, json!({ "id": "rank", "type": "subscribe", "payload": { "query": "subscription { rankingChanged(limit: 3) { topSellers { entries { product { id } quantity } } changes { movement } } }" } })).await;
    let first = receive(&mut on_a).await;
    assert_eq!(
        first["payload"]["data"]["rankingChanged"]["topSellers"]["entries"],
        json!([])
    );
    send(&mut on_a, json!({ "id": "stock", "type": "subscribe", "payload": { "query": "subscription($ids: [ID!]) { stockChanged(productIds: $ids) { stock } }", "variables": { "ids": [product.to_string()] } } })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    buy(&second, buyer, product, 3).await;
    let mut got_stock = false;
    let mut got_ranking = false;
    while !(got_stock && got_ranking) {
        let message = receive(&mut on_a).await;
        match message["id"].as_str() {
            Some("stock") => {
                assert_eq!(
                    message["payload"]["data"]["stockChanged"]["stock"],
                    json!(97)
                );
                got_stock = true;
            }
            Some("rank") => {
                let update = &message["payload"]["data"]["rankingChanged"];
                assert_eq!(
                    update["topSellers"]["entries"],
                    json!([{ "product": { "id": product.to_string() }, "quantity": 3 }])
                );
                assert_eq!(update["changes"], json!([{ "movement": "NEW" }]));
                got_ranking = true;
            }
            _ => panic!("unexpected message {message}"),
        }
    }
    // and both instances serve the same ranking
    let on_b = top_until(&second, 3, 5, |top| {
        top["entries"].as_array().is_some_and(|e| e.len() == 1)
    })
    .await;
    assert_eq!(on_b["entries"][0]["quantity"], json!(3));
    let on_a = top_until(server, 3, 5, |top| {
        top["entries"].as_array().is_some_and(|e| e.len() == 1)
    })
    .await;
    assert_eq!(on_a["entries"], on_b["entries"]);
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_sellers_survive_redis_going_away_and_use_it_again() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let redis_ref = &mut redis;
    let redis_cell = tokio::sync::Mutex::new(redis_ref);
    on_every_backend_with(
        |settings| {
            settings.ranking.ranking_refresh_ms = 100;
            settings.redis.redis_url = Some(url.clone());
        },
        |server| {
            let redis_cell = &redis_cell;
            async move {
                let mut redis = redis_cell.lock().await;
                let product = server.create_product("이어폰", "오디오", 30_000, 100).await;
                let buyer = server.customer("buyer", 1_000_000).await;
                buy(&server, buyer, product, 2).await;
                top_until(&server, 3, 5, |top| {
                    top["entries"][0]["quantity"] == json!(2)
                })
                .await;

                redis.stop();
                for _ in 0..20 {
                    let body = server
                        .anonymous()
                        .post(TOP, json!({ "days": 3, "limit": 5 }))
                        .await;
                    assert!(
                        body.get("errors").is_none(),
                        "[{}] no error while Redis is down: {body}",
                        server.backend
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                buy(&server, buyer, product, 3).await;
                top_until(&server, 3, 5, |top| {
                    top["entries"][0]["quantity"] == json!(5)
                })
                .await;
                let ready = server.get("/readyz").await;
                assert_eq!(ready.status(), 200, "the service still works without Redis");
                let ready: Value = ready.json().await.unwrap();
                assert_eq!(
                    (ready["status"].clone(), ready["redis"].clone()),
                    (json!("degraded"), json!("unavailable"))
                );

                redis.resume().await;
                buy(&server, buyer, product, 1).await;
                top_until(&server, 3, 5, |top| {
                    top["entries"][0]["quantity"] == json!(6)
                })
                .await;
                // the recomputed ranking is in Redis again
                let client = redis::Client::open(redis.url()).unwrap();
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg("*ranking:3")
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    if let Some(key) = keys.first() {
                        let cached: String = redis::cmd("GET")
                            .arg(key)
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                        if cached.contains("\"quantity\":6") {
                            break;
                        }
                    }
                    assert!(
                        Instant::now() < deadline,
                        "[{}] the ranking never went back to Redis",
                        server.backend
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        },
    )
    .await;
}
