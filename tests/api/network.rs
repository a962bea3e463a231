//! A bad network between the server and PostgreSQL, Redis or the data platform, through a
//! fault-injecting proxy
//! ([`FaultProxy`]): latency on every packet, blackholes of 5 s and 30 s (bytes held, sockets
//! open), every connection reset, a 50 kB/s link. While each lasts, shoppers keep ordering and
//! reading; every answer must come within the request time limit (REQUEST_TIMEOUT_SECS, 10 s by
//! default) plus a margin, be a success or SERVICE_UNAVAILABLE with `retryAfterSeconds` (never an
//! empty body, never another code), and `/readyz` must say the database is unavailable during a
//! blackhole. Meanwhile users race for the few coupons of an event: never more issued than there
//! are. After the heal, orders complete again within a bound and `commerce verify` is clean.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::harness::{
    Fault, FaultProxy, MockPlatform, PrivatePostgres, PrivateRedis, TestServer, items,
};

const ISSUE: &str = "mutation($id: ID!) { issueCoupon(input: {eventId: $id}) { coupon { id } userErrors { code } } }";
/// Coupons of the event each fault's race is for, and the users racing for them.
const COUPONS: i64 = 5;
const RACERS: usize = 15;
const PLACE: &str = "mutation($items: [OrderItemInput!]!) { placeOrder(input: {items: $items}) { order { id status } userErrors { code } } }";
/// The longest an answer may take: the request time limit (10 s) and a margin for the machine.
const ANSWER_BOUND: Duration = Duration::from_secs(12);
/// The longest the server may take to order normally again after the network heals.
const HEAL_BOUND: Duration = Duration::from_secs(10);
const SHOPPERS: usize = 6;
const SHOPPER_PAUSE: Duration = Duration::from_millis(20);

/// What the shoppers saw while a fault lasted.
#[derive(Default, Debug)]
pub(crate) struct Seen {
    pub(crate) answers: usize,
    pub(crate) longest: Duration,
    pub(crate) outcomes: BTreeMap<String, usize>,
    pub(crate) wrong: Vec<String>,
}

/// One shopper's request: an order or a balance read, timed and classified.
async fn shop_once(server: &TestServer, user: i64, product: i64, order: bool, seen: &mut Seen) {
    let (query, variables) = if order {
        (PLACE, json!({ "items": items(&[(product, 1)]) }))
    } else {
        ("{ me { balance } }", json!({}))
    };
    let sent = Instant::now();
    let response = server
        .http
        .post(server.url("/graphql"))
        .header("x-user-id", user.to_string())
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await;
    let took = sent.elapsed();
    seen.answers += 1;
    seen.longest = seen.longest.max(took);
    let outcome = match response {
        Err(err) => format!("transport error: {err}"),
        Ok(response) => {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            match body["errors"][0]["extensions"]["code"].as_str() {
                None if body["data"].is_object() => "ok".to_owned(),
                Some("SERVICE_UNAVAILABLE")
                    if body["errors"][0]["extensions"]["retryAfterSeconds"].is_number() =>
                {
                    format!("SERVICE_UNAVAILABLE ({status})")
                }
                _ => format!("{status} {body}"),
            }
        }
    };
    if took > ANSWER_BOUND {
        seen.wrong
            .push(format!("answered after {took:?}: {outcome}"));
    }
    if outcome != "ok" && !outcome.starts_with("SERVICE_UNAVAILABLE") {
        seen.wrong.push(outcome.clone());
    }
    *seen.outcomes.entry(outcome).or_default() += 1;
}

/// `racers` each ask once, at once, for a coupon of `event`: "ok" is ISSUED, a user error
/// (COUPON_EXHAUSTED) or SERVICE_UNAVAILABLE are fine, anything else is wrong.
async fn coupon_race(server: &TestServer, racers: &[i64], event: i64) -> Seen {
    let asks = racers.iter().map(|&user| async move {
        let sent = Instant::now();
        let answer = server.user(user).post(ISSUE, json!({ "id": event })).await;
        (sent.elapsed(), answer)
    });
    let mut seen = Seen::default();
    for (took, answer) in join_all(asks).await {
        seen.answers += 1;
        seen.longest = seen.longest.max(took);
        let payload = &answer["data"]["issueCoupon"];
        let outcome = match (
            payload["userErrors"][0]["code"].as_str(),
            error_code_of(&answer),
        ) {
            (None, None) if payload["coupon"].is_object() => "ok".to_owned(),
            (Some(code), None) => code.to_owned(),
            (None, Some("SERVICE_UNAVAILABLE")) => "SERVICE_UNAVAILABLE".to_owned(),
            _ => format!("wrong: {answer}"),
        };
        if took > ANSWER_BOUND || outcome.starts_with("wrong") {
            seen.wrong.push(format!("after {took:?}: {outcome}"));
        }
        *seen.outcomes.entry(outcome).or_default() += 1;
    }
    seen
}

