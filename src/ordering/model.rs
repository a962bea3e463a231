//! The vocabulary every use case of ordering speaks besides the stored statuses (typed in
//! `entity::order`): the settings, how a new order is paid, and the refusals ([`OrderError`]).

use std::time::Duration;

use chrono_tz::Tz;
use entity::order::OrderStatus;

use crate::error::{CommonError, common_error};

#[derive(Copy, Clone, Debug)]
pub struct OrderSettings {
    /// How long a PENDING order holds its stock.
    pub pending_ttl: Duration,
    /// The business day of sales.
    pub time_zone: Tz,
}

impl OrderSettings {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            pending_ttl: settings.orders.order_ttl(),
            time_zone: settings.ranking.time_zone,
        }
    }
}

/// Why one line of an order cannot be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineProblem {
    ProductNotFound {
        product_id: i64,
    },
    OutOfStock {
        product_id: i64,
        requested: i64,
        available: i64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Common(CommonError),
    #[error("some lines cannot be served")]
    Lines(Vec<LineProblem>),
    #[error("balance {balance} is less than {required}")]
    InsufficientBalance { balance: i64, required: i64 },
    #[error("order not found")]
    OrderNotFound,
    #[error("cannot {action} an order that is {status}")]
    InvalidState {
        action: &'static str,
        status: OrderStatus,
    },
    #[error("coupon not usable: {0}")]
    CouponNotUsable(String),
}
common_error!(OrderError);

/// Whether a new order is paid in the same transaction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Payment {
    Now,
    Later,
}
