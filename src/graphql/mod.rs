//! The GraphQL schema: the merged roots of every domain, limits, and error codes for requests
//! that fail before execution.
//!
//! Each domain contributes its own `Query`/`Mutation`/`Subscription` parts in its `graphql.rs`;
//! this module only assembles them.

pub mod loaders;
pub mod pagination;
pub mod scalars;
pub mod user;

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    ID, MergedObject, MergedSubscription, Schema, SchemaBuilder, ServerError, ServerResult,
    ValidationResult, Variables,
};

use crate::balance::graphql::BalanceMutation;
use crate::catalog::graphql::{CatalogMutation, CatalogQuery, CatalogSubscription};
use crate::coupon::graphql::{CouponMutation, CouponQuery};
use crate::ordering::graphql::{OrderingMutation, OrderingQuery};
use crate::outbox::graphql::{OutboxMutation, OutboxQuery};
use crate::ranking::graphql::{RankingQuery, RankingSubscription};
use crate::state::AppState;
use crate::users::graphql::UsersMutation;
use user::UserQuery;

#[derive(MergedObject, Default)]
pub struct Query(
    UserQuery,
    CatalogQuery,
    OrderingQuery,
    CouponQuery,
    RankingQuery,
    OutboxQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    BalanceMutation,
    OrderingMutation,
    CouponMutation,
    OutboxMutation,
    UsersMutation,
    CatalogMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(CatalogSubscription, RankingSubscription);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Limits applied to every operation.
#[derive(Copy, Clone, Debug)]
pub struct QueryLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub disable_introspection: bool,
}

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
}

/// The schema served by the application.
pub fn build_schema(state: AppState, limits: QueryLimits) -> AppSchema {
    let mut schema = builder()
        .data(state)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .extension(crate::observability::RequestObserver)
        .extension(ErrorCodes);
    if limits.disable_introspection {
        schema = schema.disable_introspection().disable_suggestions();
    }
    schema.finish()
}

/// The SDL of the schema, sorted, as checked in to `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(
        async_graphql::SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}

/// Parses a numeric `ID`; `None` when it is not one.
pub fn parse_id(id: &ID) -> Option<i64> {
    id.parse::<i64>().ok().filter(|id| *id > 0)
}

/// Gives the errors raised before execution an `extensions.code`: GRAPHQL_PARSE_FAILED,
/// QUERY_TOO_COMPLEX (complexity or depth limit) or GRAPHQL_VALIDATION_FAILED.
struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

/// Codes of a request that failed as a whole, before execution.
const PRE_EXECUTION_CODES: [&str; 3] = [
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_COMPLEX",
];

fn with_code(mut error: ServerError, code: &str) -> ServerError {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some());
    if !has_code {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    error
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, "GRAPHQL_PARSE_FAILED"))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let code = if e.message == "Query is too complex."
                        || e.message == "Query is nested too deep."
                    {
                        "QUERY_TOO_COMPLEX"
                    } else {
                        "GRAPHQL_VALIDATION_FAILED"
                    };
                    with_code(e, code)
                })
                .collect()
        })
    }
}

/// Gives a request what its resolvers read besides the schema data: the viewer and fresh
/// DataLoaders.
pub fn prepare(
    request: async_graphql::Request,
    viewer: crate::auth::Viewer,
    state: &AppState,
) -> async_graphql::Request {
    loaders::attach(request.data(viewer), state)
}

/// The viewer of the request (anonymous when the transport attached none).
pub fn viewer(ctx: &async_graphql::Context<'_>) -> crate::auth::Viewer {
    ctx.data_opt::<crate::auth::Viewer>()
        .copied()
        .unwrap_or(crate::auth::Viewer::ANONYMOUS)
}

/// True when the response is a request that failed before execution (parse, validation, limits):
/// answered 400 over HTTP and with an `error` message over WebSocket.
pub fn failed_before_execution(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && response.errors.iter().any(|error| {
            error
                .extensions
                .as_ref()
                .and_then(|ext| ext.get("code"))
                .is_some_and(|code| {
                    PRE_EXECUTION_CODES
                        .iter()
                        .any(|c| *code == async_graphql::Value::from(*c))
                })
        })
}
