//! The HTTP server: routes, middleware, health and readiness.
//!
//! - `GET /graphql`: GraphiQL in a browser, a WebSocket upgrade (graphql-transport-ws), or a
//!   query sent as URL parameters (never a mutation: 405). `GET /graphql/assets/<file>`:
//!   GraphiQL's scripts and styles, built into the binary (see [`playground`]).
//! - `POST /graphql`: GraphQL over HTTP (see [`graphql_http`]).
//! - `/healthz`: the process answers. `/readyz`: 200 when the database answers (`degraded`
//!   when Redis does not, a read replica is skipped, or the data platform fails or answers as
//!   if misconfigured), 503 otherwise. `/metrics`: Prometheus.
//!
//! Every request gets an `x-request-id` (the client's, or a new one), echoed in the answer and
//! in the logs; every request has a time limit (then 503 SERVICE_UNAVAILABLE, see
//! [`stalled_as_unavailable`]).

mod admission;
mod cors;
mod feeds;
pub use feeds::{FeedCounts, Feeds};
mod graphql_http;
pub mod limits;
mod playground;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use tracing::Instrument;

use crate::auth::{Authenticator, Credentials, Viewer};
use crate::error::AppError;
use crate::graphql::top_level::{self, TopLevelCode};
use crate::schema::AppSchema;
use crate::state::AppState;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub schema: AppSchema,
    pub app: AppState,
    pub auth: Authenticator,
    pub limits: HttpLimits,
    pub mutation_limits: limits::MutationLimits,
    /// The web origins whose pages may call the API.
    pub allowed_origins: crate::config::AllowedOrigins,
    /// Persisted queries and parsed documents.
    pub documents: crate::graphql::documents::Documents,
    /// The only documents that may run (`TRUSTED_DOCUMENTS`), when set.
    pub trusted: Option<Arc<crate::graphql::trusted::TrustedDocuments>>,
    /// Cancelled when the server stops: WebSocket connections close with 1001.
    pub shutdown: CancellationToken,
    /// WebSocket connections, waited for at shutdown.
    pub connections: TaskTracker,
    pub open_sockets: Arc<AtomicU64>,
    /// Public subscriptions shared by their listeners.
    pub feeds: feeds::Feeds,
}

/// Transport limits from the settings.
#[derive(Copy, Clone, Debug)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    /// The limits on GraphQL documents, also checked here to count mutations before execution.
    pub document: crate::graphql::limits::DocumentLimits,
    pub max_batch: usize,
    pub ws_init_timeout: Duration,
    pub ws_max_connections: u64,
    pub ws_max_subscriptions: usize,
    pub request_timeout: Duration,
}

impl HttpLimits {
    /// The transport's limits, with the document limits every operation is inspected against;
    /// WebSocket connections are capped below `open_files` (the process's limit, see
    /// [`crate::infra::files`]).
    pub fn from_settings(
        settings: &crate::config::Settings,
        document: crate::graphql::limits::DocumentLimits,
        open_files: Option<u64>,
    ) -> Self {
        let configured = settings.limits.ws_max_connections;
        let ws_max_connections = crate::infra::files::websocket_cap(configured, open_files);
        if ws_max_connections < configured {
            tracing::warn!(
                open_files,
                ws_max_connections,
                "WS_MAX_CONNECTIONS {configured} is more than the open-file limit allows: \
                 capped (raise the hard limit, e.g. systemd LimitNOFILE, for more)"
            );
        }
        Self {
            max_body_bytes: settings.server.max_body_bytes as usize,
            document,
            max_batch: settings.limits.max_batch as usize,
            ws_init_timeout: settings.limits.ws_init_timeout(),
            ws_max_connections,
            ws_max_subscriptions: settings.limits.ws_max_subscriptions as usize,
            request_timeout: Duration::from_secs(settings.server.request_timeout_secs),
        }
    }
}

/// The application's router.
pub fn router(state: HttpState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    let timeout = state.limits.request_timeout;
    let cors = cors::layer(&state.allowed_origins);
    Router::new()
        .route(
            "/graphql",
            get(graphql_get).post(graphql_http::graphql_post),
        )
        .route(playground::ASSETS_PATH, get(playground::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(axum::middleware::map_response(move |response: Response| {
            too_large_as_graphql(response, body_limit)
        }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::map_response(move |response: Response| {
            stalled_as_unavailable(response, timeout)
        }))
        .layer(cors)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::from_fn(traced))
        .with_state(Arc::new(state))
}

/// One span per HTTP request (WebSocket upgrades included), a child of the caller's
/// `traceparent` when it sends one; nothing when traces are off.
async fn traced(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !crate::telemetry::enabled() {
        return next.run(request).await;
    }
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %format!("{} {}", request.method(), request.uri().path()),
        otel.kind = "server",
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// A body over the limit is refused by the body-limit layer (or the body's extractor) with a
/// plain-text 413; clients get a GraphQL error with a code instead, like every other refusal.
async fn too_large_as_graphql(response: Response, limit: usize) -> Response {
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    let error = top_level::error(
        TopLevelCode::PayloadTooLarge,
        format!("the request body is over {limit} bytes (MAX_BODY_BYTES)"),
    );
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({ "errors": [error] }).to_string(),
    )
        .into_response()
}

/// A request still unanswered at its time limit is the server's stall (a store that went silent),
/// not a slow client: the timeout layer's empty 408 becomes 503 SERVICE_UNAVAILABLE with
/// `Retry-After`. A write may still complete in its own task (run to completion), so the message
/// says to retry with the same `idempotencyKey`.
async fn stalled_as_unavailable(response: Response, limit: Duration) -> Response {
    if response.status() != StatusCode::REQUEST_TIMEOUT {
        return response;
    }
    let mut error = top_level::error(
        TopLevelCode::ServiceUnavailable,
        format!(
            "no answer within {} s; a mutation may still be applied: retry it with the same \
             idempotencyKey",
            limit.as_secs()
        ),
    );
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("retryAfterSeconds", crate::error::RETRY_AFTER_SECS);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (
                header::CONTENT_TYPE,
                "application/json; charset=utf-8".to_owned(),
            ),
            (
                header::RETRY_AFTER,
                crate::error::RETRY_AFTER_SECS.to_string(),
            ),
        ],
        json!({ "errors": [error] }).to_string(),
    )
        .into_response()
}

