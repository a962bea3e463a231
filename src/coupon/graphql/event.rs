//! The `CouponEvent` object (a first-come-first-served coupon event with what remains of it) and
//! its `DiscountType`.

use async_graphql::{Enum, ID, SimpleObject};
use chrono::{DateTime, Utc};
use entity::coupon_event;

use crate::graphql::scalars::Won;

/// How a coupon's `discountValue` takes off an order's subtotal.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Enum)]
pub enum DiscountType {
    /// `discountValue` percent off the order, rounded down to the won.
    Percent,
    /// `discountValue` won off the order (never below zero).
    Fixed,
}

impl From<coupon_event::DiscountType> for DiscountType {
    fn from(kind: coupon_event::DiscountType) -> Self {
        match kind {
            coupon_event::DiscountType::Percent => DiscountType::Percent,
            coupon_event::DiscountType::Fixed => DiscountType::Fixed,
        }
    }
}

impl From<DiscountType> for coupon_event::DiscountType {
    fn from(kind: DiscountType) -> Self {
        match kind {
            DiscountType::Percent => coupon_event::DiscountType::Percent,
            DiscountType::Fixed => coupon_event::DiscountType::Fixed,
        }
    }
}

/// A first-come-first-served coupon event.
#[derive(Clone, Debug, SimpleObject)]
pub struct CouponEvent {
    /// The event's id: the `eventId` of `issueCoupon`.
    pub id: ID,
    /// The event's name.
    pub name: String,
    /// A percentage or a fixed amount off an order.
    pub discount_type: DiscountType,
    /// Percent (1-100) or won, by `discountType`.
    pub discount_value: Won,
    /// How many coupons the event hands out in all.
    pub total_quantity: i32,
    /// How many it has handed out so far.
    pub issued_quantity: i32,
    /// How many are left: `totalQuantity - issuedQuantity`.
    pub remaining: i32,
    /// When the event opens.
    pub starts_at: DateTime<Utc>,
    /// When the event closes; null: open until its coupons run out.
    pub ends_at: Option<DateTime<Utc>>,
    /// Issued coupons are valid this many days...
    pub valid_days: Option<i32>,
    /// ...or until this instant.
    pub valid_until: Option<DateTime<Utc>>,
    /// Smallest order subtotal in won the coupon applies to (COUPON_NOT_USABLE below it).
    pub min_order_amount: Won,
    /// Open now and with coupons left.
    pub active: bool,
}

impl From<coupon_event::Model> for CouponEvent {
    fn from(row: coupon_event::Model) -> Self {
        let now = Utc::now();
        let remaining = row.total_quantity - row.issued_quantity;
        Self {
            id: ID(row.id.to_string()),
            name: row.name,
            discount_type: row.discount_type.into(),
            discount_value: Won(row.discount_value),
            total_quantity: i32::try_from(row.total_quantity).unwrap_or(i32::MAX),
            issued_quantity: i32::try_from(row.issued_quantity).unwrap_or(i32::MAX),
            remaining: i32::try_from(remaining).unwrap_or(i32::MAX),
            active: row.starts_at <= now
                && row.ends_at.is_none_or(|end| end > now)
                && remaining > 0,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            valid_days: row.valid_days,
            valid_until: row.valid_until,
            min_order_amount: Won(row.min_order_amount),
        }
    }
}
