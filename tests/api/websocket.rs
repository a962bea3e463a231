//! WebSocket subscriptions on `graphql-transport-ws`: the happy path, every close code, and as
//! many sockets as the open-file limit allows.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::{
    FreshDatabase, ServerProcess, on_every_backend, on_every_backend_with, sqlite, test_settings,
};
use crate::ws_client::{close_code, connect, initialised, receive, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_changes_are_pushed_to_subscribers() {
    on_every_backend(|server| async move {
        let product = server.create_product("웹캠", "카메라", 30_000, 3).await;
        let other = server.create_product("이어폰", "오디오", 30_000, 3).await;
        let shopper = server.create_user("구독자").await;
        let mut socket = initialised(&server, json!({ "x-user-id": shopper.to_string() })).await;
        send(&mut socket, json!({ "type": "ping" })).await;
        assert_eq!(receive(&mut socket).await["type"], json!("pong"));
        send(
            &mut socket,
            json!({ "id": "s1", "type": "subscribe", "payload": {
                "query": "subscription($ids: [ID!]) { stockChanged(productIds: $ids) { stock product { id name } } }",
                "variables": { "ids": [product.to_string()] } } }),
        )
        .await;
        // the subscription is registered before the restocks below once a query round-trips
        send(&mut socket, json!({ "id": "q1", "type": "subscribe", "payload": { "query": "{ products { totalCount } }" } })).await;
        assert_eq!(receive(&mut socket).await["payload"]["data"]["products"]["totalCount"], json!(2));
        assert_eq!(receive(&mut socket).await, json!({ "type": "complete", "id": "q1" }));

        let restock = "mutation($id: ID!) { restockProduct(input: {productId: $id, quantity: 2}) { product { stock } } }";
        server.admin().data(restock, json!({ "id": other })).await;
        server.admin().data(restock, json!({ "id": product })).await;
        let next = receive(&mut socket).await;
        assert_eq!(next["type"], json!("next"));
        assert_eq!(next["id"], json!("s1"));
        assert_eq!(
            next["payload"]["data"]["stockChanged"],
            json!({ "stock": 5, "product": { "id": product.to_string(), "name": "웹캠" } })
        );
        send(&mut socket, json!({ "id": "s1", "type": "complete" })).await;
        // the id is free again after complete
        send(&mut socket, json!({ "id": "s1", "type": "subscribe", "payload": { "query": "{ products { totalCount } }" } })).await;
        assert_eq!(receive(&mut socket).await["type"], json!("next"));

        // a query that does not validate gets an `error` message
        send(&mut socket, json!({ "id": "bad", "type": "subscribe", "payload": { "query": "subscription { nosuchfield }" } })).await;
        let error = loop {
            let message = receive(&mut socket).await;
            if message["id"] == json!("bad") {
                break message;
            }
        };
        assert_eq!(error["type"], json!("error"));
        assert_eq!(error["payload"][0]["extensions"]["code"], json!("GRAPHQL_VALIDATION_FAILED"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_with_their_codes() {
    on_every_backend(|server| async move {
        let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { stockChanged { stock } }" } });

        let mut socket = connect(&server).await;
        send(&mut socket, subscribe.clone()).await;
        assert_eq!(close_code(&mut socket).await, 4401, "subscribe before ack");

        let mut socket = initialised(&server, json!({})).await;
        send(&mut socket, subscribe.clone()).await;
        send(&mut socket, subscribe.clone()).await;
        assert_eq!(close_code(&mut socket).await, 4409, "duplicate id");

        let mut socket = initialised(&server, json!({})).await;
        send(&mut socket, json!({ "type": "connection_init" })).await;
        assert_eq!(close_code(&mut socket).await, 4429, "second init");

        let mut socket = connect(&server).await;
        socket.send(Message::Text("{not json".into())).await.unwrap();
        assert_eq!(close_code(&mut socket).await, 4400, "invalid message");

        let mut socket = connect(&server).await;
        send(&mut socket, json!({ "type": "no_such_type" })).await;
        assert_eq!(close_code(&mut socket).await, 4400, "unknown message type");

        let mut socket = connect(&server).await;
        send(&mut socket, json!({ "type": "connection_init", "payload": { "x-user-id": "abc" } })).await;
        assert_eq!(close_code(&mut socket).await, 4403, "wrong credentials");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_connection_init_times_out_with_4408() {
    on_every_backend_with(
        |settings| settings.limits.ws_init_timeout_secs = 1,
        |server| async move {
            let mut socket = connect(&server).await;
            assert_eq!(close_code(&mut socket).await, 4408);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_init_payload_authenticates_the_socket() {
    on_every_backend(|server| async move {
        let user = server.customer("socket user", 1_234).await;
        let mut socket = initialised(&server, json!({ "x-user-id": user.to_string() })).await;
        send(&mut socket, json!({ "id": "me", "type": "subscribe", "payload": { "query": "{ me { name balance } }" } })).await;
        let next = receive(&mut socket).await;
        assert_eq!(next["payload"]["data"]["me"], json!({ "name": "socket user", "balance": 1_234 }));

        // a JSON number names the same user; a value of another type is a wrong credential,
        // never silently anonymous
        let mut numeric = initialised(&server, json!({ "x-user-id": user })).await;
        send(&mut numeric, json!({ "id": "me", "type": "subscribe", "payload": { "query": "{ me { name } }" } })).await;
        let next = receive(&mut numeric).await;
        assert_eq!(next["payload"]["data"]["me"]["name"], json!("socket user"));
        let mut malformed = connect(&server).await;
        send(&mut malformed, json!({ "type": "connection_init", "payload": { "x-user-id": [user] } })).await;
        assert_eq!(close_code(&mut malformed).await, 4403);

        let mut anonymous = initialised(&server, json!({})).await;
        send(&mut anonymous, json!({ "id": "me", "type": "subscribe", "payload": { "query": "{ me { name } }" } })).await;
        let next = receive(&mut anonymous).await;
        assert_eq!(next["payload"]["errors"][0]["extensions"]["code"], json!("UNAUTHENTICATED"));
    })
    .await;
}

/// A server started with a soft open-file limit of 256 raises it to the hard one (1,400): 350
/// listeners all get their snapshot, where `EMFILE` stopped it at ~250 before; past what the hard
/// limit leaves for WebSockets (1,400 - 1,000 reserved) an upgrade is refused with 503, and the
/// server still answers over HTTP and reaches its database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised_and_websockets_are_capped_below_it() {
    let database = FreshDatabase::create(sqlite().await).await;
    let settings = test_settings(database.url.clone());
    let (mut process, server) = ServerProcess::start("sqlite-process", &settings).await;
    process.set_open_file_limit(256, 1_400);
    process.resume().await;

    // before the raise, sockets past the limit were never answered: bound the wait
    let sockets = async {
        let mut listeners = Vec::new();
        for _ in 0..350 {
            let mut socket = initialised(&server, json!({})).await;
            send(
                &mut socket,
                json!({ "id": "r", "type": "subscribe", "payload": {
                    "query": "subscription { rankingChanged { changes { movement } } }" } }),
            )
            .await;
            listeners.push(socket);
        }
        for socket in &mut listeners {
            assert_eq!(receive(socket).await["type"], json!("next"));
        }
        let mut more = Vec::new();
        let refused = loop {
            let mut request = server.ws_url.as_str().into_client_request().unwrap();
            request.headers_mut().insert(
                "sec-websocket-protocol",
                "graphql-transport-ws".parse().unwrap(),
            );
            match tokio_tungstenite::connect_async(request).await {
                Ok((socket, _)) => more.push(socket),
                Err(error) => break error,
            }
            assert!(more.len() <= 50, "no more than 400 WebSockets are let in");
        };
        assert_eq!(more.len(), 50, "every WebSocket up to the cap is let in");
        let status = match refused {
            tokio_tungstenite::tungstenite::Error::Http(response) => response.status().as_u16(),
            other => panic!("refused with {other}"),
        };
        assert_eq!(status, 503);
        (listeners, more)
    };
    let _sockets = tokio::time::timeout(Duration::from_secs(120), sockets)
        .await
        .expect("every socket up to the cap is answered within 2 minutes");
    let products = server
        .anonymous()
        .data("{ products { totalCount } }", json!({}))
        .await;
    assert_eq!(products["products"]["totalCount"], json!(0));
    assert!(
        process.log().contains("capped"),
        "the cap is logged: {}",
        process.log()
    );
    database.remove().await;
}
