//! The transactional outbox: events for the external data platform are written in the same
//! transaction as the change they describe, so none is lost and none describes a rolled-back
//! change. The [`relay`] delivers them; [`service`] reports on them and re-queues failed ones.

use chrono::Utc;
use entity::outbox_event::{self, OutboxStatus};
use sea_orm::{EntityTrait, QueryTrait, Set};
use serde_json::Value;

use crate::infra::writes::Writes;

pub mod breaker;
pub mod graphql;
pub mod relay;
pub mod retention;
pub mod service;

pub const ORDER_COMPLETED: &str = "ORDER_COMPLETED";
pub const ORDER_REFUNDED: &str = "ORDER_REFUNDED";

/// An event to write with the change it describes.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub aggregate_id: i64,
    pub payload: Value,
    /// The trace its delivery continues (W3C `traceparent`); `None`: the writer's current span.
    pub trace_parent: Option<String>,
}

/// Adds to `writes` one PENDING event; `payload` gets the event's id, type and time added.
pub fn enqueue(writes: &mut Writes, event_type: &'static str, aggregate_id: i64, payload: Value) {
    enqueue_many(
        writes,
        vec![NewEvent {
            event_type,
            aggregate_id,
            payload,
            trace_parent: None,
        }],
    );
}

/// Adds to `writes` PENDING events, one statement for all; each payload gets its event's id,
/// type and time.
pub fn enqueue_many(writes: &mut Writes, events: Vec<NewEvent>) {
    if events.is_empty() {
        return;
    }
    let now = Utc::now();
    let current = crate::telemetry::traceparent(&tracing::Span::current());
    let rows = events.into_iter().map(|event| {
        let event_id = uuid::Uuid::new_v4().to_string();
        let mut payload = event.payload;
        if let Value::Object(map) = &mut payload {
            map.insert("eventId".into(), Value::from(event_id.clone()));
            map.insert("eventType".into(), Value::from(event.event_type));
            map.insert("occurredAt".into(), Value::from(now.to_rfc3339()));
        }
        outbox_event::ActiveModel {
            event_id: Set(event_id),
            event_type: Set(event.event_type.to_owned()),
            aggregate_id: Set(event.aggregate_id),
            payload: Set(payload.to_string()),
            status: Set(OutboxStatus::Pending),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            created_at: Set(now),
            sent_at: Set(None),
            trace_parent: Set(event.trace_parent.or_else(|| current.clone())),
            ..Default::default()
        }
    });
    writes.insert(outbox_event::Entity::insert_many(rows).into_query());
}
