//! GraphQL surface of coupons: `couponEvents`, `couponEvent`, `issueCoupon`, admin
//! `createCouponEvent`, and the `Coupon` / `CouponEvent` types.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{coupon_event, user_coupon};

pub mod event;
pub mod loaders;

use super::model::CouponError;
use super::service::{NewCouponEvent, visible_status};
use crate::coupon::service::CouponService;
use crate::error::{AppError, InvalidInput};
use crate::graphql::context::viewer;
use crate::graphql::errors::{
    Counted, CouponExhaustedError, ErrorCode, Failure, Outcomes, Payload, Refusal, UserError,
};
use crate::graphql::scalars::Won;
use crate::graphql::scalars::parse_id;
use event::{CouponEvent, DiscountType};

/// Where an issued coupon stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Enum)]
pub enum CouponStatus {
    /// Usable: give its id as `couponId` of an order before `expiresAt`.
    Available,
    /// Held by a PENDING order.
    Reserved,
    /// Paid part of a COMPLETED order.
    Used,
    /// Past its `expiresAt` unused.
    Expired,
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

impl From<CouponStatus> for user_coupon::CouponStatus {
    fn from(status: CouponStatus) -> Self {
        match status {
            CouponStatus::Available => user_coupon::CouponStatus::Available,
            CouponStatus::Reserved => user_coupon::CouponStatus::Reserved,
            CouponStatus::Used => user_coupon::CouponStatus::Used,
            CouponStatus::Expired => user_coupon::CouponStatus::Expired,
        }
    }
}

/// A coupon issued to the viewer.
#[derive(Clone, Debug, SimpleObject)]
pub struct Coupon {
    /// The coupon's id: the `couponId` of an order.
    pub id: ID,
    /// Where it stands now.
    pub status: CouponStatus,
    /// Its event's kind of discount.
    pub discount_type: DiscountType,
    /// Percent (1-100) or won, by `discountType`.
    pub discount_value: Won,
    /// When the viewer got it.
    pub issued_at: DateTime<Utc>,
    /// Usable until this instant.
    pub expires_at: DateTime<Utc>,
    /// When an order paid with it; null until then.
    pub used_at: Option<DateTime<Utc>>,
    /// The order holding or having used it.
    pub order_id: Option<ID>,
    /// The event that issued it.
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
    service: &CouponService,
    user_id: i64,
    status: Option<CouponStatus>,
) -> Result<Vec<Coupon>, AppError> {
    let coupons = service.coupons_of(user_id, status.map(Into::into)).await?;
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
    /// Coupon events by ascending id (at most 500); by default only those open now with coupons
    /// left.
    async fn coupon_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default = true,
            desc = "Only events open now with coupons left; false for every event."
        )]
        active_only: bool,
    ) -> async_graphql::Result<Vec<CouponEvent>> {
        let events = ctx
            .data_unchecked::<CouponService>()
            .events(active_only)
            .await
            .map_err(AppError::from)?;
        Ok(events.into_iter().map(CouponEvent::from).collect())
    }

    /// One coupon event, open or not; null when it does not exist.
    async fn coupon_event(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The event's id; one that is not an event id is BAD_USER_INPUT.")] id: ID,
    ) -> async_graphql::Result<Option<CouponEvent>> {
        let id = parse_id(&id)
            .ok_or_else(|| AppError::BadUserInput("id is not a coupon event id".into()))?;
        Ok(ctx
            .data_unchecked::<CouponService>()
            .event(id)
            .await
            .map_err(AppError::from)?
            .map(CouponEvent::from))
    }
}

/// The event to take a coupon of.
#[derive(InputObject)]
pub struct IssueCouponInput {
    /// The coupon event's id.
    pub event_id: ID,
}

/// A new first-come-first-served coupon event.
#[derive(InputObject)]
pub struct CreateCouponEventInput {
    /// One line, 1 to 200 characters (trimmed).
    pub name: String,
    /// A percentage or a fixed amount off an order.
    pub discount_type: DiscountType,
    /// Percent (1-100) or won (1 to 1,000,000,000), by `discountType`.
    pub discount_value: Won,
    /// How many coupons the event hands out, 1 to 10,000,000.
    pub total_quantity: i32,
    /// Default: now. Instants are kept to the microsecond, from 1970-01-01 to 9999-12-31 (UTC).
    pub starts_at: Option<DateTime<Utc>>,
    /// After `startsAt`. Default: open until the coupons run out.
    pub ends_at: Option<DateTime<Utc>>,
    /// Validity of an issued coupon in days from its issue, 1 to 3650 (default 30), or give
    /// `validUntil`.
    pub valid_days: Option<i32>,
    /// One instant, after `startsAt`, until which every issued coupon is valid; not together
    /// with `validDays`.
    pub valid_until: Option<DateTime<Utc>>,
    /// Smallest order subtotal in won the coupon applies to, 0 to 1,000,000,000.
    #[graphql(default)]
    pub min_order_amount: Won,
}

