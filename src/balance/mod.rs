//! Prepaid balances: charging, reading, and the ledger of every movement.

pub mod accounts;
pub mod graphql;
pub mod service;
