//! Orders: the seeds' scenarios, every life-cycle path, bad input, idempotency, the DataLoader,
//! and races of real requests checked against the invariants afterwards.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};

use crate::harness::{
    FreshDatabase, TestServer, assert_invariants, backends, id_of, items, ledger, on_every_backend,
    on_every_backend_with, stock, test_settings, units_in_orders,
};

const ORDER_FIELDS: &str =
    "id status subtotal discount total createdAt paidAt expiresAt cancelledAt
  items { product { id name } quantity unitPrice lineTotal } payment { id amount status }";

fn place_mutation(name: &str) -> String {
    format!(
        "mutation($items: [OrderItemInput!]!, $key: String) {{ {name}(input: {{items: $items, idempotencyKey: $key}}) {{
           order {{ {ORDER_FIELDS} }}
           userErrors {{ code message field
             ... on OutOfStockError {{ productId requested available alternatives {{ id name stock }} }}
             ... on InsufficientBalanceError {{ balance required }} }} }} }}"
    )
}

/// placeOrder (or createOrder) as `user`; returns the payload.
fn order<'a>(
    server: &'a TestServer,
    mutation: &'a str,
    user: i64,
    lines: &[(i64, i64)],
) -> impl Future<Output = Value> + use<'a> {
    let variables = json!({ "items": items(lines) });
    async move {
        let data = server
            .user(user)
            .data(&place_mutation(mutation), variables)
            .await;
        data[mutation].clone()
    }
}

async fn order_action(server: &TestServer, mutation: &str, user: i64, order_id: &Value) -> Value {
    let query = format!(
        "mutation($id: ID!) {{ {mutation}(input: {{orderId: $id}}) {{ order {{ {ORDER_FIELDS} }} userErrors {{ code message field }} }} }}"
    );
    server
        .user(user)
        .data(&query, json!({ "id": order_id }))
        .await[mutation]
        .clone()
}