/// The result of `issueCoupon`: the viewer's new coupon, or why none was issued.
#[derive(SimpleObject)]
pub struct IssueCouponPayload {
    /// The coupon issued; null when refused.
    pub coupon: Option<Coupon>,
    /// Why no coupon was issued; empty on success.
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

/// The result of `createCouponEvent`: the event as stored, or why none was created.
#[derive(SimpleObject)]
pub struct CouponEventPayload {
    /// The event created; null when refused.
    pub coupon_event: Option<CouponEvent>,
    /// Why no event was created; empty on success.
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
    /// Takes a coupon of a first-come-first-served event: one per user, while they last
    /// (signed-in users). `userErrors`: INVALID_INPUT, NOT_FOUND, COUPON_EVENT_NOT_ACTIVE (not
    /// started or ended), COUPON_EXHAUSTED, COUPON_ALREADY_ISSUED.
    async fn issue_coupon(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The event to take a coupon of.")] input: IssueCouponInput,
    ) -> async_graphql::Result<IssueCouponPayload> {
        let user_id = viewer(ctx).require_user()?;
        let Some(event_id) = parse_id(&input.event_id) else {
            return IssueCouponPayload::resolve(
                &ISSUE_COUPON,
                Err::<Coupon, _>(CouponError::from(InvalidInput::new(
                    "eventId",
                    "is not a coupon event id",
                ))),
            );
        };
        let issued = ctx
            .data_unchecked::<CouponService>()
            .issue(user_id, event_id)
            .await;
        IssueCouponPayload::resolve(
            &ISSUE_COUPON,
            issued.map(|(coupon, event)| Coupon::new(coupon, event)),
        )
    }

    /// Creates a coupon event. Admin only (FORBIDDEN otherwise). `userErrors`: INVALID_INPUT.
    async fn create_coupon_event(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The event to create.")] input: CreateCouponEventInput,
    ) -> async_graphql::Result<CouponEventPayload> {
        viewer(ctx).require_admin()?;
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
        CouponEventPayload::resolve(
            &CREATE_COUPON_EVENT,
            ctx.data_unchecked::<CouponService>()
                .create_event(new)
                .await,
        )
    }
}

const ISSUE_COUPON: Counted<CouponError> = Counted::new("issueCoupon");
const CREATE_COUPON_EVENT: Counted<CouponError> = Counted::new("createCouponEvent");

/// The mutations of coupons whose outcomes are counted.
pub static COUNTED: [Outcomes; 2] = [ISSUE_COUPON.outcomes(), CREATE_COUPON_EVENT.outcomes()];

/// The codes that `From<CouponError> for Failure` below comes to.
impl Refusal for CouponError {
    const CODES: &'static [ErrorCode] = &[
        ErrorCode::NotFound,
        ErrorCode::CouponExhausted,
        ErrorCode::CouponAlreadyIssued,
        ErrorCode::CouponEventNotActive,
    ];
}

/// What a client sees of each refusal.
impl From<CouponError> for Failure {
    fn from(err: CouponError) -> Self {
        match err {
            CouponError::Common(err) => err.into(),
            CouponError::EventNotFound(id) => Failure::user(UserError::simple(
                ErrorCode::NotFound,
                format!("coupon event {id} does not exist"),
                &["input", "eventId"],
            )),
            CouponError::Exhausted { event_id } => {
                Failure::user(UserError::CouponExhausted(CouponExhaustedError {
                    code: ErrorCode::CouponExhausted,
                    message: format!("coupon event {event_id} has no coupons left"),
                    field: Some(vec!["input".into(), "eventId".into()]),
                    event_id: ID(event_id.to_string()),
                }))
            }
            CouponError::AlreadyIssued(id) => Failure::user(UserError::simple(
                ErrorCode::CouponAlreadyIssued,
                format!("you already hold the coupon of event {id}"),
                &["input", "eventId"],
            )),
            CouponError::NotActive { event_id, reason } => Failure::user(UserError::simple(
                ErrorCode::CouponEventNotActive,
                format!("coupon event {event_id} is not open: {reason}"),
                &["input", "eventId"],
            )),
        }
    }
}
