//! The outbox relay: delivers PENDING outbox events to the data platform.
//!
//! - Wakes right after an order commits (a `Notify`), and polls for due retries.
//! - Claims a batch of due events under `FOR UPDATE SKIP LOCKED` (PostgreSQL, MySQL) and leases
//!   them (pushes `next_attempt_at` [`LEASE_SENDS`] send timeouts ahead) before sending, so
//!   several instances never send one event at once. The lease is renewed for the events still
//!   to send whenever less than [`lease_left_to_send`] of it is left (a whole send and half a send
//!   more to record it), so a crashed sender's events are due again within two send timeouts,
//!   however large its batch was.
//! - An event waits while an earlier event of the same order is undelivered: per order, events
//!   arrive in creation order.
//! - POSTs each event with its id as `Idempotency-Key`. 2xx: SENT. A 4xx that judges the event
//!   (400, 409, 422, ...): FAILED at once, that event only (the platform will never take it).
//!   Anything else is a failure of the platform, retried with exponential backoff and jitter
//!   (backon's policy), FAILED after the last attempt: no answer, 408, 429, 5xx
//!   ([`Fault::Unavailable`]), and 401/403/404/405 ([`Fault::Misdirected`]): answered to every
//!   event, they mean a wrong `DATA_PLATFORM_URL` or credentials, not a bad event.
//! - A circuit breaker stops calling a platform that keeps failing and probes it after a
//!   cool-down; while it is open no attempt is spent, and a failed probe spends none either, so a
//!   burst against a down or misdirected platform stays PENDING however long it lasts. When it
//!   closes, the events whose retries the outage pushed back (up to `OUTBOX_RETRY_MAX_MS`) are
//!   due again at once, so a platform that flaps gets its backlog within moments of each
//!   recovery, not minutes after. Opening and closing are logged once each (the reason, e.g. "answers 404 to every event"), never
//!   once per event; `/readyz` and `commerce_data_platform_misconfigured` tell it meanwhile.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use entity::outbox_event::{self, OutboxStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter,
    Statement,
};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::breaker::{BreakerState, CircuitBreaker, Fault};
use crate::config::Settings;
use crate::infra::db::Database;
use crate::infra::meters::OUTBOX_DELIVERIES;
use crate::infra::transact::Attempt;

/// A lease covers this many send timeouts: the next send, and the renewal after it.
const LEASE_SENDS: u32 = 2;

/// What must be left of the lease to start a send: the longest send (its timeout), and half of
/// that again to record the outcome before another relay may claim the event.
fn lease_left_to_send(timeout: Duration) -> Duration {
    timeout * 3 / 2
}

/// How the relay talks to the platform, from the settings.
#[derive(Clone, Debug)]
pub struct RelaySettings {
    pub url: String,
    pub timeout: Duration,
    pub poll: Duration,
    pub batch: u64,
    pub max_attempts: i32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub breaker_threshold: u32,
    pub breaker_cool_down: Duration,
}

impl RelaySettings {
    /// The relay's settings, when a data platform is configured.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        Some(Self {
            url: settings.outbox.data_platform_url.clone()?,
            timeout: Duration::from_millis(settings.outbox.outbox_timeout_ms),
            poll: Duration::from_millis(settings.outbox.outbox_poll_ms),
            batch: settings.outbox.outbox_batch,
            max_attempts: settings.outbox.outbox_max_attempts,
            retry_base: Duration::from_millis(settings.outbox.outbox_retry_base_ms),
            retry_max: Duration::from_millis(settings.outbox.outbox_retry_max_ms),
            breaker_threshold: settings.outbox.outbox_breaker_threshold,
            breaker_cool_down: Duration::from_millis(settings.outbox.outbox_breaker_cooldown_ms),
        })
    }
}

/// Wakes the relay (after an order with an outbox event commits).
#[derive(Clone, Debug, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// The relay's circuit breaker, shared with `outboxStats`.
pub type SharedBreaker = Arc<Mutex<CircuitBreaker>>;

/// What one delivery attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    Sent,
    /// The platform judged this event: retrying it cannot help.
    Rejected(String),
    /// The platform failed: worth another try.
    Failed(String, Fault),
}

