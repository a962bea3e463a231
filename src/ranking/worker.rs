//! The ranking worker: recomputes the top sellers every refresh interval when sales happened (or
//! the business day changed), and keeps this instance's copy in step with the bus.

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::service::RankingService;
use crate::infra::bus::{DomainEvent, EventBus};

/// Runs until `shutdown` is cancelled.
pub async fn run(service: RankingService, bus: EventBus, shutdown: CancellationToken) {
    let mut events = bus.subscribe();
    let mut tick = tokio::time::interval(service.refresh_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => service.refresh_if_needed().await,
            event = events.recv() => match event {
                Ok(event) => service.on_event(&event).await,
                Err(RecvError::Lagged(_)) => service.on_event(&DomainEvent::Resync).await,
                Err(RecvError::Closed) => return,
            },
        }
    }
}
