//! Hostile and unlucky input gets a clean answer: fragment bombs and bracket towers refused before
//! they cost anything, aliased mutations counted one by one, introspection that works, unknown
//! users, text the databases cannot store, coercion errors, racing idempotent repeats, and the
//! policy for anonymous subscriptions and expired tokens.

use std::time::{Duration, Instant};

use commerce::auth::{Authenticator, Role};
use commerce::config::{AuthMode, Secret};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::harness::{
    FreshDatabase, ServerProcess, TestServer, error_code, id_of, on_every_backend,
    on_every_backend_with, sqlite, test_settings,
};
use crate::ws_client::{close_code, connect, initialised, receive, send};

const INTROSPECTION: &str = include_str!("fixtures/introspection-graphiql.graphql");

/// POSTs `body` with `headers`; returns the status and the JSON body.
pub async fn post_json(
    server: &TestServer,
    headers: &[(&str, String)],
    body: Value,
) -> (u16, Value) {
    let mut request = server
        .http
        .post(server.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = tokio::time::timeout(Duration::from_secs(10), request.send())
        .await
        .expect("an answer within 10 s")
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// `query{...F0} fragment F0 on Query{...F1 ...F1} ... fragment F{n} on Query{__typename}`: 2^n
/// fields once expanded.
pub fn fragment_bomb(levels: usize) -> String {
    let mut query = String::from("query{...F0}");
    for level in 0..levels {
        let next = level + 1;
        query.push_str(&format!(
            " fragment F{level} on Query{{...F{next} ...F{next}}}"
        ));
    }
    query.push_str(&format!(" fragment F{levels} on Query{{__typename}}"));
    query
}

/// A server of its own (a separate process on SQLite), so its memory can be read.
async fn server_process() -> (ServerProcess, TestServer, FreshDatabase) {
    let database = FreshDatabase::create(sqlite().await).await;
    let settings = test_settings(database.url.clone());
    let (process, server) = ServerProcess::start("sqlite-process", &settings).await;
    (process, server, database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_bombs_and_bracket_towers_are_refused_at_once_without_memory() {
    let (mut process, server, database) = server_process().await;
    let warm = post_json(
        &server,
        &[],
        json!({ "query": "{ products { totalCount } }" }),
    )
    .await;
    assert_eq!(warm.0, 200);
    let started = process.resident_kib();
    let mut before = started;
    let cyclic = "query{...A} fragment A on Query{...B ...B} fragment B on Query{...A ...A}";
    let lists = format!(
        "{{ product(id: 1) {{ name(x: {}1{}) }} }}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let objects = format!(
        "{{ product(id: 1) {{ name(x: {}1{}) }} }}",
        "{a:".repeat(3_000),
        "}".repeat(3_000)
    );
    let tokens = format!("{{ {} }}", "__typename ".repeat(20_000));
    let cases: Vec<(String, &str)> = vec![
        (fragment_bomb(22), "QUERY_TOO_COMPLEX"),
        (fragment_bomb(27), "QUERY_TOO_COMPLEX"),
        (fragment_bomb(30), "QUERY_TOO_COMPLEX"),
        (fragment_bomb(60), "QUERY_TOO_COMPLEX"),
        (cyclic.to_owned(), "GRAPHQL_VALIDATION_FAILED"),
        (lists, "QUERY_TOO_COMPLEX"),
        (objects, "QUERY_TOO_COMPLEX"),
        (tokens, "QUERY_TOO_COMPLEX"),
    ];
    let mut slowest = Duration::ZERO;
    for round in 0..10 {
        for (query, code) in &cases {
            let sent = Instant::now();
            let (status, body) = post_json(&server, &[], json!({ "query": query })).await;
            slowest = slowest.max(sent.elapsed());
            assert_eq!(
                (status, error_code(&body)),
                (400, *code),
                "round {round}: {body}"
            );
            assert!(body.get("data").is_none_or(Value::is_null), "{body}");
        }
        if round == 0 {
            before = process.resident_kib();
        }
    }
    // the same refusal over WebSocket
    let mut socket = initialised(&server, json!({})).await;
    send(
        &mut socket,
        json!({ "id": "b", "type": "subscribe", "payload": { "query": fragment_bomb(30) } }),
    )
    .await;
    let refused = receive(&mut socket).await;
    assert_eq!(refused["type"], json!("error"), "{refused}");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        json!("QUERY_TOO_COMPLEX")
    );

    let after = process.resident_kib();
    eprintln!(
        "[bombs] slowest refusal {slowest:?}; resident memory {started} KiB, {before} KiB after \
         the first round, {after} KiB after ten"
    );
    assert!(process.is_running(), "the server survived");
    assert!(
        slowest < Duration::from_secs(2),
        "refused without expanding anything: {slowest:?}"
    );
    // what grows is the allocator's per-thread caches of the 220 KB bodies, warmed up within a
    // few rounds (fifty rounds end at the same figure); one expanded bomb took gigabytes
    assert!(
        after < started + 32 * 1024,
        "memory stays bounded: {started} KiB -> {after} KiB"
    );
    assert_eq!(server.get("/healthz").await.status(), 200);
    process.kill();
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliased_mutations_are_counted_one_by_one() {
    on_every_backend_with(
        |settings| {
            settings.limits.rate_limit_user_per_sec = 1;
            settings.limits.rate_limit_user_burst = 5;
        },
        |server| async move {
            let charges = |n: usize| {
                let fields: String = (0..n)
                    .map(|i| format!("c{i}: chargeBalance(input: {{amount: 100}}) {{ balance }} "))
                    .collect();
                format!("mutation {{ {fields} }}")
            };
            let user = server.create_user("aliases").await;
            let as_user = [("x-user-id", user.to_string())];

            let (status, body) = post_json(&server, &as_user, json!({ "query": charges(6) })).await;
            assert_eq!(
                (status, error_code(&body)),
                (400, "QUERY_TOO_COMPLEX"),
                "{body}"
            );
            assert_eq!(
                server.balance(user).await,
                0,
                "a refused operation charges nothing"
            );

            let (status, body) = post_json(&server, &as_user, json!({ "query": charges(5) })).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["data"]["c4"]["balance"], json!(500));
            let (status, body) = post_json(&server, &as_user, json!({ "query": charges(1) })).await;
            assert_eq!((status, error_code(&body)), (429, "RATE_LIMITED"), "{body}");
            assert_eq!(
                server.balance(user).await,
                500,
                "five mutations took the burst of five"
            );

            // a batch is charged for all of its mutation fields, before any of them runs
            let other = server.create_user("batch").await;
            let batch = json!([{ "query": charges(3) }, { "query": charges(3) }]);
            let (status, body) =
                post_json(&server, &[("x-user-id", other.to_string())], batch).await;
            assert_eq!((status, error_code(&body)), (429, "RATE_LIMITED"), "{body}");
            assert_eq!(server.balance(other).await, 0);

            // and so is an operation over WebSocket
            let third = server.create_user("socket").await;
            let mut socket = initialised(&server, json!({ "x-user-id": third.to_string() })).await;
            send(
                &mut socket,
                json!({ "id": "m1", "type": "subscribe", "payload": { "query": charges(5) } }),
            )
            .await;
            assert_eq!(
                receive(&mut socket).await["payload"]["data"]["c4"]["balance"],
                json!(500)
            );
            assert_eq!(receive(&mut socket).await["type"], json!("complete"));
            send(
                &mut socket,
                json!({ "id": "m2", "type": "subscribe", "payload": { "query": charges(1) } }),
            )
            .await;
            let limited = receive(&mut socket).await;
            assert_eq!(
                limited["payload"][0]["extensions"]["code"],
                json!("RATE_LIMITED"),
                "{limited}"
            );
            assert_eq!(server.balance(third).await, 500);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_introspection_passes_and_data_queries_keep_their_depth_limit() {
    on_every_backend(|server| async move {
        let (status, body) = post_json(&server, &[], json!({ "query": INTROSPECTION })).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        let types = body["data"]["__schema"]["types"].as_array().expect("types");
        assert!(types.iter().any(|t| t["name"] == json!("Order")));
        // a data query as deep is refused by MAX_QUERY_DEPTH (12)
        let deep = "{ me { orders { edges { node { items { product { alternatives { alternatives { alternatives { alternatives { alternatives { alternatives { id } } } } } } } } } } } } }";
        let (status, body) = post_json(&server, &[], json!({ "query": deep })).await;
        assert_eq!((status, error_code(&body)), (400, "QUERY_TOO_COMPLEX"), "{body}");
    })
    .await;
    on_every_backend_with(
        |settings| settings.limits.disable_introspection = true,
        |server| async move {
            let (status, body) = post_json(&server, &[], json!({ "query": INTROSPECTION })).await;
            assert_eq!(status, 200, "{body}");
            assert!(
                body["data"]["__schema"].is_null(),
                "introspection is off: {body}"
            );
            let (status, body) = post_json(
                &server,
                &[],
                json!({ "query": "{ products { totalCount } }" }),
            )
            .await;
            assert_eq!(
                (status, body["data"]["products"]["totalCount"].clone()),
                (200, json!(0))
            );
        },
    )
    .await;
}

const PLACE: &str = "mutation($p: ID!) { placeOrder(input: {items: [{productId: $p, quantity: 1}]}) { order { id } userErrors { code } } }";
const CREATE: &str = "mutation($p: ID!) { createOrder(input: {items: [{productId: $p, quantity: 1}]}) { order { id } userErrors { code } } }";
const PAY: &str = "mutation($o: ID!, $k: String) { payOrder(input: {orderId: $o, idempotencyKey: $k}) { order { id status payment { amount } } userErrors { code message field } } }";
const CANCEL: &str = "mutation($o: ID!, $k: String) { cancelOrder(input: {orderId: $o, idempotencyKey: $k}) { order { id status } userErrors { code message field } } }";
const ISSUE: &str =
    "mutation($e: ID!) { issueCoupon(input: {eventId: $e}) { coupon { id } userErrors { code } } }";
const CHARGE: &str = "mutation($k: String) { chargeBalance(input: {amount: 1000, idempotencyKey: $k}) { balance userErrors { code field } } }";

/// Creates a product with `headers` (an administrator's); returns its id.
async fn create_product(server: &TestServer, headers: &[(&str, String)], stock: i64) -> i64 {
    let body = json!({
        "query": "mutation($s: Int!) { createProduct(input: {name: \"키보드\", category: \"입력\", price: 1000, stock: $s}) { product { id } } }",
        "variables": { "s": stock },
    });
    let (_, created) = post_json(server, headers, body).await;
    id_of(&created["data"]["createProduct"]["product"]["id"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_of_users_that_do_not_exist_are_unauthenticated() {
    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
    on_every_backend_with(
        |settings| settings.auth.jwt_secret = Some(Secret::new(SECRET)),
        |server| async move {
            let minter = Authenticator::new(AuthMode::Jwt, Some(SECRET));
            let admin = minter.mint(1, Role::Admin, 600).unwrap();
            let as_admin = [("authorization", format!("Bearer {admin}"))];
            let product = create_product(&server, &as_admin, 10).await;
            let ghost = minter.mint(987_654, Role::Customer, 600).unwrap();
            let bearer = [("authorization", format!("Bearer {ghost}"))];
            let event = post_json(
                &server,
                &as_admin,
                json!({ "query": "mutation { createCouponEvent(input: {name: \"유령\", discountType: FIXED, discountValue: 100, totalQuantity: 5}) { couponEvent { id } } }" }),
            )
            .await
            .1;
            let event = event["data"]["createCouponEvent"]["couponEvent"]["id"].clone();
            let p = json!({ "p": product.to_string(), "o": "1", "e": event });
            for (query, variables) in [
                ("{ me { id balance } }", json!({})),
                ("{ products { totalCount } }", json!({})),
                (CHARGE, json!({})),
                (PLACE, p.clone()),
                (CREATE, p.clone()),
                (PAY, p.clone()),
                (CANCEL, p.clone()),
                (ISSUE, p.clone()),
            ] {
                let (status, body) =
                    post_json(&server, &bearer, json!({ "query": query, "variables": variables })).await;
                assert_eq!((status, error_code(&body)), (401, "UNAUTHENTICATED"), "{query}: {body}");
            }
            let mut socket = connect(&server).await;
            send(&mut socket, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {ghost}") } })).await;
            assert_eq!(close_code(&mut socket).await, 4403);

            // a user deleted while their credentials are still remembered: the use cases say so
            let created = post_json(
                &server,
                &as_admin,
                json!({ "query": "mutation { createUser(input: {name: \"떠날 사람\"}) { user { id } } }" }),
            )
            .await
            .1;
            let leaving = id_of(&created["data"]["createUser"]["user"]["id"]);
            let token = minter.mint(leaving, Role::Customer, 600).unwrap();
            let bearer = [("authorization", format!("Bearer {token}"))];
            let (status, _) = post_json(&server, &bearer, json!({ "query": "{ me { balance } }" })).await;
            assert_eq!(status, 200);
            let db = server.database().conn();
            for statement in [
                format!("DELETE FROM balances WHERE user_id = {leaving}"),
                format!("DELETE FROM users WHERE id = {leaving}"),
            ] {
                sea_orm::ConnectionTrait::execute_unprepared(db, &statement).await.unwrap();
            }
            for (query, variables) in [
                ("{ me { id } }", json!({})),
                (CHARGE, json!({})),
                (PLACE, p.clone()),
                (CREATE, p.clone()),
                (ISSUE, p.clone()),
            ] {
                let (_, body) =
                    post_json(&server, &bearer, json!({ "query": query, "variables": variables })).await;
                assert_eq!(error_code(&body), "UNAUTHENTICATED", "{query}: {body}");
            }
            let stock = server.anonymous().data(
                "query($p: ID!) { product(id: $p) { stock } }",
                json!({ "p": product.to_string() }),
            ).await;
            assert_eq!(stock["product"]["stock"], json!(10), "nothing was taken");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_the_databases_cannot_store_is_invalid_input_naming_the_field() {
    on_every_backend(|server| async move {
        let (user, [product]) = server
            .shop("널 문자", 100_000, [("마우스", "입력", 1_000, 10)])
            .await;
        let as_user = [("x-user-id", user.to_string())];
        let nul = "key\u{0}1";
        let key_cases = [
            (CHARGE, json!({ "k": nul }), "chargeBalance"),
            ("mutation($k: String, $p: ID!) { placeOrder(input: {items: [{productId: $p, quantity: 1}], idempotencyKey: $k}) { order { id } userErrors { code field } } }", json!({ "k": nul, "p": product.to_string() }), "placeOrder"),
            ("mutation($k: String, $p: ID!) { createOrder(input: {items: [{productId: $p, quantity: 1}], idempotencyKey: $k}) { order { id } userErrors { code field } } }", json!({ "k": nul, "p": product.to_string() }), "createOrder"),
        ];
        for (query, variables, field) in key_cases {
            let (status, body) = post_json(&server, &as_user, json!({ "query": query, "variables": variables })).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                body["data"][field]["userErrors"],
                json!([{ "code": "INVALID_INPUT", "field": ["input", "idempotencyKey"] }]),
                "{field}: {body}"
            );
        }
        let admin = [("x-role", "ADMIN".to_owned())];
        let create_product = "mutation($i: CreateProductInput!) { createProduct(input: $i) { product { id } userErrors { code field } } }";
        for (input, field) in [
            (json!({ "name": "a\u{0}b", "category": "c", "price": 1, "stock": 1 }), "name"),
            (json!({ "name": "a", "category": "c\u{0}", "price": 1, "stock": 1 }), "category"),
            (json!({ "name": "a", "category": "c", "description": "\u{0}", "price": 1, "stock": 1 }), "description"),
        ] {
            let (_, body) = post_json(&server, &admin, json!({ "query": create_product, "variables": { "i": input } })).await;
            assert_eq!(
                body["data"]["createProduct"]["userErrors"],
                json!([{ "code": "INVALID_INPUT", "field": ["input", field] }]),
                "{body}"
            );
        }
        let (_, body) = post_json(&server, &admin, json!({ "query": "mutation($n: String!) { createUser(input: {name: $n}) { userErrors { code field } } }", "variables": { "n": "\u{0}" } })).await;
        assert_eq!(body["data"]["createUser"]["userErrors"][0]["code"], json!("INVALID_INPUT"), "{body}");
        let (_, body) = post_json(&server, &admin, json!({ "query": "mutation($n: String!) { createCouponEvent(input: {name: $n, discountType: FIXED, discountValue: 1000, totalQuantity: 1}) { userErrors { code field } } }", "variables": { "n": "쿠폰\u{0}" } })).await;
        assert_eq!(body["data"]["createCouponEvent"]["userErrors"], json!([{ "code": "INVALID_INPUT", "field": ["input", "name"] }]), "{body}");
        let (status, body) = post_json(&server, &[], json!({ "query": "query($c: String) { products(category: $c) { totalCount } }", "variables": { "c": "입\u{0}력" } })).await;
        assert_eq!((status, error_code(&body)), (200, "BAD_USER_INPUT"), "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("category"), "{body}");

        // nothing was written by any of them
        assert_eq!(server.balance(user).await, 100_000);
        let counts = server.anonymous().data("{ products { totalCount } }", json!({})).await;
        assert_eq!(counts["products"]["totalCount"], json!(1));
        let orders = server.user(user).data("{ me { orders { totalCount } } }", json!({})).await;
        assert_eq!(orders["me"]["orders"]["totalCount"], json!(0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_do_not_fit_their_type_are_bad_user_input() {
    on_every_backend(|server| async move {
        let user = server.create_user("overflow").await;
        let as_user = [("x-user-id", user.to_string())];
        for (query, variables) in [
            ("mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { userErrors { code } } }", json!({ "i": { "items": [{ "productId": "1", "quantity": 99_999_999_999_i64 }] } })),
            ("mutation($q: Int!) { placeOrder(input: {items: [{productId: 1, quantity: $q}]}) { userErrors { code } } }", json!({ "q": 99_999_999_999_i64 })),
            ("query($n: Int) { topSellers(days: $n) { from } }", json!({ "n": 99_999_999_999_i64 })),
            ("query($n: Int!) { products(first: $n) { totalCount } }", json!({ "n": 1.5 })),
            ("mutation($a: Won!) { chargeBalance(input: {amount: $a}) { balance } }", json!({ "a": 1e30 })),
            ("{ products(first: 99999999999) { totalCount } }", json!({})),
        ] {
            let (status, body) = post_json(&server, &as_user, json!({ "query": query, "variables": variables })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
            assert!(status == 200 || status == 400, "{status}");
        }
        // errors about the request as a whole carry a code too
        let (status, body) = post_json(&server, &[], json!({ "query": "query A { __typename }", "operationName": "B" })).await;
        assert_eq!((status, error_code(&body)), (400, "GRAPHQL_VALIDATION_FAILED"), "{body}");
        let (status, body) = post_json(&server, &[], json!({ "query": "query A { __typename } query B { __typename }" })).await;
        assert_eq!((status, error_code(&body)), (400, "GRAPHQL_VALIDATION_FAILED"), "{body}");
        assert_eq!(server.balance(user).await, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_repeats_of_one_key_all_get_the_first_result() {
    on_every_backend(|server| async move {
        let (user, [product]) = server
            .shop("반복", 100_000, [("스피커", "오디오", 10_000, 5)])
            .await;
        let created = server.user(user).data(CREATE, json!({ "p": product.to_string() })).await;
        let order = id_of(&created["createOrder"]["order"]["id"]).to_string();

        let payer = server.user(user);
        let pay = |_| payer.post(PAY, json!({ "o": order, "k": "pay-once" }));
        let answers = join_all((0..20).map(pay)).await;
        for answer in &answers {
            assert_eq!(
                answer["data"]["payOrder"],
                json!({ "order": { "id": order, "status": "COMPLETED", "payment": { "amount": 10_000 } }, "userErrors": [] }),
                "every repeat answers the first result: {answer}"
            );
        }
        assert_eq!(server.balance(user).await, 90_000, "paid once");

        let cancel = |_| payer.post(CANCEL, json!({ "o": order, "k": "refund-once" }));
        let answers = join_all((0..20).map(cancel)).await;
        for answer in &answers {
            assert_eq!(
                answer["data"]["cancelOrder"],
                json!({ "order": { "id": order, "status": "REFUNDED" }, "userErrors": [] }),
                "{answer}"
            );
        }
        assert_eq!(server.balance(user).await, 100_000, "refunded once");
        let history = server.user(user).data("{ me { balanceHistory { totalCount } } }", json!({})).await;
        assert_eq!(history["me"]["balanceHistory"]["totalCount"], json!(3), "charge, payment, refund");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_subscriptions_and_expired_tokens_follow_the_documented_policy() {
    const SECRET: &str = "another-test-secret-of-32-bytes-or-more";
    on_every_backend_with(
        |settings| settings.auth.jwt_secret = Some(Secret::new(SECRET)),
        |server| async move {
            let minter = Authenticator::new(AuthMode::Jwt, Some(SECRET));
            let admin = minter.mint(1, Role::Admin, 600).unwrap();
            let as_admin = [("authorization", format!("Bearer {admin}"))];
            // public data, live: anyone may watch stock and rankings
            let product = create_product(&server, &as_admin, 5).await;
            let mut socket = initialised(&server, json!({})).await;
            send(&mut socket, json!({ "id": "s", "type": "subscribe", "payload": {
                "query": "subscription($ids: [ID!]) { stockChanged(productIds: $ids) { stock } }",
                "variables": { "ids": [product.to_string()] } } })).await;
            // a user's own data and every mutation need credentials, on this transport too
            send(&mut socket, json!({ "id": "me", "type": "subscribe", "payload": { "query": "{ me { balance } }" } })).await;
            let refused = receive(&mut socket).await;
            assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], json!("UNAUTHENTICATED"), "{refused}");
            assert_eq!(receive(&mut socket).await["type"], json!("complete"));
            send(&mut socket, json!({ "id": "m", "type": "subscribe", "payload": { "query": "mutation { chargeBalance(input: {amount: 1}) { balance } }" } })).await;
            let refused = receive(&mut socket).await;
            assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], json!("UNAUTHENTICATED"), "{refused}");
            assert_eq!(receive(&mut socket).await["type"], json!("complete"));

            let restock = json!({ "query": "mutation($p: ID!) { restockProduct(input: {productId: $p, quantity: 1}) { product { stock } } }", "variables": { "p": product.to_string() } });
            let (status, _) = post_json(&server, &[("authorization", format!("Bearer {admin}"))], restock).await;
            assert_eq!(status, 200);
            let pushed = receive(&mut socket).await;
            assert_eq!((pushed["id"].clone(), pushed["payload"]["data"]["stockChanged"]["stock"].clone()), (json!("s"), json!(6)));

            // a token is honoured up to JWT_LEEWAY_SECS (5 s) past its expiry, not longer
            let user = {
                let created = post_json(&server, &[("authorization", format!("Bearer {admin}"))], json!({ "query": "mutation { createUser(input: {name: \"시계\"}) { user { id } } }" })).await.1;
                id_of(&created["data"]["createUser"]["user"]["id"])
            };
            let me = json!({ "query": "{ me { id } }" });
            let just_expired = minter.mint(user, Role::Customer, -2).unwrap();
            let (status, _) = post_json(&server, &[("authorization", format!("Bearer {just_expired}"))], me.clone()).await;
            assert_eq!(status, 200, "within the leeway");
            let expired = minter.mint(user, Role::Customer, -30).unwrap();
            let (status, body) = post_json(&server, &[("authorization", format!("Bearer {expired}"))], me.clone()).await;
            assert_eq!((status, error_code(&body)), (401, "UNAUTHENTICATED"), "{body}");
            let mut socket = connect(&server).await;
            send(&mut socket, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {expired}") } })).await;
            assert_eq!(close_code(&mut socket).await, 4403);
        },
    )
    .await;
}
