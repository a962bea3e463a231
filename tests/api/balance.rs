//! Balance: charging, history, limits, idempotency, and 100 racing charges.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::harness::{id_of, on_every_backend, on_every_backend_with};

const CHARGE: &str = "mutation($amount: Won!, $key: String) {
  chargeBalance(input: {amount: $amount, idempotencyKey: $key}) {
    balance entry { id kind amount balanceAfter }
    userErrors { code message field ... on BalanceLimitError { balance maxBalance } }
  }
}";

const HISTORY: &str = "{ me { balance balanceHistory(first: 100) { totalCount edges { node { id kind amount balanceAfter } } } } }";

/// The ledger of a user: (balance, number of entries, sum of entry amounts).
async fn ledger(server: &crate::harness::TestServer, user: i64) -> (i64, u64, i64) {
    let me = server.user(user).data(HISTORY, json!({})).await["me"].clone();
    let entries = me["balanceHistory"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let sum = entries
        .iter()
        .map(|e| e["node"]["amount"].as_i64().unwrap())
        .sum();
    (
        me["balance"].as_i64().unwrap(),
        me["balanceHistory"]["totalCount"].as_u64().unwrap(),
        sum,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_1_charge_50000_from_zero() {
    on_every_backend(|server| async move {
        let kim = server.create_user("김철수").await;
        assert_eq!(server.balance(kim).await, 0);
        let data = server
            .user(kim)
            .data(CHARGE, json!({ "amount": 50_000 }))
            .await;
        let payload = &data["chargeBalance"];
        assert_eq!(payload["userErrors"], json!([]));
        assert_eq!(payload["balance"], json!(50_000));
        assert_eq!(payload["entry"]["kind"], json!("CHARGE"));
        assert_eq!(payload["entry"]["amount"], json!(50_000));
        assert_eq!(payload["entry"]["balanceAfter"], json!(50_000));
        assert_eq!(ledger(&server, kim).await, (50_000, 1, 50_000));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_charges_add_up_exactly() {
    on_every_backend(|server| async move {
        let user = server.create_user("racer").await;
        let caller = server.user(user);
        let charges = (1..=100).map(|amount| caller.post(CHARGE, json!({ "amount": amount })));
        let results = join_all(charges).await;
        for body in &results {
            assert!(body.get("errors").is_none(), "[{}] {body}", server.backend);
            assert_eq!(body["data"]["chargeBalance"]["userErrors"], json!([]));
        }
        let mut after: Vec<i64> = results
            .iter()
            .map(|b| b["data"]["chargeBalance"]["balance"].as_i64().unwrap())
            .collect();
        after.sort_unstable();
        after.dedup();
        assert_eq!(after.len(), 100, "every charge saw its own balance");
        assert_eq!(after.last(), Some(&5050));
        assert_eq!(ledger(&server, user).await, (5050, 100, 5050));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_amounts_change_nothing() {
    on_every_backend_with(
        |settings| {
            settings.balance.max_balance = 100_000;
            settings.balance.max_charge_amount = 100_000;
        },
        |server| async move {
            let user = server.customer("careful", 60_000).await;
            let caller = server.user(user);
            for (amount, field_message) in
                [(0, "positive"), (-1, "positive"), (100_001, "per charge")]
            {
                let data = caller.data(CHARGE, json!({ "amount": amount })).await;
                let errors = &data["chargeBalance"]["userErrors"];
                assert_eq!(errors[0]["code"], json!("INVALID_INPUT"), "{amount}");
                assert_eq!(errors[0]["field"], json!(["input", "amount"]));
                assert!(
                    errors[0]["message"]
                        .as_str()
                        .unwrap()
                        .contains(field_message)
                );
                assert_eq!(data["chargeBalance"]["balance"], Value::Null);
            }
            let data = caller.data(CHARGE, json!({ "amount": 50_000 })).await;
            let error = &data["chargeBalance"]["userErrors"][0];
            assert_eq!(error["code"], json!("BALANCE_LIMIT_EXCEEDED"));
            assert_eq!(error["balance"], json!(60_000));
            assert_eq!(error["maxBalance"], json!(100_000));
            for malformed in [
                json!("50000"),
                json!(1.5),
                json!(9_223_372_036_854_775_808u64),
                json!(null),
            ] {
                let body = caller.post(CHARGE, json!({ "amount": malformed })).await;
                assert!(
                    body["errors"].is_array(),
                    "{malformed} must be refused: {body}"
                );
            }
            assert_eq!(ledger(&server, user).await, (60_000, 1, 60_000));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_replay_charges_once() {
    on_every_backend(|server| async move {
        let user = server.create_user("retrier").await;
        let caller = server.user(user);
        let first = caller
            .data(CHARGE, json!({ "amount": 7_000, "key": "charge-1" }))
            .await;
        let again = caller
            .data(CHARGE, json!({ "amount": 7_000, "key": "charge-1" }))
            .await;
        assert_eq!(first, again, "a replay returns the first result");
        let reused = caller
            .data(CHARGE, json!({ "amount": 8_000, "key": "charge-1" }))
            .await;
        assert_eq!(
            reused["chargeBalance"]["userErrors"][0]["code"],
            json!("IDEMPOTENCY_KEY_REUSED")
        );
        let empty = caller
            .data(CHARGE, json!({ "amount": 8_000, "key": "  " }))
            .await;
        assert_eq!(
            empty["chargeBalance"]["userErrors"][0]["code"],
            json!("INVALID_INPUT")
        );
        assert_eq!(
            empty["chargeBalance"]["userErrors"][0]["field"],
            json!(["input", "idempotencyKey"])
        );

        // racing replays of one key: one charge, one answer
        let racing =
            (0..20).map(|_| caller.post(CHARGE, json!({ "amount": 1_000, "key": "race" })));
        let answers = join_all(racing).await;
        let entry_ids: Vec<i64> = answers
            .iter()
            .map(|b| id_of(&b["data"]["chargeBalance"]["entry"]["id"]))
            .collect();
        assert!(entry_ids.windows(2).all(|w| w[0] == w[1]), "{entry_ids:?}");

        // another user may use the same key
        let other = server.create_user("other").await;
        let theirs = server
            .user(other)
            .data(CHARGE, json!({ "amount": 7_000, "key": "charge-1" }))
            .await;
        assert_eq!(theirs["chargeBalance"]["userErrors"], json!([]));
        assert_eq!(ledger(&server, user).await, (8_000, 2, 8_000));
    })
    .await;
}
