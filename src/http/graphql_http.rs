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

use async_graphql::{BatchRequest, BatchResponse, Request, ServerError};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::admission::{Carrier, Refusal, admit};
use super::{HttpState, authenticate, request_id};
use crate::error::{AppError, RETRY_AFTER_SECS};
use crate::graphql::failed_before_execution;
use crate::graphql::top_level::{self, TopLevelCode};
use crate::graphql::trusted::DOCUMENT_ID;

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
fn refusal(
    status: StatusCode,
    code: TopLevelCode,
    message: &str,
    format: ResponseFormat,
) -> Response {
    refused_with(status, top_level::error(code, message), format)
}

/// `error` as the whole answer, with `status`.
fn refused_with(status: StatusCode, error: ServerError, format: ResponseFormat) -> Response {
    let body = json!({ "errors": [error] });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// What the admission refused, with its status and headers.
fn not_admitted(refused: Refusal, format: ResponseFormat) -> Response {
    let status = match refused {
        Refusal::MutationOverGet => StatusCode::METHOD_NOT_ALLOWED,
        Refusal::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
    };
    let mut response = refused_with(status, refused.error(), format);
    let headers = response.headers_mut();
    if let Some(seconds) = refused.retry_after_secs() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Refusal::MutationOverGet = refused {
        headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
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
        TopLevelCode::NotAcceptable,
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
            TopLevelCode::UnsupportedMediaType,
            "the request body must be application/json",
            format,
        );
    }
    let viewer = match authenticate(&state, &headers).await {
        Ok(viewer) => viewer,
        Err(err) => return auth_refusal(&err, format),
    };
    let (single, requests) = match read_body(&body, state.limits.max_batch) {
        Ok(read) => read,
        Err(message) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                TopLevelCode::BadRequest,
                &message,
                format,
            );
        }
    };
    let request_id = request_id(&headers);
    let admitted = admit(
        &state,
        requests,
        viewer,
        Some(peer.ip()),
        request_id,
        Carrier::Post,
    );
    let mut responses = match admitted.await {
        Ok(admitted) => admitted.execute(&state).await,
        Err(refused) => return not_admitted(refused, format),
    };
    let response = if single {
        BatchResponse::Single(responses.pop().unwrap_or_default())
    } else {
        BatchResponse::Batch(responses)
    };
    respond(response, format)
}

/// The operations of a POST body, and whether it was a single one (not a batch); or why the body
/// is not a GraphQL request.
fn read_body(body: &[u8], max_batch: usize) -> Result<(bool, Vec<Request>), String> {
    // decided by the first byte: serde would read `[]` as a single request with no query
    let is_batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if is_batch {
        serde_json::from_slice::<Vec<Request>>(body).map(BatchRequest::Batch)
    } else {
        serde_json::from_slice::<Request>(body).map(BatchRequest::Single)
    };
    let (single, requests) = match parsed {
        Ok(BatchRequest::Single(request)) => (true, vec![request]),
        Ok(BatchRequest::Batch(requests)) => (false, requests),
        Err(err) => return Err(format!("the body is not a GraphQL request: {err}")),
    };
    if !single && (requests.is_empty() || requests.len() > max_batch) {
        return Err(format!("a batch must hold 1 to {max_batch} operations"));
    }
    let mut requests = requests;
    if requests.iter().any(|request| request.query.is_empty()) {
        take_document_ids(body, is_batch, &mut requests)?;
    }
    if requests.iter().any(lacks_document) {
        return Err(NO_DOCUMENT.to_owned());
    }
    Ok((single, requests))
}

/// Puts each operation's `documentId` (GraphQL-over-HTTP's trusted documents; async-graphql's
/// `Request` has no such field) where the admission reads it. Only read for operations without
/// a document text.
fn take_document_ids(body: &[u8], is_batch: bool, requests: &mut [Request]) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(rename = "documentId")]
        document_id: Option<String>,
    }
    let named = if is_batch {
        serde_json::from_slice::<Vec<Named>>(body)
    } else {
        serde_json::from_slice::<Named>(body).map(|named| vec![named])
    }
    .map_err(|err| format!("documentId must be a string: {err}"))?;
    for (request, named) in requests.iter_mut().zip(named) {
        if let Some(id) = named.document_id {
            request
                .extensions
                .insert(DOCUMENT_ID.to_owned(), async_graphql::Value::String(id));
        }
    }
    Ok(())
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
    let request = match request_of_url(parts.uri.query().unwrap_or("")) {
        Ok(request) => request,
        Err(err) => {
            let message = format!("the URL does not carry a GraphQL request: {err}");
            return refusal(
                StatusCode::BAD_REQUEST,
                TopLevelCode::BadRequest,
                &message,
                format,
            );
        }
    };
    if lacks_document(&request) {
        return no_document(format);
    }
    let request_id = request_id(&parts.headers);
    let admitted = admit(
        &state,
        vec![request],
        viewer,
        None,
        request_id,
        Carrier::Get,
    );
    let response = match admitted.await {
        Ok(admitted) => admitted.execute(&state).await,
        Err(refused) => return not_admitted(refused, format),
    };
    respond(
        BatchResponse::Single(response.into_iter().next().unwrap_or_default()),
        format,
    )
}

/// The GraphQL request in a GET URL's parameters: `query`, `operationName`, and `variables` and
/// `extensions` as JSON. (async-graphql's `parse_query_string` reads `operation_name`, not the
/// spec's `operationName`, so a document of several operations could not be run over GET.)
fn request_of_url(parameters: &str) -> Result<Request, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Parameters {
        #[serde(default)]
        query: String,
        document_id: Option<String>,
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let parameters: Parameters =
        serde_urlencoded::from_str(parameters).map_err(|err| err.to_string())?;
    fn json<T: serde::de::DeserializeOwned>(
        name: &str,
        text: Option<String>,
    ) -> Result<Option<T>, String> {
        text.map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|err| format!("{name} is not JSON: {err}"))
    }
    let mut request = Request::new(parameters.query);
    if let Some(variables) = json("variables", parameters.variables)? {
        request = request.variables(variables);
    }
    if let Some(extensions) = json("extensions", parameters.extensions)? {
        request.extensions = extensions;
    }
    if let Some(name) = parameters.operation_name {
        request = request.operation_name(name);
    }
    if let Some(id) = parameters.document_id {
        request
            .extensions
            .insert(DOCUMENT_ID.to_owned(), async_graphql::Value::String(id));
    }
    Ok(request)
}

/// A request with neither a document nor a persisted query's hash nor a `documentId` is not a
/// GraphQL request (e.g. `query` misspelled).
fn lacks_document(request: &Request) -> bool {
    request.query.is_empty()
        && !request.extensions.contains_key("persistedQuery")
        && !request.extensions.contains_key(DOCUMENT_ID)
}

const NO_DOCUMENT: &str =
    "the request has no `query` (nor a persistedQuery hash, nor a documentId)";

fn no_document(format: ResponseFormat) -> Response {
    refusal(
        StatusCode::BAD_REQUEST,
        TopLevelCode::BadRequest,
        NO_DOCUMENT,
        format,
    )
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
