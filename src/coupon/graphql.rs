//! GraphQL surface of coupons: `couponEvents`, `couponEvent`, `issueCoupon`, admin
//! `createCouponEvent`, and the `Coupon` / `CouponEvent` types.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{coupon_event, user_coupon};

use super::service::{CouponError, NewCouponEvent, visible_status};
use crate::error::{AppError, InvalidInput, Payload, UserError};
use crate::graphql::scalars::Won;
use crate::graphql::{parse_id, viewer};
use crate::state::AppState;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Enum)]
pub enum DiscountType {
    /// `discountValue` percent off the order, rounded down to the won.
    Percent,
    /// `discountValue` won off the order (never below zero).
    Fixed,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Enum)]
pub enum CouponStatus {
    Available,
    /// Held by a PENDING order.
    Reserved,
    Used,
    Expired,
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

impl From<user_coupon::CouponStatus> for CouponStatus {
    fn from(status: user_coupon::CouponStatus) -> Self {
        match status {
            user_coupon::CouponStatus::Available => CouponStatus::Available,
            user_coupon::CouponStatus::Reserved => CouponStatus::Reserved,
            user_coupon::CouponStatus::Used => CouponStatus::Used,
            user_coupon::CouponStatus::Expired => CouponStatus::Expired,
        }
    }
}

/// A first-come-first-served coupon event.
#[derive(Clone, Debug, SimpleObject)]
pub struct CouponEvent {
    pub id: ID,
    pub name: String,
    pub discount_type: DiscountType,
    /// Percent (1-100) or won, by `discountType`.
    pub discount_value: Won,
    pub total_quantity: i32,
    pub issued_quantity: i32,
    pub remaining: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Issued coupons are valid this many days...
    pub valid_days: Option<i32>,
    /// ...or until this instant.
    pub valid_until: Option<DateTime<Utc>>,
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

/// A coupon issued to the viewer.
#[derive(Clone, Debug, SimpleObject)]
pub struct Coupon {
    pub id: ID,
    pub status: CouponStatus,
    pub discount_type: DiscountType,
    pub discount_value: Won,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    /// The order holding or having used it.
    pub order_id: Option<ID>,
    pub event: CouponEvent,
}

impl Coupon {
    pub fn new(row: user_coupon::Model, event: coupon_event::Model) -> Self {
        let event = CouponEvent::from(event);
        Self {
            id: ID(row.id.to_string()),
            status: visible_status(&row, Utc::now()).into(),
            discount_type: event.discount_type,
            discount_value: event.discount_value,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
            order_id: row.order_id.map(|id| ID(id.to_string())),
            event,
        }
    }
}

/// The viewer's coupons with their events, optionally of one status.
pub async fn coupons_of(
    state: &AppState,
    user_id: i64,
    status: Option<CouponStatus>,
) -> Result<Vec<Coupon>, AppError> {
    let coupons = state.coupons.coupons_of(user_id).await?;
    Ok(coupons
        .into_iter()
        .map(|(coupon, event)| Coupon::new(coupon, event))
        .filter(|c| status.is_none_or(|s| c.status == s))
        .collect())
}

#[derive(Default)]
pub struct CouponQuery;

#[Object]
impl CouponQuery {
    /// Coupon events by id; by default only those open now with coupons left.
    async fn coupon_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = true)] active_only: bool,
    ) -> async_graphql::Result<Vec<CouponEvent>> {
        let state = ctx.data_unchecked::<AppState>();
        let events = state
            .coupons
            .events(active_only)
            .await
            .map_err(AppError::from)?;
        Ok(events.into_iter().map(CouponEvent::from).collect())
    }

    async fn coupon_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<CouponEvent>> {
        let id = parse_id(&id)
            .ok_or_else(|| AppError::BadUserInput("id is not a coupon event id".into()))?;
        let state = ctx.data_unchecked::<AppState>();
        Ok(state
            .coupons
            .event(id)
            .await
            .map_err(AppError::from)?
            .map(CouponEvent::from))
    }
}

#[derive(InputObject)]
pub struct IssueCouponInput {
    pub event_id: ID,
}

#[derive(InputObject)]
pub struct CreateCouponEventInput {
    pub name: String,
    pub discount_type: DiscountType,
    /// Percent (1-100) or won.
    pub discount_value: Won,
    pub total_quantity: i32,
    /// Default: now.
    pub starts_at: Option<DateTime<Utc>>,
    /// Default: open until the coupons run out.
    pub ends_at: Option<DateTime<Utc>>,
    /// Validity of an issued coupon in days (default 30), or give `validUntil`.
    pub valid_days: Option<i32>,
    pub valid_until: Option<DateTime<Utc>>,
    #[graphql(default)]
    pub min_order_amount: Won,
}

#[derive(SimpleObject)]
pub struct IssueCouponPayload {
    pub coupon: Option<Coupon>,
    pub user_errors: Vec<UserError>,
}

impl Payload<Coupon> for IssueCouponPayload {
    fn success(coupon: Coupon) -> Self {
        Self {
            coupon: Some(coupon),
            user_errors: vec![],
        }
    }

    fn failure(user_errors: Vec<UserError>) -> Self {
        Self {
            coupon: None,
            user_errors,
        }
    }
}

#[derive(SimpleObject)]
pub struct CouponEventPayload {
    pub coupon_event: Option<CouponEvent>,
    pub user_errors: Vec<UserError>,
}

impl Payload<coupon_event::Model> for CouponEventPayload {
    fn success(event: coupon_event::Model) -> Self {
        Self {
            coupon_event: Some(event.into()),
            user_errors: vec![],
        }
    }

    fn failure(user_errors: Vec<UserError>) -> Self {
        Self {
            coupon_event: None,
            user_errors,
        }
    }
}

#[derive(Default)]
pub struct CouponMutation;

#[Object]
impl CouponMutation {
    /// Takes a coupon of a first-come-first-served event: one per user, while they last.
    async fn issue_coupon(
        &self,
        ctx: &Context<'_>,
        input: IssueCouponInput,
    ) -> async_graphql::Result<IssueCouponPayload> {
        let user_id = viewer(ctx).require_user()?;
        let state = ctx.data_unchecked::<AppState>();
        let Some(event_id) = parse_id(&input.event_id) else {
            return IssueCouponPayload::resolve(
                "issueCoupon",
                Err::<Coupon, _>(CouponError::from(InvalidInput::new(
                    "eventId",
                    "is not a coupon event id",
                ))),
            );
        };
        let issued = state.coupons.issue(user_id, event_id).await;
        IssueCouponPayload::resolve(
            "issueCoupon",
            issued.map(|(coupon, event)| Coupon::new(coupon, event)),
        )
    }

    /// Creates a coupon event. Admin only.
    async fn create_coupon_event(
        &self,
        ctx: &Context<'_>,
        input: CreateCouponEventInput,
    ) -> async_graphql::Result<CouponEventPayload> {
        viewer(ctx).require_admin()?;
        let state = ctx.data_unchecked::<AppState>();
        let new = NewCouponEvent {
            name: input.name,
            discount_type: input.discount_type.into(),
            discount_value: input.discount_value.0,
            total_quantity: i64::from(input.total_quantity),
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            valid_days: input.valid_days,
            valid_until: input.valid_until,
            min_order_amount: input.min_order_amount.0,
        };
        CouponEventPayload::resolve("createCouponEvent", state.coupons.create_event(new).await)
    }
}
