//! GraphQL over HTTP as the spec describes it, which async-graphql-axum does not do by itself:
//!
//! - `Accept` negotiation between `application/graphql-response+json` and `application/json`
//!   (406 when neither is acceptable);
//! - with `application/graphql-response+json`, a request that cannot execute (parse or
//!   validation failure, query too complex) is answered 400; with `application/json`, 200;
//! - bodies must be `application/json` (415 otherwise), are size-capped by the router (413), and
//!   batches are capped in length;
//! - a request without a document (nor a persisted query's hash) is refused with 400, and a
//!   request refused before execution has no `data` entry;
//! - a mutation sent with GET is refused with 405;
//! - wrong credentials are 401; missing ones leave the viewer anonymous.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Request, ServerError};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use serde_json::json;

use super::limits::Limited;
use super::{HttpState, authenticate, request_id};
use crate::error::{AppError, RETRY_AFTER_SECS};
use crate::graphql::{failed_before_execution, prepare};
use crate::infra::meters::RATE_LIMITED;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";
const INTERNAL_ERROR_BODY: &str = r#"{"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#;

/// The media type of the answer, chosen from `Accept`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ResponseFormat {
    GraphqlResponseJson,
    Json,
}

impl ResponseFormat {
    fn content_type(self) -> &'static str {
        match self {
            ResponseFormat::GraphqlResponseJson => {
                "application/graphql-response+json; charset=utf-8"
            }
            ResponseFormat::Json => "application/json; charset=utf-8",
        }
    }

    /// `None` when the client accepts neither media type.
    fn negotiate(headers: &HeaderMap) -> Option<ResponseFormat> {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Some(ResponseFormat::Json);
        };
        let mut best: Option<(f32, ResponseFormat)> = None;
        for item in accept.split(',') {
            let mut params = item.split(';');
            let media = params
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            let quality = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let format = match media.as_str() {
                GRAPHQL_RESPONSE_JSON => ResponseFormat::GraphqlResponseJson,
                APPLICATION_JSON | "application/*" | "*/*" => ResponseFormat::Json,
                _ => continue,
            };
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, format));
            }
        }
        best.map(|(_, format)| format)
    }
}

/// A transport-level refusal, answered with a GraphQL-shaped error body.
fn refusal(status: StatusCode, code: &str, message: &str, format: ResponseFormat) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// Credentials that cannot be checked now (503, retry) or are wrong (401).
fn auth_refusal(err: &AppError, format: ResponseFormat) -> Response {
    match err {
        AppError::Unavailable => {
            let mut response = refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                err.code(),
                &err.message(),
                format,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            response
        }
        _ => refusal(StatusCode::UNAUTHORIZED, err.code(), &err.message(), format),
    }
}

fn not_acceptable() -> Response {
    refusal(
        StatusCode::NOT_ACCEPTABLE,
        "NOT_ACCEPTABLE",
        "Accept must allow application/graphql-response+json or application/json",
        ResponseFormat::Json,
    )
}

/// `POST /graphql`.
pub async fn graphql_post(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(format) = ResponseFormat::negotiate(&headers) else {
        return not_acceptable();
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(APPLICATION_JSON));
    if !is_json {
        return refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "the request body must be application/json",
            format,
        );
    }
    let viewer = match authenticate(&state, &headers).await {
        Ok(viewer) => viewer,
        Err(err) => return auth_refusal(&err, format),
    };
    // decided by the first byte: serde would read `[]` as a single request with no query
    let is_batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if is_batch {
        serde_json::from_slice::<Vec<Request>>(&body).map(BatchRequest::Batch)
    } else {
        serde_json::from_slice::<Request>(&body).map(BatchRequest::Single)
    };
    let batch = match parsed {
        Ok(batch) => batch,
        Err(err) => {
            let message = format!("the body is not a GraphQL request: {err}");
            return refusal(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message, format);
        }
    };
    if let BatchRequest::Batch(requests) = &batch
        && (requests.is_empty() || requests.len() > state.limits.max_batch)
    {
        let message = format!(
            "a batch must hold 1 to {} operations",
            state.limits.max_batch
        );
        return refusal(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message, format);
    }
    let has_no_document = match &batch {
        BatchRequest::Single(request) => lacks_document(request),
        BatchRequest::Batch(requests) => requests.iter().any(lacks_document),
    };
    if has_no_document {
        return no_document(format);
    }
    let (single, requests) = match batch {
        BatchRequest::Single(request) => (true, vec![request]),
        BatchRequest::Batch(requests) => (false, requests),
    };
    let mut ready: Vec<Result<Request, ServerError>> = Vec::with_capacity(requests.len());
    let mut mutations = 0;
    for mut request in requests {
        let limits = &state.limits.document;
        match state
            .documents
            .resolve_persisted(&mut request, limits)
            .await
        {
            Ok(()) => {
                mutations += state
                    .documents
                    .inspect(&mut request, limits)
                    .mutation_fields;
                ready.push(Ok(request));
            }
            Err(refused) => ready.push(Err(refused)),
        }
    }
    if let Err(limited) = state
        .mutation_limits
        .check(viewer.user_id, Some(peer.ip()), mutations)
    {
        return rate_limited(limited, format);
    }
    let request_id = request_id(&headers);
    let ready: Vec<Result<Request, ServerError>> = ready
        .into_iter()
        .map(|request| request.map(|r| prepare(r, viewer, &state.app).data(request_id.clone())))
        .collect();
    let schema = state.schema.clone();
    let db = state.app.db.clone();
    let mut responses = run_to_completion(async move {
        let executions = join_all(ready.into_iter().map(|request| {
            let schema = schema.clone();
            async move {
                match request {
                    Ok(request) => schema.execute(request).await,
                    Err(refused) => async_graphql::Response::from_errors(vec![refused]),
                }
            }
        }));
        db.serve(viewer.user_id, mutations > 0, executions).await
    })
    .await;
    let response = if single {
        BatchResponse::Single(responses.pop().unwrap_or_default())
    } else {
        BatchResponse::Batch(responses)
    };
    respond(response, format)
}

