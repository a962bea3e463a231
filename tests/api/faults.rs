//! Faults survived: PostgreSQL restarting under load or going silent, Redis dying during a
//! coupon event, the server SIGKILLed mid-burst, and two server processes sharing one database
//! and Redis. Each test
//! that stops something runs its own private server of it, never the shared ones.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::harness::{
    FreshDatabase, MockPlatform, PrivatePostgres, PrivateRedis, ServerProcess, TestServer,
    assert_invariants, error_code, id_of, items, server_backend, stock, test_settings,
    units_in_orders,
};
use crate::ws_client::{initialised, receive, send};

const PLACE: &str = "mutation($items: [OrderItemInput!]!) { placeOrder(input: {items: $items}) { order { id status } userErrors { code } } }";
const ISSUE: &str = "mutation($id: ID!) { issueCoupon(input: {eventId: $id}) { coupon { id } userErrors { code } } }";

fn one(product: i64) -> Value {
    json!({ "items": items(&[(product, 1)]) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarting_under_orders_gives_clean_errors_and_recovers() {
    let postgres = PrivatePostgres::start().await;
    let mut settings = test_settings(postgres.create_database("faults").await);
    settings.database.db_acquire_timeout_ms = 1_000;
    settings.server.request_timeout_secs = 5;
    let server = TestServer::start("private-postgres", settings).await;
    let (user, [product]) = server
        .shop("steady", 5_000_000, [("이어폰", "오디오", 1_000, 10_000)])
        .await;

    let mut completed = vec![];
    for _ in 0..20 {
        let answer = server.user(user).post(PLACE, one(product)).await;
        assert_eq!(
            answer["data"]["placeOrder"]["order"]["status"],
            json!("COMPLETED"),
            "{answer}"
        );
        completed.push(answer["data"]["placeOrder"]["order"]["id"].clone());
    }
    postgres.stop();
    let mut outage_codes: HashMap<String, usize> = HashMap::new();
    for _ in 0..10 {
        let sent = Instant::now();
        let answer = server.user(user).post(PLACE, one(product)).await;
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(6),
            "no hang beyond the timeouts: {took:?}"
        );
        let code = answer["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("none")
            .to_owned();
        *outage_codes.entry(code).or_default() += 1;
    }
    eprintln!("[private-postgres] answers while PostgreSQL is down: {outage_codes:?}");
    assert_eq!(
        outage_codes.get("SERVICE_UNAVAILABLE"),
        Some(&10),
        "clean, retryable errors: {outage_codes:?}"
    );
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 503, "not ready without the database");

    postgres.resume().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = server.user(user).post(PLACE, one(product)).await;
        if answer["data"]["placeOrder"]["order"]["status"] == json!("COMPLETED") {
            completed.push(answer["data"]["placeOrder"]["order"]["id"].clone());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not recover: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    // nothing half-written: exactly the orders the client saw complete, and consistent money
    assert_eq!(server.completed_orders(user).await, completed.len() as u64);
    assert_invariants(
        &server,
        &HashMap::from([(product, 10_000)]),
        &[(user, 5_000_000)],
    )
    .await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_database_is_answered_unavailable_at_the_time_limit_never_an_empty_408() {
    let postgres = PrivatePostgres::start().await;
    let mut settings = test_settings(postgres.create_database("silent").await);
    settings.server.request_timeout_secs = 2;
    let server = TestServer::start("private-postgres", settings).await;
    let user = server.customer("waiting", 100_000).await;
    // every PostgreSQL process stopped in its tracks: connections open, nothing answers
    postgres.freeze();
    let sent = Instant::now();
    let response = server
        .http
        .post(server.url("/graphql"))
        .header("x-user-id", user.to_string())
        .json(&json!({ "query": "{ me { balance } }" }))
        .send()
        .await;
    let took = sent.elapsed();
    postgres.thaw();
    let response = response.expect("an answer");
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(4)).contains(&took),
        "answered after {took:?}"
    );
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(error_code(&body), "SERVICE_UNAVAILABLE");
    assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], 1);
    // the database answers again: so does the server
    assert_eq!(server.balance(user).await, 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarting_mid_burst_answers_in_flight_requests_with_unavailable() {
    let postgres = std::sync::Arc::new(PrivatePostgres::start().await);
    let mut settings = test_settings(postgres.create_database("restarts").await);
    settings.database.db_acquire_timeout_ms = 1_000;
    settings.server.request_timeout_secs = 5;
    settings.limits.rate_limit_user_per_sec = 0;
    let server = TestServer::start("private-postgres", settings).await;
    let product = server.create_product("마우스", "입력", 1_000, 10_000).await;
    let charged = server.customers("buyer", [1_000_000; 8]).await;
    let users: Vec<i64> = charged.iter().map(|&(user, _)| user).collect();
    // eight shoppers order one unit at a time, 60 orders each, while PostgreSQL restarts
    let began = Instant::now();
    let shoppers = users.iter().map(|&user| {
        let server = &server;
        async move {
            let mut answers = vec![];
            let mut sent_at = vec![];
            for _ in 0..60 {
                sent_at.push(began.elapsed());
                let answer = server.user(user).post(PLACE, one(product)).await;
                let outcome =
                    if answer["data"]["placeOrder"]["order"]["status"] == json!("COMPLETED") {
                        "COMPLETED".to_owned()
                    } else {
                        let code = answer["errors"][0]["extensions"]["code"]
                            .as_str()
                            .unwrap_or("none");
                        if code == "SERVICE_UNAVAILABLE" {
                            assert_eq!(
                                answer["errors"][0]["extensions"]["retryAfterSeconds"],
                                json!(1),
                                "{answer}"
                            );
                        }
                        code.to_owned()
                    };
                answers.push(outcome);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (answers, sent_at)
        }
    });
    let restarting = postgres.clone();
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopping = began.elapsed();
        restarting.restart().await;
        (stopping, began.elapsed())
    });
    let (shopped, restarted) = tokio::join!(join_all(shoppers), restart);
    let (stopping, restarted) = restarted.expect("the restart ran");
    let during = shopped
        .iter()
        .flat_map(|(_, sent_at)| sent_at)
        .filter(|at| (stopping..restarted).contains(*at))
        .count();
    eprintln!(
        "[private-postgres] restart from {stopping:?} to {restarted:?}; {during} orders sent meanwhile"
    );
    assert!(during > 0, "the restart happened under load");
    let answers: Vec<Vec<String>> = shopped.into_iter().map(|(answers, _)| answers).collect();
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for outcome in answers.iter().flatten() {
        *outcomes.entry(outcome.clone()).or_default() += 1;
    }
    eprintln!("[private-postgres] answers across a restart under load: {outcomes:?}");
    let confirmed = outcomes.get("COMPLETED").copied().unwrap_or(0);
    let unavailable = outcomes.get("SERVICE_UNAVAILABLE").copied().unwrap_or(0);
    assert_eq!(
        confirmed + unavailable,
        8 * 60,
        "only orders or clean, retryable errors: {outcomes:?}"
    );
    let last = answers.iter().filter_map(|a| a.last()).collect::<Vec<_>>();
    assert!(
        last.iter().any(|o| *o == "COMPLETED"),
        "the server recovered by itself: {last:?}"
    );

    // a commit cut by the restart may have landed after all: nothing more than that
    let mut stored = 0;
    for &user in &users {
        stored += server.completed_orders(user).await as usize;
    }
    assert!(
        (confirmed..=confirmed + unavailable).contains(&stored),
        "{stored} orders stored, {confirmed} confirmed, {unavailable} unavailable"
    );
    assert_invariants(&server, &HashMap::from([(product, 10_000)]), &charged).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_go_away_mid_request_leave_no_half_write_and_no_transaction_behind() {
    let postgres = PrivatePostgres::start().await;
    let mut settings = test_settings(postgres.create_database("impatient").await);
    settings.limits.rate_limit_user_per_sec = 0;
    settings.database.db_max_connections = Some(4);
    let server = TestServer::start("private-postgres", settings).await;
    let shelf = server
        .stocked("상품", "잡화", (0..5).map(|i| (1_000 + i * 500, 10_000)))
        .await;
    let (products, product_ids) = (shelf.initial, shelf.ids);
    let users: Vec<i64> = server
        .customers("성급한", [1_000_000; 10])
        .await
        .into_iter()
        .map(|(user, _)| user)
        .collect();
    // clients that give up after 1 to 150 ms, in waves of 100 requests
    const CHARGE: &str = "mutation($k: String) { chargeBalance(input: {amount: 1000, idempotencyKey: $k}) { balance } }";
    const CREATE: &str = "mutation($items: [OrderItemInput!]!) { createOrder(input: {items: $items}) { order { id } } }";
    let mut abandoned = 0;
    let mut answered = 0;
    for wave in 0..20_i64 {
        let requests = (0..100_i64).map(|n| {
            let user = users[((wave * 100 + n) % 10) as usize];
            let product = product_ids[((wave + n) % 5) as usize];
            let (query, variables) = match n % 10 {
                0..=5 => (PLACE, one(product)),
                6 | 7 => (CHARGE, json!({ "k": format!("w{wave}n{n}") })),
                _ => (CREATE, one(product)),
            };
            let patience = Duration::from_millis(1 + ((wave * 7 + n * 13) % 150) as u64);
            let request = server
                .http
                .post(server.url("/graphql"))
                .header("x-user-id", user.to_string())
                .timeout(patience)
                .json(&json!({ "query": query, "variables": variables }));
            async move { request.send().await.is_ok() }
        });
        for sent in join_all(requests).await {
            if sent { answered += 1 } else { abandoned += 1 }
        }
    }
    eprintln!("[private-postgres] {abandoned} requests abandoned mid-way, {answered} answered");
    assert!(abandoned > 100, "clients went away: {abandoned}");
    // let what the abandoned requests started finish
    tokio::time::sleep(Duration::from_secs(2)).await;

    let db = server.database().conn();
    let mut ledger: HashMap<i64, i64> = HashMap::new();
    for entry in entity::balance_ledger::Entity::find()
        .all(db)
        .await
        .unwrap()
    {
        *ledger.entry(entry.user_id).or_default() += entry.amount;
    }
    let mut sold: HashMap<i64, i64> = HashMap::new();
    for &user in &users {
        let balance = server.balance(user).await;
        assert_eq!(
            Some(&balance),
            ledger.get(&user),
            "user {user}: the ledger sums to the balance"
        );
        assert!(balance >= 0);
        for status in ["COMPLETED", "PENDING"] {
            for (product, units) in units_in_orders(&server, user, status).await {
                *sold.entry(product).or_default() += units;
            }
        }
    }
    for (product, initial) in &products {
        let now = stock(&server, *product).await;
        assert_eq!(
            now + sold.get(product).copied().unwrap_or(0),
            *initial,
            "product {product}: stock + held + sold = initial"
        );
    }
    let log = postgres.log();
    for warning in [
        "there is already a transaction in progress",
        "there is no transaction in progress",
    ] {
        assert!(
            !log.contains(warning),
            "a pooled connection was reused inside a transaction: {warning}"
        );
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_dying_mid_event_keeps_issuance_exact_and_rankings_served() {
    let Some(backend) = server_backend().await else {
        eprintln!("no database server backend: this fault needs PostgreSQL or MySQL");
        return;
    };
    let mut redis = PrivateRedis::start().await;
    let database = FreshDatabase::create(backend).await;
    let mut settings = test_settings(database.url.clone());
    settings.redis.redis_url = Some(redis.url());
    settings.ranking.ranking_refresh_ms = 100;
    let server = TestServer::start(backend.name, settings).await;
    let event = server
        .coupon_event("장애 중 쿠폰", "PERCENT", 10, 150, json!({}))
        .await;
    let mut users = vec![];
    for i in 0..300 {
        users.push(server.create_user(&format!("u{i}")).await);
    }
    let issue = |user: i64| {
        let server = &server;
        async move { server.user(user).post(ISSUE, json!({ "id": event })).await }
    };
    let before = join_all(users[..100].iter().map(|u| issue(*u))).await;
    redis.stop();
    let during = join_all(users[100..200].iter().map(|u| issue(*u))).await;
    let top = server
        .anonymous()
        .post("{ topSellers { entries { rank } } }", json!({}))
        .await;
    assert!(top.get("errors").is_none(), "rankings without Redis: {top}");
    let ready: Value = server.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], json!("degraded"));
    redis.resume().await;
    let after = join_all(users[200..].iter().map(|u| issue(*u))).await;

    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for answer in before.iter().chain(&during).chain(&after) {
        let key = match answer["data"]["issueCoupon"]["userErrors"][0]["code"].as_str() {
            None if answer["data"]["issueCoupon"]["coupon"].is_object() => "ISSUED".to_owned(),
            Some(code) => code.to_owned(),
            None => format!("ERROR {answer}"),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    eprintln!(
        "[{}] coupons through a Redis outage: {outcomes:?}",
        backend.name
    );
    assert_eq!(outcomes.get("ISSUED"), Some(&150), "{outcomes:?}");
    assert_eq!(outcomes.get("COUPON_EXHAUSTED"), Some(&150), "{outcomes:?}");
    let counts = server
        .anonymous()
        .data(
            "query($id: ID!) { couponEvent(id: $id) { issuedQuantity remaining } }",
            json!({ "id": event }),
        )
        .await;
    assert_eq!(
        counts["couponEvent"],
        json!({ "issuedQuantity": 150, "remaining": 0 })
    );
    server.stop();
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_mid_burst_loses_nothing_it_confirmed() {
    let Some(backend) = server_backend().await else {
        eprintln!("no database server backend: this fault needs PostgreSQL or MySQL");
        return;
    };
    let platform = MockPlatform::start().await;
    let database = FreshDatabase::create(backend).await;
    let mut settings = test_settings(database.url.clone());
    settings.outbox.data_platform_url = Some(platform.events_url());
    settings.outbox.outbox_retry_base_ms = 20;
    settings.outbox.outbox_poll_ms = 50;
    let (mut process, server) = ServerProcess::start(backend.name, &settings).await;
    let product = server
        .create_product("모니터", "모니터", 1_000, 100_000)
        .await;
    let users = server.customers("u", [1_000_000; 50]).await;
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let burst = join_all((0..400).map(|i| {
        let (server, answered) = (&server, &answered);
        let user = users[i % users.len()].0;
        async move {
            tokio::time::sleep(Duration::from_millis(i as u64 / 2)).await;
            let answer = server
                .http
                .post(server.url("/graphql"))
                .header("x-user-id", user.to_string())
                .json(&json!({ "query": PLACE, "variables": one(product) }))
                .send()
                .await;
            let body = match answer {
                Ok(response) => response.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if body.is_some() {
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            body
        }
    }));
    // kill once the burst is well under way: some orders confirmed, many still in flight
    let killer = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while answered.load(std::sync::atomic::Ordering::SeqCst) < 40 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        process.kill();
    };
    let (answers, ()) = tokio::join!(burst, killer);
    let confirmed: Vec<i64> = answers
        .iter()
        .flatten()
        .filter(|a| a["data"]["placeOrder"]["order"]["status"] == json!("COMPLETED"))
        .map(|a| id_of(&a["data"]["placeOrder"]["order"]["id"]))
        .collect();
    let lost = answers.iter().filter(|a| a.is_none()).count();
    eprintln!(
        "[{}] SIGKILL mid-burst: {} confirmed, {lost} without an answer",
        backend.name,
        confirmed.len()
    );
    assert!(
        lost > 0 && !confirmed.is_empty(),
        "the kill happened during the burst"
    );

    process.resume().await;
    for order in &confirmed {
        let found = server
            .admin()
            .data(
                "query($id: ID!) { order(id: $id) { status } }",
                json!({ "id": order }),
            )
            .await;
        assert_eq!(
            found["order"]["status"],
            json!("COMPLETED"),
            "confirmed order {order} survived"
        );
    }
    assert_invariants(&server, &HashMap::from([(product, 100_000)]), &users).await;
    // every completed order's event reaches the platform, once
    let completed: u64 = {
        let mut total = 0;
        for (user, _) in &users {
            total += server.completed_orders(*user).await;
        }
        total
    };
    // the events the killed server had claimed are due again once its lease (two send
    // timeouts: 6 s) runs out, not after the whole batch's worth of timeouts
    let received = platform
        .wait_for(completed as usize, Duration::from_secs(20))
        .await;
    assert_eq!(
        received["events"].as_array().unwrap().len() as u64,
        completed
    );
    process.kill();
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_server_processes_share_one_database_and_redis() {
    let Some(backend) = server_backend().await.filter(|b| b.redis_url.is_some()) else {
        eprintln!("no backend with Redis: this test needs PostgreSQL and Redis");
        return;
    };
    let platform = MockPlatform::start().await;
    let database = FreshDatabase::create(backend).await;
    let mut settings = test_settings(database.url.clone());
    settings.redis.redis_url = backend.redis_url.clone();
    settings.redis.redis_key_prefix = format!("two-processes-{}:", std::process::id());
    settings.outbox.data_platform_url = Some(platform.events_url());
    settings.ranking.ranking_refresh_ms = 100;
    settings.outbox.outbox_poll_ms = 50;
    let (a_process, a) = ServerProcess::start(backend.name, &settings).await;
    let (b_process, b) = ServerProcess::start(backend.name, &settings).await;

    let product = a.create_product("웹캠", "카메라", 1_000, 500).await;
    let event = a.coupon_event("둘이서", "FIXED", 100, 40, json!({})).await;
    let users = a.customers("u", [100_000; 80]).await;
    let mut subscriber = initialised(&a, json!({})).await;
    send(&mut subscriber, json!({ "id": "s", "type": "subscribe", "payload": { "query": "subscription($ids: [ID!]) { stockChanged(productIds: $ids) { stock } }", "variables": { "ids": [product.to_string()] } } })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let servers = [&a, &b];
    let orders = join_all(users.iter().enumerate().map(|(i, (user, _))| {
        let (server, user) = (servers[i % 2], *user);
        async move { server.user(user).post(PLACE, one(product)).await }
    }))
    .await;
    let coupons = join_all(users.iter().enumerate().map(|(i, (user, _))| {
        let (server, user, event) = (servers[(i + 1) % 2], *user, event);
        async move { server.user(user).post(ISSUE, json!({ "id": event })).await }
    }))
    .await;
    assert!(
        orders
            .iter()
            .all(|o| o["data"]["placeOrder"]["order"]["status"] == json!("COMPLETED"))
    );
    let issued = coupons
        .iter()
        .filter(|c| c["data"]["issueCoupon"]["coupon"].is_object())
        .count();
    assert_eq!(issued, 40, "each coupon at most once across instances");
    let update = receive(&mut subscriber).await;
    assert!(
        update["payload"]["data"]["stockChanged"]["stock"]
            .as_i64()
            .is_some(),
        "a subscriber on A sees orders placed on B: {update}"
    );

    assert_invariants(&a, &HashMap::from([(product, 500)]), &users).await;
    let received = platform.wait_for(80, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = platform.received().await;
    assert_eq!(received["events"].as_array().unwrap().len(), 80);
    assert_eq!(
        (after["duplicates"].clone(), after["overlaps"].clone()),
        (json!(0), json!(0)),
        "outbox events sent once"
    );
    drop((a_process, b_process));
    database.remove().await;
}
