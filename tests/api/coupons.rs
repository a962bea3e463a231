//! Coupons: the seeds' scenarios 2 and 5, the 1,000-way races, one coupon per user, a coupon
//! never used twice, Redis losing its keys mid-event, every refusal, coupons of any event in
//! `me` and on orders (in a constant number of queries), and stored values no status names.

use std::time::{Duration, Instant};

use chrono::Utc;
use entity::coupon_event::{self, DiscountType};
use entity::user_coupon::{self, CouponStatus};
use futures_util::future::join_all;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

use crate::harness::{
    TestServer, error_code, id_of, items, on_every_backend, on_every_backend_with,
};

const ISSUE: &str = "mutation($id: ID!) { issueCoupon(input: {eventId: $id}) {
  coupon { id status discountType discountValue expiresAt event { id name remaining } }
  userErrors { code message field ... on CouponExhaustedError { eventId alternatives { id name remaining } } } } }";

const PLACE: &str = "mutation($items: [OrderItemInput!]!, $coupon: ID) {
  placeOrder(input: {items: $items, couponId: $coupon}) {
    order { id status subtotal discount total coupon { id status } } userErrors { code message field } } }";

const CREATE: &str = "mutation($items: [OrderItemInput!]!, $coupon: ID) {
  createOrder(input: {items: $items, couponId: $coupon}) {
    order { id status subtotal discount total coupon { id status } } userErrors { code message field } } }";

pub(crate) async fn issue(server: &TestServer, user: i64, event: i64) -> Value {
    server.user(user).data(ISSUE, json!({ "id": event })).await["issueCoupon"].clone()
}

