//! The order writer's batches (group commit): orders sent together are applied in one
//! transaction, and each still gets exactly the outcome it would get alone, in arrival order.
//! The servers here linger up to 300 ms for company, so requests sent together share a batch;
//! the statement count proves they did.

use std::collections::HashMap;

use commerce::config::Settings;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::harness::{
    TestServer, assert_invariants, error_code, id_of, items, on_every_backend_with, sample, stock,
};

const PLACE: &str = "mutation($items: [OrderItemInput!]!, $key: String) { placeOrder(input: {items: $items, idempotencyKey: $key}) {
    order { id status total }
    userErrors { code ... on OutOfStockError { available } ... on InsufficientBalanceError { balance required } } } }";

/// Lingering writers, several lanes: orders locking the same rows first share a lane's batch.
fn lingering(settings: &mut Settings) {
    settings.orders.order_batch_linger_us = 300_000;
    settings.orders.order_batch_max = 1_000;
    settings.orders.order_writers = Some(4);
    settings.limits.rate_limit_user_per_sec = 0;
}

async fn place(server: &TestServer, user: i64, items: Value, key: Option<&str>) -> Value {
    server
        .user(user)
        .data(PLACE, json!({ "items": items, "key": key }))
        .await["placeOrder"]
        .clone()
}

fn code(payload: &Value) -> &str {
    payload["userErrors"][0]["code"].as_str().unwrap_or("OK")
}

