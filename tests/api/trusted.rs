//! Trusted documents (`TRUSTED_DOCUMENTS`): a server that runs only the documents its apps
//! shipped. Listed documents run when named by `documentId` (POST body or GET URL, `sha256:`
//! prefix or not), by the APQ extension's hash, or by their exact text; anything else is
//! refused before it is parsed (PERSISTED_QUERY_NOT_IN_LIST by id, QUERY_NOT_IN_SAFELIST by
//! text), over POST, GET and WebSocket alike, changes nothing and is counted; the playground is
//! refused unless TRUSTED_DOCUMENTS_ADMINS_FREE serves it and lets administrators run anything.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use commerce::config::Settings;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{TestServer, error_code, on_every_backend_with, sample};
use crate::ws_client::{initialised, receive, send};

const BALANCE: &str = "query Balance { me { balance } }";
const CHARGE: &str =
    "mutation Charge($amount: Won!) { chargeBalance(input: {amount: $amount}) { balance } }";
const CREATE_USER: &str =
    "mutation CreateUser($name: String!) { createUser(input: {name: $name}) { user { id } } }";
const RANKING: &str =
    "subscription Ranking { rankingChanged(days: 3, limit: 3) { topSellers { days } } }";

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The documents the test's app shipped: (name, kind, text).
const LISTED: [(&str, &str, &str); 4] = [
    ("Balance", "query", BALANCE),
    ("Charge", "mutation", CHARGE),
    ("Ranking", "subscription", RANKING),
    ("CreateUser", "mutation", CREATE_USER),
];

/// An Apollo persisted-query manifest of [`LISTED`], written where the server reads it.
fn manifest() -> PathBuf {
    let operations: Vec<Value> = LISTED
        .into_iter()
        .map(|(name, kind, body)| {
            json!({ "id": sha256(body), "name": name, "type": kind, "body": body })
        })
        .collect();
    let manifest = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": operations
    });
    static WRITTEN: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "commerce-trusted-{}-{}.json",
        std::process::id(),
        WRITTEN.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, manifest.to_string()).expect("the manifest is written");
    path
}

fn trusted(admins_free: bool) -> impl Fn(&mut Settings) {
    let path = manifest();
    move |settings| {
        settings.limits.trusted_documents = Some(path.clone());
        settings.limits.trusted_documents_admins_free = admins_free;
    }
}

/// POSTs `body` as `user` (or as an administrator); (status, body).
async fn post(server: &TestServer, body: Value, user: Option<i64>) -> (u16, Value) {
    let request = server
        .http
        .post(server.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&body);
    let request = match user {
        Some(user) => request.header("x-user-id", user.to_string()),
        None => request.header("x-role", "ADMIN"),
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A customer, created through a listed document (the fixtures' documents are not listed).
async fn customer(server: &TestServer) -> i64 {
    let (_, body) = post(
        server,
        json!({ "query": CREATE_USER, "variables": { "name": "kim" } }),
        None,
    )
    .await;
    crate::harness::id_of(&body["data"]["createUser"]["user"]["id"])
}

fn by_hash(hash: String) -> Value {
    json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } })
}

/// `named` (how the document is named) with the charge's variables.
fn charge(named: Value) -> Value {
    let mut body = json!({ "variables": { "amount": 1_000 } });
    body.as_object_mut()
        .unwrap()
        .extend(named.as_object().unwrap().clone());
    body
}