/// `GET /graphql`: WebSocket upgrade, GraphiQL page, or a query in the URL.
async fn graphql_get(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    if parts.headers.contains_key(header::UPGRADE) {
        return match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &state)
            .await
        {
            Ok(upgrade) => ws::upgrade(state, upgrade, &parts.headers, Some(peer.ip())),
            Err(rejection) => rejection.into_response(),
        };
    }
    let wants_html = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if parts.uri.query().is_none() && wants_html {
        if state
            .trusted
            .as_ref()
            .is_some_and(|trusted| !trusted.admins_free)
        {
            return (
                StatusCode::FORBIDDEN,
                "The playground is off: this server runs only its trusted documents \
                 (TRUSTED_DOCUMENTS). TRUSTED_DOCUMENTS_ADMINS_FREE=true serves it, and lets \
                 administrators run any document.\n",
            )
                .into_response();
        }
        return playground::page(state.auth.mode());
    }
    graphql_http::graphql_get_query(state, &parts).await
}

/// Authenticates from HTTP headers, then checks that the user exists.
async fn authenticate(state: &HttpState, headers: &HeaderMap) -> Result<Viewer, AppError> {
    let viewer = viewer_from_headers(&state.auth, headers)?;
    existing(state, viewer).await
}

/// The viewer, once its user is known to exist: a customer's credentials naming no user are
/// wrong credentials (a token of a deleted user, a made-up `x-user-id`). An administrator's are
/// the operator's and may name none (the first one sets up an empty database); what they do as
/// a user is checked by the use case.
async fn existing(state: &HttpState, viewer: Viewer) -> Result<Viewer, AppError> {
    let Some(user_id) = viewer.user_id.filter(|_| !viewer.is_admin()) else {
        return Ok(viewer);
    };
    match state.app.users.exists(user_id).await {
        Ok(true) => Ok(viewer),
        Ok(false) => Err(AppError::UNKNOWN_USER),
        Err(err) => Err(err.into()),
    }
}

/// Authenticates from HTTP headers (the user is not looked up).
fn viewer_from_headers(auth: &Authenticator, headers: &HeaderMap) -> Result<Viewer, AppError> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    auth.authenticate(&Credentials {
        authorization: value("authorization"),
        user_id: value("x-user-id"),
        role: value("x-role"),
    })
}

/// The request's id, as set by the request-id layer.
fn request_id(headers: &HeaderMap) -> crate::observability::RequestId {
    crate::observability::RequestId(
        headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned(),
    )
}

/// `/metrics`: Prometheus text, with the gauges sampled now.
async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    crate::observability::sample_gauges(&state.app, &state.open_sockets).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::observability::prometheus().render(),
    )
        .into_response()
}

/// `/readyz`: 200 when the database answers (`degraded` when a configured Redis does not, a read
/// replica is skipped (its reads go to the primary), or the data platform fails or answers
/// 401/403/404/405 to every event: the service still works, and events wait), 503 when the
/// database does not.
async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    let database = match tokio::time::timeout(Duration::from_secs(2), state.app.db.ping()).await {
        Ok(Ok(())) => "ok",
        _ => "unavailable",
    };
    let redis = match &state.app.redis {
        None => "disabled",
        Some(conn) => {
            match tokio::time::timeout(Duration::from_secs(2), crate::infra::redis::ping(conn))
                .await
            {
                Ok(Ok(())) => "ok",
                _ => "unavailable",
            }
        }
    };
    let platform = state.app.outbox.platform().await;
    let replicas = state
        .app
        .db
        .replicas()
        .map(|replicas| replicas.status())
        .unwrap_or_default();
    let replica_skipped = replicas.iter().any(|replica| !replica.usable);
    let ready = database == "ok";
    let (status, summary) = match (ready, redis, platform.problem(), replica_skipped) {
        (false, _, _, _) => (StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        (true, "unavailable", _, _) | (true, _, Some(_), _) | (true, _, _, true) => {
            (StatusCode::OK, "degraded")
        }
        (true, _, None, false) => (StatusCode::OK, "ready"),
    };
    (
        status,
        Json(json!({
            "ready": ready,
            "status": summary,
            "database": database,
            "redis": redis,
            "dataPlatform": platform.as_str(),
            "dataPlatformProblem": platform.problem(),
            "readReplicas": replicas,
        })),
    )
        .into_response()
}