/// `GET /graphql?query=...`: queries only.
pub async fn graphql_get_query(state: Arc<HttpState>, parts: &Parts) -> Response {
    let Some(format) = ResponseFormat::negotiate(&parts.headers) else {
        return not_acceptable();
    };
    let viewer = match authenticate(&state, &parts.headers).await {
        Ok(viewer) => viewer,
        Err(err) => return auth_refusal(&err, format),
    };
    let mut request = match async_graphql::http::parse_query_string(parts.uri.query().unwrap_or(""))
    {
        Ok(request) => request,
        Err(err) => {
            let message = format!("the URL does not carry a GraphQL request: {err}");
            return refusal(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message, format);
        }
    };
    if lacks_document(&request) {
        return no_document(format);
    }
    if let Err(refused) = state
        .documents
        .resolve_persisted(&mut request, &state.limits.document)
        .await
    {
        let response = async_graphql::Response::from_errors(vec![refused]);
        return respond(BatchResponse::Single(response), format);
    }
    let inspection = state
        .documents
        .inspect(&mut request, &state.limits.document);
    if inspection.operation == Some(OperationType::Mutation) {
        let mut response = refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "mutations must be sent with POST",
            format,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let request = prepare(request, viewer, &state.app).data(request_id(&parts.headers));
    let schema = state.schema.clone();
    let db = state.app.db.clone();
    let response = run_to_completion(async move {
        vec![
            db.serve(viewer.user_id, false, schema.execute(request))
                .await,
        ]
    })
    .await;
    respond(
        BatchResponse::Single(response.into_iter().next().unwrap_or_default()),
        format,
    )
}

/// A request with neither a document nor a persisted query's hash is not a GraphQL request
/// (e.g. `query` misspelled).
fn lacks_document(request: &Request) -> bool {
    request.query.is_empty() && !request.extensions.contains_key("persistedQuery")
}

fn no_document(format: ResponseFormat) -> Response {
    refusal(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "the request has no `query` (nor a persistedQuery hash)",
        format,
    )
}

/// Runs the execution in a task of its own: a client that goes away (or the request's time
/// limit) drops only the waiting, never a write half-way.
async fn run_to_completion<F>(execution: F) -> Vec<async_graphql::Response>
where
    F: std::future::Future<Output = Vec<async_graphql::Response>> + Send + 'static,
{
    match tokio::spawn(execution).await {
        Ok(responses) => responses,
        Err(err) => {
            tracing::error!(error = %err, "a GraphQL execution panicked");
            let mut error = ServerError::new("internal server error", None);
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "INTERNAL_SERVER_ERROR");
            vec![async_graphql::Response::from_errors(vec![error])]
        }
    }
}

/// A 429 with `Retry-After` and a RATE_LIMITED error.
fn rate_limited(limited: Limited, format: ResponseFormat) -> Response {
    RATE_LIMITED.increment(limited.scope, 1);
    let seconds = limited.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let body = json!({ "errors": [{
        "message": format!("too many mutations from this {}; retry in {seconds} s", limited.scope),
        "extensions": { "code": "RATE_LIMITED", "retryAfterSeconds": seconds },
    }] });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn respond(response: BatchResponse, format: ResponseFormat) -> Response {
    let status = match (&response, format) {
        (BatchResponse::Single(single), ResponseFormat::GraphqlResponseJson)
            if failed_before_execution(single) =>
        {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    };
    let refused_before_execution = match &response {
        BatchResponse::Single(single) => failed_before_execution(single),
        BatchResponse::Batch(responses) => responses.iter().any(failed_before_execution),
    };
    // the common case is written straight from the responses
    let body = if refused_before_execution {
        match &response {
            BatchResponse::Single(single) => body_of(single),
            BatchResponse::Batch(responses) => responses.iter().map(body_of).collect(),
        }
        .to_string()
    } else {
        serde_json::to_string(&response).unwrap_or_else(|_| INTERNAL_ERROR_BODY.to_owned())
    };
    let mut http = (status, body).into_response();
    http.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    http
}

/// The JSON of one response. A request refused before execution has no `data` entry at all (the
/// GraphQL spec: "If an error was raised before execution begins, the data entry should not be
/// present"), not `data: null`.
fn body_of(response: &async_graphql::Response) -> serde_json::Value {
    let Ok(mut body) = serde_json::to_value(response) else {
        return serde_json::from_str(INTERNAL_ERROR_BODY).unwrap_or_default();
    };
    if failed_before_execution(response)
        && let Some(fields) = body.as_object_mut()
    {
        fields.remove("data");
    }
    body
}
