//! SeaORM entities of the commerce service: one module per table, nothing else.
//!
//! The GraphQL types of the server are separate types; these models are the storage shape only.
//! Money columns are `i64` won, timestamps are UTC.

pub mod balance;
pub mod balance_ledger;
pub mod coupon_event;
pub mod idempotency_key;
pub mod order;
pub mod order_item;
pub mod outbox_event;
pub mod payment;
pub mod product;
pub mod product_sales_daily;
pub mod user;
pub mod user_coupon;
