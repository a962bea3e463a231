//! One door for every GraphQL operation, whichever transport carried it (POST, GET, a WebSocket
//! `subscribe`). [`admit`] lets only trusted documents through (when `TRUSTED_DOCUMENTS` is
//! set), resolves persisted documents, inspects each document against the
//! limits (and keeps its parsed form), refuses a mutation the transport may not carry, charges
//! the rate limits for every mutation field together and records the refusal's metric, and
//! attaches the viewer, fresh DataLoaders and the request id. [`Admitted::execute`] then runs
//! the operations under `db.serve`, in a task of their own so that a client going away never
//! stops a write half-way.
//!
//! The transports are adapters: they authenticate, call [`admit`], and turn a [`Refusal`] into
//! their own form (an HTTP status with headers, or an `error` message on the socket) from the
//! one error object [`Refusal::error`] builds, so every transport refuses with the same code,
//! message and `retryAfterSeconds`.

use std::future::Future;
use std::net::IpAddr;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Request, Response, ServerError};
use futures_util::future::join_all;
use tracing::Instrument;

use super::HttpState;
use super::limits::Limited;
use crate::auth::Viewer;
use crate::graphql::top_level::{self, TopLevelCode};
use crate::graphql::trusted::without_manifest;
use crate::infra::meters::RATE_LIMITED;
use crate::observability::RequestId;
use crate::schema::prepare;

/// What carried the operations: GET may not carry mutations.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Carrier {
    Post,
    Get,
    Socket,
}

/// Operations let in, ready to execute.
pub struct Admitted {
    /// Each operation with what its resolvers read, or the error that refused it alone (a
    /// persisted document that is not stored, a hash that does not match).
    pub operations: Vec<Result<Request, ServerError>>,
    /// Whether any of them is a mutation (it then runs on the primary and is never aborted).
    pub writes: bool,
    viewer: Viewer,
}

/// Why the operations were not let in (nothing ran, nothing was charged but what is said).
#[derive(Debug)]
pub enum Refusal {
    /// A mutation sent with GET.
    MutationOverGet,
    /// More mutations than the rate limits allow now.
    RateLimited(Limited),
}

impl Refusal {
    pub fn code(&self) -> TopLevelCode {
        match self {
            Refusal::MutationOverGet => TopLevelCode::MethodNotAllowed,
            Refusal::RateLimited(_) => TopLevelCode::RateLimited,
        }
    }

    /// Seconds after which the same request may be admitted.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Refusal::MutationOverGet => None,
            Refusal::RateLimited(limited) => {
                Some(limited.retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::MutationOverGet => "mutations must be sent with POST".to_owned(),
            Refusal::RateLimited(limited) => format!(
                "too many mutations from this {}; retry in {} s",
                limited.scope,
                self.retry_after_secs().unwrap_or(1)
            ),
        }
    }

    /// The GraphQL error every transport answers with.
    pub fn error(&self) -> ServerError {
        let mut error = top_level::error(self.code(), self.message());
        if let Some(seconds) = self.retry_after_secs() {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("retryAfterSeconds", seconds);
        }
        error
    }
}

/// Lets `requests` in for `viewer` (at `peer`), or says why not; see the module's documentation.
pub async fn admit(
    state: &HttpState,
    requests: Vec<Request>,
    viewer: Viewer,
    peer: Option<IpAddr>,
    request_id: RequestId,
    carrier: Carrier,
) -> Result<Admitted, Refusal> {
    let limits = &state.limits.document;
    let mut operations = Vec::with_capacity(requests.len());
    let (mut mutation_fields, mut mutation) = (0, false);
    for mut request in requests {
        let named = match &state.trusted {
            Some(trusted) => trusted.admit(&mut request, viewer.is_admin()),
            None => without_manifest(&mut request),
        };
        let resolved = match named {
            Ok(()) => {
                state
                    .documents
                    .resolve_persisted(&mut request, limits)
                    .await
            }
            refused => refused,
        };
        if let Err(refused) = resolved {
            operations.push(Err(refused));
            continue;
        }
        let inspection = state.documents.inspect(&mut request, limits);
        mutation_fields += inspection.mutation_fields;
        mutation |= inspection.operation == Some(OperationType::Mutation);
        operations.push(Ok(request));
    }
    if mutation && carrier == Carrier::Get {
        return Err(Refusal::MutationOverGet);
    }
    if let Err(limited) = state
        .mutation_limits
        .check(viewer.user_id, peer, mutation_fields)
    {
        RATE_LIMITED.increment(limited.scope, 1);
        return Err(Refusal::RateLimited(limited));
    }
    let operations = operations
        .into_iter()
        .map(|operation| {
            operation.map(|request| prepare(request, viewer, &state.app).data(request_id.clone()))
        })
        .collect();
    Ok(Admitted {
        operations,
        writes: mutation,
        viewer,
    })
}

impl Admitted {
    /// Executes every operation (at once) under `db.serve`, in a task of its own: a client that
    /// goes away (or the request's time limit) drops only the waiting, never a write half-way.
    /// One response per operation, in order.
    pub async fn execute(self, state: &HttpState) -> Vec<Response> {
        let schema = state.schema.clone();
        let db = state.app.db.clone();
        let Admitted {
            operations,
            writes,
            viewer,
        } = self;
        let execution = async move {
            let executions = join_all(operations.into_iter().map(|operation| {
                let schema = schema.clone();
                async move {
                    match operation {
                        Ok(mut request) => {
                            let span = operation_span(&mut request);
                            schema.execute(request).instrument(span).await
                        }
                        Err(refused) => Response::from_errors(vec![refused]),
                    }
                }
            }));
            db.serve(viewer.user_id, writes, executions).await
        };
        match tokio::spawn(execution.in_current_span()).await {
            Ok(responses) => responses,
            Err(err) => {
                tracing::error!(error = %err, "a GraphQL execution panicked");
                let error =
                    top_level::error(TopLevelCode::InternalServerError, "internal server error");
                vec![Response::from_errors(vec![error])]
            }
        }
    }

    /// The one operation of a WebSocket `subscribe`: `consume`'s work on it, run under
    /// `db.serve` (the caller spawns it), or the error that refused it.
    pub fn serve_one<W>(
        self,
        state: &HttpState,
        consume: impl FnOnce(Request) -> W,
    ) -> Result<impl Future<Output = W::Output> + Send + 'static, ServerError>
    where
        W: Future + Send + 'static,
    {
        let Admitted {
            operations,
            writes,
            viewer,
        } = self;
        let request = operations.into_iter().next().unwrap_or_else(|| {
            Err(top_level::error(
                TopLevelCode::BadRequest,
                "the request holds no operation",
            ))
        })?;
        let mut request = request;
        let span = operation_span(&mut request);
        let work = consume(request).instrument(span);
        let db = state.app.db.clone();
        Ok(async move { db.serve(viewer.user_id, writes, work).await })
    }
}

/// The span of one GraphQL operation (a child of the request's, when traces are on).
fn operation_span(request: &mut Request) -> tracing::Span {
    if !crate::telemetry::enabled() {
        return tracing::Span::none();
    }
    // the name asked for, or the document's only operation's
    let only = match request.parsed_query().map(|document| &document.operations) {
        Ok(DocumentOperations::Multiple(operations)) if operations.len() == 1 => {
            operations.keys().next().map(|name| name.to_string())
        }
        _ => None,
    };
    let name = request.operation_name.clone().or(only);
    let name = name.as_deref().unwrap_or("anonymous");
    tracing::info_span!(
        "graphql operation",
        otel.name = %format!("graphql {name}"),
        graphql.operation.name = name,
    )
}
