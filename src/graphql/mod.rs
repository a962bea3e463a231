//! The GraphQL schema: the merged roots of every domain, limits, and error codes for requests
//! that fail before execution.
//!
//! Each domain contributes its own `Query`/`Mutation`/`Subscription` parts in its `graphql.rs`;
//! this module only assembles them.

pub mod context;
pub mod documents;
pub mod errors;
pub mod limits;
pub mod loaders;
pub mod pagination;
pub mod scalars;
pub mod top_level;
pub mod user;

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    MergedObject, MergedSubscription, Response, Schema, SchemaBuilder, ServerError, ServerResult,
    ValidationResult, Variables,
};

use crate::balance::graphql::BalanceEntry;
use crate::balance::graphql::BalanceMutation;
use crate::catalog::graphql::product::Product;
use crate::catalog::graphql::{CatalogMutation, CatalogQuery, CatalogSubscription};
use crate::coupon::graphql::{CouponMutation, CouponQuery};
use crate::ordering::graphql::Order;
use crate::ordering::graphql::{OrderingMutation, OrderingQuery};
use crate::outbox::graphql::{OutboxMutation, OutboxQuery};
use crate::ranking::graphql::{RankingQuery, RankingSubscription};
use crate::state::AppState;
use crate::users::graphql::UsersMutation;
use limits::DocumentLimits;
use limits::enforcement::DocumentLimitsExtension;
use pagination::IdConnection;
use top_level::{TopLevelCode, has_code, with_code};
use user::UserQuery;

/// What clients can read: the viewer, the catalog, orders, coupon events, rankings and (for
/// administrators) the outbox.
#[derive(MergedObject, Default)]
pub struct Query(
    UserQuery,
    CatalogQuery,
    OrderingQuery,
    CouponQuery,
    RankingQuery,
    OutboxQuery,
);

/// What clients can change. Business refusals come back as the payload's `userErrors` (nothing
/// changed); authentication, permission and malformed requests as top-level errors.
#[derive(MergedObject, Default)]
pub struct Mutation(
    BalanceMutation,
    OrderingMutation,
    CouponMutation,
    OutboxMutation,
    UsersMutation,
    CatalogMutation,
);

/// Live updates over WebSocket (`graphql-transport-ws`).
#[derive(MergedSubscription, Default)]
pub struct Subscription(CatalogSubscription, RankingSubscription);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Every `(mutation, outcome)` series of `commerce_business_outcomes_total`, for zeroing at
/// start-up: the counted mutations of every domain of [`Mutation`].
pub fn business_outcomes() -> impl Iterator<Item = (&'static str, &'static str)> {
    crate::balance::graphql::COUNTED
        .iter()
        .chain(&crate::ordering::graphql::COUNTED)
        .chain(&crate::coupon::graphql::COUNTED)
        .chain(&crate::users::graphql::COUNTED)
        .chain(&crate::catalog::graphql::COUNTED)
        .flat_map(errors::Outcomes::series)
}

/// Limits applied to every operation.
#[derive(Copy, Clone, Debug)]
pub struct QueryLimits {
    /// Size, depth and shape of the document (see [`limits`]).
    pub document: DocumentLimits,
    /// Complexity with list fields weighed by their page size (async-graphql's own measure).
    pub max_complexity: usize,
    pub disable_introspection: bool,
}

impl QueryLimits {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            document: DocumentLimits::from_settings(settings),
            max_complexity: settings.max_query_complexity as usize,
            disable_introspection: settings.disable_introspection,
        }
    }
}

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    // types of async-graphql, which come without a description of ours
    .override_output_type_description::<chrono::DateTime<chrono::Utc>>(
        "An instant, as an RFC 3339 string: sent in UTC (`+00:00`), accepted with any offset.",
    )
    .override_output_type_description::<chrono::NaiveDate>(
        "A calendar day of the business time zone (Asia/Seoul by default), as `YYYY-MM-DD`.",
    )
    .override_output_type_description::<IdConnection<Product>>(
        "A page of products (a Relay connection): pass `pageInfo.endCursor` as `after` for the \
         next page.",
    )
    .override_output_type_description::<IdConnection<Order>>(
        "A page of orders (a Relay connection): pass `pageInfo.endCursor` as `after` for the \
         next page.",
    )
    .override_output_type_description::<IdConnection<BalanceEntry>>(
        "A page of balance entries (a Relay connection): pass `pageInfo.endCursor` as `after` \
         for the next page.",
    )
}

