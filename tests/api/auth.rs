//! Authentication and authorization: dev headers, JWT, anonymous callers, customers and admins.

use commerce::app::Application;
use commerce::auth::{Authenticator, Role};
use commerce::config::{AuthMode, Secret, Settings};
use serde_json::json;

use crate::harness::{error_code, on_every_backend, on_every_backend_with};

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_customer_and_admin_rights() {
    on_every_backend(|server| async move {
        let anonymous = server.anonymous();
        for query in [
            "{ me { id } }",
            "mutation { chargeBalance(input: {amount: 1}) { balance } }",
            "mutation { createProduct(input: {name: \"x\", price: 1, category: \"c\"}) { product { id } } }",
        ] {
            assert_eq!(error_code(&anonymous.post(query, json!({})).await), "UNAUTHENTICATED", "{query}");
        }
        // public reads need no credentials
        assert!(anonymous.post("{ products { totalCount } }", json!({})).await.get("errors").is_none());

        let user = server.create_user("customer").await;
        let customer = server.user(user);
        for query in [
            "mutation { createUser(input: {name: \"x\"}) { user { id } } }",
            "mutation { createProduct(input: {name: \"x\", price: 1, category: \"c\"}) { product { id } } }",
            "mutation { restockProduct(input: {productId: \"1\", quantity: 1}) { product { id } } }",
        ] {
            assert_eq!(error_code(&customer.post(query, json!({})).await), "FORBIDDEN", "{query}");
        }
        // a customer changes only their own balance
        let other = server.create_user("other").await;
        server.charge(user, 5_000).await;
        assert_eq!(server.balance(user).await, 5_000);
        assert_eq!(server.balance(other).await, 0);
        let me = customer.data("{ me { id name role } }", json!({})).await;
        assert_eq!(me["me"], json!({ "id": user.to_string(), "name": "customer", "role": "CUSTOMER" }));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_dev_headers_are_401() {
    on_every_backend(|server| async move {
        for (name, value) in [
            ("x-user-id", "abc"),
            ("x-user-id", "-3"),
            ("x-role", "ROOT"),
        ] {
            let response = server
                .http
                .post(server.url("/graphql"))
                .header(name, value)
                .json(&json!({ "query": "{ me { id } }" }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{name}: {value}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(error_code(&body), "UNAUTHENTICATED");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_mode_verifies_bearer_tokens() {
    on_every_backend_with(
        |settings| settings.auth.jwt_secret = Some(Secret::new(SECRET)),
        |server| async move {
            let minter = Authenticator::new(AuthMode::Jwt, Some(SECRET));
            let admin_token = minter.mint(999, Role::Admin, 600).unwrap();
            let post = |token: Option<String>, query: &'static str| {
                let mut request = server
                    .http
                    .post(server.url("/graphql"))
                    .json(&json!({ "query": query }));
                if let Some(token) = token {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                async move { request.send().await.unwrap() }
            };
            let created = post(
                Some(admin_token.clone()),
                "mutation { createUser(input: {name: \"jwt user\"}) { user { id } } }",
            )
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap();
            let user: i64 = created["data"]["createUser"]["user"]["id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let customer_token = minter.mint(user, Role::Customer, 600).unwrap();
            let me: serde_json::Value = post(Some(customer_token.clone()), "{ me { name } }")
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(me["data"]["me"]["name"], json!("jwt user"));
            let forbidden: serde_json::Value = post(
                Some(customer_token.clone()),
                "mutation { createUser(input: {name: \"x\"}) { user { id } } }",
            )
            .await
            .json()
            .await
            .unwrap();
            assert_eq!(error_code(&forbidden), "FORBIDDEN");

            // tampered, foreign-secret and expired tokens are refused with 401
            let foreign = Authenticator::new(
                AuthMode::Jwt,
                Some("another-secret-that-is-long-enough-too"),
            )
            .mint(user, Role::Admin, 600)
            .unwrap();
            let expired = minter.mint(user, Role::Customer, -3_600).unwrap();
            for bad in [
                format!("{customer_token}x"),
                foreign,
                expired,
                "garbage".to_owned(),
            ] {
                assert_eq!(post(Some(bad), "{ me { name } }").await.status(), 401);
            }
            // dev headers mean nothing in jwt mode
            let spoofed: serde_json::Value = server
                .http
                .post(server.url("/graphql"))
                .header("x-user-id", user.to_string())
                .header("x-role", "ADMIN")
                .json(&json!({ "query": "{ me { name } }" }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(error_code(&spoofed), "UNAUTHENTICATED");
        },
    )
    .await;
}

#[tokio::test]
async fn unsafe_settings_stop_start_up_with_one_clear_line() {
    let mut public_dev = Settings::for_database("sqlite::memory:");
    public_dev.server.bind = "0.0.0.0:0".parse().unwrap();
    let err = Application::build(public_dev).await.err().expect("refused");
    assert!(err.to_string().contains("AUTH_MODE"), "{err}");

    let mut jwt_without_secret = Settings::for_database("sqlite::memory:");
    jwt_without_secret.auth.auth_mode = Some(AuthMode::Jwt);
    let err = Application::build(jwt_without_secret)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("JWT_SECRET"), "{err}");

    let mut short_secret = Settings::for_database("sqlite::memory:");
    short_secret.auth.jwt_secret = Some(Secret::new("short"));
    let err = Application::build(short_secret)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");

    let wrong_url = Settings::for_database("oracle://nowhere");
    let err = Application::build(wrong_url).await.err().expect("refused");
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
}
