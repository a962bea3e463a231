//! The commerce GraphQL backend: prepaid balances, a catalog with exact live stock, and (as the
//! issues land) orders, coupons, rankings and the outbox.
//!
//! A short tour, following a request:
//! - [`config`] reads the [`config::Settings`]; [`app`] builds everything from them and serves.
//! - [`http`] is the transport: GraphQL over HTTP done to the spec, WebSocket subscriptions
//!   (`graphql-transport-ws`), GraphiQL, `/healthz` and `/readyz`.
//! - [`auth`] turns headers or a `connection_init` payload into the [`auth::Viewer`].
//! - [`graphql`] assembles the schema from each domain's `graphql.rs` (thin resolvers).
//! - Each domain ([`users`], [`balance`], [`catalog`], [`coupon`], [`ordering`], [`ranking`]) keeps its use
//!   cases and transactions in `service.rs`; [`ordering`] orchestrates the others. [`outbox`]
//!   holds the events for the data platform.
//! - [`error`] maps every domain error to `userErrors` or a top-level error, in one place.
//! - [`infra`] holds the database (write transactions, retries, SQLite serialization), Redis,
//!   the event bus, paging and idempotency keys.
//! - [`seed`] is the demo data of the scenarios.

pub mod app;
pub mod auth;
pub mod balance;
pub mod catalog;
pub mod config;
pub mod coupon;
pub mod data_platform;
pub mod error;
pub mod graphql;
pub mod http;
pub mod infra;
pub mod observability;
pub mod ordering;
pub mod outbox;
pub mod ranking;
pub mod seed;
pub mod state;
pub mod text;
pub mod users;
