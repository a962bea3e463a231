//! First-come-first-served coupons: events of N coupons, issuance (exactly N winners, one per
//! user), and the coupons' life as orders reserve, use and release them.
//!
//! The database is the truth (the event's row locked by every issuance, a guarded increment of
//! `issued_quantity`, the unique (event, user) pair). The [`gate`] in front only turns requests
//! away early, and only with facts the database already confirmed or slots it handed out itself;
//! the requests it lets through are issued many per transaction by the [`issuing`] writer.
//! [`model`] holds the statuses and refusals, [`redemption`] the coupon side of an order.

pub mod gate;
pub mod graphql;
pub mod issuing;
pub mod model;
pub mod redemption;
pub mod service;
