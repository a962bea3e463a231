//! Coupons paying part of an order, inside the order use cases' transactions: lock the coupons
//! (ascending id, after the products in the global lock order) with their events, judge one
//! against an order ([`discount`], a pure function), then reserve, use or release any number of
//! them with one statement (sent with the transaction's other writes). The coupon domain owns these rows; ordering only calls these.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::coupon_event::{self, DiscountType};
use entity::user_coupon::{self, CouponStatus};
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryTrait};

use crate::infra::locking::lock_ascending;
use crate::infra::writes::Writes;

/// A locked coupon and the event that issued it.
#[derive(Clone, Debug)]
pub struct Redeemable {
    pub coupon: user_coupon::Model,
    pub event: coupon_event::Model,
}

/// Why a coupon cannot pay part of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotUsable(pub String);

/// Locks the coupons (ascending id) and reads their events; unknown ids are absent.
pub async fn lock(
    conn: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, Redeemable>, DbErr> {
    let coupons = lock_ascending::<user_coupon::Entity>(conn, user_coupon::Column::Id, ids).await?;
    if coupons.is_empty() {
        return Ok(HashMap::new());
    }
    let mut event_ids: Vec<i64> = coupons.iter().map(|c| c.event_id).collect();
    event_ids.sort_unstable();
    event_ids.dedup();
    let events: HashMap<i64, coupon_event::Model> = coupon_event::Entity::find()
        .filter(coupon_event::Column::Id.is_in(event_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    Ok(coupons
        .into_iter()
        .filter_map(|coupon| {
            let event = events.get(&coupon.event_id)?.clone();
            Some((coupon.id, Redeemable { coupon, event }))
        })
        .collect())
}

/// What the coupon takes off an order of `subtotal` won by `user_id` (PERCENT rounds down to the
/// won; FIXED never exceeds the subtotal), or why it cannot.
pub fn discount(
    coupon: Option<&Redeemable>,
    user_id: i64,
    subtotal: i64,
    now: DateTime<Utc>,
) -> Result<i64, NotUsable> {
    let Some(Redeemable { coupon, event }) = coupon.filter(|r| r.coupon.user_id == user_id) else {
        return Err(NotUsable("no such coupon among yours".into()));
    };
    match coupon.status {
        CouponStatus::Available if coupon.expires_at <= now => {
            return Err(NotUsable("the coupon has expired".into()));
        }
        CouponStatus::Available => {}
        CouponStatus::Reserved => {
            return Err(NotUsable("the coupon is held by a pending order".into()));
        }
        CouponStatus::Used => return Err(NotUsable("the coupon was already used".into())),
        CouponStatus::Expired => return Err(NotUsable("the coupon has expired".into())),
    }
    if subtotal < event.min_order_amount {
        return Err(NotUsable(format!(
            "the order total of {subtotal} won is below the coupon's minimum of {} won",
            event.min_order_amount
        )));
    }
    Ok(match event.discount_type {
        DiscountType::Percent => subtotal * event.discount_value / 100,
        DiscountType::Fixed => std::cmp::min(event.discount_value, subtotal),
    })
}

/// A coupon's new state: RESERVED by a pending order, USED by a paid one, or AVAILABLE again.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    Reserved { order_id: i64 },
    Used { order_id: i64, at: DateTime<Utc> },
    Released,
}

impl Hold {
    pub fn status(self) -> CouponStatus {
        match self {
            Hold::Reserved { .. } => CouponStatus::Reserved,
            Hold::Used { .. } => CouponStatus::Used,
            Hold::Released => CouponStatus::Available,
        }
    }
}

/// Adds to `writes` the new state of locked coupons, one statement for all. A released coupon past its
/// `expires_at` stays unusable (it reads as EXPIRED).
pub fn set(writes: &mut Writes, holds: &[(i64, Hold)]) {
    if holds.is_empty() {
        return;
    }
    let mut statuses = CaseStatement::new();
    let mut orders = CaseStatement::new();
    let mut used = CaseStatement::new();
    for (coupon_id, hold) in holds {
        let this = Expr::col(user_coupon::Column::Id).eq(*coupon_id);
        statuses = statuses.case(this.clone(), hold.status());
        let (order_id, used_at) = match *hold {
            Hold::Reserved { order_id } => (Some(order_id), None),
            Hold::Used { order_id, at } => (Some(order_id), Some(at)),
            Hold::Released => (None, None),
        };
        orders = orders.case(this.clone(), Expr::value(order_id));
        used = used.case(this, Expr::value(used_at));
    }
    let statement = user_coupon::Entity::update_many()
        .col_expr(
            user_coupon::Column::Status,
            Expr::expr(statuses.finally(Expr::col(user_coupon::Column::Status))),
        )
        .col_expr(
            user_coupon::Column::OrderId,
            Expr::expr(orders.finally(Expr::col(user_coupon::Column::OrderId))),
        )
        .col_expr(
            user_coupon::Column::UsedAt,
            Expr::expr(used.finally(Expr::col(user_coupon::Column::UsedAt))),
        )
        .filter(user_coupon::Column::Id.is_in(holds.iter().map(|(id, _)| *id)))
        .into_query();
    writes.update(statement);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redeemable(status: CouponStatus, kind: DiscountType, value: i64, min: i64) -> Redeemable {
        let now = Utc::now();
        Redeemable {
            coupon: user_coupon::Model {
                id: 1,
                event_id: 7,
                user_id: 42,
                status,
                issued_at: now,
                expires_at: now + chrono::Duration::days(1),
                order_id: None,
                used_at: None,
            },
            event: coupon_event::Model {
                id: 7,
                name: "event".into(),
                discount_type: kind,
                discount_value: value,
                total_quantity: 10,
                issued_quantity: 1,
                starts_at: now,
                ends_at: None,
                valid_days: Some(30),
                valid_until: None,
                min_order_amount: min,
                created_at: now,
            },
        }
    }

    #[test]
    fn percent_rounds_down_and_fixed_never_exceeds_the_subtotal() {
        let now = Utc::now();
        let ten_percent = redeemable(CouponStatus::Available, DiscountType::Percent, 10, 0);
        assert_eq!(discount(Some(&ten_percent), 42, 45_999, now), Ok(4_599));
        let five_thousand = redeemable(CouponStatus::Available, DiscountType::Fixed, 5_000, 0);
        assert_eq!(discount(Some(&five_thousand), 42, 3_000, now), Ok(3_000));
        assert_eq!(discount(Some(&five_thousand), 42, 30_000, now), Ok(5_000));
    }

    #[test]
    fn a_coupon_serves_only_its_owner_once_above_its_minimum_before_it_expires() {
        let now = Utc::now();
        let fresh = redeemable(CouponStatus::Available, DiscountType::Percent, 10, 30_000);
        assert!(
            discount(Some(&fresh), 43, 50_000, now).is_err(),
            "someone else's"
        );
        assert!(discount(None, 42, 50_000, now).is_err(), "unknown");
        assert!(
            discount(Some(&fresh), 42, 29_999, now).is_err(),
            "below the minimum"
        );
        assert!(
            discount(Some(&fresh), 42, 50_000, now + chrono::Duration::days(2)).is_err(),
            "expired"
        );
        let held = redeemable(CouponStatus::Reserved, DiscountType::Percent, 10, 0);
        assert!(discount(Some(&held), 42, 50_000, now).is_err());
        let used = redeemable(CouponStatus::Used, DiscountType::Percent, 10, 0);
        assert!(discount(Some(&used), 42, 50_000, now).is_err());
    }

    #[test]
    fn percent_discounts_round_down_to_the_won_even_to_nothing() {
        let now = Utc::now();
        let ten_percent = redeemable(CouponStatus::Available, DiscountType::Percent, 10, 0);
        assert_eq!(discount(Some(&ten_percent), 42, 9, now), Ok(0));
        assert_eq!(discount(Some(&ten_percent), 42, 10, now), Ok(1));
        assert_eq!(discount(Some(&ten_percent), 42, 19, now), Ok(1));
        assert_eq!(
            discount(Some(&ten_percent), 42, 0, now),
            Ok(0),
            "an empty total"
        );
        let one_percent = redeemable(CouponStatus::Available, DiscountType::Percent, 1, 0);
        assert_eq!(discount(Some(&one_percent), 42, 99, now), Ok(0));
    }

    #[test]
    fn a_hundred_percent_takes_the_whole_subtotal_and_never_more() {
        let now = Utc::now();
        let all = redeemable(CouponStatus::Available, DiscountType::Percent, 100, 0);
        for subtotal in [0, 1, 45_999, 1_000_000_000] {
            assert_eq!(discount(Some(&all), 42, subtotal, now), Ok(subtotal));
        }
    }

    #[test]
    fn every_valid_discount_lies_between_zero_and_the_subtotal() {
        let now = Utc::now();
        for percent in 1..=100 {
            let coupon = redeemable(CouponStatus::Available, DiscountType::Percent, percent, 0);
            for subtotal in [0, 1, 7, 99, 100, 101, 12_345, 999_999_999] {
                let off = discount(Some(&coupon), 42, subtotal, now).unwrap();
                assert!(
                    (0..=subtotal).contains(&off),
                    "{percent}% of {subtotal}: {off}"
                );
            }
        }
    }

    #[test]
    fn the_largest_possible_order_does_not_overflow() {
        // 100 lines x 1,000 units x the largest price (1,000,000,000 won, catalog's MAX_PRICE)
        let largest: i64 = 100 * 1_000 * 1_000_000_000;
        let now = Utc::now();
        let all = redeemable(CouponStatus::Available, DiscountType::Percent, 100, 0);
        assert_eq!(discount(Some(&all), 42, largest, now), Ok(largest));
        let ninety_nine = redeemable(CouponStatus::Available, DiscountType::Percent, 99, 0);
        assert_eq!(
            discount(Some(&ninety_nine), 42, largest, now),
            Ok(largest / 100 * 99)
        );
        let fixed = redeemable(
            CouponStatus::Available,
            DiscountType::Fixed,
            1_000_000_000,
            0,
        );
        assert_eq!(discount(Some(&fixed), 42, largest, now), Ok(1_000_000_000));
    }

    #[test]
    fn a_fixed_discount_equal_to_the_subtotal_makes_the_order_free() {
        let now = Utc::now();
        let five_thousand = redeemable(CouponStatus::Available, DiscountType::Fixed, 5_000, 0);
        assert_eq!(discount(Some(&five_thousand), 42, 5_000, now), Ok(5_000));
        assert_eq!(discount(Some(&five_thousand), 42, 4_999, now), Ok(4_999));
        assert_eq!(discount(Some(&five_thousand), 42, 0, now), Ok(0));
    }

    #[test]
    fn the_minimum_order_amount_is_inclusive() {
        let now = Utc::now();
        let coupon = redeemable(CouponStatus::Available, DiscountType::Fixed, 3_000, 50_000);
        assert_eq!(discount(Some(&coupon), 42, 50_000, now), Ok(3_000));
        let refused = discount(Some(&coupon), 42, 49_999, now).unwrap_err();
        assert!(
            refused.0.contains("49999") && refused.0.contains("50000"),
            "{refused:?}"
        );
    }

    #[test]
    fn a_coupon_expires_at_its_instant() {
        let fresh = redeemable(CouponStatus::Available, DiscountType::Percent, 10, 0);
        let at = fresh.coupon.expires_at;
        let just_before = at - chrono::Duration::milliseconds(1);
        assert_eq!(discount(Some(&fresh), 42, 10_000, just_before), Ok(1_000));
        assert_eq!(
            discount(Some(&fresh), 42, 10_000, at),
            Err(NotUsable("the coupon has expired".into()))
        );
    }

    #[test]
    fn each_refusal_says_why() {
        let now = Utc::now();
        let reason =
            |coupon: &Redeemable, user| discount(Some(coupon), user, 50_000, now).unwrap_err().0;
        let fresh = redeemable(CouponStatus::Available, DiscountType::Percent, 10, 0);
        assert_eq!(reason(&fresh, 43), "no such coupon among yours");
        assert_eq!(
            reason(
                &redeemable(CouponStatus::Reserved, DiscountType::Percent, 10, 0),
                42
            ),
            "the coupon is held by a pending order"
        );
        assert_eq!(
            reason(
                &redeemable(CouponStatus::Used, DiscountType::Percent, 10, 0),
                42
            ),
            "the coupon was already used"
        );
        // someone else's coupon is "not yours" before anything else is said about it
        assert_eq!(
            reason(
                &redeemable(CouponStatus::Used, DiscountType::Percent, 10, 0),
                43
            ),
            "no such coupon among yours"
        );
    }

    #[test]
    fn only_an_available_coupon_pays() {
        let now = Utc::now();
        // an unknown stored status cannot even be loaded (see entity's tests)
        for stored in [
            CouponStatus::Expired,
            CouponStatus::Reserved,
            CouponStatus::Used,
        ] {
            let coupon = redeemable(stored, DiscountType::Percent, 10, 0);
            assert!(
                discount(Some(&coupon), 42, 50_000, now).is_err(),
                "{stored:?}"
            );
        }
    }

    #[test]
    fn holds_store_the_coupon_statuses() {
        let at = Utc::now();
        assert_eq!(
            Hold::Reserved { order_id: 1 }.status(),
            CouponStatus::Reserved
        );
        assert_eq!(Hold::Used { order_id: 1, at }.status(), CouponStatus::Used);
        assert_eq!(Hold::Released.status(), CouponStatus::Available);
    }
}
