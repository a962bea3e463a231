//! `CORS_ALLOWED_ORIGINS`: which browser pages may call the API, over HTTP (CORS) and WebSocket.

use commerce::config::{AllowedOrigins, AuthMode, Secret};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::{FreshDatabase, TestServer, settings_on, sqlite};

const SHOP: &str = "https://shop.example.com";
const STRANGER: &str = "https://elsewhere.example.org";

/// What a browser at `origin` is told by a preflight and by a POST.
async fn cors_answers(server: &TestServer, origin: &str) -> (Option<String>, Option<String>) {
    let allow = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let preflight = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap();
    let post = server
        .http
        .post(server.url("/graphql"))
        .header("origin", origin)
        .header("content-type", "application/json")
        .body(r#"{"query":"{ products { totalCount } }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.status(),
        200,
        "CORS never changes what the server does"
    );
    (allow(&preflight), allow(&post))
}

/// The HTTP status of a WebSocket upgrade sent with `origin` (101 when accepted).
async fn socket_status(server: &TestServer, origin: Option<&str>) -> u16 {
    let mut request = server.ws_url.as_str().into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    if let Some(origin) = origin {
        headers.insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(err) => panic!("upgrade: {err}"),
    }
}

async fn server_with(
    adjust: impl FnOnce(&mut commerce::config::Settings),
) -> (TestServer, FreshDatabase) {
    let backend = sqlite().await;
    let database = FreshDatabase::create(backend).await;
    let mut settings = settings_on(backend, &database);
    adjust(&mut settings);
    (TestServer::start(backend.name, settings).await, database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_lets_only_this_machines_pages_call() {
    let (server, database) = server_with(|_| {}).await;
    // a page elsewhere could otherwise act as anyone, ADMIN included, with dev headers
    assert_eq!(cors_answers(&server, STRANGER).await, (None, None));
    assert_eq!(socket_status(&server, Some(STRANGER)).await, 403);
    for local in [
        "http://localhost:5173",
        "http://127.0.0.1:3000",
        "https://[::1]:8443",
    ] {
        let allowed = Some(local.to_owned());
        assert_eq!(
            cors_answers(&server, local).await,
            (allowed.clone(), allowed)
        );
        assert_eq!(socket_status(&server, Some(local)).await, 101);
    }
    // a look-alike is not local
    assert_eq!(
        cors_answers(&server, "http://localhost.evil.example").await,
        (None, None)
    );
    server.stop();
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_lets_any_origin_call_when_told_to() {
    let (server, database) = server_with(|settings| {
        settings.server.cors_allowed_origins = Some(AllowedOrigins::Any);
    })
    .await;
    assert_eq!(
        cors_answers(&server, STRANGER).await,
        (Some("*".into()), Some("*".into()))
    );
    assert_eq!(socket_status(&server, Some(STRANGER)).await, 101);
    server.stop();
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_mode_lets_only_the_listed_origins_and_its_own_pages_call() {
    for listed in [false, true] {
        let (server, database) = server_with(|settings| {
            settings.auth.auth_mode = Some(AuthMode::Jwt);
            settings.auth.jwt_secret = Some(Secret::new("a-secret-of-at-least-32-bytes-long!!"));
            if listed {
                settings.server.cors_allowed_origins =
                    Some(format!("{SHOP}, http://localhost:5173").parse().unwrap());
            }
        })
        .await;
        let shop = cors_answers(&server, SHOP).await;
        if listed {
            assert_eq!(shop, (Some(SHOP.into()), Some(SHOP.into())));
            assert_eq!(socket_status(&server, Some(SHOP)).await, 101);
        } else {
            assert_eq!(shop, (None, None), "jwt mode lists no origin by default");
            assert_eq!(socket_status(&server, Some(SHOP)).await, 403);
        }
        assert_eq!(cors_answers(&server, STRANGER).await, (None, None));
        assert_eq!(socket_status(&server, Some(STRANGER)).await, 403);
        // the playground's own page, and programs that are not browsers
        let own = server.url("").trim_end_matches('/').to_owned();
        assert_eq!(socket_status(&server, Some(&own)).await, 101, "{own}");
        assert_eq!(socket_status(&server, None).await, 101);
        server.stop();
        database.remove().await;
    }
}

#[test]
fn a_setting_that_is_not_a_list_of_origins_stops_start_up_with_one_clear_line() {
    for wrong in [
        "shop.example.com",
        "ftp://x",
        "https://x/path",
        "https://*.x",
        "https://",
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
            .env("CORS_ALLOWED_ORIGINS", format!("{SHOP},{wrong}"))
            .env("DATABASE_URL", "sqlite::memory:")
            .arg("schema")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{wrong} was accepted");
        assert!(
            stderr.contains("CORS_ALLOWED_ORIGINS") && stderr.contains("is not an origin"),
            "{wrong}: {stderr}"
        );
    }
    assert_eq!("*".parse::<AllowedOrigins>(), Ok(AllowedOrigins::Any));
}
