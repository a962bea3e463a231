//! Redis Cluster: servers whose `REDIS_URL` names a private three-master cluster run the coupon
//! gate (a storm of shoppers, its keys in one slot per event and events over several nodes), the
//! event bus between two instances (subscriptions and rankings) and the persisted queries.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::json;

use crate::coupons::{code, event_counts, issue, users};
use crate::harness::{FreshDatabase, PrivateRedisCluster, TestServer, server_backend, settings_on};
use crate::persisted::instances_share_persisted_documents;
use crate::ranking::{fast_ranking, instances_share_rankings_and_stock};

/// A server on a fresh database of the run's database server, with `cluster` as its Redis;
/// `None` (and a note) when the run has SQLite only.
async fn on_cluster(
    cluster: &PrivateRedisCluster,
    adjust: impl FnOnce(&mut commerce::config::Settings),
) -> Option<(FreshDatabase, TestServer)> {
    let Some(backend) = server_backend().await else {
        eprintln!("no database server backend: the Redis Cluster tests need PostgreSQL or MySQL");
        return None;
    };
    let database = FreshDatabase::create(backend).await;
    let mut settings = settings_on(backend, &database);
    settings.redis.redis_url = Some(cluster.url());
    adjust(&mut settings);
    let server = TestServer::start(backend.name, settings).await;
    Some((database, server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coupon_storm_on_a_cluster_issues_exactly_the_total() {
    let cluster = PrivateRedisCluster::start().await;
    let Some((database, server)) = on_cluster(&cluster, |_| {}).await else {
        return;
    };
    let storm = server
        .coupon_event("클러스터 선착순", "FIXED", 1_000, 50, json!({}))
        .await;
    let shoppers = users(&server, 200).await;
    let answers = join_all(shoppers.iter().map(|user| issue(&server, *user, storm))).await;
    let winners: BTreeSet<i64> = answers
        .iter()
        .zip(&shoppers)
        .filter(|(answer, _)| answer["userErrors"] == json!([]))
        .map(|(_, user)| *user)
        .collect();
    assert_eq!(winners.len(), 50, "exactly the 50 coupons are issued");
    assert!(
        answers
            .iter()
            .all(|a| a["userErrors"] == json!([]) || code(a) == "COUPON_EXHAUSTED"),
        "everyone else is told the event is exhausted"
    );
    assert_eq!(event_counts(&server, storm).await, (50, 50, 0));
    for user in &shoppers {
        let mine = server
            .user(*user)
            .data("{ me { coupons { event { id } } } }", json!({}))
            .await;
        let held = mine["me"]["coupons"].as_array().unwrap().len();
        assert_eq!(
            held,
            usize::from(winners.contains(user)),
            "user {user} holds a coupon exactly when they won one"
        );
    }

    // four more events, one coupon each issued, so that every event has its gate keys
    let mut events = vec![storm];
    for name in ["둘", "셋", "넷", "다섯"] {
        let event = server.coupon_event(name, "PERCENT", 5, 10, json!({})).await;
        assert_eq!(
            issue(&server, shoppers[0], event).await["userErrors"],
            json!([])
        );
        events.push(event);
    }
    let prefix = &server.settings.redis.redis_key_prefix;
    let keys = cluster.keys_by_node(&format!("{prefix}*coupon:*")).await;
    let mut nodes_of_events = BTreeSet::new();
    for event in &events {
        let tag = format!("coupon:{{{event}}}:");
        let held: Vec<(u16, &String)> = keys
            .iter()
            .flat_map(|(port, keys)| keys.iter().map(move |key| (*port, key)))
            .filter(|(_, key)| key.contains(&tag))
            .collect();
        // the users set and the counter at least (the markers come and go)
        assert!(held.len() >= 2, "event {event}'s gate keys: {held:?}");
        let nodes: BTreeSet<u16> = held.iter().map(|(port, _)| *port).collect();
        assert_eq!(
            nodes.len(),
            1,
            "event {event}'s keys are on one node: {held:?}"
        );
        let mut slots = BTreeSet::new();
        for (_, key) in &held {
            slots.insert(cluster.keyslot(key).await);
        }
        assert_eq!(
            slots.len(),
            1,
            "event {event}'s keys are in one slot: {held:?}"
        );
        nodes_of_events.extend(nodes);
    }
    assert!(
        nodes_of_events.len() > 1,
        "the events' keys spread over the nodes: {keys:?}"
    );
    server.stop();
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_a_cluster_share_subscriptions_and_rankings() {
    let cluster = PrivateRedisCluster::start().await;
    let Some((database, server)) = on_cluster(&cluster, fast_ranking).await else {
        return;
    };
    instances_share_rankings_and_stock(&server).await;
    server.stop();
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_a_cluster_share_persisted_documents() {
    let cluster = PrivateRedisCluster::start().await;
    let Some((database, server)) = on_cluster(&cluster, |_| {}).await else {
        return;
    };
    instances_share_persisted_documents(&server).await;
    server.stop();
    database.remove().await;
}
