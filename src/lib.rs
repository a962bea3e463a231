//! The commerce GraphQL backend: prepaid balances, a catalog with exact live stock, orders paid
//! from the balance, first-come-first-served coupons, the top-seller ranking and the outbox.
//!
//! A short tour, following a request:
//! - [`config`] reads the [`config::Settings`]; [`app`] builds everything from them and serves.
//! - [`http`] is the transport: GraphQL over HTTP done to the spec, WebSocket subscriptions
//!   (`graphql-transport-ws`), GraphiQL, `/healthz` and `/readyz`.
//! - [`auth`] turns headers or a `connection_init` payload into the [`auth::Viewer`].
//! - [`graphql`] assembles the schema from each domain's `graphql` module (thin resolvers, each
//!   taking its service from the context) and decides what a client sees of a failure
//!   (`graphql::errors`, with each domain's mapping next to its resolvers).
//! - Each domain ([`users`], [`balance`], [`catalog`], [`coupon`], [`ordering`], [`ranking`]) keeps its use
//!   cases and transactions in `service.rs`; [`ordering`] orchestrates the others. [`outbox`]
//!   holds the events for the data platform.
//! - [`error`] holds the errors every layer shares and imports no domain.
//! - [`infra`] holds the database (connections, retries, SQLite serialization), the one write
//!   helper every use case runs in (`infra::transact`), group commit, Redis, the event bus,
//!   paging and idempotency keys.
//!
//! The module graph has no cycle (`tests/architecture.rs` checks it): the API layer uses the
//! domains' use cases, which use the foundations (`infra`, `error`, `config`, `auth`, `text`).
//! - [`verification`] checks every invariant of the data model on a live database (`commerce
//!   verify`, and periodically inside the server).
//! - [`seed`] is the demo data of the scenarios.

pub mod app;
pub mod auth;
pub mod balance;
pub mod catalog;
pub mod config;
pub mod coupon;
pub mod error;
pub mod graphql;
pub mod http;
pub mod infra;
pub mod observability;
pub mod ordering;
pub mod outbox;
pub mod ranking;
pub mod schema;
pub mod seed;
pub mod state;
pub mod telemetry;
pub mod text;
pub mod users;
pub mod verification;
