//! Sales records and what is derived from them: the top sellers of the last days (cached, kept
//! fresh by a worker, pushed to `rankingChanged` subscribers) and in-stock alternatives to a
//! product, best sellers first.

pub mod graphql;
pub mod sales;
pub mod service;
pub mod snapshot;
pub mod worker;
