//! Coupon use cases: events (admin), issuance behind the gate, listing, and the coupon side of an
//! order (validating, discounting, reserving, using, releasing) inside the order's transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::coupon_event::{self, DiscountType};
use entity::user_coupon::{self, CouponStatus};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, Set,
};

use super::gate::{CouponGate, EventSnapshot, Settlement, Verdict};
use super::issuing::{IssueWriter, Request};
use super::model::{CouponError, DEFAULT_VALID_DAYS};
use crate::error::InvalidInput;
use crate::infra::db::Database;
use crate::text::required_text;

/// The instants an event may be given: every backend stores them (MySQL's DATETIME ends with
/// the year 9999).
const STORABLE_INSTANTS: std::ops::RangeInclusive<DateTime<Utc>> = DateTime::UNIX_EPOCH
    ..=DateTime::from_naive_utc_and_offset(
        chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 999_999)
            .unwrap(),
        Utc,
    );

#[derive(Clone)]
pub struct CouponService {
    db: Database,
    gate: CouponGate,
    writer: IssueWriter,
}

/// A coupon and the event that issued it.
pub type CouponOfEvent = (user_coupon::Model, coupon_event::Model);

/// A coupon event as an admin creates it.
#[derive(Clone, Debug)]
pub struct NewCouponEvent {
    pub name: String,
    pub discount_type: DiscountType,
    pub discount_value: i64,
    pub total_quantity: i64,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub valid_days: Option<i32>,
    pub valid_until: Option<DateTime<Utc>>,
    pub min_order_amount: i64,
}

impl CouponService {
    /// Starts the coupon writer (see [`IssueWriter`]).
    pub fn new(db: Database, gate: CouponGate) -> std::io::Result<Self> {
        let writer = IssueWriter::start(db.clone())?;
        Ok(Self { db, gate, writer })
    }

