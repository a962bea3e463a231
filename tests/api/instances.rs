//! Several instances and several deployments on one Redis: stock changes reach the other
//! instances of a database even when Redis stalls under a burst, and the servers of two
//! databases never see each other's ranking, coupon gate or events, whatever prefix they share.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::harness::{
    Backend, FreshDatabase, PrivateRedis, TestServer, backends, id_of, items, server_backend,
    stock, test_settings,
};
use crate::ranking::{ranked_ids, top_until};
use crate::ws_client::{Socket, initialised, receive_within, send};

const PLACE: &str = "mutation($items: [OrderItemInput!]!) { placeOrder(input: {items: $items}) { order { id status } userErrors { code } } }";
const ISSUE: &str = "mutation($id: ID!) { issueCoupon(input: {eventId: $id}) { coupon { id } userErrors { code } } }";
const STOCK_CHANGED: &str =
    "subscription($ids: [ID!]) { stockChanged(productIds: $ids) { product { id } stock } }";

/// A `stockChanged` subscription to `products` on `server`, already listening.
async fn watch_stock(server: &TestServer, products: &[i64]) -> Socket {
    let mut socket = initialised(server, json!({})).await;
    let ids: Vec<String> = products.iter().map(i64::to_string).collect();
    send(
        &mut socket,
        json!({ "id": "stock", "type": "subscribe", "payload": { "query": STOCK_CHANGED, "variables": { "ids": ids } } }),
    )
    .await;
    // the subscription is registered once the server has read the message
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket
}

