//! The ranking worker: recomputes the top sellers soon after a sale commits (at once after a
//! quiet spell; under a stream of sales at most once per refresh interval, each round taking
//! every sale since the last), checks for the business day's rollover every interval, and keeps
//! this instance's copy in step with the bus.

use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::service::RankingService;
use crate::infra::bus::{DomainEvent, EventBus};

/// Runs until `shutdown` is cancelled.
pub async fn run(service: RankingService, bus: EventBus, shutdown: CancellationToken) {
    let interval = service.refresh_interval();
    let sales = service.sales_signal();
    let mut events = bus.subscribe();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_round = Instant::now() - interval;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = sales.sold() => {
                // coalesce: no sooner than one interval after the last round
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(last_round + interval) => {}
                }
            }
            event = events.recv() => {
                match event {
                    Ok(event) => service.on_event(&event).await,
                    Err(RecvError::Lagged(_)) => service.on_event(&DomainEvent::Resync).await,
                    Err(RecvError::Closed) => return,
                }
                continue;
            }
        }
        let round = Instant::now();
        if service.refresh_if_needed().await {
            last_round = round;
        }
    }
}