impl Delivery {
    /// What an HTTP answer of the platform means.
    fn of_status(status: reqwest::StatusCode) -> Self {
        let error = format!("HTTP {status}");
        match status.as_u16() {
            _ if status.is_success() => Delivery::Sent,
            code @ (401 | 403 | 404 | 405) => Delivery::Failed(error, Fault::Misdirected(code)),
            408 | 429 => Delivery::Failed(error, Fault::Unavailable),
            _ if status.is_client_error() => Delivery::Rejected(error),
            _ => Delivery::Failed(error, Fault::Unavailable),
        }
    }
}

pub struct Relay {
    db: Database,
    http: reqwest::Client,
    settings: RelaySettings,
    breaker: SharedBreaker,
}

impl Relay {
    pub fn new(
        db: Database,
        settings: RelaySettings,
        breaker: SharedBreaker,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()?;
        Ok(Self {
            db,
            http,
            settings,
            breaker,
        })
    }

    /// Runs until `shutdown` is cancelled (after finishing the batch in hand).
    pub async fn run(self, signal: OutboxSignal, shutdown: CancellationToken) {
        loop {
            let more = match self.deliver_batch().await {
                Ok(more) => more,
                Err(err) => {
                    tracing::warn!(error = %err, "outbox relay: cannot read the outbox; retrying");
                    false
                }
            };
            if more {
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = signal.0.notified() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// Delivers one batch; `true` when there may be more due right away.
    async fn deliver_batch(&self) -> Result<bool, DbErr> {
        let allowance = self.breaker.lock().await.allowance();
        let limit = match allowance {
            Some(0) => return Ok(false),
            Some(probe) => probe as u64,
            None => self.settings.batch,
        };
        let probing = allowance == Some(1);
        // no later than the lease the claim takes
        let mut leased_until = Utc::now() + self.settings.timeout * LEASE_SENDS;
        let events = self.claim(limit).await?;
        let claimed = events.len() as u64;
        let mut blocked_orders = Vec::new();
        for (index, event) in events.iter().enumerate() {
            if Utc::now() + lease_left_to_send(self.settings.timeout) > leased_until {
                leased_until = self.renew(&events[index..]).await?;
            }
            if blocked_orders.contains(&event.aggregate_id) {
                self.release(event).await?;
                continue;
            }
            if self.breaker.lock().await.allowance() == Some(0) {
                self.release(event).await?;
                continue;
            }
            match self.send(event).await {
                Delivery::Sent => {
                    OUTBOX_DELIVERIES.increment("sent", 1);
                    self.platform_answered().await?;
                    self.mark_sent(event).await?;
                }
                Delivery::Rejected(error) => {
                    OUTBOX_DELIVERIES.increment("rejected", 1);
                    self.platform_answered().await?;
                    tracing::error!(event_id = %event.event_id, %error, "outbox: the data platform rejected an event; marked FAILED");
                    self.mark_failed(event, event.attempts + 1, &error).await?;
                    blocked_orders.push(event.aggregate_id);
                }
                Delivery::Failed(error, fault) => {
                    OUTBOX_DELIVERIES.increment(
                        match fault {
                            Fault::Unavailable => "failed",
                            Fault::Misdirected(_) => "misdirected",
                        },
                        1,
                    );
                    self.platform_failed(fault, &error).await;
                    if probing {
                        // the probe tested the platform, not the event
                        self.release(event).await?;
                    } else {
                        self.schedule_retry(event, &error).await?;
                    }
                    blocked_orders.push(event.aggregate_id);
                }
            }
        }
        Ok(claimed == limit && allowance.is_none())
    }

    /// Claims up to `limit` due events whose order has no earlier undelivered event, and leases
    /// them to this relay.
    async fn claim(&self, limit: u64) -> Result<Vec<outbox_event::Model>, DbErr> {
        self.db
            .transact(|txn| async move { self.claim_in(&txn, limit).await })
            .await
    }

    async fn claim_in(
        &self,
        txn: &DatabaseTransaction,
        limit: u64,
    ) -> Attempt<Vec<outbox_event::Model>, DbErr> {
        let backend = txn.get_database_backend();
        let ([pending, now, sent], lock) = match backend {
            DbBackend::Postgres => (["$1", "$2", "$3"], " FOR UPDATE SKIP LOCKED"),
            DbBackend::MySql => (["?"; 3], " FOR UPDATE SKIP LOCKED"),
            _ => (["?"; 3], ""),
        };
        let sql = format!(
            "SELECT * FROM outbox_events o WHERE o.status = {pending} AND o.next_attempt_at <= {now} \
             AND NOT EXISTS (SELECT 1 FROM outbox_events e WHERE e.aggregate_id = o.aggregate_id \
             AND e.id < o.id AND e.status <> {sent}) ORDER BY o.id LIMIT {limit}{lock}"
        );
        let events = outbox_event::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                backend,
                sql,
                [
                    OutboxStatus::Pending.into(),
                    Utc::now().into(),
                    OutboxStatus::Sent.into(),
                ],
            ))
            .all(txn)
            .await?;
        // deliver_batch renews the lease before it runs out, or another relay could claim the
        // last events mid-batch
        lease(txn, &events, self.settings.timeout).await?;
        Ok(events)
    }

    /// Leases the claimed events still to send anew; returns until when.
    async fn renew(&self, events: &[outbox_event::Model]) -> Result<chrono::DateTime<Utc>, DbErr> {
        let until = Utc::now() + self.settings.timeout * LEASE_SENDS;
        lease(self.db.conn(), events, self.settings.timeout).await?;
        Ok(until)
    }

    /// The platform answered (whatever it thought of the event): a breaker that was open closes,
    /// and the events whose retries the outage pushed back are due again at once.
    async fn platform_answered(&self) -> Result<(), DbErr> {
        if self.breaker.lock().await.on_success() {
            let resumed = self.resume_backed_off().await?;
            tracing::warn!(
                resumed,
                "outbox: the data platform answers again; deliveries resume"
            );
        }
        Ok(())
    }

    /// Makes the PENDING events waiting for a retry due now; returns how many. Events leased to
    /// a relay (due again at most a lease ahead, [`LEASE_SENDS`] send timeouts) keep their lease:
    /// only times beyond one more send timeout than that are retries.
    async fn resume_backed_off(&self) -> Result<u64, DbErr> {
        let now = Utc::now();
        let leases_end = now + self.settings.timeout * (LEASE_SENDS + 1);
        let resumed = outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::NextAttemptAt, Expr::value(now))
            .filter(outbox_event::Column::Status.eq(OutboxStatus::Pending))
            .filter(outbox_event::Column::NextAttemptAt.gt(leases_end))
            .exec(self.db.conn())
            .await?;
        Ok(resumed.rows_affected)
    }

