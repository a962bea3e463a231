//! The event bus: domain events published after commit and received by subscriptions and
//! workers, on every instance.
//!
//! Without Redis it is a tokio broadcast channel. With Redis, events are PUBLISHed on one channel
//! and every instance, the publisher included, receives them through its own SUBSCRIBE connection
//! and re-broadcasts them locally. Publishing never waits and never drops: an event is put into a
//! pending set where a newer event of the same subject replaces an older one (the latest stock
//! per product, the latest ranking per period), and one publisher task sends everything pending
//! in one pipeline, again and again. While a pipeline is in flight new events collect, so under
//! load each product's change goes out once per round trip, and the pending set never holds more
//! than one event per product. If Redis fails, what was pending is delivered here and kept for
//! Redis, newer values still replacing older ones, until it answers again.
//!
//! Pub/sub loses what is sent while a subscriber is disconnected: after every reconnection the
//! bus emits [`DomainEvent::Resync`] so receivers can reload what they show. A slow receiver
//! only loses its own oldest events (it sees `Lagged`); it never slows a publisher.
//!
//! On a Redis Cluster a plain PUBLISH reaches the subscribers of every node, so each instance
//! subscribes on one seed node; when that node is lost it subscribes on the next seed node (round
//! robin) and emits the same [`DomainEvent::Resync`]. Publishing goes through the cluster
//! connection, which follows the cluster's changes by itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::infra::meters;
use crate::infra::redis::{RedisConnection, RedisServers};

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

impl DomainEvent {
    /// What the event is about: of two pending events with one subject, only the newer is sent.
    fn subject(&self) -> Subject {
        match self {
            Self::StockChanged { product_id, .. } => Subject::Stock(*product_id),
            Self::RankingUpdated { days } => Subject::Ranking(*days),
            Self::Resync => Subject::Resync,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Subject {
    Stock(i64),
    Ranking(u32),
    Resync,
}

/// Events waiting for the Redis publisher, at most one per subject.
#[derive(Debug, Default)]
struct Pending {
    events: Mutex<BTreeMap<Subject, DomainEvent>>,
    ready: Notify,
}

impl Pending {
    fn put(&self, event: DomainEvent) {
        let replaced = lock(&self.events).insert(event.subject(), event);
        if replaced.is_some() {
            metrics::counter!(meters::EVENTS_COALESCED).increment(1);
        }
        self.ready.notify_one();
    }

    fn take(&self) -> BTreeMap<Subject, DomainEvent> {
        std::mem::take(&mut *lock(&self.events))
    }

    /// Puts back what could not be sent, unless something newer arrived meanwhile.
    fn put_back(&self, unsent: BTreeMap<Subject, DomainEvent>) {
        let mut events = lock(&self.events);
        for (subject, event) in unsent {
            events.entry(subject).or_insert(event);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone, Debug)]
pub struct EventBus {
    local: broadcast::Sender<DomainEvent>,
    /// For the Redis publisher task, when Redis is configured.
    outgoing: Option<Arc<Pending>>,
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
        servers: RedisServers,
        channel: String,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> Self {
        let (local, _) = broadcast::channel(capacity);
        let outgoing = Arc::new(Pending::default());
        tokio::spawn(subscribe_loop(
            servers.subscription_nodes().to_vec(),
            channel.clone(),
            local.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(publish_loop(
            servers,
            channel,
            outgoing.clone(),
            local.clone(),
            shutdown,
        ));
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
            Some(outgoing) => outgoing.put(event),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DomainEvent> {
        self.local.subscribe()
    }
}

/// Sends what is pending, one pipeline at a time, until shutdown (then once more).
async fn publish_loop(
    servers: RedisServers,
    channel: String,
    pending: Arc<Pending>,
    local: broadcast::Sender<DomainEvent>,
    shutdown: CancellationToken,
) {
    let mut conn = None;
    let mut delay = RETRY_FIRST;
    let mut failures_logged = Throttle::new(LOG_INTERVAL);
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = pending.ready.notified() => false,
        };
        let batch = pending.take();
        if !batch.is_empty() {
            let sent = match publish_all(&servers, &mut conn, &channel, &batch).await {
                Ok(()) => {
                    metrics::counter!(meters::EVENTS_PUBLISHED).increment(batch.len() as u64);
                    delay = RETRY_FIRST;
                    true
                }
                Err(err) => {
                    conn = None;
                    metrics::counter!(meters::EVENT_BUS_REDIS_FAILURES).increment(1);
                    if failures_logged.ready() {
                        tracing::warn!(%err, "event bus: cannot publish to Redis; delivering here and retrying");
                    }
                    false
                }
            };
            if !sent {
                // this instance's receivers get it now; the others once Redis answers
                for event in batch.values() {
                    let _ = local.send(event.clone());
                }
                pending.put_back(batch);
                pending.ready.notify_one();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(RETRY_LAST);
            }
        }
        if stopping {
            return;
        }
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);
/// At most one warning per this interval for a failure that repeats.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

async fn publish_all(
    servers: &RedisServers,
    conn: &mut Option<RedisConnection>,
    channel: &str,
    batch: &BTreeMap<Subject, DomainEvent>,
) -> Result<(), redis::RedisError> {
    let conn = match conn {
        Some(conn) => conn,
        // no response timeout: a slow Redis makes events collect (and coalesce) here, while a
        // PUBLISH given up on by the client could still run later, after a newer one
        None => conn.insert(servers.connect(None).await?),
    };
    let mut pipeline = redis::pipe();
    for event in batch.values() {
        let payload = serde_json::to_string(event).expect("events serialize");
        pipeline.cmd("PUBLISH").arg(channel).arg(payload).ignore();
    }
    pipeline.query_async::<()>(conn).await
}

/// Says yes at most once per interval: for warnings about a condition that persists.
struct Throttle {
    interval: Duration,
    last: Option<Instant>,
}

impl Throttle {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    fn ready(&mut self) -> bool {
        let now = Instant::now();
        let ready = self
            .last
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        if ready {
            self.last = Some(now);
        }
        ready
    }
}

/// Subscribes on `nodes[0]`, and on the next node (round robin) whenever the subscription is
/// lost or cannot be made.
async fn subscribe_loop(
    nodes: Vec<redis::Client>,
    channel: String,
    local: broadcast::Sender<DomainEvent>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    let mut first = true;
    for node in nodes.iter().cycle() {
        let connected = async {
            let mut pubsub = node.get_async_pubsub().await?;
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
                tracing::warn!(node = %node.get_connection_info().addr(), "event bus: Redis subscription lost; reconnecting");
            }
            Err(err) => {
                tracing::warn!(%err, node = %node.get_connection_info().addr(), "event bus: cannot subscribe to Redis; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
