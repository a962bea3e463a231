//! The GraphQL schema, assembled above the domains: the merged roots of every domain's
//! `Query`/`Mutation`/`Subscription` parts (each in the domain's `graphql` module), the
//! per-request data (viewer, DataLoaders), the limits and extensions every operation runs
//! under, and the series of the counted mutations.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::balance::graphql::BalanceEntry;
use crate::balance::graphql::BalanceMutation;
use crate::catalog::alternatives::SharedAlternatives;
use crate::catalog::graphql::loaders::{ProductLoader, StockLoader};
use crate::catalog::graphql::product::Product;
use crate::catalog::graphql::{CatalogMutation, CatalogQuery, CatalogSubscription};
use crate::coupon::graphql::loaders::CouponLoader;
use crate::coupon::graphql::{CouponMutation, CouponQuery};
use crate::graphql::ErrorCodes;
use crate::graphql::errors::Outcomes;
use crate::graphql::feeds::Catchup;
use crate::graphql::limits::DocumentLimits;
use crate::graphql::limits::enforcement::DocumentLimitsExtension;
use crate::graphql::pagination::IdConnection;
use crate::infra::replicas::spawn_keeping_freshness;
use crate::ordering::graphql::Order;
use crate::ordering::graphql::loaders::{OrderItemsLoader, PaymentLoader};
use crate::ordering::graphql::{OrderingMutation, OrderingQuery};
use crate::outbox::graphql::{OutboxMutation, OutboxQuery};
use crate::ranking::graphql::{RankingQuery, RankingSubscription};
use crate::state::AppState;
use crate::users::graphql::UsersMutation;
use crate::users::graphql::viewer::UserQuery;

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

/// The subscription fields that are public feeds: their answers read nothing of the viewer (no
/// viewer-dependent field is reachable from them), so every listener of one document and its
/// variables may share one execution, and how a joining listener catches up. `None`: each
/// operation executes on its own.
pub fn shared_feed(subscription_field: &str) -> Option<Catchup> {
    match subscription_field {
        "rankingChanged" => Some(Catchup::LatestSnapshot),
        "stockChanged" => Some(Catchup::Nothing),
        _ => None,
    }
}

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
        .flat_map(Outcomes::series)
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
            max_complexity: settings.limits.max_query_complexity as usize,
            disable_introspection: settings.limits.disable_introspection,
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
        // the ranking answers the catalog's "alternatives" (the catalog does not know it)
        .data(Arc::new(state.ranking.clone()) as SharedAlternatives)
        .data(state.ranking)
        .data(state.bus)
        .limit_recursive_depth(limits.document.max_recursion())
        .extension(crate::observability::RequestObserver)
        .extension(ErrorCodes {
            max_complexity: limits.max_complexity,
        })
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

/// Gives a request what its resolvers read besides the schema data: the viewer and fresh
/// DataLoaders.
pub fn prepare(
    request: async_graphql::Request,
    viewer: crate::auth::Viewer,
    state: &AppState,
) -> async_graphql::Request {
    let spawn = spawn_keeping_freshness;
    request
        .data(viewer)
        .data(DataLoader::new(ProductLoader(state.catalog.clone()), spawn))
        .data(DataLoader::new(StockLoader(state.catalog.clone()), spawn))
        .data(DataLoader::new(
            OrderItemsLoader(state.ordering.clone()),
            spawn,
        ))
        .data(DataLoader::new(
            PaymentLoader(state.ordering.clone()),
            spawn,
        ))
        .data(DataLoader::new(CouponLoader(state.coupons.clone()), spawn))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Mutations whose outcomes are not counted: operators' tools, not business outcomes.
    const NOT_COUNTED: &[&str] = &["retryFailedDeliveries"];

    /// Subscriptions that each listener executes on its own (none so far: both are public).
    const NOT_SHARED: &[&str] = &[];

    /// The fields of a root type, as introspection lists them.
    async fn root_fields(root: &str) -> BTreeSet<String> {
        let schema = super::builder().finish();
        let response = schema
            .execute(format!(
                r#"{{ __type(name: "{root}") {{ fields {{ name }} }} }}"#
            ))
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
        let mut expected = root_fields("Mutation").await;
        assert!(expected.len() >= 10, "{expected:?}");
        for name in NOT_COUNTED {
            assert!(expected.remove(*name), "{name} is not a mutation");
        }
        assert_eq!(
            counted, expected,
            "add a new mutation's Counted to its domain's COUNTED (and that to business_outcomes), or to NOT_COUNTED"
        );
    }

    #[tokio::test]
    async fn every_subscription_is_a_shared_feed_or_said_not_to_be() {
        let fields = root_fields("Subscription").await;
        assert!(fields.len() >= 2, "{fields:?}");
        for field in fields {
            assert_ne!(
                super::shared_feed(&field).is_some(),
                NOT_SHARED.contains(&field.as_str()),
                "{field}: list it in shared_feed (public) or in NOT_SHARED (reads the viewer)"
            );
        }
    }
}
