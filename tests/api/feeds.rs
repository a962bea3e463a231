//! Public subscriptions shared by their listeners: one execution per distinct document and
//! variables, the same bytes to every listener, a joining listener's snapshot, operations that
//! read the viewer never shared, and a sale pushed without waiting for the refresh interval (also
//! one made on another instance).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{TestServer, id_of, on_every_backend, on_every_backend_with};
use crate::ranking::{buy, fast_ranking, ranked_ids};
use crate::ws_client::{Socket, initialised, receive, receive_text, send};

const RANKING: &str = "subscription($limit: Int!) { rankingChanged(limit: $limit) { topSellers { entries { rank quantity product { id name } } } changes { product { id } rank previousRank movement } } }";

/// A socket subscribed to the ranking's first `limit`, with its first message (the snapshot).
async fn listener(server: &TestServer, limit: i64) -> (Socket, Value) {
    let mut socket = initialised(server, json!({})).await;
    send(
        &mut socket,
        json!({ "id": "r", "type": "subscribe", "payload": {
        "query": RANKING, "variables": { "limit": limit } } }),
    )
    .await;
    let first = receive(&mut socket).await;
    (socket, first)
}

fn ranking(message: &Value) -> &Value {
    &message["payload"]["data"]["rankingChanged"]
}

/// Waits until the server runs `running` shared executions (listeners leave asynchronously).
async fn running_feeds(server: &TestServer, running: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.shared_feeds().running != running {
        assert!(
            Instant::now() < deadline,
            "[{}] {:?}, expected {running} running",
            server.backend,
            server.shared_feeds()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listeners_of_one_public_subscription_share_one_execution_and_its_bytes() {
    on_every_backend_with(fast_ranking, |server| async move {
        let a = server
            .create_product("키보드", "키보드", 10_000, 1_000)
            .await;
        let b = server
            .create_product("마우스", "마우스", 10_000, 1_000)
            .await;
        let buyer = server.customer("buyer", 10_000_000).await;
        buy(&server, buyer, a, 5).await;
        crate::ranking::top_until(&server, 3, 3, |top| ranked_ids(top) == vec![a]).await;
        let before = server.shared_feeds();

        let (mut first, snapshot) = listener(&server, 3).await;
        let (mut second, same_snapshot) = listener(&server, 3).await;
        let (mut other_shape, _) = listener(&server, 2).await;
        assert_eq!(snapshot, same_snapshot);
        assert_eq!(ranked_ids(&ranking(&snapshot)["topSellers"]), vec![a]);
        let counts = server.shared_feeds();
        assert_eq!(
            (counts.started - before.started, counts.running),
            (2, 2),
            "[{}] one execution per distinct variables",
            server.backend
        );

        // one execution, the same bytes to both listeners
        buy(&server, buyer, b, 10).await;
        let update = receive_text(&mut first).await;
        assert_eq!(receive_text(&mut second).await, update);
        let update: Value = serde_json::from_str(&update).unwrap();
        assert_eq!(ranked_ids(&ranking(&update)["topSellers"]), vec![b, a]);
        let movements: Vec<&str> = ranking(&update)["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|change| change["movement"].as_str().unwrap())
            .collect();
        assert_eq!(movements, vec!["NEW", "DOWN"]);
        assert_eq!(
            ranked_ids(&ranking(&receive(&mut other_shape).await)["topSellers"]),
            vec![b, a]
        );

        // a late listener joins the running execution: its first message is the ranking now,
        // with no changes, as if it had subscribed alone
        let (mut late, joined) = listener(&server, 3).await;
        assert_eq!(ranking(&joined)["changes"], json!([]), "{joined}");
        assert_eq!(
            ranking(&joined)["topSellers"],
            ranking(&update)["topSellers"]
        );
        assert_eq!(server.shared_feeds().started, counts.started);
        buy(&server, buyer, a, 10).await;
        let update = receive_text(&mut first).await;
        assert_eq!(receive_text(&mut second).await, update);
        assert_eq!(receive_text(&mut late).await, update);
        let update: Value = serde_json::from_str(&update).unwrap();
        assert_eq!(ranked_ids(&ranking(&update)["topSellers"]), vec![a, b]);

        // a listener that completes leaves the others served; the last one stops the execution
        send(&mut first, json!({ "id": "r", "type": "complete" })).await;
        drop(first);
        drop(other_shape);
        running_feeds(&server, 1).await;
        drop(second);
        drop(late);
        running_feeds(&server, 0).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operations_that_read_the_viewer_are_never_shared() {
    on_every_backend(|server| async move {
        let alice = server.customer("alice", 1_000).await;
        let bob = server.customer("bob", 2_000).await;
        let product = server.create_product("웹캠", "카메라", 30_000, 10).await;
        let before = server.shared_feeds();
        for (user, balance) in [(alice, 1_000), (bob, 2_000)] {
            let mut socket = initialised(&server, json!({ "x-user-id": user.to_string() })).await;
            send(&mut socket, json!({ "id": "me", "type": "subscribe", "payload": {
                "query": "query { me { id balance } }" } }))
            .await;
            let answer = receive(&mut socket).await;
            assert_eq!(id_of(&answer["payload"]["data"]["me"]["id"]), user);
            assert_eq!(answer["payload"]["data"]["me"]["balance"], json!(balance));
            // a public subscription under a directive at its root runs on its own too
            send(&mut socket, json!({ "id": "s", "type": "subscribe", "payload": {
                "query": "subscription($ids: [ID!], $on: Boolean!) { stockChanged(productIds: $ids) @include(if: $on) { productId stock } }",
                "variables": { "ids": [product.to_string()], "on": true } } }))
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            server.shared_feeds().started,
            before.started,
            "[{}] nothing shared",
            server.backend
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sale_reaches_ranking_listeners_without_waiting_for_the_refresh_interval() {
    // a minute between recomputations: only a sale that wakes the worker can be heard in time
    let slow_refresh = |settings: &mut commerce::config::Settings| {
        settings.ranking.ranking_refresh_ms = 60_000;
    };
    on_every_backend_with(slow_refresh, |server| async move {
        let product = server.create_product("모니터", "모니터", 10_000, 100).await;
        let buyer = server.customer("buyer", 1_000_000).await;
        let (mut socket, _) = listener(&server, 1).await;
        // the worker's first round (at start) is behind it; the first sale is computed at once
        buy(&server, buyer, product, 3).await;
        let first_is = |update: Value, product: i64| {
            assert_eq!(
                ranked_ids(&ranking(&update)["topSellers"]),
                vec![product],
                "[{}] {update}",
                server.backend
            );
        };
        first_is(receive(&mut socket).await, product);

        // across instances (Redis): a sale on another instance is heard as soon, here
        if server.settings.redis.redis_url.is_some() {
            let other = TestServer::start(server.backend, server.settings.clone()).await;
            let second = server.create_product("키보드", "키보드", 10_000, 100).await;
            buy(&other, buyer, second, 5).await;
            first_is(receive(&mut socket).await, second);
            other.stop();
        }
    })
    .await;
}
