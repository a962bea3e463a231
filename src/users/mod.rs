//! Users: who shops (CUSTOMER) and who administers (ADMIN). Every user has a balance row.

pub mod graphql;
pub mod service;
