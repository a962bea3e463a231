//! Coupon issuance, many requests per transaction: the requests the gate let through are applied
//! by a [`BatchWriter`] (group commit, see [`crate::infra::batching`]). A batch locks its events'
//! rows (ascending id), reads which of its users already hold their coupon, decides each request
//! in arrival order (not found, not active, already issued, exhausted, or issued), then writes the
//! coupons with multi-row inserts and each event's count with one increment.
//!
//! Every issuance of an event, batched or not and from any instance, locks the event's row first,
//! so what a batch reads under that lock stays true until it commits.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, Utc};
use entity::coupon_event;
use entity::user_coupon::{self, CouponStatus};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter,
};

use super::model::{CouponError, DEFAULT_VALID_DAYS};
use crate::error::CommonError;
use crate::infra::batching::{Applied, Batch, BatchSettings, BatchWriter};
use crate::infra::db::{AttemptError, Database, is_foreign_key_violation, is_unique_violation};
use crate::infra::locking::lock_ascending;

/// How the coupon writer batches: lanes by the machine, each event's requests in one lane (every
/// issuance of an event waits for its row lock anyway), large batches (a storm's winners share
/// one transaction), no lingering, no shedding (a storm's requests wait their turn), and the
/// requests' priority (a storm's few winners wait for no one).
fn settings() -> BatchSettings {
    BatchSettings {
        writers: BatchSettings::lanes_for(BatchSettings::machine_cores()),
        max: 500,
        linger: std::time::Duration::ZERO,
        max_wait: None,
        nice: 0,
    }
}

/// Coupon rows per INSERT statement (7 values each).
const ROWS_PER_INSERT: usize = 1_000;

/// One request for a coupon.
#[derive(Copy, Clone, Debug)]
pub struct Request {
    pub user_id: i64,
    pub event_id: i64,
}

/// An issued coupon with its event (as of the issuing commit), or why not.
pub type Outcome = Result<(user_coupon::Model, coupon_event::Model), CouponError>;

struct IssueBatch;

impl Batch for IssueBatch {
    type Command = Request;
    type Outcome = Outcome;
    type Aftermath = ();
    const NAME: &'static str = "coupons";

    fn route(request: &Request) -> i64 {
        request.event_id
    }

    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        requests: &[Request],
    ) -> Result<Applied<Outcome, ()>, AttemptError> {
        let (outcomes, locking) = issue(txn, requests, Utc::now()).await?;
        Ok(Applied {
            outcomes,
            aftermath: (),
            locking,
        })
    }

    fn committed(&self, _: ()) {}

    fn unconfirmed(&self) -> Outcome {
        Err(CouponError::Common(CommonError::Unconfirmed))
    }

    fn overloaded(&self) -> Outcome {
        Err(CouponError::Common(CommonError::Overloaded))
    }

    fn failed(&self, request: &Request, err: DbErr) -> Outcome {
        // alone, a request breaks a constraint by itself: its user is gone, or an issuance that
        // skipped the event's lock gave the user the coupon first
        Err(if is_foreign_key_violation(&err) {
            CouponError::Common(CommonError::UnknownUser)
        } else if is_unique_violation(&err) {
            CouponError::AlreadyIssued(request.event_id)
        } else {
            CouponError::from(err)
        })
    }
}

/// The handle issuance requests are submitted to.
#[derive(Clone)]
pub struct IssueWriter(BatchWriter<IssueBatch>);

impl IssueWriter {
    pub fn start(db: Database) -> std::io::Result<Self> {
        BatchWriter::start(db, settings(), IssueBatch).map(Self)
    }

    /// Issues the coupon (with whatever else is waiting); the outcome once committed.
    pub async fn issue(&self, request: Request) -> Outcome {
        self.0.submit(request).await.unwrap_or_else(|| {
            Err(CouponError::from(DbErr::Custom(
                "the coupon writer has stopped".into(),
            )))
        })
    }
}

/// Applies a batch of requests inside `conn`'s transaction: one outcome per request, in order,
/// and how long locking the events took.
async fn issue(
    conn: &impl ConnectionTrait,
    requests: &[Request],
    now: DateTime<Utc>,
) -> Result<(Vec<Outcome>, Duration), DbErr> {
    let locking_started = Instant::now();
    let events: HashMap<i64, coupon_event::Model> = lock_ascending::<coupon_event::Entity>(
        conn,
        coupon_event::Column::Id,
        requests.iter().map(|r| r.event_id),
    )
    .await?
    .into_iter()
    .map(|event| (event.id, event))
    .collect();
    let locking = locking_started.elapsed();
    let mut held = holders(conn, requests, &events).await?;

    let mut left: HashMap<i64, i64> = events
        .values()
        .map(|e| (e.id, e.total_quantity - e.issued_quantity))
        .collect();
    let mut decisions: Vec<Result<(), CouponError>> = Vec::with_capacity(requests.len());
    let mut issued: Vec<user_coupon::ActiveModel> = vec![];
    for request in requests {
        let decision = match events.get(&request.event_id) {
            None => Err(CouponError::EventNotFound(request.event_id)),
            Some(event) => open(event, now).and_then(|()| {
                if held.contains(&(request.event_id, request.user_id)) {
                    return Err(CouponError::AlreadyIssued(request.event_id));
                }
                let left = left.entry(request.event_id).or_default();
                if *left <= 0 {
                    return Err(CouponError::Exhausted {
                        event_id: request.event_id,
                    });
                }
                *left -= 1;
                held.insert((request.event_id, request.user_id));
                issued.push(new_coupon(event, request.user_id, now));
                Ok(())
            }),
        };
        decisions.push(decision);
    }
    let mut counted_events = events;
    let mut coupons = HashMap::new();
    if !issued.is_empty() {
        for chunk in issued.chunks(ROWS_PER_INSERT) {
            user_coupon::Entity::insert_many(chunk.iter().cloned())
                .exec_without_returning(conn)
                .await?;
        }
        count(conn, &mut counted_events, &left).await?;
        coupons = issued_coupons(conn, requests, &decisions).await?;
    }
    let mut outcomes = Vec::with_capacity(requests.len());
    for (decision, request) in decisions.into_iter().zip(requests) {
        outcomes.push(match decision {
            Err(refusal) => Err(refusal),
            Ok(()) => {
                let key = (request.event_id, request.user_id);
                let coupon = coupons
                    .remove(&key)
                    .ok_or_else(|| DbErr::RecordNotFound(format!("coupon {key:?}")))?;
                Ok((coupon, counted_events[&request.event_id].clone()))
            }
        });
    }
    Ok((outcomes, locking))
}

