//! The transactional outbox: events for the external data platform are written in the same
//! transaction as the change they describe, so none is lost and none describes a rolled-back
//! change. The [`relay`] delivers them; [`service`] reports on them and re-queues failed ones.

use chrono::Utc;
use entity::outbox_event;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set};
use serde_json::Value;

pub mod breaker;
pub mod graphql;
pub mod relay;
pub mod service;

pub const ORDER_COMPLETED: &str = "ORDER_COMPLETED";
pub const ORDER_REFUNDED: &str = "ORDER_REFUNDED";

/// Event statuses as stored.
pub mod status {
    pub const PENDING: &str = "PENDING";
    pub const SENT: &str = "SENT";
    pub const FAILED: &str = "FAILED";
}

/// Writes one PENDING event; `payload` gets the event's id, type and time added.
pub async fn enqueue(
    conn: &impl ConnectionTrait,
    event_type: &str,
    aggregate_id: i64,
    mut payload: Value,
) -> Result<(), DbErr> {
    let event_id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    if let Value::Object(map) = &mut payload {
        map.insert("eventId".into(), Value::from(event_id.clone()));
        map.insert("eventType".into(), Value::from(event_type));
        map.insert("occurredAt".into(), Value::from(now.to_rfc3339()));
    }
    outbox_event::Entity::insert(outbox_event::ActiveModel {
        event_id: Set(event_id),
        event_type: Set(event_type.to_owned()),
        aggregate_id: Set(aggregate_id),
        payload: Set(payload.to_string()),
        status: Set(status::PENDING.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}
