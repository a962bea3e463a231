//! The vocabulary of coupons: discount types and coupon statuses as stored, the default validity,
//! and the refusals ([`CouponError`]).

use crate::error::{CommonError, common_error};

pub const PERCENT: &str = "PERCENT";
pub const FIXED: &str = "FIXED";

/// Coupon statuses as stored (EXPIRED is derived when reading an AVAILABLE coupon past expiry).
pub mod status {
    pub const AVAILABLE: &str = "AVAILABLE";
    pub const RESERVED: &str = "RESERVED";
    pub const USED: &str = "USED";
    pub const EXPIRED: &str = "EXPIRED";
}

/// Default validity of an issued coupon when the event sets none.
pub const DEFAULT_VALID_DAYS: i32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum CouponError {
    #[error(transparent)]
    Common(CommonError),
    #[error("coupon event {0} not found")]
    EventNotFound(i64),
    #[error("coupon event {event_id} is exhausted")]
    Exhausted { event_id: i64 },
    #[error("the user already holds a coupon of event {0}")]
    AlreadyIssued(i64),
    #[error("coupon event {event_id} is not active: {reason}")]
    NotActive { event_id: i64, reason: &'static str },
}
common_error!(CouponError);
