//! The vocabulary of coupons besides their stored statuses (typed in `entity`): the default
//! validity of an issued coupon and the refusals ([`CouponError`]).

use crate::error::{CommonError, common_error};

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