pub(crate) fn code(payload: &Value) -> String {
    payload["userErrors"][0]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

pub(crate) async fn event_counts(server: &TestServer, event: i64) -> (i64, i64, i64) {
    let data = server
        .anonymous()
        .data(
            "query($id: ID!) { couponEvent(id: $id) { totalQuantity issuedQuantity remaining } }",
            json!({ "id": event }),
        )
        .await;
    let e = &data["couponEvent"];
    (
        e["totalQuantity"].as_i64().unwrap(),
        e["issuedQuantity"].as_i64().unwrap(),
        e["remaining"].as_i64().unwrap(),
    )
}

pub(crate) async fn users(server: &TestServer, count: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        ids.push(server.create_user(&format!("shopper {i}")).await);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_2_ten_percent_coupon_on_a_keyboard() {
    on_every_backend(|server| async move {
        let (lee, [keyboard]) = server.shop("이영희", 100_000, [("블루투스 키보드", "키보드", 45_000, 20)]).await;
        let ten = server.coupon_event("선착순 10% 할인", "PERCENT", 10, 100, json!({})).await;

        let issued = issue(&server, lee, ten).await;
        assert_eq!(issued["userErrors"], json!([]));
        let coupon = &issued["coupon"];
        assert_eq!((coupon["status"].clone(), coupon["discountType"].clone(), coupon["discountValue"].clone()), (json!("AVAILABLE"), json!("PERCENT"), json!(10)));
        let mine = server.user(lee).data("{ me { coupons { id status event { id } } } }", json!({})).await;
        assert_eq!(mine["me"]["coupons"], json!([{ "id": coupon["id"], "status": "AVAILABLE", "event": { "id": ten.to_string() } }]));

        let placed = server.user(lee).data(PLACE, json!({ "items": items(&[(keyboard, 1)]), "coupon": coupon["id"] })).await["placeOrder"].clone();
        assert_eq!(placed["userErrors"], json!([]));
        let order = &placed["order"];
        assert_eq!((order["subtotal"].as_i64(), order["discount"].as_i64(), order["total"].as_i64()), (Some(45_000), Some(4_500), Some(40_500)));
        assert_eq!(order["coupon"]["status"], json!("USED"));
        assert_eq!(server.balance(lee).await, 59_500);
        let used = server.user(lee).data("{ me { coupons(status: USED) { id orderId } } }", json!({})).await;
        assert_eq!(used["me"]["coupons"][0]["orderId"], order["id"]);

        // a used coupon cannot pay again
        let again = server.user(lee).data(PLACE, json!({ "items": items(&[(keyboard, 1)]), "coupon": coupon["id"] })).await["placeOrder"].clone();
        assert_eq!(code(&again), "COUPON_NOT_USABLE");
        assert_eq!(server.balance(lee).await, 59_500);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_5_exhausted_event_offers_the_five_percent_one() {
    on_every_backend(|server| async move {
        let (lee, [monitor]) = server
            .shop("이영희", 200_000, [("모니터", "모니터", 120_000, 5)])
            .await;
        let early = server.create_user("early bird").await;
        let twenty = server
            .coupon_event("선착순 20% 할인", "PERCENT", 20, 1, json!({}))
            .await;
        let five = server
            .coupon_event("5% 할인", "PERCENT", 5, 100, json!({}))
            .await;
        assert_eq!(issue(&server, early, twenty).await["userErrors"], json!([]));

        let late = issue(&server, lee, twenty).await;
        assert_eq!(code(&late), "COUPON_EXHAUSTED");
        assert_eq!(late["coupon"], Value::Null);
        let error = &late["userErrors"][0];
        assert_eq!(id_of(&error["eventId"]), twenty);
        let alternatives: Vec<i64> = error["alternatives"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| id_of(&e["id"]))
            .collect();
        assert_eq!(alternatives, vec![five]);
        let active = server
            .anonymous()
            .data("{ couponEvents { id remaining active } }", json!({}))
            .await;
        assert_eq!(
            active["couponEvents"],
            json!([{ "id": five.to_string(), "remaining": 100, "active": true }])
        );
        let all = server
            .anonymous()
            .data("{ couponEvents(activeOnly: false) { id } }", json!({}))
            .await;
        assert_eq!(all["couponEvents"].as_array().unwrap().len(), 2);

        let coupon = issue(&server, lee, five).await["coupon"]["id"].clone();
        let placed = server
            .user(lee)
            .data(
                PLACE,
                json!({ "items": items(&[(monitor, 1)]), "coupon": coupon }),
            )
            .await["placeOrder"]
            .clone();
        assert_eq!(
            (
                placed["order"]["discount"].as_i64(),
                placed["order"]["total"].as_i64()
            ),
            (Some(6_000), Some(114_000))
        );
        assert_eq!(server.balance(lee).await, 86_000);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_users_race_for_the_last_coupon() {
    on_every_backend(|server| async move {
        let last = server.coupon_event("마지막 한 장", "FIXED", 5_000, 1, json!({})).await;
        let shoppers = users(&server, 1_000).await;
        let started = Instant::now();
        let answers = join_all(shoppers.iter().map(|user| {
            let server = &server;
            async move {
                let sent = Instant::now();
                let answer = issue(server, *user, last).await;
                (answer, sent.elapsed())
            }
        }))
        .await;
        let wall = started.elapsed();
        let winners = answers.iter().filter(|(a, _)| a["userErrors"] == json!([])).count();
        let exhausted = answers.iter().filter(|(a, _)| code(a) == "COUPON_EXHAUSTED").count();
        let slowest = answers.iter().map(|(_, t)| *t).max().unwrap();
        let mean = answers.iter().map(|(_, t)| t.as_secs_f64()).sum::<f64>() / answers.len() as f64;
        eprintln!(
            "[{}] 1000 users for 1 coupon: {winners} winner, {exhausted} exhausted; wall {wall:?}, mean {:.1} ms, slowest {slowest:?}",
            server.backend,
            mean * 1_000.0
        );
        assert_eq!((winners, exhausted), (1, 999));
        assert_eq!(event_counts(&server, last).await, (1, 1, 0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_users_for_a_hundred_coupons_and_one_user_racing_himself() {
    on_every_backend(|server| async move {
        let hundred = server
            .coupon_event("백 장", "PERCENT", 10, 100, json!({}))
            .await;
        let shoppers = users(&server, 1_000).await;
        let answers = join_all(shoppers.iter().map(|user| issue(&server, *user, hundred))).await;
        let winners: Vec<i64> = answers
            .iter()
            .zip(&shoppers)
            .filter(|(a, _)| a["userErrors"] == json!([]))
            .map(|(_, user)| *user)
            .collect();
        assert_eq!(winners.len(), 100);
        assert!(
            answers
                .iter()
                .all(|a| a["userErrors"] == json!([]) || code(a) == "COUPON_EXHAUSTED")
        );
        assert_eq!(event_counts(&server, hundred).await, (100, 100, 0));
        for user in winners.iter().take(10) {
            let mine = server
                .user(*user)
                .data("{ me { coupons { id } } }", json!({}))
                .await;
            assert_eq!(mine["me"]["coupons"].as_array().unwrap().len(), 1);
        }

        let plenty = server
            .coupon_event("넉넉한 이벤트", "PERCENT", 5, 1_000, json!({}))
            .await;
        let eager = shoppers[0];
        let answers = join_all((0..50).map(|_| issue(&server, eager, plenty))).await;
        let issued = answers
            .iter()
            .filter(|a| a["userErrors"] == json!([]))
            .count();
        let refused = answers
            .iter()
            .filter(|a| code(a) == "COUPON_ALREADY_ISSUED")
            .count();
        assert_eq!((issued, refused), (1, 49));
        assert_eq!(event_counts(&server, plenty).await, (1_000, 1, 999));
    })
    .await;
}

/// Two instances with gates of their own each let a full event's worth of requests through, so
/// the database's batches must turn the surplus away; refusals of other events share the batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_from_two_gates_issue_exactly_the_total() {
    on_every_backend(|server| async move {
        let mut settings = server.settings.clone();
        settings.redis.redis_key_prefix = format!("{}other-gate:", settings.redis.redis_key_prefix);
        let other = TestServer::start(server.backend, settings).await;
        let hundred = server
            .coupon_event("두 관문", "PERCENT", 10, 100, json!({}))
            .await;
        let later = server
            .coupon_event(
                "아직",
                "PERCENT",
                10,
                100,
                json!({ "startsAt": (Utc::now() + chrono::Duration::days(1)).to_rfc3339() }),
            )
            .await;
        let shoppers = users(&server, 300).await;
        let eager = shoppers[0];
        let requests = shoppers
            .iter()
            .enumerate()
            .map(|(i, user)| (i, *user, hundred))
            .chain((0..40).map(|i| (i, eager, hundred)))
            .chain(
                shoppers[..30]
                    .iter()
                    .enumerate()
                    .map(|(i, user)| (i, *user, later)),
            )
            .chain(
                shoppers[..30]
                    .iter()
                    .enumerate()
                    .map(|(i, user)| (i, *user, 999_999)),
            );
        let answers = join_all(requests.map(|(i, user, event_id)| {
            let instance = if i % 2 == 0 { &server } else { &other };
            async move { (user, event_id, issue(instance, user, event_id).await) }
        }))
        .await;
        let of = |event_id: i64| answers.iter().filter(move |(_, e, _)| *e == event_id);
        let winners: Vec<i64> = of(hundred)
            .filter(|(_, _, a)| a["userErrors"] == json!([]))
            .map(|(user, _, _)| *user)
            .collect();
        assert_eq!(winners.len(), 100, "exactly the total");
        let distinct: std::collections::HashSet<i64> = winners.iter().copied().collect();
        assert_eq!(distinct.len(), 100, "one coupon per user");
        assert!(
            of(hundred).all(|(_, _, a)| a["userErrors"] == json!([])
                || ["COUPON_EXHAUSTED", "COUPON_ALREADY_ISSUED"].contains(&code(a).as_str())),
            "every other answer is a refusal"
        );
        for winner in of(hundred).filter(|(_, _, a)| a["userErrors"] == json!([])) {
            let coupon = &winner.2["coupon"];
            assert_eq!(coupon["event"]["id"], json!(hundred.to_string()));
            assert_eq!(coupon["status"], json!("AVAILABLE"));
        }
        assert!(of(later).all(|(_, _, a)| code(a) == "COUPON_EVENT_NOT_ACTIVE"));
        assert!(of(999_999).all(|(_, _, a)| code(a) == "NOT_FOUND"));
        assert_eq!(event_counts(&server, hundred).await, (100, 100, 0));
        assert_eq!(event_counts(&server, later).await, (100, 0, 100));
        other.stop();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_coupon_pays_for_one_of_two_concurrent_orders() {
    on_every_backend(|server| async move {
        let (user, [product]) = server
            .shop("clever", 100_000, [("웹캠", "카메라", 30_000, 10)])
            .await;
        let fixed = server
            .coupon_event("5,000원 할인", "FIXED", 5_000, 10, json!({}))
            .await;
        let coupon = issue(&server, user, fixed).await["coupon"]["id"].clone();
        let variables = json!({ "items": items(&[(product, 1)]), "coupon": coupon });
        let caller = server.user(user);
        let (a, b) = tokio::join!(
            caller.data(PLACE, variables.clone()),
            caller.data(CREATE, variables.clone())
        );
        let outcomes = [a["placeOrder"].clone(), b["createOrder"].clone()];
        let discounted: Vec<&Value> = outcomes
            .iter()
            .filter(|o| o["userErrors"] == json!([]))
            .collect();
        assert_eq!(discounted.len(), 1, "{outcomes:?}");
        assert_eq!(discounted[0]["order"]["discount"], json!(5_000));
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| code(o) == "COUPON_NOT_USABLE")
                .count(),
            1
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_gate_mid_event_neither_loses_nor_invents_coupons() {
    on_every_backend(|server| async move {
        let event_id = server
            .coupon_event("중간에 Redis가 비워짐", "PERCENT", 10, 100, json!({}))
            .await;
        let shoppers = users(&server, 200).await;
        let first = join_all(
            shoppers[..60]
                .iter()
                .map(|user| issue(&server, *user, event_id)),
        )
        .await;
        assert_eq!(
            first
                .iter()
                .filter(|a| a["userErrors"] == json!([]))
                .count(),
            60
        );
        // Redis loses every key of this server (the shared Redis is never flushed whole)
        let flushed = server.flush_redis().await;
        eprintln!(
            "[{}] gate keys dropped mid-event: {flushed}",
            server.backend
        );
        let again = join_all(
            shoppers[..60]
                .iter()
                .map(|user| issue(&server, *user, event_id)),
        )
        .await;
        assert!(
            again.iter().all(|a| code(a) == "COUPON_ALREADY_ISSUED"),
            "holders are still known after the flush"
        );
        let rest = join_all(
            shoppers[60..]
                .iter()
                .map(|user| issue(&server, *user, event_id)),
        )
        .await;
        let winners = rest.iter().filter(|a| a["userErrors"] == json!([])).count();
        assert_eq!(
            winners, 40,
            "exactly the 40 coupons left, whatever the gate lost"
        );
        assert_eq!(event_counts(&server, event_id).await, (100, 100, 0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_coupons_and_events() {
    on_every_backend(|server| async move {
        let (user, [product]) = server
            .shop("picky", 500_000, [("이어폰", "오디오", 30_000, 50)])
            .await;
        let other = server.create_user("other").await;
        let day = chrono::Duration::days(1);
        let now = Utc::now();

        let future = server.coupon_event("아직", "PERCENT", 10, 10, json!({ "startsAt": (now + day).to_rfc3339() })).await;
        let ended = server.coupon_event("끝남", "PERCENT", 10, 10, json!({ "startsAt": (now - day * 2).to_rfc3339(), "endsAt": (now - day).to_rfc3339() })).await;
        assert_eq!(code(&issue(&server, user, future).await), "COUPON_EVENT_NOT_ACTIVE");
        assert_eq!(code(&issue(&server, user, ended).await), "COUPON_EVENT_NOT_ACTIVE");
        assert_eq!(code(&issue(&server, user, 987_654).await), "NOT_FOUND");
        assert_eq!(code(&server.user(user).data(ISSUE, json!({ "id": "abc" })).await["issueCoupon"]), "INVALID_INPUT");
        assert_eq!(event_counts(&server, future).await, (10, 0, 10));

        // below the minimum, someone else's, expired
        let minimum = server.coupon_event("5만원 이상", "FIXED", 3_000, 10, json!({ "minOrderAmount": 50_000 })).await;
        let coupon = issue(&server, user, minimum).await["coupon"]["id"].clone();
        let below = server.user(user).data(PLACE, json!({ "items": items(&[(product, 1)]), "coupon": coupon })).await["placeOrder"].clone();
        assert_eq!(code(&below), "COUPON_NOT_USABLE");
        assert!(below["userErrors"][0]["message"].as_str().unwrap().contains("minimum"));
        let theirs = server.user(other).data(PLACE, json!({ "items": items(&[(product, 2)]), "coupon": coupon })).await["placeOrder"].clone();
        assert_eq!(code(&theirs), "COUPON_NOT_USABLE");
        let enough = server.user(user).data(PLACE, json!({ "items": items(&[(product, 2)]), "coupon": coupon })).await["placeOrder"].clone();
        assert_eq!(enough["order"]["total"], json!(57_000));

        let short = server.coupon_event("곧 만료", "PERCENT", 50, 10, json!({ "startsAt": (now - day).to_rfc3339(), "validUntil": (now + chrono::Duration::seconds(1)).to_rfc3339() })).await;
        let expiring = issue(&server, user, short).await["coupon"]["id"].clone();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let expired = server.user(user).data(PLACE, json!({ "items": items(&[(product, 1)]), "coupon": expiring })).await["placeOrder"].clone();
        assert_eq!(code(&expired), "COUPON_NOT_USABLE");
        let listed = server.user(user).data("{ me { coupons(status: EXPIRED) { id } } }", json!({})).await;
        assert_eq!(listed["me"]["coupons"], json!([{ "id": expiring }]));
        assert_eq!(server.balance(user).await, 500_000 - 57_000, "refused orders charged nothing");

        // a FIXED discount never takes the total below zero
        let big = server.coupon_event("10만원 할인", "FIXED", 100_000, 10, json!({})).await;
        let big_coupon = issue(&server, user, big).await["coupon"]["id"].clone();
        let free = server.user(user).data(PLACE, json!({ "items": items(&[(product, 1)]), "coupon": big_coupon })).await["placeOrder"].clone();
        assert_eq!((free["order"]["discount"].as_i64(), free["order"]["total"].as_i64()), (Some(30_000), Some(0)));

        // invalid events and who may create them
        let create = "mutation($input: CreateCouponEventInput!) { createCouponEvent(input: $input) { couponEvent { id } userErrors { code field } } }";
        for (input, field) in [
            (json!({ "name": "x", "discountType": "PERCENT", "discountValue": 0, "totalQuantity": 1 }), "discountValue"),
            (json!({ "name": "x", "discountType": "PERCENT", "discountValue": 101, "totalQuantity": 1 }), "discountValue"),
            (json!({ "name": "x", "discountType": "FIXED", "discountValue": -5, "totalQuantity": 1 }), "discountValue"),
            (json!({ "name": "x", "discountType": "FIXED", "discountValue": 5, "totalQuantity": 0 }), "totalQuantity"),
            (json!({ "name": " ", "discountType": "FIXED", "discountValue": 5, "totalQuantity": 1 }), "name"),
            (json!({ "name": "x", "discountType": "FIXED", "discountValue": 5, "totalQuantity": 1, "startsAt": now.to_rfc3339(), "endsAt": (now - day).to_rfc3339() }), "endsAt"),
            (json!({ "name": "x", "discountType": "FIXED", "discountValue": 5, "totalQuantity": 1, "validDays": 3, "validUntil": (now + day).to_rfc3339() }), "validUntil"),
        ] {
            let data = server.admin().data(create, json!({ "input": input })).await;
            assert_eq!(data["createCouponEvent"]["userErrors"][0]["code"], json!("INVALID_INPUT"), "{input}");
            assert_eq!(data["createCouponEvent"]["userErrors"][0]["field"], json!(["input", field]), "{input}");
        }
        let forbidden = server.user(user).post(create, json!({ "input": { "name": "x", "discountType": "FIXED", "discountValue": 5, "totalQuantity": 1 } })).await;
        assert_eq!(forbidden["errors"][0]["extensions"]["code"], json!("FORBIDDEN"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_coupons_come_back_on_cancel_expiry_and_refund() {
    on_every_backend_with(
        |settings| {
            settings.orders.order_ttl_secs = 1;
            settings.orders.order_expiry_sweep_ms = 100;
        },
        |server| async move {
            let (user, [product]) = server
                .shop("undecided", 500_000, [("키보드", "키보드", 45_000, 50)])
                .await;
            let ten = server.coupon_event("10%", "PERCENT", 10, 10, json!({})).await;
            let coupon = issue(&server, user, ten).await["coupon"]["id"].clone();
            let status = || async {
                server.user(user).data("{ me { coupons { status } } }", json!({})).await["me"]["coupons"][0]["status"].clone()
            };

            let pending = server.user(user).data(CREATE, json!({ "items": items(&[(product, 1)]), "coupon": coupon })).await["createOrder"]["order"].clone();
            assert_eq!(pending["discount"], json!(4_500));
            assert_eq!(status().await, json!("RESERVED"));
            let cancel = "mutation($id: ID!) { cancelOrder(input: {orderId: $id}) { order { status } userErrors { code } } }";
            server.user(user).data(cancel, json!({ "id": pending["id"] })).await;
            assert_eq!(status().await, json!("AVAILABLE"), "cancel releases the coupon");

            server.user(user).data(CREATE, json!({ "items": items(&[(product, 1)]), "coupon": coupon })).await;
            assert_eq!(status().await, json!("RESERVED"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while status().await != json!("AVAILABLE") {
                assert!(Instant::now() < deadline, "expiry did not release the coupon");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }

            let paid = server.user(user).data(PLACE, json!({ "items": items(&[(product, 1)]), "coupon": coupon })).await["placeOrder"]["order"].clone();
            assert_eq!(status().await, json!("USED"));
            let refunded = server.user(user).data(cancel, json!({ "id": paid["id"] })).await;
            assert_eq!(refunded["cancelOrder"]["order"]["status"], json!("REFUNDED"));
            assert_eq!(status().await, json!("AVAILABLE"), "a refund gives the unexpired coupon back");
            assert_eq!(server.balance(user).await, 500_000);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_of_the_501st_event_is_listed() {
    on_every_backend(|server| async move {
        let user = server.create_user("late collector").await;
        // 500 past events first, stored directly: the API would take long to make them
        let now = Utc::now();
        let day = chrono::Duration::days(1);
        let past = (0..500).map(|i| coupon_event::ActiveModel {
            name: Set(format!("past event {i}")),
            discount_type: Set(DiscountType::Fixed),
            discount_value: Set(1_000),
            total_quantity: Set(10),
            issued_quantity: Set(0),
            starts_at: Set(now - day * 2),
            ends_at: Set(Some(now - day)),
            valid_days: Set(Some(30)),
            valid_until: Set(None),
            min_order_amount: Set(0),
            created_at: Set(now - day * 2),
            ..Default::default()
        });
        coupon_event::Entity::insert_many(past)
            .exec_without_returning(server.database().conn())
            .await
            .unwrap();
        let latest = server.coupon_event("the 501st", "PERCENT", 10, 10, json!({})).await;
        let all = server.anonymous().data("{ couponEvents(activeOnly: false) { id } }", json!({})).await;
        assert_eq!(all["couponEvents"].as_array().map(Vec::len), Some(500), "events are listed 500 at most");
        assert!(all["couponEvents"].as_array().unwrap().iter().all(|e| id_of(&e["id"]) < latest), "the new one is the 501st");

        let coupon = issue(&server, user, latest).await["coupon"]["id"].clone();
        let mine = server.user(user).data("{ me { coupons { id status event { id name } } } }", json!({})).await;
        assert_eq!(
            mine["me"]["coupons"],
            json!([{ "id": coupon, "status": "AVAILABLE", "event": { "id": latest.to_string(), "name": "the 501st" } }]),
            "[{}]",
            server.backend
        );

        // then 500 used coupons, newer than it, of the past events: asked for by status, the
        // available one is still found (the status is chosen in the database, not after a cap)
        let past_events = coupon_event::Entity::find()
            .filter(coupon_event::Column::Id.ne(latest))
            .all(server.database().conn())
            .await
            .unwrap();
        assert_eq!(past_events.len(), 500);
        let used = past_events.iter().map(|event| user_coupon::ActiveModel {
            event_id: Set(event.id),
            user_id: Set(user),
            status: Set(CouponStatus::Used),
            issued_at: Set(now - day),
            expires_at: Set(now + day * 30),
            order_id: Set(None),
            used_at: Set(Some(now - day)),
            ..Default::default()
        });
        user_coupon::Entity::insert_many(used)
            .exec_without_returning(server.database().conn())
            .await
            .unwrap();
        let available = server.user(user).data("{ me { coupons(status: AVAILABLE) { id } } }", json!({})).await;
        assert_eq!(available["me"]["coupons"], json!([{ "id": coupon }]), "[{}]", server.backend);
        let used = server.user(user).data("{ me { coupons(status: USED) { id } } }", json!({})).await;
        assert_eq!(used["me"]["coupons"].as_array().map(Vec::len), Some(500), "[{}]", server.backend);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_orders_with_their_coupons_costs_a_constant_number_of_queries() {
    on_every_backend(|server| async move {
        let user = server.create_user("coupon collector").await;
        let product = server.create_product("키보드", "키보드", 10_000, 1_000).await;
        server.charge(user, 1_000_000).await;
        let list = "query($first: Int!) { me { orders(first: $first) { edges { node { id coupon { id status discountValue event { id name } } } } } } }";
        let mut placed = 0;
        let mut cost = vec![];
        for count in [5, 20] {
            // every order with a coupon of its own event
            while placed < count {
                let fixed = server.coupon_event(&format!("{placed} off"), "FIXED", 100 + placed, 1, json!({})).await;
                let coupon = issue(&server, user, fixed).await["coupon"]["id"].clone();
                let order = server.user(user).data(PLACE, json!({ "items": items(&[(product, 1)]), "coupon": coupon })).await["placeOrder"].clone();
                assert_eq!(order["userErrors"], json!([]));
                placed += 1;
            }
            let (cheapest, data) = server
                .cheapest_query(user, list, json!({ "first": count }))
                .await;
            cost.push(cheapest);
            let edges = data["me"]["orders"]["edges"].as_array().unwrap();
            assert_eq!(edges.len() as i64, count);
            for edge in edges {
                let coupon = &edge["node"]["coupon"];
                assert_eq!(coupon["status"], json!("USED"), "{edge}");
                assert_eq!(coupon["event"]["name"], json!(format!("{} off", coupon["discountValue"].as_i64().unwrap() - 100)));
            }
        }
        eprintln!("[{}] statements to list 5 and 20 orders with coupons: {cost:?}", server.backend);
        assert_eq!(cost[0], cost[1], "listing 20 orders with coupons costs as many statements as 5");
        assert!(cost[1] <= 8, "{cost:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_the_server_never_writes_is_an_error_not_a_guess() {
    on_every_backend(|server| async move {
        let user = server.create_user("curious").await;
        let product = server.create_product("키보드", "키보드", 10_000, 10).await;
        server.charge(user, 100_000).await;
        let ten = server
            .coupon_event("10%", "PERCENT", 10, 10, json!({}))
            .await;
        let coupon = issue(&server, user, ten).await["coupon"]["id"].clone();
        let order = server
            .user(user)
            .data(
                PLACE,
                json!({ "items": items(&[(product, 1)]), "coupon": coupon }),
            )
            .await["placeOrder"]["order"]["id"]
            .clone();
        let (order_id, coupon_id) = (id_of(&order), id_of(&coupon));

        // each read works, then fails cleanly once a value no status names is stored
        let reads = [
            (
                "payments",
                "status = 'PARTIAL'",
                format!("order_id = {order_id}"),
                "query($id: ID!) { order(id: $id) { payment { status } } }",
            ),
            (
                "orders",
                "status = 'SHIPPED'",
                format!("id = {order_id}"),
                "query($id: ID!) { order(id: $id) { id status } }",
            ),
            (
                "user_coupons",
                "status = 'LOST'",
                format!("id = {coupon_id}"),
                "{ me { coupons { id status } } }",
            ),
            (
                "coupon_events",
                "discount_type = 'BOGO'",
                format!("id = {ten}"),
                "{ couponEvents(activeOnly: false) { id discountType } }",
            ),
            (
                "balance_ledger",
                "kind = 'GIFT'",
                format!("user_id = {user}"),
                "{ me { balanceHistory { edges { node { kind } } } } }",
            ),
            (
                "users",
                "role = 'OWNER'",
                format!("id = {user}"),
                "{ me { id role } }",
            ),
        ];
        for (table, set, filter, query) in reads {
            let before = server.user(user).post(query, json!({ "id": order })).await;
            assert!(before.get("errors").is_none(), "{query}: {before}");
            let corrupt = format!("UPDATE {table} SET {set} WHERE {filter}");
            server
                .database()
                .conn()
                .execute_unprepared(&corrupt)
                .await
                .unwrap();
            let after = server.user(user).post(query, json!({ "id": order })).await;
            assert_eq!(
                error_code(&after),
                "INTERNAL_SERVER_ERROR",
                "[{}] {corrupt}: {after}",
                server.backend
            );
            let value = set.split('\'').nth(1).unwrap();
            assert!(
                !after.to_string().contains(value),
                "no detail leaks: {after}"
            );
        }
    })
    .await;
}
