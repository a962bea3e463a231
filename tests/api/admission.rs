//! One door: POST, GET and a WebSocket `subscribe` refuse an operation the same way (the same
//! code, message, `retryAfterSeconds` and metric), because one module admits them all.

use serde_json::{Value, json};

use crate::harness::{TestServer, on_every_backend_with};
use crate::ws_client::{initialised, receive, send};

/// Three mutation fields at once: more than the IP's bucket ever holds (a burst of 2), so
/// refused whenever it comes, with the longest wait.
const THREE_CHARGES: &str = "mutation { a: chargeBalance(input: {amount: 1}) { balance } \
     b: chargeBalance(input: {amount: 1}) { balance } c: chargeBalance(input: {amount: 1}) { balance } }";

/// `commerce_rate_limited_total{scope="ip"}` now.
async fn refused_by_ip(server: &TestServer) -> u64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("commerce_rate_limited_total{scope=\"ip\"} "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ip series in /metrics:\n{text}"))
}

/// The JSON body of the answer to `request`.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The first error of a `subscribe` answered with an `error` message.
async fn socket_error(server: &TestServer, user: i64, payload: Value) -> Value {
    let mut socket = initialised(server, json!({ "x-user-id": user.to_string() })).await;
    send(
        &mut socket,
        json!({ "type": "subscribe", "id": "1", "payload": payload }),
    )
    .await;
    let message = receive(&mut socket).await;
    assert_eq!(message["type"], "error", "{message}");
    message["payload"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_get_and_websocket_refuse_alike() {
    on_every_backend_with(
        |settings| {
            settings.limits.rate_limit_user_per_sec = 0;
            settings.limits.rate_limit_ip_per_sec = 1;
            settings.limits.rate_limit_ip_burst = 2;
        },
        |server| async move {
            let user = server.create_user("at the door").await;
            let before = refused_by_ip(&server).await;

            // over the rate limits: 429 over POST, an `error` message on the socket
            let response = server
                .http
                .post(server.url("/graphql"))
                .header("x-user-id", user.to_string())
                .json(&json!({ "query": THREE_CHARGES }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()["retry-after"], "60");
            let over_post: Value = response.json().await.unwrap();
            let over_post = over_post["errors"][0].clone();
            let over_socket = socket_error(&server, user, json!({ "query": THREE_CHARGES })).await;
            assert_eq!(over_post, over_socket, "the same error object");
            assert_eq!(over_post["extensions"]["code"], "RATE_LIMITED");
            assert_eq!(over_post["extensions"]["retryAfterSeconds"], 60);
            assert_eq!(
                refused_by_ip(&server).await,
                before + 2,
                "each refusal counted once"
            );
            assert_eq!(server.balance(user).await, 0, "nothing was charged");

            // over GET a mutation is refused before it is counted
            let response = server
                .http
                .get(server.url("/graphql"))
                .header("x-user-id", user.to_string())
                .query(&[("query", THREE_CHARGES)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 405);
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body["errors"][0]["extensions"]["code"],
                "METHOD_NOT_ALLOWED"
            );
            assert_eq!(refused_by_ip(&server).await, before + 2);

            // a persisted document that is not stored: the same error on all three
            let hash = "0".repeat(64);
            let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
            let over_post = json_of(
                server
                    .http
                    .post(server.url("/graphql"))
                    .json(&json!({ "extensions": extensions })),
            )
            .await;
            let over_get = json_of(
                server
                    .http
                    .get(server.url("/graphql"))
                    .query(&[("extensions", extensions.to_string())]),
            )
            .await;
            let over_socket = socket_error(
                &server,
                user,
                json!({ "query": "", "extensions": extensions }),
            )
            .await;
            assert_eq!(over_post["errors"][0], over_get["errors"][0]);
            assert_eq!(over_post["errors"][0], over_socket);
            assert_eq!(
                over_socket["extensions"]["code"],
                "PERSISTED_QUERY_NOT_FOUND"
            );
        },
    )
    .await;
}