/// Statements the server ran during `work` (a batch costs about a dozen, whatever its size).
async fn statements_during<F: std::future::Future>(
    server: &TestServer,
    work: F,
) -> (F::Output, u64) {
    let before = server.statements_executed();
    let output = work.await;
    (output, server.statements_executed() - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_orders_of_one_user_in_one_batch_that_together_overspend() {
    on_every_backend_with(lingering, |server| async move {
        let (user, [product]) = server
            .shop(
                "두 번 주문",
                100_000,
                [("모니터", "디스플레이", 60_000, 10)],
            )
            .await;
        let (answers, statements) = statements_during(
            &server,
            join_all((0..2).map(|_| place(&server, user, items(&[(product, 1)]), None))),
        )
        .await;
        let mut codes: Vec<&str> = answers.iter().map(code).collect();
        codes.sort_unstable();
        assert_eq!(
            codes,
            ["INSUFFICIENT_BALANCE", "OK"],
            "[{}] {answers:?}",
            server.backend
        );
        let refused = answers.iter().find(|a| code(a) != "OK").unwrap();
        assert_eq!(
            (
                refused["userErrors"][0]["balance"].clone(),
                refused["userErrors"][0]["required"].clone()
            ),
            (json!(40_000), json!(60_000)),
            "judged against what the first left"
        );
        assert!(
            statements < 30,
            "[{}] one batch: {statements} statements",
            server.backend
        );
        assert_eq!(server.balance(user).await, 40_000);
        assert_invariants(&server, &HashMap::from([(product, 10)]), &[(user, 100_000)]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_unit_wanted_by_a_whole_batch_goes_to_the_first() {
    on_every_backend_with(lingering, |server| async move {
        let product = server.create_product("한정판", "수집", 10_000, 1).await;
        let users = server.customers("수집가", [50_000; 20]).await;
        let (answers, statements) = statements_during(
            &server,
            join_all(
                users
                    .iter()
                    .map(|&(user, _)| place(&server, user, items(&[(product, 1)]), None)),
            ),
        )
        .await;
        let winners = answers.iter().filter(|a| code(a) == "OK").count();
        assert_eq!(winners, 1, "[{}] {answers:?}", server.backend);
        for loser in answers.iter().filter(|a| code(a) != "OK") {
            assert_eq!(
                loser["userErrors"][0],
                json!({ "code": "OUT_OF_STOCK", "available": 0 })
            );
        }
        assert!(
            statements < 40,
            "[{}] one batch: {statements} statements",
            server.backend
        );
        assert_invariants(&server, &HashMap::from([(product, 1)]), &users).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotent_repeat_inside_a_batch_gets_the_first_order() {
    on_every_backend_with(lingering, |server| async move {
        let (user, [product]) = server
            .shop("재시도", 100_000, [("키보드", "입력", 10_000, 50)])
            .await;
        let same = || place(&server, user, items(&[(product, 2)]), Some("once"));
        let other = place(&server, user, items(&[(product, 1)]), Some("once"));
        let (answers, statements) = statements_during(&server, async {
            let (mut repeats, other) = tokio::join!(join_all((0..5).map(|_| same())), other);
            repeats.push(other);
            repeats
        })
        .await;
        // whichever request came first takes the key: its repeats get its order, the other
        // request IDEMPOTENCY_KEY_REUSED
        let (repeats, other) = answers.split_at(5);
        if code(&other[0]) == "IDEMPOTENCY_KEY_REUSED" {
            let first = &repeats[0]["order"]["id"];
            assert!(!first.is_null(), "[{}] {answers:?}", server.backend);
            assert!(
                repeats.iter().all(|a| a["order"]["id"] == *first),
                "[{}] {answers:?}",
                server.backend
            );
        } else {
            assert_eq!(code(&other[0]), "OK", "[{}] {answers:?}", server.backend);
            assert!(
                repeats.iter().all(|a| code(a) == "IDEMPOTENCY_KEY_REUSED"),
                "[{}] {answers:?}",
                server.backend
            );
        }
        assert!(
            statements < 40,
            "[{}] one batch: {statements} statements",
            server.backend
        );
        let count = server
            .user(user)
            .data("{ me { orders { totalCount } } }", json!({}))
            .await;
        assert_eq!(count["me"]["orders"]["totalCount"], json!(1), "one order");
        let paid = 100_000 - server.balance(user).await;
        assert!(paid == 20_000 || paid == 10_000, "charged once: {paid}");
    })
    .await;
}

/// Settings for 1,000 racing requests: no rate limit, patient pool, `writers` lanes.
fn racing(writers: u64) -> impl Fn(&mut Settings) {
    move |settings| {
        settings.limits.rate_limit_user_per_sec = 0;
        settings.database.db_acquire_timeout_ms = 30_000;
        settings.orders.order_writers = Some(writers);
    }
}

/// 1,000 orders of 100 users on `shelf` products (the first with `stock` units, each next 10
/// more) sent at once: each gets a business outcome (no deadlock or other error reaches a
/// client), stock and balances stay exact, and the orders still share transactions.
async fn race_a_thousand_orders(server: &TestServer, shelf: i64, stock: i64) {
    let shelf = server
        .stocked(
            "상품",
            "잡화",
            (0..shelf).map(|i| (1_000 * (i + 1), stock + i * 10)),
        )
        .await;
    let (stock, products) = (shelf.initial, shelf.ids);
    let users = server
        .customers("고객", (0..100).map(|i| 40_000 + 10_000 * (i % 4)))
        .await;
    let count = products.len() as i64;
    let orders = (0..1_000).map(|n: i64| {
        let (user, _) = users[(n * 37 % 100) as usize];
        let first = products[(n % count) as usize];
        let second = products[((n * 3 + 1) % count) as usize];
        let order = if first == second {
            vec![(first, 1)]
        } else {
            vec![(first, 1), (second, 1 + n % 2)]
        };
        place(server, user, items(&order), None)
    });
    let (answers, statements) = statements_during(server, join_all(orders)).await;
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    for answer in &answers {
        *outcomes.entry(code(answer)).or_default() += 1;
    }
    eprintln!(
        "[{}] 1,000 racing orders on {count} products: {outcomes:?}, {statements} statements",
        server.backend
    );
    assert!(
        outcomes
            .keys()
            .all(|c| ["OK", "OUT_OF_STOCK", "INSUFFICIENT_BALANCE"].contains(c)),
        "[{}] {outcomes:?}: {answers:?}",
        server.backend
    );
    assert!(outcomes.get("OK").copied().unwrap_or(0) > 0);
    assert!(
        statements < 5_000,
        "[{}] batched: {statements} statements for 1,000 orders",
        server.backend
    );
    assert_invariants(server, &stock, &users).await;
    let ids: Vec<i64> = answers
        .iter()
        .filter(|a| code(a) == "OK")
        .map(|a| id_of(&a["order"]["id"]))
        .collect();
    let distinct: std::collections::HashSet<&i64> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "every order its own id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_orders_from_a_hundred_users_on_ten_products_stay_exact() {
    on_every_backend_with(racing(1), |server| async move {
        race_a_thousand_orders(&server, 10, 40).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_orders_on_three_hot_products_stay_exact_across_eight_writers() {
    on_every_backend_with(racing(8), |server| async move {
        race_a_thousand_orders(&server, 3, 400).await;
        let metrics = server.metrics().await;
        assert!(
            sample(
                &metrics,
                r#"commerce_batch_lock_wait_seconds_count{writer="orders"}"#
            )
            .is_some_and(|batches| batches > 0.0),
            "lock waits are measured per batch"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_past_the_queue_bound_are_refused_unapplied_with_a_retry_hint() {
    on_every_backend_with(
        |settings| {
            racing(1)(settings);
            settings.orders.order_batch_max = 1;
            settings.orders.order_queue_max_wait_ms = 5;
        },
        |server| async move {
            let (user, [product]) = server
                .shop("붐비는 날", 10_000_000, [("양말", "의류", 1_000, 1_000)])
                .await;
            let shed_before = shed(&server).await;
            let bodies = join_all((0..300).map(|_| async {
                server
                    .user(user)
                    .post(PLACE, json!({ "items": items(&[(product, 1)]) }))
                    .await
            }))
            .await;
            let (refused, placed): (Vec<&Value>, Vec<&Value>) =
                bodies.iter().partition(|body| body.get("errors").is_some());
            for body in &refused {
                assert_eq!(error_code(body), "SERVICE_UNAVAILABLE", "{body}");
                assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], 1);
                assert!(body["data"]["placeOrder"].is_null(), "{body}");
            }
            for body in &placed {
                assert_eq!(code(&body["data"]["placeOrder"]), "OK", "{body}");
            }
            assert!(
                !refused.is_empty() && !placed.is_empty(),
                "[{}] a queue of 300 one-order batches passes a 5 ms bound: {} refused",
                server.backend,
                refused.len()
            );
            assert!(shed(&server).await - shed_before >= refused.len() as f64);
            let sold = placed.len() as i64;
            assert_eq!(stock(&server, product).await, 1_000 - sold);
            assert_eq!(server.balance(user).await, 10_000_000 - 1_000 * sold);
            assert_eq!(server.completed_orders(user).await, sold as u64);
        },
    )
    .await;
}

async fn shed(server: &TestServer) -> f64 {
    let metrics = server.metrics().await;
    sample(&metrics, r#"commerce_batch_shed_total{writer="orders"}"#).unwrap_or(0.0)
}
