//! Read replicas (`DATABASE_READ_URL`), against a private PostgreSQL primary and a streaming
//! standby of it (`pg_basebackup -R`) that applies every commit late on purpose
//! (`recovery_min_apply_delay`): reads leave the primary, a viewer sees their own writes at
//! once, a stopped or lagging replica costs clients nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{PrivatePostgres, TestServer, items, sample, test_settings};

const PRODUCT: &str = "query($id: ID!) { product(id: $id) { id name stock } }";
const ME: &str = "{ me { balance orders(first: 10) { totalCount edges { node { id status } } } } }";
const CHARGE: &str = "mutation($amount: Won!) { chargeBalance(input: {amount: $amount}) { balance userErrors { code } } }";
const PLACE: &str = "mutation($items: [OrderItemInput!]!) { placeOrder(input: {items: $items}) { order { id status } userErrors { code } } }";
const REPLICA_READS: &str = "commerce_db_reads_total{target=\"replica\"}";

/// A primary with one database, a standby applying commits `apply_delay` late, and a server
/// reading from the standby (skipped past `max_lag`), once the standby is in use.
async fn replicated(
    name: &str,
    apply_delay: Duration,
    max_lag: Duration,
) -> (PrivatePostgres, PrivatePostgres, TestServer) {
    let primary = PrivatePostgres::start().await;
    let url = primary.create_database(name).await;
    let replica = primary.start_replica(apply_delay).await;
    let mut settings = test_settings(url);
    settings.database.database_read_url = Some(replica.url(name));
    settings.database.replica_max_lag_ms = max_lag.as_millis() as u64;
    settings.limits.rate_limit_user_per_sec = 0;
    let server = TestServer::start("private-postgres", settings).await;
    wait_for_replica(&server, true, Duration::from_secs(30)).await;
    // the migrations the server just ran, on the replica too: until then its reads fall back
    primary
        .wait_for_replay(&replica, Duration::from_secs(30))
        .await;
    (primary, replica, server)
}

