//! Orders: placing (pay at once) or creating (PENDING, stock held) orders of several products,
//! paying, cancelling, refunding, and expiring overdue PENDING orders.
//!
//! This domain orchestrates the others inside one transaction per use case: it locks product rows
//! (ascending id) and then the balance row, applies everything or nothing, and records sales and
//! an outbox event in the same transaction.

pub mod expiry;
pub mod graphql;
pub mod request;
pub mod service;
