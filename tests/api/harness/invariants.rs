//! What must hold after any race of real requests, read back through the API: stock + units
//! sold = initial for every product, and every user's ledger sums to a non-negative balance that
//! equals what was charged minus what completed orders cost.

use std::collections::HashMap;

use serde_json::json;

use super::client::id_of;
use super::server::TestServer;

/// A product's stock as the API shows it.
pub async fn stock(server: &TestServer, product: i64) -> i64 {
    server
        .anonymous()
        .data(
            "query($id: ID!) { product(id: $id) { stock } }",
            json!({ "id": product }),
        )
        .await["product"]["stock"]
        .as_i64()
        .unwrap()
}

/// A user's ledger: (balance, sum of entries, entry kinds newest first).
pub async fn ledger(server: &TestServer, user: i64) -> (i64, i64, Vec<String>) {
    let me = server
        .user(user)
        .data(
            "{ me { balance balanceHistory(first: 100) { edges { node { kind amount } } } } }",
            json!({}),
        )
        .await["me"]
        .clone();
    let edges = me["balanceHistory"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (
        me["balance"].as_i64().unwrap(),
        edges
            .iter()
            .map(|e| e["node"]["amount"].as_i64().unwrap())
            .sum(),
        edges
            .iter()
            .map(|e| e["node"]["kind"].as_str().unwrap().to_owned())
            .collect(),
    )
}

/// Units of each product in a user's orders of the given status.
pub async fn units_in_orders(server: &TestServer, user: i64, status: &str) -> HashMap<i64, i64> {
    let mut units = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let data = server
            .user(user)
            .data(
                "query($after: String, $status: OrderStatus) { me { orders(first: 100, after: $after, status: $status) {
                    pageInfo { hasNextPage endCursor } edges { node { items { quantity product { id } } } } } } }",
                json!({ "after": after, "status": status }),
            )
            .await;
        let orders = &data["me"]["orders"];
        for edge in orders["edges"].as_array().unwrap() {
            for item in edge["node"]["items"].as_array().unwrap() {
                *units.entry(id_of(&item["product"]["id"])).or_default() +=
                    item["quantity"].as_i64().unwrap();
            }
        }
        if orders["pageInfo"]["hasNextPage"] != json!(true) {
            return units;
        }
        after = orders["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

/// Checks the invariants after a race: stock + units sold = initial for every product; every
/// user's ledger sums to a non-negative balance that equals charges minus completed orders.
/// `users` are `(user, charged)`, as [`TestServer::customers`] returns them.
pub async fn assert_invariants(
    server: &TestServer,
    initial: &HashMap<i64, i64>,
    users: &[(i64, i64)],
) {
    let mut sold: HashMap<i64, i64> = HashMap::new();
    for (user, charged) in users {
        let (balance, sum, _) = ledger(server, *user).await;
        assert_eq!(
            balance, sum,
            "[{}] user {user}: the ledger sums to the balance",
            server.backend
        );
        assert!(
            balance >= 0,
            "[{}] user {user}: balance {balance} is negative",
            server.backend
        );
        let completed = units_in_orders(server, *user, "COMPLETED").await;
        let totals = server
            .user(*user)
            .data(
                "{ me { orders(first: 100, status: COMPLETED) { edges { node { total } } } } }",
                json!({}),
            )
            .await;
        let spent: i64 = totals["me"]["orders"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["total"].as_i64().unwrap())
            .sum();
        assert_eq!(
            balance,
            charged - spent,
            "[{}] user {user}: balance = charged - spent",
            server.backend
        );
        for (product, units) in completed {
            *sold.entry(product).or_default() += units;
        }
    }
    for (product, initial_stock) in initial {
        let now = stock(server, *product).await;
        let units = sold.get(product).copied().unwrap_or(0);
        assert!(now >= 0);
        assert_eq!(
            now + units,
            *initial_stock,
            "[{}] product {product}: stock + sold = initial",
            server.backend
        );
    }
}
