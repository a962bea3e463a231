//! Talking to the server as a test does: who calls ([`Caller`]: anonymous, a customer, an
//! administrator, by the development headers), POSTing GraphQL, plain GETs, and reading answers
//! (`id_of`, `error_code`, `items`, `sample` of a metric).

use serde_json::{Value, json};

use super::server::TestServer;

impl TestServer {
    pub fn anonymous(&self) -> Caller<'_> {
        Caller {
            server: self,
            headers: vec![],
        }
    }

    pub fn user(&self, id: i64) -> Caller<'_> {
        Caller {
            server: self,
            headers: vec![("x-user-id", id.to_string())],
        }
    }

    pub fn admin(&self) -> Caller<'_> {
        Caller {
            server: self,
            headers: vec![("x-role", "ADMIN".to_owned())],
        }
    }

    /// The data of `query` as `user`, with the fewest database statements one of three runs
    /// cost: a background worker (expiry sweep, ranking refresh) may run a statement during one.
    pub async fn cheapest_query(&self, user: i64, query: &str, variables: Value) -> (u64, Value) {
        let mut cheapest = u64::MAX;
        let mut data = Value::Null;
        for _ in 0..3 {
            let before = self.statements_executed();
            data = self.user(user).data(query, variables.clone()).await;
            cheapest = cheapest.min(self.statements_executed() - before);
        }
        (cheapest, data)
    }

    /// GETs a path of the server (`/healthz`, `/readyz`, `/metrics`), which must answer.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("the server answers")
    }

    /// What a browser gets at `/graphql`: the playground (GraphiQL), unless it is refused.
    pub async fn playground(&self) -> reqwest::Response {
        self.http
            .get(self.url("/graphql"))
            .header("accept", "text/html")
            .send()
            .await
            .expect("the server answers")
    }

    /// `/metrics`, as text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.expect("a text")
    }
}

/// Who sends a request.
pub struct Caller<'a> {
    server: &'a TestServer,
    headers: Vec<(&'static str, String)>,
}

impl Caller<'_> {
    /// POSTs an operation; returns the whole response body (`data` and `errors`).
    pub async fn post(&self, query: &str, variables: Value) -> Value {
        let mut request = self
            .server
            .http
            .post(self.server.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("the server answers");
        response.json().await.expect("a JSON body")
    }

    /// POSTs an operation that must succeed; returns its `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let body = self.post(query, variables).await;
        assert!(
            body.get("errors").is_none(),
            "[{}] unexpected errors: {body}",
            self.server.backend
        );
        body["data"].clone()
    }
}

/// Parses a GraphQL `ID` holding a number.
pub fn id_of(value: &Value) -> i64 {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a numeric ID: {value}"))
}

/// The `extensions.code` of the first top-level error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// Order lines `(product, quantity)` as an `[OrderItemInput!]!` value.
pub fn items(lines: &[(i64, i64)]) -> Value {
    lines
        .iter()
        .map(
            |(product, quantity)| json!({ "productId": product.to_string(), "quantity": quantity }),
        )
        .collect()
}

/// The value of `series` (its name and labels, as rendered) in a Prometheus text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}