    /// The platform failed: the breaker counts it, and says so once when it opens.
    async fn platform_failed(&self, fault: Fault, error: &str) {
        if !self.breaker.lock().await.on_failure(fault) {
            return;
        }
        let cool_down = self.settings.breaker_cool_down;
        match fault {
            Fault::Misdirected(status) => tracing::error!(
                url = %self.settings.url,
                status,
                "outbox: the data platform answers {status} to every event: DATA_PLATFORM_URL \
                 (or its credentials) looks wrong; deliveries paused, events kept PENDING, \
                 probed every {cool_down:?}"
            ),
            Fault::Unavailable => tracing::warn!(
                %error,
                "outbox: the data platform keeps failing; deliveries paused, events kept \
                 PENDING, probed every {cool_down:?}"
            ),
        }
    }

    async fn send(&self, event: &outbox_event::Model) -> Delivery {
        let span = tracing::info_span!(
            "outbox delivery",
            otel.kind = "client",
            event.id = %event.event_id,
            event.kind = %event.event_type,
        );
        if let Some(parent) = &event.trace_parent {
            crate::telemetry::continue_from(&span, parent);
        }
        let mut request = self
            .http
            .post(&self.settings.url)
            .header("content-type", "application/json")
            .header("idempotency-key", &event.event_id);
        if let Some(traceparent) = crate::telemetry::traceparent(&span) {
            request = request.header("traceparent", traceparent);
        }
        let sent = request
            .body(event.payload.clone())
            .send()
            .instrument(span)
            .await;
        match sent {
            Ok(response) => Delivery::of_status(response.status()),
            Err(err) => Delivery::Failed(format!("{err}"), Fault::Unavailable),
        }
    }