fn error_code_of(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

/// Shoppers ordering and reading until `until`.
pub(crate) async fn shoppers(
    server: &TestServer,
    users: &[i64],
    product: i64,
    until: Instant,
) -> Seen {
    let runs = users.iter().map(|&user| async move {
        let mut seen = Seen::default();
        let mut order = user % 2 == 0;
        while Instant::now() < until {
            shop_once(server, user, product, order, &mut seen).await;
            order = !order;
            // a steady shopper, not a flood: the events of a minute are delivered in seconds
            tokio::time::sleep(SHOPPER_PAUSE).await;
        }
        seen
    });
    let mut all = Seen::default();
    for seen in join_all(runs).await {
        all.answers += seen.answers;
        all.longest = all.longest.max(seen.longest);
        all.wrong.extend(seen.wrong);
        for (outcome, count) in seen.outcomes {
            *all.outcomes.entry(outcome).or_default() += count;
        }
    }
    all
}

/// How long after the heal an order completes again (retrying while it does not).
pub(crate) async fn time_to_normal(server: &TestServer, user: i64, product: i64) -> Duration {
    let healed = Instant::now();
    loop {
        let answer = server
            .user(user)
            .post(PLACE, json!({ "items": items(&[(product, 1)]) }))
            .await;
        if answer["data"]["placeOrder"]["order"]["status"] == json!("COMPLETED") {
            return healed.elapsed();
        }
        assert!(
            healed.elapsed() < HEAL_BOUND,
            "no order completes {HEAL_BOUND:?} after the heal: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `/readyz` must answer while the store is blackholed: its status and a word of its text
/// (`None`: not checked).
type Readiness = Option<(u16, &'static str)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_faults_to_postgresql_get_bounded_answers_and_heal_exactly() {
    let postgres = PrivatePostgres::start().await;
    let proxy = FaultProxy::start(([127, 0, 0, 1], postgres.port).into()).await;
    let direct_url = postgres.create_database("network").await;
    let url = direct_url.replace(
        &format!(":{}/", postgres.port),
        &format!(":{}/", proxy.addr.port()),
    );
    // the defaults, as in production (request time limit, pool and acquire timeouts), but for
    // the rate limits: the shoppers order flat out
    let mut settings = crate::harness::test_settings(url);
    settings.limits.rate_limit_user_per_sec = 0;
    let server = TestServer::start("private-postgres", settings).await;
    through_every_fault(&server, &proxy, Some((503, "database"))).await;
    // whatever was cut off mid-way: `commerce verify` finds stock, balances, orders, the
    // ledger and the outbox in agreement
    server.stop();
    let (code, report) = crate::verify::verify_command(direct_url, &[]).await;
    assert_eq!(code, 0, "commerce verify: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_faults_to_redis_get_bounded_answers_and_heal_exactly() {
    let postgres = PrivatePostgres::start().await;
    let redis = PrivateRedis::start().await;
    let proxy = FaultProxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let url = postgres.create_database("network").await;
    let mut settings = crate::harness::test_settings(url.clone());
    settings.redis.redis_url = Some(format!("redis://127.0.0.1:{}", proxy.addr.port()));
    settings.limits.rate_limit_user_per_sec = 0;
    let server = TestServer::start("private-redis", settings).await;
    // Redis is not needed to serve: ready, degraded, naming it
    through_every_fault(&server, &proxy, Some((200, "redis"))).await;
    server.stop();
    let (code, report) = crate::verify::verify_command(url, &[]).await;
    assert_eq!(code, 0, "commerce verify: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_faults_to_the_data_platform_delay_no_order_and_lose_no_event() {
    let postgres = PrivatePostgres::start().await;
    let platform = MockPlatform::start().await;
    let platform_port = platform.base.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = FaultProxy::start(([127, 0, 0, 1], platform_port).into()).await;
    let url = postgres.create_database("network").await;
    let mut settings = crate::harness::test_settings(url.clone());
    settings.outbox.data_platform_url = Some(format!("http://{}/events", proxy.addr));
    settings.limits.rate_limit_user_per_sec = 0;
    let server = TestServer::start("private-platform", settings).await;
    // the platform is not needed to serve: orders go on, their events wait
    through_every_fault(&server, &proxy, None).await;
    // every event arrives after the heal, each once as the platform counts them (it drops a
    // second delivery of an id: a send cut off after the platform took it is sent again)
    let events = scalar(&server, "SELECT count(*) FROM outbox_events").await;
    let received = platform
        .wait_for(events as usize, Duration::from_secs(90))
        .await;
    assert_eq!(received["events"].as_array().unwrap().len() as i64, events);
    eprintln!(
        "[private-platform] {events} events delivered, {} deliveries dropped as duplicates",
        received["duplicates"]
    );
    server.stop();
    let (code, report) = crate::verify::verify_command(url, &[]).await;
    assert_eq!(code, 0, "commerce verify: {report}");
}

async fn scalar(server: &TestServer, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let conn = server.database().conn();
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            sql,
        ))
        .await
        .expect(sql)
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

/// Shoppers order and read through each fault in turn; see the module's documentation.
async fn through_every_fault(server: &TestServer, proxy: &FaultProxy, blackholed: Readiness) {
    let stock = 1_000_000;
    let (buyer, [product]) = server
        .shop("buyer", 10_000_000, [("이어폰", "오디오", 1_000, stock)])
        .await;
    let mut users = vec![];
    for n in 0..SHOPPERS {
        users.push(server.customer(&format!("shopper{n}"), 10_000_000).await);
    }
    let faults: [(&str, Option<Fault>, Duration); 5] = [
        (
            "+200 ms on every packet",
            Some(Fault::Latency(Duration::from_millis(200))),
            Duration::from_secs(6),
        ),
        (
            "blackhole 5 s",
            Some(Fault::Blackhole),
            Duration::from_secs(5),
        ),
        (
            "blackhole 30 s",
            Some(Fault::Blackhole),
            Duration::from_secs(30),
        ),
        ("every connection reset", None, Duration::from_secs(3)),
        (
            "50 kB/s",
            Some(Fault::Bandwidth(50_000)),
            Duration::from_secs(6),
        ),
    ];
    let mut report = vec![];
    for (name, fault, lasting) in faults {
        let event = server
            .coupon_event(name, "FIXED", 100, COUPONS, json!({}))
            .await;
        let mut racers = vec![];
        for n in 0..RACERS {
            racers.push(server.create_user(&format!("racer {name} {n}")).await);
        }
        let until = Instant::now() + lasting;
        match fault {
            Some(fault) => proxy.set(fault),
            None => proxy.reset_all(),
        }
        let readiness = async {
            if fault != Some(Fault::Blackhole) || blackholed.is_none() {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let asked = Instant::now();
            let ready = server.get("/readyz").await;
            let status = ready.status().as_u16();
            let text = ready.text().await.unwrap_or_default();
            Some((status, text, asked.elapsed()))
        };
        let race = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            coupon_race(server, &racers, event).await
        };
        let (seen, race, readiness) =
            tokio::join!(shoppers(server, &users, product, until), race, async {
                let readiness = readiness.await;
                // the fault lasts its time whatever the shoppers do; then the network heals
                tokio::time::sleep_until(until.into()).await;
                proxy.set(Fault::None);
                readiness
            });
        let normal_after = time_to_normal(server, buyer, product).await;
        eprintln!(
            "[{}] {name}: {} answers, longest {:?}, {:?}; coupons {:?} (longest {:?}); orders normal {normal_after:?} after the heal",
            server.backend, seen.answers, seen.longest, seen.outcomes, race.outcomes, race.longest
        );
        assert!(seen.wrong.is_empty(), "{name}: {:?}", seen.wrong);
        assert!(race.wrong.is_empty(), "{name}: coupons: {:?}", race.wrong);
        // the gate never gives more than there are; each coupon answered ISSUED exists
        let issued = server
            .anonymous()
            .data(
                "query($id: ID!) { couponEvent(id: $id) { issuedQuantity } }",
                json!({ "id": event }),
            )
            .await["couponEvent"]["issuedQuantity"]
            .as_i64()
            .unwrap();
        let answered_issued = race.outcomes.get("ok").copied().unwrap_or(0) as i64;
        assert!(
            (answered_issued..=COUPONS).contains(&issued),
            "{name}: {issued} issued, {answered_issued} answered ISSUED: {:?}",
            race.outcomes
        );
        if let (Some((status, text, took)), Some((expected, word))) = (readiness, blackholed) {
            assert_eq!(status, expected, "{name}: /readyz during the fault: {text}");
            assert!(text.contains(word), "{name}: {text}");
            assert!(
                took < Duration::from_secs(4),
                "{name}: /readyz took {took:?}"
            );
        }
        report.push((name, seen.longest.max(race.longest), normal_after));
    }
    eprintln!(
        "[{}] longest answer and time to normal, per fault: {report:?}",
        server.backend
    );
    // healed: a run of orders all complete, the pool holds no dead connection
    for _ in 0..20 {
        let answer = server
            .user(buyer)
            .post(PLACE, json!({ "items": items(&[(product, 1)]) }))
            .await;
        assert_eq!(
            answer["data"]["placeOrder"]["order"]["status"],
            json!("COMPLETED"),
            "{answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_bounds_our_statements_and_transactions_left_idle() {
    crate::harness::on_every_backend(|server| async move {
        use sea_orm::ConnectionTrait;
        let conn = server.database().conn();
        if conn.get_database_backend() != sea_orm::DbBackend::Postgres {
            eprintln!("[{}] PostgreSQL's session limits only", server.backend);
            return;
        }
        let mut limits = vec![];
        for setting in ["statement_timeout", "idle_in_transaction_session_timeout"] {
            let row = conn
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!("SELECT current_setting('{setting}')"),
                ))
                .await
                .expect("a setting")
                .expect("a row");
            limits.push(row.try_get_by_index::<String>(0).expect("text"));
        }
        assert_eq!(limits, ["30s", "1min"], "[{}]", server.backend);
    })
    .await;
}
