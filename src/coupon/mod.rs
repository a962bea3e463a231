//! First-come-first-served coupons: events of N coupons, issuance (exactly N winners, one per
//! user), and the coupons' life as orders reserve, use and release them.
//!
//! The database is the truth (a conditional increment of `issued_quantity`, the unique
//! (event, user) pair). The [`gate`] in front only turns requests away early, and only with facts
//! the database already confirmed or slots it handed out itself.

pub mod gate;
pub mod graphql;
pub mod redemption;
pub mod service;