    pub async fn create_event(
        &self,
        new: NewCouponEvent,
    ) -> Result<coupon_event::Model, CouponError> {
        let name = required_text("name", &new.name, 200)?;
        let value_range = match new.discount_type {
            DiscountType::Percent => 1..=100,
            DiscountType::Fixed => 1..=1_000_000_000,
        };
        if !value_range.contains(&new.discount_value) {
            return Err(InvalidInput::new(
                "discountValue",
                format!(
                    "must be between {} and {} for {}",
                    value_range.start(),
                    value_range.end(),
                    new.discount_type.to_value()
                ),
            )
            .into());
        }
        if !(1..=10_000_000).contains(&new.total_quantity) {
            return Err(
                InvalidInput::new("totalQuantity", "must be between 1 and 10000000").into(),
            );
        }
        if !(0..=1_000_000_000).contains(&new.min_order_amount) {
            return Err(InvalidInput::new(
                "minOrderAmount",
                "must be between 0 and 1000000000 won",
            )
            .into());
        }
        for (field, instant) in [
            ("startsAt", new.starts_at),
            ("endsAt", new.ends_at),
            ("validUntil", new.valid_until),
        ] {
            if instant.is_some_and(|instant| !STORABLE_INSTANTS.contains(&instant)) {
                return Err(InvalidInput::new(
                    field,
                    "must be between 1970-01-01 and 9999-12-31 (UTC)",
                )
                .into());
            }
        }
        let now = Utc::now();
        let starts_at = new.starts_at.unwrap_or(now);
        if let Some(ends_at) = new.ends_at
            && ends_at <= starts_at
        {
            return Err(InvalidInput::new("endsAt", "must be after startsAt").into());
        }
        let (valid_days, valid_until) = match (new.valid_days, new.valid_until) {
            (Some(_), Some(_)) => {
                return Err(InvalidInput::new(
                    "validUntil",
                    "give validDays or validUntil, not both",
                )
                .into());
            }
            (Some(days), None) if !(1..=3650).contains(&days) => {
                return Err(InvalidInput::new("validDays", "must be between 1 and 3650").into());
            }
            (None, Some(until)) if until <= starts_at => {
                return Err(InvalidInput::new("validUntil", "must be after startsAt").into());
            }
            (None, None) => (Some(DEFAULT_VALID_DAYS), None),
            other => other,
        };
        Ok(coupon_event::ActiveModel {
            name: Set(name),
            discount_type: Set(new.discount_type),
            discount_value: Set(new.discount_value),
            total_quantity: Set(new.total_quantity),
            issued_quantity: Set(0),
            starts_at: Set(starts_at),
            ends_at: Set(new.ends_at),
            valid_days: Set(valid_days),
            valid_until: Set(valid_until),
            min_order_amount: Set(new.min_order_amount),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(self.db.conn())
        .await?)
    }

    pub async fn event(&self, id: i64) -> Result<Option<coupon_event::Model>, DbErr> {
        coupon_event::Entity::find_by_id(id)
            .one(self.db.conn())
            .await
    }

    /// Events by id; `active_only`: open now and with coupons left.
    pub async fn events(&self, active_only: bool) -> Result<Vec<coupon_event::Model>, DbErr> {
        let mut query = coupon_event::Entity::find().order_by_asc(coupon_event::Column::Id);
        if active_only {
            let now = Utc::now();
            query = query
                .filter(coupon_event::Column::StartsAt.lte(now))
                .filter(
                    coupon_event::Column::EndsAt
                        .is_null()
                        .or(coupon_event::Column::EndsAt.gt(now)),
                )
                .filter(
                    Expr::col(coupon_event::Column::IssuedQuantity)
                        .lt(Expr::col(coupon_event::Column::TotalQuantity)),
                );
        }
        query.limit(500).all(&self.db.reads()).await
    }

    /// A user's coupons with their events, newest first (at most 500), optionally only those
    /// whose status as shown ([`visible_status`]) is `status`: chosen in the database, so no
    /// coupon of that status hides behind 500 newer ones of another.
    pub async fn coupons_of(
        &self,
        user_id: i64,
        status: Option<CouponStatus>,
    ) -> Result<Vec<CouponOfEvent>, DbErr> {
        let mut query = user_coupon::Entity::find()
            .filter(user_coupon::Column::UserId.eq(user_id))
            .order_by_desc(user_coupon::Column::Id)
            .limit(500);
        if let Some(status) = status {
            query = query.filter(shown_as(status, Utc::now()));
        }
        self.with_events(query).await
    }

    /// Coupons with their events, by coupon id (one query, for the DataLoader).
    pub async fn coupons_by_id(&self, ids: &[i64]) -> Result<HashMap<i64, CouponOfEvent>, DbErr> {
        let coupons = self
            .with_events(
                user_coupon::Entity::find()
                    .filter(user_coupon::Column::Id.is_in(ids.iter().copied())),
            )
            .await?;
        Ok(coupons.into_iter().map(|c| (c.0.id, c)).collect())
    }

    /// The coupons `query` selects, each joined with its event in the database.
    async fn with_events(
        &self,
        query: Select<user_coupon::Entity>,
    ) -> Result<Vec<CouponOfEvent>, DbErr> {
        Ok(query
            .find_also_related(coupon_event::Entity)
            .all(&self.db.reads())
            .await?
            .into_iter()
            .filter_map(|(coupon, event)| Some((coupon, event?)))
            .collect())
    }

    /// Issues the event's coupon to the user: first come, first served, one per user. The
    /// coupon comes with its event as of the issuing commit.
    ///
    /// Runs to the end even if the caller goes away, so the gate is always settled.
    #[tracing::instrument(name = "issue coupon", skip_all)]
    pub async fn issue(
        &self,
        user_id: i64,
        event_id: i64,
    ) -> Result<(user_coupon::Model, coupon_event::Model), CouponError> {
        let service = self.clone();
        tokio::spawn(async move { service.issue_to_completion(user_id, event_id).await })
            .await
            .map_err(|e| DbErr::Custom(format!("coupon issuance task failed: {e}")))?
    }

    async fn issue_to_completion(
        &self,
        user_id: i64,
        event_id: i64,
    ) -> Result<(user_coupon::Model, coupon_event::Model), CouponError> {
        let verdict = self
            .gate
            .admit(event_id, user_id, || self.snapshot(event_id))
            .await;
        let reserved = match verdict {
            Verdict::Exhausted => return Err(CouponError::Exhausted { event_id }),
            Verdict::AlreadyIssued => return Err(CouponError::AlreadyIssued(event_id)),
            Verdict::Proceed { reserved } => reserved,
        };
        let result = self.writer.issue(Request { user_id, event_id }).await;
        let settlement = match &result {
            Ok((_, event)) if event.issued_quantity >= event.total_quantity => {
                Settlement::IssuedLast
            }
            Ok(_) => Settlement::Issued,
            Err(CouponError::Exhausted { .. }) => Settlement::Exhausted,
            Err(CouponError::AlreadyIssued(_)) => Settlement::AlreadyIssued,
            Err(_) => Settlement::Released,
        };
        self.gate
            .settle(event_id, user_id, reserved, settlement)
            .await;
        result
    }

    /// The event as the database has it, for the gate; `None` when it does not exist.
    async fn snapshot(&self, event_id: i64) -> Option<EventSnapshot> {
        let event = self.event(event_id).await.ok()??;
        let holders: Vec<i64> = user_coupon::Entity::find()
            .select_only()
            .column(user_coupon::Column::UserId)
            .filter(user_coupon::Column::EventId.eq(event_id))
            .into_tuple()
            .all(self.db.conn())
            .await
            .ok()?;
        Some(EventSnapshot {
            remaining: event.total_quantity - event.issued_quantity,
            holders,
        })
    }

    /// Active events with coupons left, other than `except`: what to offer instead.
    pub async fn alternatives(&self, except: i64) -> Result<Vec<coupon_event::Model>, DbErr> {
        let mut events = self.events(true).await?;
        events.retain(|e| e.id != except);
        events.truncate(5);
        Ok(events)
    }
}

/// The status a client sees: AVAILABLE past its expiry reads as EXPIRED.
pub fn visible_status(coupon: &user_coupon::Model, now: DateTime<Utc>) -> CouponStatus {
    if coupon.status == CouponStatus::Available && coupon.expires_at <= now {
        CouponStatus::Expired
    } else {
        coupon.status
    }
}

/// The condition under which a coupon row shows as `status` at `now` (as [`visible_status`]).
fn shown_as(status: CouponStatus, now: DateTime<Utc>) -> Condition {
    let stored = |s: CouponStatus| user_coupon::Column::Status.eq(s);
    let available = stored(CouponStatus::Available);
    match status {
        CouponStatus::Available => Condition::all()
            .add(available)
            .add(user_coupon::Column::ExpiresAt.gt(now)),
        CouponStatus::Expired => Condition::any().add(stored(CouponStatus::Expired)).add(
            Condition::all()
                .add(available)
                .add(user_coupon::Column::ExpiresAt.lte(now)),
        ),
        CouponStatus::Reserved | CouponStatus::Used => Condition::all().add(stored(status)),
    }
}