/// Adds each event's coupons issued by the batch to its count (`left`: what the batch left).
async fn count(
    conn: &impl ConnectionTrait,
    events: &mut HashMap<i64, coupon_event::Model>,
    left: &HashMap<i64, i64>,
) -> Result<(), DbErr> {
    let mut counts: Vec<(i64, i64)> = events
        .values()
        .map(|e| (e.id, e.total_quantity - e.issued_quantity - left[&e.id]))
        .filter(|(_, count)| *count > 0)
        .collect();
    counts.sort_unstable();
    for (event_id, count) in counts {
        let counted = coupon_event::Entity::update_many()
            .col_expr(
                coupon_event::Column::IssuedQuantity,
                Expr::col(coupon_event::Column::IssuedQuantity).add(count),
            )
            .filter(coupon_event::Column::Id.eq(event_id))
            .filter(
                Expr::col(coupon_event::Column::IssuedQuantity)
                    .add(count)
                    .lte(Expr::col(coupon_event::Column::TotalQuantity)),
            )
            .exec(conn)
            .await?;
        if counted.rows_affected != 1 {
            // the row is locked: only an issuance that skipped the lock could do this
            return Err(DbErr::Custom(format!(
                "coupon event {event_id} changed under its lock"
            )));
        }
        if let Some(event) = events.get_mut(&event_id) {
            event.issued_quantity += count;
        }
    }
    Ok(())
}

/// Whether the event takes requests now.
fn open(event: &coupon_event::Model, now: DateTime<Utc>) -> Result<(), CouponError> {
    if event.starts_at > now {
        return Err(CouponError::NotActive {
            event_id: event.id,
            reason: "it has not started yet",
        });
    }
    if event.ends_at.is_some_and(|end| end <= now) {
        return Err(CouponError::NotActive {
            event_id: event.id,
            reason: "it has ended",
        });
    }
    Ok(())
}

fn new_coupon(
    event: &coupon_event::Model,
    user_id: i64,
    now: DateTime<Utc>,
) -> user_coupon::ActiveModel {
    let expires_at = match (event.valid_until, event.valid_days) {
        (Some(until), _) => until,
        (None, days) => now
            .checked_add_days(Days::new(days.unwrap_or(DEFAULT_VALID_DAYS) as u64))
            .unwrap_or(now),
    };
    user_coupon::ActiveModel {
        event_id: Set(event.id),
        user_id: Set(user_id),
        status: Set(CouponStatus::Available),
        issued_at: Set(now),
        expires_at: Set(expires_at),
        order_id: Set(None),
        used_at: Set(None),
        ..Default::default()
    }
}

/// Which (event, user) pairs of the batch already hold their coupon (read under the events' locks).
async fn holders(
    conn: &impl ConnectionTrait,
    requests: &[Request],
    events: &HashMap<i64, coupon_event::Model>,
) -> Result<HashSet<(i64, i64)>, DbErr> {
    let wanted: HashSet<(i64, i64)> = requests
        .iter()
        .filter(|r| events.contains_key(&r.event_id))
        .map(|r| (r.event_id, r.user_id))
        .collect();
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    let found = pairs_of(conn, wanted.iter().copied()).await?;
    Ok(found
        .into_iter()
        .map(|c| (c.event_id, c.user_id))
        .filter(|pair| wanted.contains(pair))
        .collect())
}

/// The coupons the batch just inserted, by (event, user).
async fn issued_coupons(
    conn: &impl ConnectionTrait,
    requests: &[Request],
    decisions: &[Result<(), CouponError>],
) -> Result<HashMap<(i64, i64), user_coupon::Model>, DbErr> {
    let issued: HashSet<(i64, i64)> = requests
        .iter()
        .zip(decisions)
        .filter(|(_, decision)| decision.is_ok())
        .map(|(r, _)| (r.event_id, r.user_id))
        .collect();
    Ok(pairs_of(conn, issued.iter().copied())
        .await?
        .into_iter()
        .filter(|c| issued.contains(&(c.event_id, c.user_id)))
        .map(|c| ((c.event_id, c.user_id), c))
        .collect())
}

/// The coupons of the given events held by the given users (a superset of the pairs: the caller
/// filters).
async fn pairs_of(
    conn: &impl ConnectionTrait,
    pairs: impl Iterator<Item = (i64, i64)>,
) -> Result<Vec<user_coupon::Model>, DbErr> {
    let (mut event_ids, mut user_ids): (Vec<i64>, Vec<i64>) = pairs.unzip();
    event_ids.sort_unstable();
    event_ids.dedup();
    user_ids.sort_unstable();
    user_ids.dedup();
    user_coupon::Entity::find()
        .filter(user_coupon::Column::EventId.is_in(event_ids))
        .filter(user_coupon::Column::UserId.is_in(user_ids))
        .all(conn)
        .await
}
