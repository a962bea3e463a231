//! Orders: placing (pay at once) or creating (PENDING, stock held) orders of several products,
//! paying, cancelling, refunding, and expiring overdue PENDING orders.
//!
//! This domain orchestrates the others: it locks and changes their rows only through their own
//! primitives (`catalog::stock`, `balance::accounts`, `coupon::redemption`, `ranking::sales`,
//! `outbox`), in one global lock order, and applies everything of a command or nothing.
//!
//! - [`service`]: the use cases as resolvers call them; [`request`]: a validated order request;
//!   [`model`]: statuses, settings and the refusals.
//! - [`writer`] + [`placing`]: new orders and payments, many per transaction (group commit).
//! - [`lifecycle`]: cancel, refund, expire; [`expiry`]: the worker that expires overdue orders.
//! - [`queries`]: reads; [`rows`]: the order tables' own statements; [`event`]: the outbox
//!   payload; [`announce`]: what a commit announces; [`statistics`]: planner statistics that
//!   keep up with a fresh database.

pub mod announce;
pub mod event;
pub mod expiry;
pub mod graphql;
pub mod lifecycle;
pub mod model;
pub mod placing;
pub mod queries;
pub mod request;
pub mod rows;
pub mod service;
pub mod statistics;
pub mod writer;