/// The schema served by the application.
pub fn build_schema(state: AppState, limits: QueryLimits) -> AppSchema {
    // depth is judged by `limits` (introspection by its own bound), before async-graphql's
    // checks, which expand every fragment spread
    let mut schema = builder()
        // each resolver takes the one service it needs
        .data(state.users)
        .data(state.balance)
        .data(state.catalog)
        .data(state.ordering)
        .data(state.coupons)
        .data(state.outbox)
        .data(state.ranking)
        .data(state.bus)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(limits.document.max_recursion())
        .extension(crate::observability::RequestObserver)
        .extension(ErrorCodes)
        .extension(DocumentLimitsExtension(limits.document));
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

/// Gives every error an `extensions.code`: GRAPHQL_PARSE_FAILED, QUERY_TOO_COMPLEX,
/// GRAPHQL_VALIDATION_FAILED, BAD_USER_INPUT (a value of the wrong type or out of range, as a
/// literal or in a variable) or, for anything else without one, INTERNAL_SERVER_ERROR (logged,
/// its message hidden).
struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

/// True for async-graphql's errors about a value that does not fit its type (its
/// `InputValueError`s and the argument validation rule).
fn is_coercion_error(error: &ServerError) -> bool {
    [
        "Failed to parse \"",
        "Expected input type \"",
        "Invalid value for argument",
    ]
    .iter()
    .any(|prefix| error.message.starts_with(prefix))
}

/// The code of an error that reached the response without one.
fn fallback_code(error: &ServerError) -> TopLevelCode {
    if is_coercion_error(error) {
        TopLevelCode::BadUserInput
    } else if error.path.is_empty() {
        // about the request as a whole (e.g. an unknown operation name)
        TopLevelCode::GraphqlValidationFailed
    } else {
        TopLevelCode::InternalServerError
    }
}

/// Gives every error of a response a code (see [`ErrorCodes`]).
pub fn complete_error_codes(response: &mut Response) {
    for error in &mut response.errors {
        if has_code(error) {
            continue;
        }
        let code = fallback_code(error);
        if code == TopLevelCode::InternalServerError {
            tracing::error!(error = %error.message, path = ?error.path, "internal error");
            error.message = "internal server error".to_owned();
        }
        *error = with_code(std::mem::replace(error, ServerError::new("", None)), code);
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        complete_error_codes(&mut response);
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, TopLevelCode::GraphqlParseFailed))
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
                    let code = if e.message == "Query is too complex." {
                        TopLevelCode::QueryTooComplex
                    } else if is_coercion_error(&e) {
                        TopLevelCode::BadUserInput
                    } else {
                        TopLevelCode::GraphqlValidationFailed
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

/// True when the response is a request that failed before execution (parse, validation, limits):
/// answered 400 over HTTP and with an `error` message over WebSocket.
pub fn failed_before_execution(response: &async_graphql::Response) -> bool {
    // errors of execution name the field (`path`); errors of the request as a whole do not
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Mutations whose outcomes are not counted: operators' tools, not business outcomes.
    const NOT_COUNTED: &[&str] = &["retryFailedDeliveries"];

    /// The fields of `type Mutation`, as introspection lists them.
    async fn mutation_fields() -> BTreeSet<String> {
        let schema = super::builder().finish();
        let response = schema
            .execute(r#"{ __type(name: "Mutation") { fields { name } } }"#)
            .await
            .into_result()
            .expect("introspection answers");
        let data = response.data.into_json().expect("JSON");
        data["__type"]["fields"]
            .as_array()
            .expect("the fields")
            .iter()
            .map(|field| field["name"].as_str().expect("a name").to_owned())
            .collect()
    }

    #[tokio::test]
    async fn every_mutation_is_counted_or_said_not_to_be() {
        let counted: BTreeSet<String> = super::business_outcomes()
            .map(|(mutation, _)| mutation.to_owned())
            .collect();
        let mut expected = mutation_fields().await;
        assert!(expected.len() >= 10, "{expected:?}");
        for name in NOT_COUNTED {
            assert!(expected.remove(*name), "{name} is not a mutation");
        }
        assert_eq!(
            counted, expected,
            "add a new mutation's Counted to its domain's COUNTED (and that to business_outcomes), or to NOT_COUNTED"
        );
    }
}
