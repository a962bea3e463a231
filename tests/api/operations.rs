//! Operating the server: metrics, request ids, rate limits, WebSocket limits, introspection off,
//! graceful shutdown, and hostile input refused while the server keeps serving.

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{
    FreshDatabase, ServerProcess, backends, error_code, items, on_every_backend,
    on_every_backend_with, sample, settings_on,
};
use crate::ws_client::{close_code, connect, initialised, receive, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_request_ids() {
    on_every_backend(|server| async move {
        let user = server.customer("measured", 10_000).await;
        let response = server
            .http
            .post(server.url("/graphql"))
            .header("x-request-id", "trace-me-42")
            .header("x-user-id", user.to_string())
            .json(
                &json!({ "query": "query Balance { me { balance } }", "operationName": "Balance" }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "trace-me-42");
        let generated = server.get("/healthz").await;
        assert!(
            generated
                .headers()
                .get("x-request-id")
                .is_some_and(|id| id.len() >= 32),
            "a new id when none was sent"
        );
        let mutation = "mutation { chargeBalance(input: {amount: 0}) { userErrors { code } } }";
        server.user(user).post(mutation, json!({})).await;
        let product = server.create_product("gauge", "metrics", 100, 5).await;
        let order = "mutation($items: [OrderItemInput!]!) { placeOrder(input: {items: $items}) { order { id } } }";
        server
            .user(user)
            .data(order, json!({ "items": items(&[(product, 1)]) }))
            .await;

        let text = server.metrics().await;
        // histograms are buckets that sum across instances, never client-side quantiles
        assert!(!text.contains("quantile="), "{text}");
        for expected in [
            "commerce_graphql_requests_total{operation=\"Balance\",outcome=\"ok\"}",
            "commerce_graphql_request_duration_seconds_bucket{operation=\"Balance\",outcome=\"ok\"",
            "commerce_batch_size_bucket{writer=\"orders\",le=\"1\"}",
            "commerce_batch_lock_wait_seconds_bucket{writer=\"orders\",le=\"0.0005\"}",
            "commerce_business_outcomes_total{mutation=\"chargeBalance\",outcome=\"OK\"}",
            "commerce_business_outcomes_total{mutation=\"chargeBalance\",outcome=\"INVALID_INPUT\"}",
            "commerce_charged_won_total",
            "commerce_db_pool_connections{state=\"in_use\"}",
            "commerce_outbox_pending",
            "commerce_websocket_connections",
        ] {
            assert!(
                text.contains(expected),
                "/metrics lacks {expected}:\n{text}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_shows_every_alerted_series_at_zero_all_named_commerce() {
    for backend in backends().await {
        let database = FreshDatabase::create(backend).await;
        // a process of its own: its recorder has seen nothing but its start-up
        let (process, server) =
            ServerProcess::start(backend.name, &settings_on(backend, &database)).await;
        let text = server.metrics().await;
        let outcome = |mutation: &str, outcome: &str| {
            format!(
                "commerce_business_outcomes_total{{mutation=\"{mutation}\",outcome=\"{outcome}\"}}"
            )
        };
        let mut expected = vec![
            outcome("placeOrder", "OK"),
            outcome("placeOrder", "OUT_OF_STOCK"),
            outcome("placeOrder", "INSUFFICIENT_BALANCE"),
            outcome("createOrder", "OUT_OF_STOCK"),
            outcome("payOrder", "INSUFFICIENT_BALANCE"),
            outcome("cancelOrder", "OK"),
            outcome("chargeBalance", "BALANCE_LIMIT_EXCEEDED"),
            outcome("issueCoupon", "OK"),
            outcome("issueCoupon", "COUPON_EXHAUSTED"),
            outcome("issueCoupon", "COUPON_ALREADY_ISSUED"),
        ];
        expected.extend(commerce::schema::business_outcomes().map(|(m, o)| outcome(m, o)));
        expected.extend(
            [
                "commerce_revenue_won_total",
                "commerce_refunded_won_total",
                "commerce_charged_won_total",
                "commerce_outbox_deliveries_total{result=\"sent\"}",
                "commerce_outbox_deliveries_total{result=\"failed\"}",
                "commerce_outbox_deliveries_total{result=\"rejected\"}",
                "commerce_outbox_pending",
                "commerce_outbox_failed",
                "commerce_outbox_breaker_state",
                "commerce_outbox_deliveries_total{result=\"misdirected\"}",
                "commerce_data_platform_misconfigured",
                "commerce_ranking_cache_total{result=\"miss\"}",
                "commerce_rate_limited_total{scope=\"user\"}",
                "commerce_rate_limited_total{scope=\"ip\"}",
                "commerce_subscriptions_active",
            ]
            .map(str::to_owned),
        );
        expected.extend(
            commerce::verification::INVARIANTS
                .map(|i| format!("commerce_verify_violations{{invariant=\"{}\"}}", i.name())),
        );
        for series in &expected {
            assert_eq!(
                sample(&text, series),
                Some(0.0),
                "[{}] a fresh server's /metrics lacks {series} at 0:\n{text}",
                backend.name
            );
        }
        let names: Vec<&str> = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| line.split(['{', ' ']).next().unwrap_or(line))
            .collect();
        let foreign: Vec<&&str> = names
            .iter()
            .filter(|n| !n.starts_with("commerce_"))
            .collect();
        assert!(
            foreign.is_empty(),
            "[{}] names without the commerce_ prefix: {foreign:?}",
            backend.name
        );
        drop(process);
        database.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_beyond_the_rate_limit_get_429_with_retry_after() {
    on_every_backend_with(
        |settings| {
            settings.limits.rate_limit_user_per_sec = 1;
            settings.limits.rate_limit_user_burst = 5;
        },
        |server| async move {
            let user = server.create_user("hasty").await;
            let charge =
                json!({ "query": "mutation { chargeBalance(input: {amount: 100}) { balance } }" });
            let mut statuses = vec![];
            for _ in 0..8 {
                let response = server
                    .http
                    .post(server.url("/graphql"))
                    .header("x-user-id", user.to_string())
                    .json(&charge)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                if status == 429 {
                    assert!(
                        response.headers()["retry-after"]
                            .to_str()
                            .unwrap()
                            .parse::<u64>()
                            .unwrap()
                            >= 1
                    );
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(error_code(&body), "RATE_LIMITED");
                    assert!(
                        body["errors"][0]["extensions"]["retryAfterSeconds"]
                            .as_u64()
                            .is_some()
                    );
                }
                statuses.push(status);
            }
            assert_eq!(
                statuses.iter().filter(|s| **s == 200).count(),
                5,
                "{statuses:?}"
            );
            assert_eq!(
                server.balance(user).await,
                500,
                "refused mutations changed nothing"
            );
            // reads are never limited
            for _ in 0..20 {
                assert!(
                    server
                        .user(user)
                        .post("{ me { balance } }", json!({}))
                        .await
                        .get("errors")
                        .is_none()
                );
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_limits_and_introspection_switch() {
    on_every_backend_with(
        |settings| {
            settings.limits.ws_max_connections = 2;
            settings.limits.ws_max_subscriptions = 1;
            settings.limits.disable_introspection = true;
        },
        |server| async move {
            let mut first = initialised(&server, json!({})).await;
            let _second = initialised(&server, json!({})).await;
            let mut request =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                    server.ws_url.as_str(),
                )
                .unwrap();
            request.headers_mut().insert(
                "sec-websocket-protocol",
                "graphql-transport-ws".parse().unwrap(),
            );
            let refused = tokio_tungstenite::connect_async(request).await;
            assert!(refused.is_err(), "a third connection is refused");

            let stock = json!({ "query": "subscription { stockChanged { stock } }" });
            send(
                &mut first,
                json!({ "id": "a", "type": "subscribe", "payload": stock }),
            )
            .await;
            send(
                &mut first,
                json!({ "id": "b", "type": "subscribe", "payload": stock }),
            )
            .await;
            let error = receive(&mut first).await;
            assert_eq!(
                (error["type"].clone(), error["id"].clone()),
                (json!("error"), json!("b"))
            );
            assert_eq!(
                error["payload"][0]["extensions"]["code"],
                json!("RATE_LIMITED")
            );

            let introspection = server
                .anonymous()
                .post("{ __schema { types { name } } }", json!({}))
                .await;
            assert_eq!(
                introspection["data"]["__schema"],
                Value::Null,
                "introspection is off: {introspection}"
            );
            let typo = server
                .anonymous()
                .post("{ prodcts { totalCount } }", json!({}))
                .await;
            let message = typo["errors"][0]["message"].as_str().unwrap();
            assert!(
                !message.contains("Did you mean"),
                "no suggestions: {message}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_closes_subscriptions_with_1001() {
    on_every_backend(|server| async move {
        let mut socket = initialised(&server, json!({})).await;
        send(&mut socket, json!({ "id": "s", "type": "subscribe", "payload": { "query": "subscription { stockChanged { stock } }" } })).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        server.stop();
        assert_eq!(close_code(&mut socket).await, 1001);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_and_the_server_keeps_serving() {
    on_every_backend(|server| async move {
        let post = |body: Vec<u8>, content_type: &'static str| {
            let request = server.http.post(server.url("/graphql")).header("content-type", content_type).header("x-role", "ADMIN").body(body);
            async move {
                // an oversized body may be cut off by the early 413 while still being written
                let Ok(response) = request.send().await else {
                    return (0, Value::Null);
                };
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (status, body)
            }
        };
        let query = |q: String| json!({ "query": q }).to_string().into_bytes();

        let deep = format!("{{ me {{ {}id{} }} }}", "orders { edges { node { items { product { alternatives { ".repeat(5), " } } } } } }".repeat(5));
        let (status, body) = post(query(deep), "application/json").await;
        assert_eq!((status, error_code(&body)), (200, "QUERY_TOO_COMPLEX"));

        let aliases: String = (0..5_000).map(|i| format!("a{i}: products {{ totalCount }} ")).collect();
        let (status, body) = post(query(format!("{{ {aliases} }}")), "application/json").await;
        assert_eq!((status, error_code(&body)), (200, "QUERY_TOO_COMPLEX"));

        let huge_variable = json!({
            "query": "mutation($name: String!) { createUser(input: {name: $name}) { user { id } userErrors { code field } } }",
            "variables": { "name": "가".repeat(300_000) },
        });
        let (status, body) = post(huge_variable.to_string().into_bytes(), "application/json").await;
        assert_eq!(status, 200);
        assert_eq!(body["data"]["createUser"]["userErrors"][0]["code"], json!("INVALID_INPUT"));

        let (status, _) = post(vec![b'{', 0xff, 0xfe, b'}'], "application/json").await;
        assert_eq!(status, 400, "invalid UTF-8");
        let (status, _) = post(query("{ products { totalCount } }".into()), "text/plain").await;
        assert_eq!(status, 415);
        let (status, _) = post(query("{ products { totalCount } }".into()), "multipart/form-data").await;
        assert_eq!(status, 415);
        let batch = Value::Array(vec![json!({ "query": "{ products { totalCount } }" }); 1_000]).to_string().into_bytes();
        let (status, body) = post(batch, "application/json").await;
        assert_eq!((status, error_code(&body)), (400, "BAD_REQUEST"));
        let (status, _) = post(vec![b'['; 600_000], "application/json").await;
        assert_eq!(status, 400, "deeply nested JSON");
        let (status, _) = post(vec![b' '; 2_000_000], "application/json").await;
        assert!(matches!(status, 413 | 0), "refused as too large: {status}");

        let mut socket = connect(&server).await;
        socket.send(Message::Binary(vec![0u8; 1024].into())).await.unwrap();
        assert_eq!(close_code(&mut socket).await, 4400);

        // a new connection: the refused ones were closed by the server
        let still: Value = reqwest::Client::new()
            .post(server.url("/graphql"))
            .json(&json!({ "query": "{ products { totalCount } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(still["data"]["products"]["totalCount"], json!(0), "still serving");
    })
    .await;
}
