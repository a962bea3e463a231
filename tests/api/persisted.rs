//! Apollo's automatic persisted queries: a document is sent once with its SHA-256, then by hash
//! alone (POST or GET), on any instance sharing the Redis; a document sent by hash is limited and
//! rate-limited like any other.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{TestServer, error_code, on_every_backend, on_every_backend_with};

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn post(server: &TestServer, body: Value, user: Option<i64>) -> (u16, Value) {
    let mut request = server.http.post(server.url("/graphql")).json(&body);
    if let Some(user) = user {
        request = request.header("x-user-id", user.to_string());
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

const PRODUCTS: &str = "query Products($first: Int) { products(first: $first) { totalCount } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_is_sent_once_then_by_hash_over_post_and_get() {
    on_every_backend(|server| async move {
        server.create_product("마우스", "입력", 1_000, 1).await;
        let hash = sha256(PRODUCTS);
        let by_hash = json!({ "extensions": persisted(&hash), "variables": { "first": 5 } });
        let (status, body) = post(&server, by_hash.clone(), None).await;
        assert_eq!((status, error_code(&body)), (200, "PERSISTED_QUERY_NOT_FOUND"), "{body}");
        assert_eq!(body["errors"][0]["message"], json!("PersistedQueryNotFound"));

        let with_document = json!({ "query": PRODUCTS, "extensions": persisted(&hash), "variables": { "first": 5 } });
        let (status, body) = post(&server, with_document, None).await;
        assert_eq!((status, body["data"]["products"]["totalCount"].clone()), (200, json!(1)), "{body}");
        let (status, body) = post(&server, by_hash, None).await;
        assert_eq!((status, body["data"]["products"]["totalCount"].clone()), (200, json!(1)), "{body}");

        let get = server
            .http
            .get(server.url("/graphql"))
            .query(&[
                ("extensions", persisted(&hash).to_string()),
                ("variables", json!({ "first": 3 }).to_string()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200);
        let body: Value = get.json().await.unwrap();
        assert_eq!(body["data"]["products"]["totalCount"], json!(1), "{body}");

        let wrong = json!({ "query": "{ products { totalCount } }", "extensions": persisted(&hash) });
        let (_, body) = post(&server, wrong, None).await;
        assert_eq!(error_code(&body), "BAD_REQUEST", "{body}");
        let unknown_version = json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } });
        let (_, body) = post(&server, unknown_version, None).await;
        assert_eq!(error_code(&body), "BAD_REQUEST", "{body}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_redis_share_persisted_documents() {
    on_every_backend(|server| async move {
        if server.settings.redis.redis_url.is_none() {
            return;
        }
        instances_share_persisted_documents(&server).await;
    })
    .await;
}

/// A document persisted through `server` is found by its hash alone through a second instance
/// with the same settings (database and Redis).
pub(crate) async fn instances_share_persisted_documents(server: &TestServer) {
    let other = TestServer::start(server.backend, server.settings.clone()).await;
    let hash = sha256(PRODUCTS);
    let with_document =
        json!({ "query": PRODUCTS, "extensions": persisted(&hash), "variables": { "first": 1 } });
    let (status, _) = post(server, with_document, None).await;
    assert_eq!(status, 200);
    let by_hash = json!({ "extensions": persisted(&hash), "variables": { "first": 1 } });
    let (status, body) = post(&other, by_hash, None).await;
    assert_eq!(
        (status, body["data"]["products"]["totalCount"].clone()),
        (200, json!(0)),
        "{body}"
    );
    other.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_sent_by_hash_is_counted_by_the_rate_limits() {
    on_every_backend_with(
        |settings| {
            settings.limits.rate_limit_user_per_sec = 1;
            settings.limits.rate_limit_user_burst = 2;
        },
        |server| async move {
            let user = server.create_user("해시").await;
            let charge = "mutation { a: chargeBalance(input: {amount: 100}) { balance } b: chargeBalance(input: {amount: 100}) { balance } }";
            let hash = sha256(charge);
            let (status, _) = post(&server, json!({ "query": charge, "extensions": persisted(&hash) }), Some(user)).await;
            assert_eq!(status, 200);
            let (status, body) = post(&server, json!({ "extensions": persisted(&hash) }), Some(user)).await;
            assert_eq!((status, error_code(&body)), (429, "RATE_LIMITED"), "{body}");
            assert_eq!(server.balance(user).await, 200);
        },
    )
    .await;
}

/// `documentId` names a trusted document; a server without TRUSTED_DOCUMENTS says it keeps
/// none, instead of running an empty document.
#[tokio::test]
async fn a_document_id_without_trusted_documents_is_refused_clearly() {
    on_every_backend(|server| async move {
        let (status, body) = post(&server, json!({ "documentId": sha256(PRODUCTS) }), None).await;
        assert_eq!(
            (status, error_code(&body)),
            (200, "PERSISTED_QUERY_NOT_FOUND"),
            "{body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("TRUSTED_DOCUMENTS"), "{message}");
    })
    .await;
}