/// GETs `/graphql` with `parameters` as `user`; the body.
async fn get(server: &TestServer, user: i64, parameters: &[(&str, String)]) -> Value {
    let response = server
        .http
        .get(server.url("/graphql"))
        .header("x-user-id", user.to_string())
        .query(parameters)
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

const UNLISTED_CHARGE: &str = "mutation { chargeBalance(input: {amount: 1000}) { balance } }";
const UNLISTED_RANKING: &str =
    "subscription { rankingChanged(days: 1) { changes { __typename } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_documents_run_by_id_hash_or_text_over_every_transport() {
    on_every_backend_with(trusted(false), |server| async move {
        let user = customer(&server).await;
        // by text, by documentId (with and without its prefix), by the APQ hash
        for named in [
            json!({ "query": CHARGE }),
            json!({ "documentId": format!("sha256:{}", sha256(CHARGE)) }),
            json!({ "documentId": sha256(CHARGE).to_uppercase() }),
            by_hash(sha256(CHARGE)),
        ] {
            let (status, body) = post(&server, charge(named.clone()), Some(user)).await;
            assert_eq!(status, 200, "{named}: {body}");
            let balance = &body["data"]["chargeBalance"]["balance"];
            assert!(balance.is_number(), "{named}: {body}");
        }
        let (_, body) = post(&server, json!({ "query": BALANCE }), Some(user)).await;
        assert_eq!(body["data"]["me"]["balance"], json!(4_000));

        // anything else: refused before it runs, nothing charged
        let refusals = [
            (json!({ "query": UNLISTED_CHARGE }), "QUERY_NOT_IN_SAFELIST"),
            (charge(json!({ "query": format!("{CHARGE} ") })), "QUERY_NOT_IN_SAFELIST"),
            (json!({ "query": "{ me { balance" }), "QUERY_NOT_IN_SAFELIST"),
            (
                charge(json!({ "documentId": sha256("nothing listed") })),
                "PERSISTED_QUERY_NOT_IN_LIST",
            ),
            (charge(by_hash(sha256("nothing"))), "PERSISTED_QUERY_NOT_IN_LIST"),
        ];
        for (body, code) in &refusals {
            let (status, answer) = post(&server, body.clone(), Some(user)).await;
            assert_eq!((status, error_code(&answer)), (400, *code), "{body}: {answer}");
            assert!(answer.get("data").is_none(), "{answer}");
        }
        // an administrator is held to the list too (the flag is off)
        let (_, answer) = post(&server, json!({ "query": "{ __typename }" }), None).await;
        assert_eq!(error_code(&answer), "QUERY_NOT_IN_SAFELIST");
        let by_id = json!({ "documentId": sha256(BALANCE) });
        let (_, body) = post(&server, by_id, Some(user)).await;
        assert_eq!(body["data"]["me"]["balance"], json!(4_000), "nothing more was charged");

        // GET: a listed query by id or text; an unlisted one refused
        let listed_id = format!("sha256:{}", sha256(BALANCE));
        let body = get(&server, user, &[("documentId", listed_id)]).await;
        assert_eq!(body["data"]["me"]["balance"], json!(4_000), "{body}");
        let body = get(&server, user, &[("query", BALANCE.to_owned())]).await;
        assert_eq!(body["data"]["me"]["balance"], json!(4_000), "{body}");
        let body = get(&server, user, &[("query", "{ me { id } }".to_owned())]).await;
        assert_eq!(error_code(&body), "QUERY_NOT_IN_SAFELIST", "{body}");

        // WebSocket: a listed subscription runs, an unlisted one is refused with the code
        let mut socket = initialised(&server, json!({})).await;
        let subscribe = |id: &str, query: &str| {
            json!({ "id": id, "type": "subscribe", "payload": { "query": query } })
        };
        send(&mut socket, subscribe("1", RANKING)).await;
        let first = receive(&mut socket).await;
        assert_eq!(first["type"], json!("next"), "{first}");
        send(&mut socket, subscribe("2", UNLISTED_RANKING)).await;
        let refused = receive(&mut socket).await;
        assert_eq!(refused["type"], json!("error"), "{refused}");
        let code = &refused["payload"][0]["extensions"]["code"];
        assert_eq!(code, &json!("QUERY_NOT_IN_SAFELIST"));

        let metrics = server.metrics().await;
        let refused = |named_by: &str| {
            let series = format!("commerce_untrusted_documents_total{{named_by=\"{named_by}\"}}");
            sample(&metrics, &series).unwrap_or(0.0)
        };
        let (by_text, by_id) = (refused("text"), refused("id"));
        assert!(
            by_text >= 6.0 && by_id >= 2.0,
            "refusals counted: text {by_text}, id {by_id}"
        );

        let playground = server.playground().await;
        assert_eq!(playground.status(), 403);
        let text = playground.text().await.unwrap();
        assert!(text.contains("TRUSTED_DOCUMENTS_ADMINS_FREE"), "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_admins_free_administrators_run_anything_and_get_the_playground() {
    on_every_backend_with(trusted(true), |server| async move {
        let user = customer(&server).await;
        let (status, body) = post(&server, json!({ "query": "{ __typename }" }), None).await;
        assert_eq!(
            (status, body["data"]["__typename"].clone()),
            (200, json!("Query")),
            "{body}"
        );
        let (_, body) = post(&server, json!({ "query": "{ __typename }" }), Some(user)).await;
        assert_eq!(
            error_code(&body),
            "QUERY_NOT_IN_SAFELIST",
            "customers are held to the list"
        );
        let playground = server.playground().await;
        assert_eq!(playground.status(), 200);
    })
    .await;
}
