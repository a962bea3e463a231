//! The event bus: domain events published after commit and received by subscriptions and
//! workers, on every instance.
//!
//! Without Redis it is a tokio broadcast channel. With Redis, events are PUBLISHed on one channel
//! (by a background publisher, so publishing never waits) and every instance, the publisher
//! included, receives them through its own SUBSCRIBE connection and re-broadcasts them locally.
//! Pub/sub loses what is sent while a subscriber is disconnected: after every reconnection the
//! bus emits [`DomainEvent::Resync`] so receivers can reload what they show. A slow receiver
//! only loses its own oldest events (it sees `Lagged`); it never slows a publisher.

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Events that subscriptions and workers listen to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DomainEvent {
    /// A product's stock changed (order, cancellation, expiry, restock); sent after commit.
    StockChanged { product_id: i64, stock: i64 },
    /// A new top-sellers ranking for `days` was computed (and stored in the shared cache).
    RankingUpdated { days: u32 },
    /// The bus may have missed events (Redis reconnected): reload what you show.
    Resync,
}

#[derive(Clone, Debug)]
pub struct EventBus {
    local: broadcast::Sender<DomainEvent>,
    /// To the Redis publisher task, when Redis is configured.
    outgoing: Option<mpsc::Sender<DomainEvent>>,
}

impl EventBus {
    /// A bus inside this process only.
    pub fn in_process(capacity: usize) -> Self {
        let (local, _) = broadcast::channel(capacity);
        Self {
            local,
            outgoing: None,
        }
    }

    /// A bus shared through Redis pub/sub on `channel`; its tasks stop with `shutdown`.
    pub fn redis(
        client: redis::Client,
        channel: String,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> Self {
        let (local, _) = broadcast::channel(capacity);
        let (outgoing, pending) = mpsc::channel(capacity);
        tokio::spawn(publish_loop(
            client.clone(),
            channel.clone(),
            pending,
            local.clone(),
        ));
        tokio::spawn(subscribe_loop(client, channel, local.clone(), shutdown));
        Self {
            local,
            outgoing: Some(outgoing),
        }
    }

    /// Publishes to every receiver on every instance; nobody listening is not an error.
    pub fn publish(&self, event: DomainEvent) {
        match &self.outgoing {
            None => {
                let _ = self.local.send(event);
            }
            Some(outgoing) => {
                if let Err(err) = outgoing.try_send(event) {
                    // the publisher is far behind or gone: deliver here at least
                    tracing::warn!("event bus: Redis publisher saturated; delivering locally only");
                    let _ = self.local.send(err.into_inner());
                }
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DomainEvent> {
        self.local.subscribe()
    }
}

async fn publish_loop(
    client: redis::Client,
    channel: String,
    mut pending: mpsc::Receiver<DomainEvent>,
    local: broadcast::Sender<DomainEvent>,
) {
    let mut conn = None;
    while let Some(event) = pending.recv().await {
        let payload = serde_json::to_string(&event).unwrap_or_default();
        if conn.is_none() {
            conn = redis::aio::ConnectionManager::new(client.clone())
                .await
                .ok();
        }
        let sent = match conn.as_mut() {
            Some(conn) => redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&payload)
                .query_async::<i64>(conn)
                .await
                .is_ok(),
            None => false,
        };
        if !sent {
            // Redis is down: this instance's subscribers still get it
            let _ = local.send(event);
        }
    }
}

async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    local: broadcast::Sender<DomainEvent>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    let mut first = true;
    loop {
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = connected => result,
        };
        match pubsub {
            Ok(mut pubsub) => {
                delay = Duration::from_millis(100);
                if !first {
                    let _ = local.send(DomainEvent::Resync);
                }
                first = false;
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let Ok(payload) = message.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<DomainEvent>(&payload) {
                        Ok(event) => {
                            let _ = local.send(event);
                        }
                        Err(err) => tracing::warn!(%err, "event bus: ignoring a malformed message"),
                    }
                }
                tracing::warn!("event bus: Redis subscription lost; reconnecting");
            }
            Err(err) => tracing::warn!(%err, "event bus: cannot subscribe to Redis; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