    async fn mark_sent(&self, event: &outbox_event::Model) -> Result<(), DbErr> {
        outbox_event::Entity::update_many()
            .col_expr(
                outbox_event::Column::Status,
                Expr::value(OutboxStatus::Sent),
            )
            .col_expr(
                outbox_event::Column::Attempts,
                Expr::value(event.attempts + 1),
            )
            .col_expr(outbox_event::Column::SentAt, Expr::value(Utc::now()))
            .col_expr(
                outbox_event::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .filter(outbox_event::Column::Id.eq(event.id))
            .exec(self.db.conn())
            .await?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        event: &outbox_event::Model,
        attempts: i32,
        error: &str,
    ) -> Result<(), DbErr> {
        outbox_event::Entity::update_many()
            .col_expr(
                outbox_event::Column::Status,
                Expr::value(OutboxStatus::Failed),
            )
            .col_expr(outbox_event::Column::Attempts, Expr::value(attempts))
            .col_expr(outbox_event::Column::LastError, Expr::value(error))
            .filter(outbox_event::Column::Id.eq(event.id))
            .exec(self.db.conn())
            .await?;
        Ok(())
    }

    async fn schedule_retry(&self, event: &outbox_event::Model, error: &str) -> Result<(), DbErr> {
        let attempts = event.attempts + 1;
        if attempts >= self.settings.max_attempts {
            tracing::error!(event_id = %event.event_id, %error, attempts, "outbox: giving up on an event; marked FAILED");
            return self.mark_failed(event, attempts, error).await;
        }
        let delay = ExponentialBuilder::default()
            .with_min_delay(self.settings.retry_base)
            .with_max_delay(self.settings.retry_max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempts as usize - 1)
            .unwrap_or(self.settings.retry_max);
        outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::Attempts, Expr::value(attempts))
            .col_expr(
                outbox_event::Column::NextAttemptAt,
                Expr::value(Utc::now() + delay),
            )
            .col_expr(outbox_event::Column::LastError, Expr::value(error))
            .filter(outbox_event::Column::Id.eq(event.id))
            .exec(self.db.conn())
            .await?;
        Ok(())
    }

    /// Hands a claimed but unsent event back (due now), spending no attempt.
    async fn release(&self, event: &outbox_event::Model) -> Result<(), DbErr> {
        outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::NextAttemptAt, Expr::value(Utc::now()))
            .filter(outbox_event::Column::Id.eq(event.id))
            .exec(self.db.conn())
            .await?;
        Ok(())
    }
}

/// Pushes the PENDING `events`' `next_attempt_at` [`LEASE_SENDS`] send timeouts ahead, so no
/// other relay claims them meanwhile.
async fn lease(
    conn: &impl ConnectionTrait,
    events: &[outbox_event::Model],
    timeout: Duration,
) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    outbox_event::Entity::update_many()
        .col_expr(
            outbox_event::Column::NextAttemptAt,
            Expr::value(Utc::now() + timeout * LEASE_SENDS),
        )
        .filter(outbox_event::Column::Id.is_in(events.iter().map(|e| e.id)))
        .filter(outbox_event::Column::Status.eq(OutboxStatus::Pending))
        .exec(conn)
        .await?;
    Ok(())
}

/// The breaker's state and, when not closed, the fault that opened it, for `outboxStats`.
pub async fn breaker_state(breaker: &SharedBreaker) -> (BreakerState, Option<Fault>) {
    let breaker = breaker.lock().await;
    (breaker.state(), breaker.fault())
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    #[test]
    fn answers_that_judge_the_event_reject_it_and_the_rest_are_the_platforms_fault() {
        let of = |code: u16| Delivery::of_status(StatusCode::from_u16(code).unwrap());
        assert_eq!(of(200), Delivery::Sent);
        assert_eq!(of(202), Delivery::Sent);
        for code in [400, 409, 413, 422] {
            assert!(matches!(of(code), Delivery::Rejected(_)), "{code}");
        }
        for code in [401, 403, 404, 405] {
            assert!(
                matches!(of(code), Delivery::Failed(_, Fault::Misdirected(c)) if c == code),
                "{code}"
            );
        }
        for code in [408, 429, 500, 502, 503] {
            assert!(
                matches!(of(code), Delivery::Failed(_, Fault::Unavailable)),
                "{code}"
            );
        }
    }
}