fn codes(payload: &Value) -> Vec<String> {
    payload["userErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_owned())
        .collect()
}

/// What a client cache needs from each payload: the viewer with their new balance and the
/// order's products with their new stock, so no second query is needed after a mutation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_carry_the_viewer_and_the_products_they_changed() {
    const CHANGED: &str = "order { id status items { product { id stock } } }
        viewer { id balance } userErrors { code }";
    on_every_backend(|server| async move {
        let (kim, [mouse]) = server
            .shop("김철수", 50_000, [("무선 마우스", "마우스", 10_000, 5)])
            .await;
        let me = json!(kim.to_string());
        let user = server.user(kim);
        let run = |mutation: &'static str, input: Value| {
            let input_type = match mutation {
                "placeOrder" | "createOrder" => "PlaceOrderInput",
                "payOrder" => "PayOrderInput",
                _ => "CancelOrderInput",
            };
            let query = format!(
                "mutation($input: {input_type}!) {{ {mutation}(input: $input) {{ {CHANGED} }} }}"
            );
            let user = &user;
            async move { user.data(&query, json!({ "input": input })).await[mutation].clone() }
        };
        let seen = |payload: &Value| {
            (
                payload["viewer"]["id"].clone(),
                payload["viewer"]["balance"].clone(),
                payload["order"]["items"][0]["product"]["stock"].clone(),
                payload["order"]["status"].clone(),
            )
        };
        let line = json!([{ "productId": mouse.to_string(), "quantity": 2 }]);

        let placed = run("placeOrder", json!({ "items": line })).await;
        assert_eq!(seen(&placed), (me.clone(), json!(30_000), json!(3), json!("COMPLETED")));
        let created = run("createOrder", json!({ "items": line })).await;
        assert_eq!(seen(&created), (me.clone(), json!(30_000), json!(1), json!("PENDING")));
        let id = created["order"]["id"].clone();
        let paid = run("payOrder", json!({ "orderId": id })).await;
        assert_eq!(seen(&paid), (me.clone(), json!(10_000), json!(1), json!("COMPLETED")));
        let refunded = run("cancelOrder", json!({ "orderId": id })).await;
        assert_eq!(seen(&refunded), (me.clone(), json!(30_000), json!(3), json!("REFUNDED")));
        // refused: the viewer is still there, as they are
        let refused = run("placeOrder", json!({ "items": [{ "productId": mouse.to_string(), "quantity": 4 }] })).await;
        assert_eq!(refused["userErrors"][0]["code"], json!("OUT_OF_STOCK"));
        assert_eq!(refused["viewer"]["balance"], json!(30_000));

        let charged = server
            .user(kim)
            .data(
                "mutation { chargeBalance(input: {amount: 5000}) { balance viewer { id balance } } }",
                json!({}),
            )
            .await["chargeBalance"]
            .clone();
        assert_eq!(charged["viewer"], json!({ "id": me, "balance": 35_000 }));
        assert_eq!(charged["balance"], json!(35_000));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_1_create_then_pay() {
    on_every_backend(|server| async move {
        let (kim, [mouse]) = server
            .shop("김철수", 50_000, [("무선 마우스", "마우스", 25_000, 50)])
            .await;

        let created = order(&server, "createOrder", kim, &[(mouse, 1)]).await;
        assert_eq!(created["userErrors"], json!([]));
        let pending = &created["order"];
        assert_eq!(pending["status"], json!("PENDING"));
        assert_eq!(pending["total"], json!(25_000));
        assert!(pending["expiresAt"].is_string());
        assert_eq!(pending["payment"], Value::Null);
        assert_eq!(stock(&server, mouse).await, 49, "a pending order holds its stock");
        assert_eq!(server.balance(kim).await, 50_000, "nothing is paid yet");

        let paid = order_action(&server, "payOrder", kim, &pending["id"]).await;
        assert_eq!(paid["userErrors"], json!([]));
        let completed = &paid["order"];
        assert_eq!(completed["status"], json!("COMPLETED"));
        assert_eq!(completed["payment"]["status"], json!("SUCCESS"));
        assert_eq!(completed["payment"]["amount"], json!(25_000));
        assert!(completed["paidAt"].is_string());
        assert_eq!(completed["expiresAt"], Value::Null);
        assert_eq!(
            completed["items"],
            json!([{ "product": { "id": mouse.to_string(), "name": "무선 마우스" }, "quantity": 1, "unitPrice": 25_000, "lineTotal": 25_000 }])
        );
        assert_eq!(server.balance(kim).await, 25_000);
        assert_eq!(stock(&server, mouse).await, 49);
        let (balance, sum, kinds) = ledger(&server, kim).await;
        assert_eq!((balance, sum), (25_000, 25_000));
        assert_eq!(kinds, vec!["PAYMENT", "CHARGE"]);

        let again = order_action(&server, "payOrder", kim, &pending["id"]).await;
        assert_eq!(codes(&again), vec!["INVALID_STATE_TRANSITION"]);
        assert_eq!(server.balance(kim).await, 25_000);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_4_insufficient_balance_then_charge_and_order() {
    on_every_backend(|server| async move {
        let (kim, [monitor]) = server
            .shop("김철수", 15_000, [("모니터", "모니터", 120_000, 10)])
            .await;
        let refused = order(&server, "placeOrder", kim, &[(monitor, 1)]).await;
        assert_eq!(refused["order"], Value::Null);
        let error = &refused["userErrors"][0];
        assert_eq!(error["code"], json!("INSUFFICIENT_BALANCE"));
        assert_eq!(
            (error["balance"].as_i64(), error["required"].as_i64()),
            (Some(15_000), Some(120_000))
        );
        assert_eq!(
            stock(&server, monitor).await,
            10,
            "a refused order changes no stock"
        );
        assert_eq!(units_in_orders(&server, kim, "COMPLETED").await.len(), 0);
        let none = server
            .user(kim)
            .data("{ me { orders { totalCount } } }", json!({}))
            .await;
        assert_eq!(
            none["me"]["orders"]["totalCount"],
            json!(0),
            "a refused order leaves no order row"
        );

        server.charge(kim, 110_000).await;
        assert_eq!(server.balance(kim).await, 125_000);
        let placed = order(&server, "placeOrder", kim, &[(monitor, 1)]).await;
        assert_eq!(placed["order"]["status"], json!("COMPLETED"));
        assert_eq!(placed["order"]["payment"]["amount"], json!(120_000));
        assert_eq!(server.balance(kim).await, 5_000);
        assert_eq!(ledger(&server, kim).await.0, 5_000);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn problem_analysis_given_when_then() {
    on_every_backend(|server| async move {
        // 1: 10,000 won, X at 3,000 with 5 in stock, order 2 -> 4,000 won, 3 left, COMPLETED
        let (a, [x]) = server.shop("A", 10_000, [("X", "c", 3_000, 5)]).await;
        let placed = order(&server, "placeOrder", a, &[(x, 2)]).await;
        assert_eq!(placed["order"]["status"], json!("COMPLETED"));
        assert_eq!(server.balance(a).await, 4_000);
        assert_eq!(stock(&server, x).await, 3);

        // 2: A and B with 10,000 won each, Y at 5,000 with 1 in stock, both order at once
        let (b, [y]) = server.shop("B", 10_000, [("Y", "c", 5_000, 1)]).await;
        server.charge(a, 6_000).await;
        let (first, second) = tokio::join!(
            order(&server, "placeOrder", a, &[(y, 1)]),
            order(&server, "placeOrder", b, &[(y, 1)])
        );
        let mut outcomes = vec![codes(&first), codes(&second)];
        outcomes.sort();
        assert_eq!(outcomes, vec![vec![], vec!["OUT_OF_STOCK".to_owned()]]);
        assert_eq!(stock(&server, y).await, 0);

        // 3: C with 3,000 won orders Z at 5,000: refused, no order, stock unchanged
        let (c, [z]) = server.shop("C", 3_000, [("Z", "c", 5_000, 7)]).await;
        let refused = order(&server, "placeOrder", c, &[(z, 1)]).await;
        assert_eq!(codes(&refused), vec!["INSUFFICIENT_BALANCE"]);
        assert_eq!(stock(&server, z).await, 7);
        assert_eq!(server.balance(c).await, 3_000);
        let none = server
            .user(c)
            .data("{ me { orders { totalCount } } }", json!({}))
            .await;
        assert_eq!(none["me"]["orders"]["totalCount"], json!(0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_3_out_of_stock_reports_every_line_and_alternatives() {
    on_every_backend(|server| async move {
        let (kim, [gaming, wireless, sold_out, keyboard]) = server
            .shop(
                "김철수",
                80_000,
                [
                    ("게이밍 마우스", "마우스", 65_000, 1),
                    ("무선 마우스", "마우스", 25_000, 50),
                    ("품절 마우스", "마우스", 10_000, 0),
                    ("키보드", "키보드", 45_000, 1),
                ],
            )
            .await;
        let rival = server.customer("rival", 80_000).await;
        assert_eq!(
            order(&server, "placeOrder", rival, &[(gaming, 1)]).await["order"]["status"],
            json!("COMPLETED")
        );

        let refused = order(&server, "placeOrder", kim, &[(gaming, 1), (keyboard, 2)]).await;
        assert_eq!(refused["order"], Value::Null);
        let errors = refused["userErrors"].as_array().unwrap();
        assert_eq!(errors.len(), 2, "every failing line at once: {errors:?}");
        let gaming_error = errors
            .iter()
            .find(|e| id_of(&e["productId"]) == gaming)
            .unwrap();
        assert_eq!(gaming_error["code"], json!("OUT_OF_STOCK"));
        assert_eq!(
            (
                gaming_error["requested"].as_i64(),
                gaming_error["available"].as_i64()
            ),
            (Some(1), Some(0))
        );
        let alternatives: Vec<i64> = gaming_error["alternatives"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| id_of(&p["id"]))
            .collect();
        assert_eq!(
            alternatives,
            vec![wireless],
            "in stock, same category, not itself, not {sold_out}"
        );
        let keyboard_error = errors
            .iter()
            .find(|e| id_of(&e["productId"]) == keyboard)
            .unwrap();
        assert_eq!(
            (
                keyboard_error["requested"].as_i64(),
                keyboard_error["available"].as_i64()
            ),
            (Some(2), Some(1))
        );
        assert_eq!(
            stock(&server, keyboard).await,
            1,
            "nothing of a refused order is applied"
        );
        assert_eq!(server.balance(kim).await, 80_000);

        let alternative = order(&server, "placeOrder", kim, &[(wireless, 1)]).await;
        assert_eq!(alternative["order"]["status"], json!("COMPLETED"));
        assert_eq!(server.balance(kim).await, 55_000);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_unit_with_a_hundred_buyers_sells_once() {
    on_every_backend(|server| async move {
        let product = server.create_product("게이밍 마우스", "마우스", 65_000, 1).await;
        let buyers = server.customers("buyer", [100_000; 100]).await;
        let started = Instant::now();
        let results = join_all(buyers.iter().map(|(user, _)| order(&server, "placeOrder", *user, &[(product, 1)]))).await;
        let elapsed = started.elapsed();
        let completed = results.iter().filter(|r| r["order"]["status"] == json!("COMPLETED")).count();
        let out_of_stock = results.iter().filter(|r| codes(r) == vec!["OUT_OF_STOCK"]).count();
        eprintln!("[{}] 100 buyers for 1 unit: {completed} completed, {out_of_stock} out of stock in {elapsed:?}", server.backend);
        assert_eq!((completed, out_of_stock), (1, 99));
        assert_eq!(stock(&server, product).await, 0);
        assert_invariants(&server, &HashMap::from([(product, 1)]), &buyers).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_units_two_hundred_buyers_exactly_fifty_sell() {
    on_every_backend(|server| async move {
        let product = server
            .create_product("무선 마우스", "마우스", 25_000, 50)
            .await;
        let buyers = server.customers("buyer", [30_000; 200]).await;
        let started = Instant::now();
        let results = join_all(
            buyers
                .iter()
                .map(|(user, _)| order(&server, "placeOrder", *user, &[(product, 1)])),
        )
        .await;
        let elapsed = started.elapsed();
        let completed = results
            .iter()
            .filter(|r| r["order"]["status"] == json!("COMPLETED"))
            .count();
        let refused = results
            .iter()
            .filter(|r| codes(r) == vec!["OUT_OF_STOCK"])
            .count();
        eprintln!(
            "[{}] 200 buyers for 50 units: {completed} completed in {elapsed:?}",
            server.backend
        );
        assert_eq!((completed, refused), (50, 150));
        assert_eq!(stock(&server, product).await, 0);
        assert_invariants(&server, &HashMap::from([(product, 50)]), &buyers).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_random_multi_product_orders_keep_every_invariant() {
    on_every_backend(|server| async move {
        let shelf = server
            .stocked("p", "mixed", (0..10).map(|i| (1_000 * (i + 1), 60 + i * 5)))
            .await;
        let (initial, products) = (shelf.initial, shelf.ids);
        let users = server
            .customers("u", (0..20).map(|i| 150_000 + 10_000 * i))
            .await;
        // a deterministic pseudo-random mix: 2-5 lines, products in any order, some duplicated
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let orders: Vec<(i64, Vec<(i64, i64)>)> = (0..200)
            .map(|_| {
                let user = users[next(20) as usize].0;
                let lines = (0..2 + next(4))
                    .map(|_| (products[next(10) as usize], 1 + next(3) as i64))
                    .collect();
                (user, lines)
            })
            .collect();
        let started = Instant::now();
        let results = join_all(
            orders
                .iter()
                .map(|(user, lines)| order(&server, "placeOrder", *user, lines)),
        )
        .await;
        let elapsed = started.elapsed();
        let mut outcomes: HashMap<String, usize> = HashMap::new();
        for result in &results {
            let key = if result["order"]["status"] == json!("COMPLETED") {
                "COMPLETED".to_owned()
            } else {
                codes(result).join("+")
            };
            *outcomes.entry(key).or_default() += 1;
        }
        eprintln!(
            "[{}] 200 random orders in {elapsed:?}: {outcomes:?}",
            server.backend
        );
        for key in outcomes.keys() {
            assert!(
                key == "COMPLETED"
                    || key
                        .split('+')
                        .all(|c| c == "OUT_OF_STOCK" || c == "INSUFFICIENT_BALANCE"),
                "unexpected outcome {key}"
            );
        }
        assert!(outcomes.get("COMPLETED").copied().unwrap_or(0) > 0);
        assert_invariants(&server, &initial, &users).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_fifty_concurrent_orders_never_overdraws() {
    on_every_backend(|server| async move {
        let (user, [product]) = server
            .shop(
                "spender",
                7 * 30_000 + 20_000,
                [("이어폰", "오디오", 30_000, 1_000)],
            )
            .await;
        let results =
            join_all((0..50).map(|_| order(&server, "placeOrder", user, &[(product, 1)]))).await;
        let completed = results
            .iter()
            .filter(|r| r["order"]["status"] == json!("COMPLETED"))
            .count();
        let refused = results
            .iter()
            .filter(|r| codes(r) == vec!["INSUFFICIENT_BALANCE"])
            .count();
        assert_eq!((completed, refused), (7, 43));
        assert_eq!(server.balance(user).await, 20_000);
        assert_invariants(
            &server,
            &HashMap::from([(product, 1_000)]),
            &[(user, 230_000)],
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_refund_paths() {
    on_every_backend(|server| async move {
        let (user, [webcam, earphones]) = server
            .shop(
                "changes mind",
                100_000,
                [
                    ("웹캠", "카메라", 30_000, 10),
                    ("이어폰", "오디오", 20_000, 10),
                ],
            )
            .await;

        let pending = order(&server, "createOrder", user, &[(webcam, 2)]).await["order"].clone();
        assert_eq!(stock(&server, webcam).await, 8);
        let cancelled = order_action(&server, "cancelOrder", user, &pending["id"]).await;
        assert_eq!(cancelled["order"]["status"], json!("CANCELLED"));
        assert!(cancelled["order"]["cancelledAt"].is_string());
        assert_eq!(
            stock(&server, webcam).await,
            10,
            "cancel releases the held stock"
        );
        assert_eq!(
            codes(&order_action(&server, "cancelOrder", user, &pending["id"]).await),
            vec!["INVALID_STATE_TRANSITION"]
        );
        assert_eq!(
            codes(&order_action(&server, "payOrder", user, &pending["id"]).await),
            vec!["INVALID_STATE_TRANSITION"]
        );
        assert_eq!(server.balance(user).await, 100_000);

        let completed =
            order(&server, "placeOrder", user, &[(webcam, 1), (earphones, 2)]).await["order"]
                .clone();
        assert_eq!(completed["total"], json!(70_000));
        assert_eq!(server.balance(user).await, 30_000);
        let refunded = order_action(&server, "cancelOrder", user, &completed["id"]).await;
        assert_eq!(refunded["order"]["status"], json!("REFUNDED"));
        assert_eq!(refunded["order"]["payment"]["status"], json!("REFUNDED"));
        assert_eq!(server.balance(user).await, 100_000);
        assert_eq!(
            (
                stock(&server, webcam).await,
                stock(&server, earphones).await
            ),
            (10, 10)
        );
        let (balance, sum, kinds) = ledger(&server, user).await;
        assert_eq!((balance, sum), (100_000, 100_000));
        assert_eq!(kinds, vec!["REFUND", "PAYMENT", "CHARGE"]);
        assert_eq!(
            codes(&order_action(&server, "cancelOrder", user, &completed["id"]).await),
            vec!["INVALID_STATE_TRANSITION"]
        );
        assert_eq!(
            server.balance(user).await,
            100_000,
            "a second cancel refunds nothing"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_orders_expire_and_release_their_stock() {
    on_every_backend_with(
        |settings| {
            settings.orders.order_ttl_secs = 1;
            settings.orders.order_expiry_sweep_ms = 100;
        },
        |server| async move {
            let (user, [product]) = server
                .shop("forgetful", 300_000, [("모니터", "모니터", 120_000, 3)])
                .await;
            let pending =
                order(&server, "createOrder", user, &[(product, 2)]).await["order"].clone();
            assert_eq!(stock(&server, product).await, 1);
            let query = "query($id: ID!) { order(id: $id) { status } }";
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let status = server
                    .user(user)
                    .data(query, json!({ "id": pending["id"] }))
                    .await["order"]["status"]
                    .clone();
                if status == json!("EXPIRED") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the order did not expire: {status}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(
                stock(&server, product).await,
                3,
                "expiry releases the held stock"
            );
            assert_eq!(
                codes(&order_action(&server, "payOrder", user, &pending["id"]).await),
                vec!["INVALID_STATE_TRANSITION"]
            );
            assert_eq!(server.balance(user).await, 300_000);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_racing_payment_has_exactly_one_winner() {
    on_every_backend_with(
        |settings| {
            settings.orders.order_ttl_secs = 1;
            settings.orders.order_expiry_sweep_ms = 20;
        },
        |server| async move {
            let (user, [product]) = server
                .shop("last second", 100_000, [("이어폰", "오디오", 1_000, 100)])
                .await;
            let mut pending = vec![];
            for _ in 0..20 {
                pending.push(
                    order(&server, "createOrder", user, &[(product, 1)]).await["order"].clone(),
                );
            }
            // pay around the expiry instant: some before, some after, while the worker sweeps
            tokio::time::sleep(Duration::from_millis(850)).await;
            let results = join_all(pending.iter().enumerate().map(|(i, o)| {
                let server = &server;
                async move {
                    tokio::time::sleep(Duration::from_millis(15 * i as u64)).await;
                    order_action(server, "payOrder", user, &o["id"]).await
                }
            }))
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut paid = 0;
            for (result, created) in results.iter().zip(&pending) {
                let status = server
                    .user(user)
                    .data(
                        "query($id: ID!) { order(id: $id) { status } }",
                        json!({ "id": created["id"] }),
                    )
                    .await["order"]["status"]
                    .clone();
                if result["order"]["status"] == json!("COMPLETED") {
                    assert_eq!(status, json!("COMPLETED"));
                    paid += 1;
                } else {
                    assert_eq!(codes(result), vec!["INVALID_STATE_TRANSITION"]);
                    assert_eq!(status, json!("EXPIRED"));
                }
            }
            eprintln!(
                "[{}] payments racing expiry: {paid} of 20 paid",
                server.backend
            );
            assert_eq!(server.balance(user).await, 100_000 - 1_000 * paid);
            assert_eq!(stock(&server, product).await, 100 - paid);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    on_every_backend(|server| async move {
        let (user, [product]) = server
            .shop("sloppy", 100_000, [("웹캠", "카메라", 30_000, 10)])
            .await;
        let other = server.customer("other", 100_000).await;
        let place = place_mutation("placeOrder");
        let cases = [
            (json!([]), "INVALID_INPUT", json!(["input", "items"])),
            (json!([{ "productId": product.to_string(), "quantity": 0 }]), "INVALID_INPUT", json!(["input", "items", "0", "quantity"])),
            (json!([{ "productId": product.to_string(), "quantity": -2 }]), "INVALID_INPUT", json!(["input", "items", "0", "quantity"])),
            (json!([{ "productId": product.to_string(), "quantity": 1_001 }]), "INVALID_INPUT", json!(["input", "items", "0", "quantity"])),
            (json!([{ "productId": product.to_string(), "quantity": 600 }, { "productId": product.to_string(), "quantity": 600 }]), "INVALID_INPUT", json!(["input", "items"])),
            (json!([{ "productId": "abc", "quantity": 1 }]), "INVALID_INPUT", json!(["input", "items", "0", "productId"])),
            (json!([{ "productId": "987654", "quantity": 1 }]), "NOT_FOUND", json!(["input", "items"])),
        ];
        for (lines, code, field) in cases {
            let data = server.user(user).data(&place, json!({ "items": lines })).await;
            let error = &data["placeOrder"]["userErrors"][0];
            assert_eq!((error["code"].clone(), error["field"].clone()), (json!(code), field), "{lines}");
            assert_eq!(data["placeOrder"]["order"], Value::Null);
        }
        let huge = server.user(user).post(&place, json!({ "items": [{ "productId": product.to_string(), "quantity": 3_000_000_000u64 }] })).await;
        assert!(huge["errors"].is_array(), "a quantity beyond Int is a GraphQL error: {huge}");
        assert_eq!(stock(&server, product).await, 10);
        assert_eq!(server.balance(user).await, 100_000);

        // duplicate lines of one product are merged, not double counted
        let merged = order(&server, "placeOrder", user, &[(product, 1), (product, 2)]).await;
        assert_eq!(merged["order"]["items"][0]["quantity"], json!(3));
        assert_eq!(merged["order"]["total"], json!(90_000));
        assert_eq!(stock(&server, product).await, 7);

        // someone else's order is not found, for every action and for reading
        let theirs = order(&server, "createOrder", other, &[(product, 1)]).await["order"].clone();
        for action in ["payOrder", "cancelOrder"] {
            let result = order_action(&server, action, user, &theirs["id"]).await;
            assert_eq!(codes(&result), vec!["NOT_FOUND"], "{action}");
        }
        let read = server.user(user).data("query($id: ID!) { order(id: $id) { id } }", json!({ "id": theirs["id"] })).await;
        assert_eq!(read["order"], Value::Null);
        let admin_read = server.admin().data("query($id: ID!) { order(id: $id) { status } }", json!({ "id": theirs["id"] })).await;
        assert_eq!(admin_read["order"]["status"], json!("PENDING"));
        for malformed in ["abc", "0", "-5"] {
            let result = order_action(&server, "payOrder", user, &json!(malformed)).await;
            assert_eq!(codes(&result), vec!["INVALID_INPUT"], "{malformed}");
        }
        assert_eq!(server.balance(other).await, 100_000);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_orders_are_placed_once() {
    on_every_backend(|server| async move {
        let (user, [product]) = server
            .shop(
                "double clicker",
                500_000,
                [("키보드", "키보드", 45_000, 100)],
            )
            .await;
        let place = place_mutation("placeOrder");
        let variables = json!({ "items": items(&[(product, 1)]), "key": "order-1" });
        let caller = server.user(user);
        let answers = join_all((0..10).map(|_| caller.data(&place, variables.clone()))).await;
        let ids: Vec<Value> = answers
            .iter()
            .map(|a| a["placeOrder"]["order"]["id"].clone())
            .collect();
        assert!(
            ids.iter().all(|id| id == &ids[0] && id.is_string()),
            "{ids:?}"
        );
        assert_eq!(stock(&server, product).await, 99);
        assert_eq!(server.balance(user).await, 455_000);
        let reused = server
            .user(user)
            .data(
                &place,
                json!({ "items": items(&[(product, 2)]), "key": "order-1" }),
            )
            .await;
        assert_eq!(codes(&reused["placeOrder"]), vec!["IDEMPOTENCY_KEY_REUSED"]);
        assert_eq!(stock(&server, product).await, 99);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_orders_costs_a_constant_number_of_queries() {
    on_every_backend(|server| async move {
        let (user, products) = server
            .shop(
                "collector",
                1_000_000,
                [("a", "c", 100, 1_000), ("b", "c", 200, 1_000), ("c", "c", 300, 1_000)],
            )
            .await;
        let list = "query($first: Int!) { me { orders(first: $first) { edges { node { id total payment { amount } items { quantity product { id name price } } } } } } }";
        let mut cost = vec![];
        for count in [5, 20] {
            while server.user(user).data("{ me { orders { totalCount } } }", json!({})).await["me"]["orders"]["totalCount"].as_i64().unwrap() < count {
                order(&server, "placeOrder", user, &[(products[0], 1), (products[1], 1), (products[2], 1)]).await;
            }
            let (cheapest, data) = server
                .cheapest_query(user, list, json!({ "first": count }))
                .await;
            cost.push(cheapest);
            let edges = data["me"]["orders"]["edges"].as_array().unwrap();
            assert_eq!(edges.len() as i64, count);
            assert!(edges.iter().all(|e| e["node"]["items"].as_array().unwrap().len() == 3));
        }
        eprintln!("[{}] statements to list 5 and 20 orders: {cost:?}", server.backend);
        assert_eq!(cost[0], cost[1], "listing 20 orders costs as many statements as 5");
        assert!(cost[1] <= 8, "{cost:?}");
    })
    .await;
}

/// How often PostgreSQL read `orders` whole, and the rows the counted orders wrote.
struct OrdersTableScans {
    sequential: i64,
    orders_inserted: i64,
    payments_inserted: i64,
}

/// `pg_stat_user_tables` once it counts `orders` rows (and as many payments): each backend flushes
/// its counters about once a second (an idle one within ~10 s), every table's at once, so the
/// scans of the transactions that wrote them are in.
async fn orders_table_scans(server: &TestServer, orders: i64) -> OrdersTableScans {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = server
            .database()
            .conn()
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT relname, seq_scan, n_tup_ins FROM pg_stat_user_tables
                 WHERE relname IN ('orders', 'payments')",
            ))
            .await
            .unwrap();
        let mut scans = OrdersTableScans {
            sequential: 0,
            orders_inserted: 0,
            payments_inserted: 0,
        };
        for row in rows {
            let inserted: i64 = row.try_get("", "n_tup_ins").unwrap();
            match row.try_get::<String>("", "relname").unwrap().as_str() {
                "orders" => {
                    scans.sequential = row.try_get("", "seq_scan").unwrap();
                    scans.orders_inserted = inserted;
                }
                _ => scans.payments_inserted = inserted,
            }
        }
        if scans.orders_inserted >= orders && scans.payments_inserted >= orders {
            return scans;
        }
        assert!(
            Instant::now() < deadline,
            "the statistics never counted {orders} orders and payments: {} and {}",
            scans.orders_inserted,
            scans.payments_inserted
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue #12: on a fresh PostgreSQL database whose empty tables were analyzed (as autovacuum,
/// `vacuumdb --analyze` or a restore leave them), the foreign-key checks of the items and payment
/// of every order kept a plan made while `orders` was believed empty: a sequential scan of the
/// whole, growing table, ~3 per order. Once the first few hundred orders are in (and the server
/// has refreshed the statistics it finds stale), no order may scan it any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_on_a_fresh_analyzed_database_never_scan_the_orders_table() {
    let Some(backend) = backends()
        .await
        .iter()
        .find(|b| b.name.starts_with("postgres"))
    else {
        eprintln!("no PostgreSQL backend: this test is about PostgreSQL's plans");
        return;
    };
    let database = FreshDatabase::create(backend).await;
    let mut settings = test_settings(database.url.clone());
    settings.redis.redis_url = backend.redis_url.clone();
    settings.redis.redis_key_prefix = format!("{}:", database.name);
    let server = TestServer::start(backend.name, settings).await;
    server
        .database()
        .conn()
        .execute_unprepared("ANALYZE")
        .await
        .unwrap();
    let shelf = server
        .stocked("p", "fresh", [(1_000, 1_000_000), (2_000, 1_000_000)])
        .await;
    let users = server.customers("u", [1_000_000; 10]).await;
    let place = |count: usize| {
        let (server, products, users) = (&server, &shelf.ids, &users);
        async move {
            let placed = join_all((0..count).map(|i| {
                let lines = [(products[0], 1), (products[1], 1)];
                order(server, "placeOrder", users[i % users.len()].0, &lines)
            }))
            .await;
            for payload in placed {
                assert_eq!(payload["order"]["status"], json!("COMPLETED"), "{payload}");
            }
        }
    };

    // ~600 orders: `orders` grows past the few pages where reading it whole is the cheaper plan
    place(600).await;
    let warmed = orders_table_scans(&server, 600).await;
    place(300).await;
    let after = orders_table_scans(&server, 900).await;
    let scans = after.sequential - warmed.sequential;
    eprintln!(
        "sequential scans of orders: {} in the first 600 orders, {scans} in the next 300",
        warmed.sequential
    );
    assert!(
        scans <= 30,
        "{scans} sequential scans of orders for 300 orders (today's plans: ~900)"
    );
    server.stop();
    database.remove().await;
}

/// Every instant is kept to the microsecond on every backend: what a payload answered is what a
/// later read gives (MySQL's `TIMESTAMP` kept whole seconds: a PENDING order expired up to a
/// second before its `expiresAt`, a coupon event opened before its `startsAt`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instants_read_back_as_they_were_answered() {
    on_every_backend(|server| async move {
        let user = server.customer("초침", 100_000).await;
        let mouse = server.create_product("마우스", "마우스", 10_000, 10).await;
        let line = json!([{ "productId": mouse.to_string(), "quantity": 1 }]);
        let created = server
            .user(user)
            .data(&place_mutation("createOrder"), json!({ "items": line }))
            .await["createOrder"]["order"]
            .clone();
        let read_order = || async {
            server
                .user(user)
                .data(
                    "query($id: ID!) { order(id: $id) { createdAt expiresAt paidAt } }",
                    json!({ "id": created["id"] }),
                )
                .await["order"]
                .clone()
        };
        let pending = read_order().await;
        assert_eq!(
            (&pending["createdAt"], &pending["expiresAt"]),
            (&created["createdAt"], &created["expiresAt"]),
            "[{}] {pending}",
            server.backend
        );
        let paid = server
            .user(user)
            .data(
                "mutation($id: ID!) { payOrder(input: {orderId: $id}) { order { paidAt } } }",
                json!({ "id": created["id"] }),
            )
            .await["payOrder"]["order"]
            .clone();
        assert_eq!(read_order().await["paidAt"], paid["paidAt"], "[{}]", server.backend);

        // an instant given with a fraction of a second comes back with it
        let (starts, ends) = ("2026-01-01T00:00:00.250+00:00", "2099-01-01T00:00:00.750001+00:00");
        let event = server
            .coupon_event("초", "FIXED", 1_000, 5, json!({ "startsAt": starts, "endsAt": ends }))
            .await;
        let read = server
            .anonymous()
            .data(
                "query($id: ID!) { couponEvent(id: $id) { startsAt endsAt } }",
                json!({ "id": event }),
            )
            .await;
        assert_eq!(
            read["couponEvent"],
            json!({ "startsAt": starts, "endsAt": ends }),
            "[{}]",
            server.backend
        );
        // an instant no backend can store is refused, naming its field
        let refused = server
            .admin()
            .data(
                "mutation { createCouponEvent(input: {name: \"옛날\", discountType: FIXED, discountValue: 1000, totalQuantity: 1, startsAt: \"1969-12-31T23:59:59Z\"}) { couponEvent { id } userErrors { code field } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            refused["createCouponEvent"],
            json!({ "couponEvent": null, "userErrors": [{ "code": "INVALID_INPUT", "field": ["input", "startsAt"] }] })
        );
        let issued = crate::coupons::issue(&server, user, event).await;
        let coupons = server
            .user(user)
            .data("{ me { coupons { id expiresAt } } }", json!({}))
            .await;
        assert_eq!(
            coupons["me"]["coupons"][0]["expiresAt"],
            issued["coupon"]["expiresAt"],
            "[{}]",
            server.backend
        );
    })
    .await;
}
