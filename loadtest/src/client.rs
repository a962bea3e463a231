//! GraphQL over HTTP: a pooled client that sends operations as an administrator, as a customer or
//! anonymously, and turns every answer into an outcome by reading its body, not just its status.
//!
//! Outcomes are `OK`, the first `userErrors` code of a payload (e.g. `OUT_OF_STOCK`), the first
//! top-level `errors[].extensions.code` (e.g. `INTERNAL_SERVER_ERROR`, also of a refusal such as
//! HTTP 429 `RATE_LIMITED`), `HTTP_<status>` for other failed statuses,
//! `TIMEOUT` or `TRANSPORT_ERROR` (no answer), `INVALID_JSON`, or a code a scenario gives an
//! answer whose data is not what it asked for (e.g. `MISSING_DATA`).

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

pub const OK: &str = "OK";
/// The answer is well-formed and error-free but lacks what the scenario needs.
pub const MISSING_DATA: &str = "MISSING_DATA";

/// Who sends an operation (the server's `dev` auth mode headers).
#[derive(Copy, Clone, Debug)]
pub enum Viewer {
    Admin,
    User(i64),
    Anonymous,
}

/// One answer: its outcome and, when the body was JSON, the body.
#[derive(Debug)]
pub struct Reply {
    pub outcome: String,
    pub body: Value,
    /// What went wrong below GraphQL (transport error, bad status, unreadable body).
    pub detail: Option<String>,
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        self.outcome == OK
    }

    /// The value at a JSON pointer below `data`, e.g. `/placeOrder/order/status`.
    pub fn data(&self, pointer: &str) -> &Value {
        self.body
            .pointer(&format!("/data{pointer}"))
            .unwrap_or(&Value::Null)
    }

    /// Marks an error-free answer as failed with `code` unless `valid` holds for it.
    pub fn require(mut self, code: &str, valid: impl FnOnce(&Reply) -> bool) -> Self {
        if self.is_ok() && !valid(&self) {
            self.outcome = code.to_owned();
        }
        self
    }

    fn failed(outcome: String, detail: String) -> Self {
        Self {
            outcome,
            body: Value::Null,
            detail: Some(detail),
        }
    }
}

/// Settings of an HTTP client.
#[derive(Copy, Clone, Debug)]
pub struct ClientOptions {
    /// Whole-request timeout.
    pub timeout: Duration,
}

/// A GraphQL endpoint behind a connection pool; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8000`) whose pool keeps every
    /// connection it opened, for as long as the run lasts.
    pub fn new(base_url: &str, options: ClientOptions) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(None)
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            endpoint: graphql_endpoint(base_url),
        })
    }

    /// Sends one operation; never fails: every problem becomes the reply's outcome.
    pub async fn send(&self, viewer: Viewer, query: &str, variables: Value) -> Reply {
        let mut request = self
            .http
            .post(&self.endpoint)
            .json(&json!({ "query": query, "variables": variables }));
        request = match viewer {
            Viewer::Admin => request.header("x-role", "ADMIN"),
            Viewer::User(id) => request.header("x-user-id", id.to_string()),
            Viewer::Anonymous => request,
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return transport_failure(&error),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return transport_failure(&error),
        };
        let parsed = serde_json::from_slice::<Value>(&bytes);
        if !status.is_success() {
            // a refusal with a GraphQL error (429 RATE_LIMITED, 408...) is named by its code
            let code = parsed.as_ref().ok().and_then(first_error_code);
            return Reply::failed(
                code.map_or_else(|| format!("HTTP_{}", status.as_u16()), str::to_owned),
                format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            );
        }
        match parsed {
            Ok(body) => Reply {
                outcome: classify(&body),
                body,
                detail: None,
            },
            Err(error) => Reply::failed("INVALID_JSON".into(), error.to_string()),
        }
    }

    /// Sends one operation that must succeed (setup work) and returns its `data`.
    pub async fn expect(
        &self,
        viewer: Viewer,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let reply = self.send(viewer, query, variables).await;
        if !reply.is_ok() {
            bail!(
                "{} failed with {}: {}",
                operation_name(query),
                reply.outcome,
                reply.detail.unwrap_or_else(|| reply.body.to_string())
            );
        }
        Ok(reply.body["data"].clone())
    }
}

/// `http://host:port` (with or without `/graphql`) to the GraphQL endpoint.
pub fn graphql_endpoint(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.ends_with("/graphql") {
        base.to_owned()
    } else {
        format!("{base}/graphql")
    }
}

/// The outcome of a JSON answer: the first top-level error code, else the first `userErrors`
/// code of any payload, else `OK`.
fn classify(body: &Value) -> String {
    if body
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|errors| !errors.is_empty())
    {
        return first_error_code(body).unwrap_or("GRAPHQL_ERROR").to_owned();
    }
    let Some(data) = body.get("data").and_then(Value::as_object) else {
        return "NO_DATA".into();
    };
    for payload in data.values() {
        if let Some(first) = payload
            .get("userErrors")
            .and_then(Value::as_array)
            .and_then(|errors| errors.first())
        {
            return first
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("USER_ERROR")
                .to_owned();
        }
    }
    OK.to_owned()
}

/// `errors[0].extensions.code` of a GraphQL answer.
fn first_error_code(body: &Value) -> Option<&str> {
    body.pointer("/errors/0/extensions/code")
        .and_then(Value::as_str)
}

fn transport_failure(error: &reqwest::Error) -> Reply {
    let outcome = if error.is_timeout() {
        "TIMEOUT"
    } else {
        "TRANSPORT_ERROR"
    };
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    Reply::failed(outcome.into(), detail)
}

/// The first field of an operation, for error messages (`mutation { createUser(...` -> `createUser`).
fn operation_name(query: &str) -> &str {
    let body = query.split_once('{').map_or(query, |(_, rest)| rest);
    body.trim_start()
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("operation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_answers() {
        assert_eq!(classify(&json!({"data": {"me": {"balance": 1}}})), OK);
        assert_eq!(
            classify(
                &json!({"data": {"placeOrder": {"order": null, "userErrors": [{"code": "OUT_OF_STOCK"}]}}})
            ),
            "OUT_OF_STOCK"
        );
        assert_eq!(
            classify(
                &json!({"data": null, "errors": [{"message": "x", "extensions": {"code": "FORBIDDEN"}}]})
            ),
            "FORBIDDEN"
        );
        assert_eq!(
            classify(&json!({"errors": [{"message": "x"}]})),
            "GRAPHQL_ERROR"
        );
        assert_eq!(classify(&json!({})), "NO_DATA");
    }

    #[test]
    fn names_operations_and_endpoints() {
        assert_eq!(
            operation_name("mutation($i: X!) { createUser(input: $i) { user { id } } }"),
            "createUser"
        );
        assert_eq!(
            graphql_endpoint("http://127.0.0.1:8000/"),
            "http://127.0.0.1:8000/graphql"
        );
        assert_eq!(graphql_endpoint("http://h/graphql"), "http://h/graphql");
    }
}
