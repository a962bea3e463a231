//! `outbox_events`: events for the external data platform, written in the transaction of the
//! change they describe and delivered by the relay.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Globally unique id sent as the idempotency key.
    #[sea_orm(unique)]
    pub event_id: String,
    /// `ORDER_COMPLETED` or `ORDER_REFUNDED`.
    pub event_type: String,
    pub aggregate_id: i64,
    /// The event as JSON.
    pub payload: String,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    /// The W3C `traceparent` of the work that wrote the event, when traces are exported: its
    /// delivery continues that trace.
    pub trace_parent: Option<String>,
}

/// Where an event is in its delivery.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum OutboxStatus {
    /// Waiting to be sent (again) at `next_attempt_at`.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SENT")]
    Sent,
    /// Given up after the last attempt; an administrator may re-queue it.
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