/// Reads `socket` until the last stock it pushed for each product is `expected`'s, or `within`
/// passes; returns the last stock seen per product.
async fn last_stock_seen(
    socket: &mut Socket,
    expected: &HashMap<i64, i64>,
    within: Duration,
) -> HashMap<i64, i64> {
    let mut seen = HashMap::new();
    let deadline = Instant::now() + within;
    while &seen != expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(message) = receive_within(socket, left).await else {
            break;
        };
        let update = &message["payload"]["data"]["stockChanged"];
        if let Some(stock) = update["stock"].as_i64() {
            seen.insert(id_of(&update["product"]["id"]), stock);
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_changes_reach_the_other_instance_even_when_redis_stalls_in_a_burst() {
    let Some(backend) = server_backend().await else {
        eprintln!("no database server backend: two instances need PostgreSQL or MySQL");
        return;
    };
    let redis = PrivateRedis::start().await;
    let database = FreshDatabase::create(backend).await;
    let mut settings = test_settings(database.url.clone());
    settings.redis.redis_url = Some(redis.url());
    settings.limits.rate_limit_user_per_sec = 100_000;
    let a = TestServer::start(backend.name, settings.clone()).await;
    let b = TestServer::start(backend.name, settings).await;
    let shop = a
        .stocked("재고", "잡화", (0..400).map(|_| (100, 1_000_000)))
        .await;
    let users = a.customers("u", [100_000; 40]).await;
    let mut subscriber = watch_stock(&b, &shop.ids).await;

    // while Redis hangs, A takes 1,000 orders of 8 products each, spread over 400 products: even
    // with the orders of one batch announced together, thousands of stock changes to publish
    redis.freeze();
    let answers = join_all(users.iter().enumerate().map(|(u, (user, _))| {
        let (a, shop) = (&a, &shop);
        async move {
            let mut answers = vec![];
            for round in 0..25 {
                let lines: Vec<(i64, i64)> = (0..8)
                    .map(|k| (shop.ids[(u * 10 + round * 8 + k) % shop.ids.len()], 1))
                    .collect();
                answers.push(
                    a.user(*user)
                        .post(PLACE, json!({ "items": items(&lines) }))
                        .await,
                );
            }
            answers
        }
    }))
    .await;
    redis.thaw();
    let placed = answers
        .iter()
        .flatten()
        .filter(|a| a["data"]["placeOrder"]["order"]["status"] == json!("COMPLETED"))
        .count();
    assert_eq!(placed, 1_000, "every order completed on A");

    let mut expected = HashMap::new();
    for &product in &shop.ids {
        expected.insert(product, stock(&a, product).await);
    }
    let seen = last_stock_seen(&mut subscriber, &expected, Duration::from_secs(30)).await;
    let missed: Vec<_> = expected
        .iter()
        .filter(|(product, stock)| seen.get(product) != Some(stock))
        .collect();
    assert!(
        missed.is_empty(),
        "B's subscriber ends with every product's final stock; missed (product, final stock): {missed:?}"
    );
    a.stop();
    b.stop();
    database.remove().await;
}

/// Starts a server of its own fresh database on `backend`, on the shared Redis with `prefix`.
async fn deployment(
    backend: &'static Backend,
    redis: &str,
    prefix: &str,
) -> (FreshDatabase, TestServer) {
    let database = FreshDatabase::create(backend).await;
    let mut settings = test_settings(database.url.clone());
    settings.redis.redis_url = Some(redis.to_owned());
    settings.redis.redis_key_prefix = prefix.to_owned();
    settings.ranking.ranking_refresh_ms = 50;
    let server = TestServer::start(backend.name, settings).await;
    (database, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_databases_on_one_redis_and_one_prefix_share_nothing() {
    let Some(redis) = backends().await.iter().find_map(|b| b.redis_url.clone()) else {
        eprintln!("no Redis in this run: nothing to share");
        return;
    };
    for backend in backends().await.iter().filter(|b| b.name != "sqlite") {
        let prefix = format!("same-prefix-{}-{}:", std::process::id(), backend.name);
        let (first_db, first) = deployment(backend, &redis, &prefix).await;
        let (second_db, second) = deployment(backend, &redis, &prefix).await;

        // fresh databases number everything from 1: the same ids mean different things
        let (buyer, [sold]) = first
            .shop("첫째", 1_000_000, [("첫째 상품", "잡화", 1_000, 100)])
            .await;
        let (rival, [unsold]) = second
            .shop("둘째", 1_000_000, [("둘째 상품", "잡화", 1_000, 100)])
            .await;
        assert_eq!(
            (buyer, sold),
            (rival, unsold),
            "[{}] ids collide",
            backend.name
        );
        let first_event = first
            .coupon_event("하나뿐", "FIXED", 100, 1, json!({}))
            .await;
        let second_event = second
            .coupon_event("하나뿐", "FIXED", 100, 1, json!({}))
            .await;
        assert_eq!(first_event, second_event);
        let mut subscriber = watch_stock(&second, &[unsold]).await;

        // the first shop sells, ranks and runs out of its one coupon
        let order = first
            .user(buyer)
            .data(PLACE, json!({ "items": items(&[(sold, 3)]) }))
            .await;
        assert_eq!(order["placeOrder"]["order"]["status"], json!("COMPLETED"));
        let issued = first
            .user(buyer)
            .data(ISSUE, json!({ "id": first_event }))
            .await;
        assert!(issued["issueCoupon"]["coupon"].is_object(), "{issued}");
        top_until(&first, 3, 5, |top| ranked_ids(top) == [sold]).await;

        // the second shop sold nothing, has its coupon, and heard of no stock change
        let ranking = second
            .anonymous()
            .data(
                "{ topSellers { entries { quantity product { name } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            ranking["topSellers"]["entries"],
            json!([]),
            "[{}] the second database's ranking is its own",
            backend.name
        );
        let issued = second
            .user(rival)
            .data(ISSUE, json!({ "id": second_event }))
            .await;
        assert!(
            issued["issueCoupon"]["coupon"].is_object(),
            "[{}] the second database's coupon is still there: {issued}",
            backend.name
        );
        let heard = receive_within(&mut subscriber, Duration::from_millis(500)).await;
        assert_eq!(
            heard, None,
            "[{}] no stock change of the other database",
            backend.name
        );
        // its own change does arrive
        second
            .user(rival)
            .data(PLACE, json!({ "items": items(&[(unsold, 1)]) }))
            .await;
        let own = receive_within(&mut subscriber, Duration::from_secs(5))
            .await
            .expect("its own stock change");
        assert_eq!(own["payload"]["data"]["stockChanged"]["stock"], json!(99));

        for (database, server) in [(first_db, first), (second_db, second)] {
            server.stop();
            database.remove().await;
        }
    }
}
