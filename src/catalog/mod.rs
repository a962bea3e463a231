//! The product catalog with exact live stock: browsing, admin creation and restocking.

pub mod alternatives;
pub mod graphql;
pub mod service;
pub mod stock;