/// Waits until `/readyz` shows the replica in use (or skipped), returning what it said.
async fn wait_for_replica(server: &TestServer, usable: bool, within: Duration) -> Value {
    let began = Instant::now();
    loop {
        let ready: Value = server.get("/readyz").await.json().await.expect("JSON");
        if ready["readReplicas"][0]["usable"] == json!(usable) {
            return ready;
        }
        assert!(
            began.elapsed() < within,
            "the replica's usable state did not become {usable}: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn replica_reads(server: &TestServer) -> f64 {
    sample(&server.metrics().await, REPLICA_READS).unwrap_or(0.0)
}

async fn product(server: &TestServer, id: i64) -> Value {
    server.anonymous().data(PRODUCT, json!({ "id": id })).await["product"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_leave_the_primary_and_a_viewer_sees_their_own_writes_at_once() {
    let delay = Duration::from_millis(1_500);
    let (_primary, _replica, server) = replicated("reads", delay, Duration::from_secs(10)).await;
    let user = server.create_user("reader").await;

    // the viewer's own charge, read back at once: the replica is 1.5 s behind, so this is
    // read-your-writes, not luck
    let charged = server
        .user(user)
        .data(CHARGE, json!({ "amount": 50_000 }))
        .await;
    assert_eq!(charged["chargeBalance"]["balance"], json!(50_000));
    let me = server.user(user).data(ME, json!({})).await;
    assert_eq!(me["me"]["balance"], json!(50_000), "{me}");

    // a product just created is not on the replica yet: an anonymous read, served there, does
    // not find it, which proves the read left the primary
    let before = replica_reads(&server).await;
    let id = server.create_product("거울", "생활", 7_000, 5).await;
    assert_eq!(product(&server, id).await, Value::Null);
    assert!(replica_reads(&server).await > before, "read on the replica");
    let began = Instant::now();
    while product(&server, id).await == Value::Null {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "replayed in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "[replicas] a new product appeared on the replica after {:?} (apply delay {delay:?})",
        began.elapsed()
    );

    // the viewer's order, and what it changed, seen at once by them
    let placed = server
        .user(user)
        .data(PLACE, json!({ "items": items(&[(id, 2)]) }))
        .await;
    assert_eq!(
        placed["placeOrder"]["order"]["status"],
        json!("COMPLETED"),
        "{placed}"
    );
    let me = server.user(user).data(ME, json!({})).await;
    assert_eq!(me["me"]["balance"], json!(36_000), "{me}");
    assert_eq!(me["me"]["orders"]["totalCount"], json!(1), "{me}");
    assert_eq!(
        me["me"]["orders"]["edges"][0]["node"]["id"],
        placed["placeOrder"]["order"]["id"]
    );
    let own = server.user(user).data(PRODUCT, json!({ "id": id })).await;
    assert_eq!(
        own["product"]["stock"],
        json!(3),
        "the buyer sees the stock it left"
    );
    // anyone else may see the replica's older stock, never a made-up one
    let seen = product(&server, id).await["stock"].clone();
    assert!(seen == json!(5) || seen == json!(3), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_replica_changes_nothing_for_clients() {
    let (_primary, replica, server) =
        replicated("stopped", Duration::from_millis(0), Duration::from_secs(5)).await;
    let user = server.customer("steady", 100_000).await;
    let id = server.create_product("컵", "주방", 1_000, 1_000).await;
    let began = Instant::now();
    while product(&server, id).await == Value::Null {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "replayed in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    replica.stop();
    // reads and orders go on without an error while the replica is gone
    for round in 0..30 {
        assert_eq!(
            product(&server, id).await["name"],
            json!("컵"),
            "round {round}"
        );
        let placed = server
            .user(user)
            .data(PLACE, json!({ "items": items(&[(id, 1)]) }))
            .await;
        assert_eq!(placed["placeOrder"]["order"]["status"], json!("COMPLETED"));
        let me = server.user(user).data(ME, json!({})).await;
        assert_eq!(me["me"]["balance"], json!(100_000 - 1_000 * (round + 1)));
    }
    let ready = wait_for_replica(&server, false, Duration::from_secs(5)).await;
    assert_eq!(ready["status"], json!("degraded"), "{ready}");
    assert_eq!(ready["ready"], json!(true), "{ready}");

    // back in use once it answers again, and caught up
    replica.resume().await;
    wait_for_replica(&server, true, Duration::from_secs(30)).await;
    let before = replica_reads(&server).await;
    assert_eq!(product(&server, id).await["stock"], json!(970));
    assert!(replica_reads(&server).await > before, "read on the replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_lagging_past_the_bound_is_skipped_until_it_catches_up() {
    // commits reach the replica 8 s late; more than 500 ms behind it is not used
    let (_primary, replica, server) = replicated(
        "lagging",
        Duration::from_secs(8),
        Duration::from_millis(500),
    )
    .await;
    let id = server.create_product("시계", "잡화", 30_000, 7).await;
    let ready = wait_for_replica(&server, false, Duration::from_secs(5)).await;
    let problem = ready["readReplicas"][0]["problem"]
        .as_str()
        .unwrap_or_default();
    assert!(problem.contains("lags"), "{ready}");
    let lag = format!(
        "commerce_replica_lag_seconds{{replica=\"127.0.0.1:{}/lagging\"}}",
        replica.port
    );
    let first = sample(&server.metrics().await, &lag);
    assert!(first.is_some_and(|seconds| seconds > 0.5), "{first:?}");
    // the figure keeps growing with the lag, past the bound plus the 5 s of history the monitor
    // keeps for replicas within it (it used to stop there)
    let mut seen = 0.0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen <= 6.0 && tokio::time::Instant::now() < deadline {
        seen = f64::max(
            seen,
            sample(&server.metrics().await, &lag).unwrap_or_default(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen > 6.0, "the lag read at most {seen} s, 8 s behind");
    // skipped: an anonymous reader sees the new product at once, from the primary
    assert_eq!(product(&server, id).await["name"], json!("시계"));
    // caught up once the writes stop: in use again, and it has the product
    wait_for_replica(&server, true, Duration::from_secs(20)).await;
    let before = replica_reads(&server).await;
    assert_eq!(product(&server, id).await["stock"], json!(7));
    assert!(replica_reads(&server).await > before, "read on the replica");
}
