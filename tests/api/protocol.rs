//! GraphQL over HTTP: media types, status codes, GET, batches, body and query limits, GraphiQL,
//! health and readiness.

use std::collections::BTreeSet;

use commerce::config::Secret;
use serde_json::{Value, json};

use crate::harness::{
    FreshDatabase, TestServer, error_code, on_every_backend, on_every_backend_with, sqlite,
    test_settings,
};

const GQL_JSON: &str = "application/graphql-response+json";

async fn post_raw(
    server: &TestServer,
    accept: Option<&str>,
    content_type: Option<&str>,
    body: String,
) -> (u16, String, Value) {
    let mut request = server.http.post(server.url("/graphql")).body(body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let media = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (
        status,
        media,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn query(q: &str) -> String {
    json!({ "query": q }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_negotiation_and_status_codes() {
    on_every_backend(|server| async move {
        let json_ct = Some("application/json");
        // success: media type follows Accept
        let (status, media, body) = post_raw(
            &server,
            Some(GQL_JSON),
            json_ct,
            query("{ products { totalCount } }"),
        )
        .await;
        assert_eq!((status, media.starts_with(GQL_JSON)), (200, true));
        assert_eq!(body["data"]["products"]["totalCount"], json!(0));
        let (status, media, _) = post_raw(
            &server,
            Some("application/json"),
            json_ct,
            query("{ products { totalCount } }"),
        )
        .await;
        assert_eq!((status, media.starts_with("application/json")), (200, true));
        let (status, media, _) =
            post_raw(&server, None, json_ct, query("{ products { totalCount } }")).await;
        assert_eq!((status, media.starts_with("application/json")), (200, true));
        let (status, _, _) = post_raw(
            &server,
            Some("text/html"),
            json_ct,
            query("{ products { totalCount } }"),
        )
        .await;
        assert_eq!(status, 406);

        // parse and validation failures: 400 with graphql-response+json, 200 with json, coded
        for (q, code) in [
            ("{ products { ", "GRAPHQL_PARSE_FAILED"),
            ("{ nosuchfield }", "GRAPHQL_VALIDATION_FAILED"),
        ] {
            let (status, _, body) = post_raw(&server, Some(GQL_JSON), json_ct, query(q)).await;
            assert_eq!((status, error_code(&body)), (400, code), "{q}");
            let (status, _, body) =
                post_raw(&server, Some("application/json"), json_ct, query(q)).await;
            assert_eq!((status, error_code(&body)), (200, code), "{q}");
            // refused before execution: no `data` entry at all, not `data: null`
            assert!(body.get("data").is_none(), "{q}: {body}");
        }
        // an execution error keeps its `data`
        let (_, _, body) = post_raw(&server, None, json_ct, query("{ me { id } }")).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
        assert!(body.get("data").is_some(), "{body}");

        // no document at all (a misspelled `query`, an empty body object): 400 whatever Accept says
        for accept in [Some(GQL_JSON), Some("application/json")] {
            for body in [
                json!({ "qeury": "{ products { totalCount } }" }),
                json!({}),
                json!([{}]),
            ] {
                let (status, _, answer) =
                    post_raw(&server, accept, json_ct, body.to_string()).await;
                assert_eq!(
                    (status, error_code(&answer)),
                    (400, "BAD_REQUEST"),
                    "{body}"
                );
            }
        }
        let response = server
            .http
            .get(server.url("/graphql?variables=%7B%7D"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "GET without a query");

        // bodies: JSON only, well-formed, bounded
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let (status, _, _) = post_raw(
                &server,
                None,
                content_type,
                query("{ products { totalCount } }"),
            )
            .await;
            assert_eq!(status, 415, "{content_type:?}");
        }
        let (status, _, body) = post_raw(&server, None, json_ct, "{not json".into()).await;
        assert_eq!((status, error_code(&body)), (400, "BAD_REQUEST"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_runs_queries_and_refuses_mutations() {
    on_every_backend(|server| async move {
        let response = server
            .http
            .get(server.url("/graphql"))
            .query(&[("query", "{ products { totalCount } }")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"]["products"]["totalCount"], json!(0));

        let response = server
            .http
            .get(server.url("/graphql"))
            .header("x-role", "ADMIN")
            .query(&[(
                "query",
                "mutation { createUser(input: {name: \"via get\"}) { user { id } } }",
            )])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "POST");
        let users = server
            .admin()
            .post(
                "mutation { createUser(input: {name: \"check\"}) { user { id } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            users["data"]["createUser"]["user"]["id"],
            json!("1"),
            "the GET created nothing"
        );

        // operationName picks one operation of several, as over POST; a mutation is still 405
        let two = "query A { __typename } query B { products { totalCount } } mutation C { createUser(input: {name: \"c\"}) { user { id } } }";
        let pick = |name: &'static str| {
            server
                .http
                .get(server.url("/graphql"))
                .header("x-role", "ADMIN")
                .query(&[("query", two), ("operationName", name)])
                .send()
        };
        let response = pick("B").await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({ "data": { "products": { "totalCount": 0 } } }));
        assert_eq!(pick("C").await.unwrap().status(), 405);

        let page = server.playground().await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("graphiql") && html.contains("x-user-id") && html.contains("/graphql")
        );
    })
    .await;
}

/// GET `path` of `server`: status, `content-type`, `cache-control` and body.
async fn get_file(server: &TestServer, path: &str) -> (u16, String, String, Vec<u8>) {
    let response = server
        .http
        .get(server.url(path))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (content_type, cache) = (header("content-type"), header("cache-control"));
    let status = response.status().as_u16();
    (
        status,
        content_type,
        cache,
        response.bytes().await.unwrap().to_vec(),
    )
}

/// The files of the build that `text` names: `/graphql/assets/<file>` or, between chunks,
/// `assets/<file>` or `./<file>`, as a quoted string or in a CSS `url()`.
fn asset_references(text: &str) -> BTreeSet<String> {
    text.split(['"', '\'', '`', '(', ')'])
        .filter_map(|token| {
            token
                .strip_prefix("/graphql/assets/")
                .or_else(|| token.strip_prefix("assets/"))
                .or_else(|| token.strip_prefix("./"))
        })
        .filter(|file| {
            !file.contains('/') && [".js", ".css", ".ttf"].iter().any(|e| file.ends_with(e))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_and_its_assets_come_from_the_server_itself() {
    let database = FreshDatabase::create(sqlite().await).await;
    let dev = TestServer::start("sqlite", test_settings(database.url.clone())).await;
    let (status, content_type, cache, page) = get_file(&dev, "/graphql").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(cache, "no-cache");
    let html = String::from_utf8(page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page names another host:\n{html}"
    );
    // The settings: dev headers and scenario 1, as JSON that cannot close the script element.
    let config = html
        .split_once(r#"<script type="application/json" id="config">"#)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map(|(config, _)| serde_json::from_str::<Value>(config).unwrap())
        .expect("the settings");
    assert_eq!(config["headers"], json!({ "x-user-id": "1" }));
    assert!(
        config["query"]
            .as_str()
            .unwrap()
            .contains("mutation Charge")
    );

    // Every file the page names, and every file those name (chunks, workers, the icon font).
    let mut pending = asset_references(&html);
    assert!(
        pending.iter().any(|f| f.ends_with(".js")) && pending.iter().any(|f| f.ends_with(".css")),
        "{pending:?}"
    );
    let mut served = BTreeSet::new();
    while let Some(file) = pending.pop_first() {
        let (status, content_type, cache, body) =
            get_file(&dev, &format!("/graphql/assets/{file}")).await;
        assert_eq!(status, 200, "{file}");
        let expected = match file.rsplit_once('.').unwrap().1 {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            _ => "font/ttf",
        };
        assert_eq!(content_type, expected, "{file}");
        assert_eq!(cache, "public, max-age=31536000, immutable", "{file}");
        // gzipped for a client that accepts it, the same bytes once unzipped
        let gzipped = dev
            .http
            .get(dev.url(&format!("/graphql/assets/{file}")))
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .await
            .unwrap();
        assert_eq!(gzipped.headers()["content-encoding"], "gzip", "{file}");
        let gzipped = gzipped.bytes().await.unwrap();
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&gzipped[..]),
            &mut unzipped,
        )
        .unwrap();
        assert!(unzipped == body && gzipped.len() < body.len(), "{file}");
        if !file.ends_with(".ttf") {
            let text = String::from_utf8(body).unwrap();
            pending.extend(
                asset_references(&text)
                    .into_iter()
                    .filter(|f| !served.contains(f)),
            );
        }
        served.insert(file);
    }
    assert!(
        served.iter().any(|f| f.starts_with("graphql.worker-"))
            && served.iter().any(|f| f.starts_with("json.worker-")),
        "Monaco's workers: {served:?}"
    );
    let (status, ..) = get_file(&dev, "/graphql/assets/no-such-file.js").await;
    assert_eq!(status, 404);
    dev.stop();

    let mut settings = test_settings(database.url.clone());
    settings.auth.jwt_secret = Some(Secret::new("playground-test-secret-of-32-bytes!!"));
    let jwt = TestServer::start("sqlite", settings).await;
    let (_, _, _, page) = get_file(&jwt, "/graphql").await;
    let html = String::from_utf8(page).unwrap();
    assert!(html.contains("Bearer \\u003ctoken from `commerce token --user 1`\\u003e"));
    jwt.stop();
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_depth_and_complexity_are_bounded() {
    on_every_backend(|server| async move {
        let json_ct = Some("application/json");
        let op = json!({ "query": "{ products { totalCount } }" });
        let (status, _, body) = post_raw(&server, None, json_ct, json!([op, op]).to_string()).await;
        assert_eq!(status, 200);
        assert_eq!(body.as_array().map(Vec::len), Some(2));
        for batch in [json!([]), Value::Array(vec![op.clone(); 11])] {
            let (status, _, body) = post_raw(&server, None, json_ct, batch.to_string()).await;
            assert_eq!((status, error_code(&body)), (400, "BAD_REQUEST"));
        }

        let aliases: String = (0..30)
            .map(|i| {
                format!(
                    "p{i}: products(first: 100) {{ edges {{ node {{ id name price stock }} }} }} "
                )
            })
            .collect();
        let (status, _, body) = post_raw(
            &server,
            Some(GQL_JSON),
            json_ct,
            query(&format!("{{ {aliases} }}")),
        )
        .await;
        assert_eq!((status, error_code(&body)), (400, "QUERY_TOO_COMPLEX"));
        // page sizes weigh: 30 x 100 products (and their edges and nodes), against 2,000
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("complexity is 18060;"), "{message}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_and_body_limits_refuse_requests() {
    on_every_backend_with(
        |settings| {
            settings.limits.max_query_depth = 3;
            settings.server.max_body_bytes = 4_096;
        },
        |server| async move {
            // small enough to be written whole before the server answers
            let huge = query(&format!(
                "{{ products {{ totalCount }} }} # {}",
                "x".repeat(10_000)
            ));
            let (status, _, body) = post_raw(&server, None, Some("application/json"), huge).await;
            assert_eq!((status, error_code(&body)), (413, "PAYLOAD_TOO_LARGE"));
            let deep = "{ me { balanceHistory { edges { node { id } } } } }";
            let (status, _, body) = post_raw(
                &server,
                Some(GQL_JSON),
                Some("application/json"),
                query(deep),
            )
            .await;
            assert_eq!((status, error_code(&body)), (400, "QUERY_TOO_COMPLEX"));
            let shallow = "{ products { totalCount } }";
            let (status, _, _) = post_raw(
                &server,
                Some(GQL_JSON),
                Some("application/json"),
                query(shallow),
            )
            .await;
            assert_eq!(status, 200);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    on_every_backend(|server| async move {
        assert_eq!(server.get("/healthz").await.status(), 200);
        let ready = server.get("/readyz").await;
        assert_eq!(ready.status(), 200);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["database"], json!("ok"));
        assert_ne!(body["redis"], json!("unavailable"));
    })
    .await;
}
