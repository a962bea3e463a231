//! Public subscriptions multiplexed over WebSocket connections: every listener of one document
//! with the same variables (whose one root field is a public feed, [`crate::schema::shared_feed`])
//! is served by one execution. Each message is executed and serialized once, and the same bytes
//! go to every listener; a listener's own work is one frame write.
//!
//! A feed starts with its first listener and stops (its execution aborted) when its last one
//! leaves. A listener that joins a running feed first gets the feed's latest snapshot when the
//! feed begins with one ([`Catchup::LatestSnapshot`]: the snapshot and the subscription to what
//! follows are taken under one lock, so it misses no change and sees none twice), else only what
//! comes after it.
//!
//! Slow listeners never slow the others: the feed publishes into a bounded ring
//! ([`LISTENER_BACKLOG`] messages) that each listener reads at its own pace. One that falls
//! further behind skips what it missed: to the latest snapshot (its next message is the
//! ranking now, with no changes, as on subscribe), or, for a feed of changes only, to the oldest
//! change still kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_graphql::Request;
use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::AbortHandle;

use super::HttpState;
use crate::auth::Viewer;
use crate::graphql::feeds::{Catchup, SharedExecution};
use crate::graphql::{complete_error_codes, failed_before_execution};
use crate::infra::meters::{SHARED_FEEDS, SOCKET_EXECUTIONS};

/// Messages a listener may fall behind its feed before it skips.
pub const LISTENER_BACKLOG: usize = 64;

/// One message of a feed, serialized once for all its listeners.
#[derive(Clone, Debug)]
pub enum FeedMessage {
    /// A `next` message's payload (a GraphQL response).
    Next(Arc<str>),
    /// An `error` message's payload (the errors of a request that failed before execution);
    /// the feed ends.
    Error(Arc<str>),
    /// The execution ended.
    Complete,
}

/// What makes two subscriptions the same feed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FeedKey {
    query: String,
    operation_name: Option<String>,
    variables: String,
}

/// The running feeds, by document and variables.
#[derive(Clone, Default)]
pub struct Feeds {
    running: Arc<Mutex<HashMap<FeedKey, Weak<Feed>>>>,
    started: Arc<AtomicU64>,
}

/// How many shared executions this server started and how many run now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FeedCounts {
    pub started: u64,
    pub running: usize,
}

/// The part of a feed that its execution writes to.
pub struct Channel {
    catchup: Catchup,
    messages: broadcast::Sender<FeedMessage>,
    /// The latest snapshot (a `next` payload) and whether the execution has ended.
    state: Mutex<(Option<Arc<str>>, bool)>,
}

/// A running feed; its listeners hold it, and the last one to go stops it.
pub struct Feed {
    key: FeedKey,
    channel: Arc<Channel>,
    execution: AbortHandle,
    feeds: Feeds,
}

/// One listener of a feed: what it sends first, then what it reads.
pub struct Listener {
    feed: Arc<Feed>,
    first: Option<Arc<str>>,
    messages: broadcast::Receiver<FeedMessage>,
}

/// The feed `request` may join, when it is a subscription whose one root field (no directive
/// on it) is a public feed.
pub fn shareable(request: &mut Request) -> Option<(FeedKey, Catchup)> {
    let operation_name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    let operation = match (&document.operations, operation_name.as_deref()) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name)?,
        (DocumentOperations::Multiple(_), None) => return None,
    };
    let operation = &operation.node;
    if operation.ty != OperationType::Subscription {
        return None;
    }
    let [item] = operation.selection_set.node.items.as_slice() else {
        return None;
    };
    let Selection::Field(field) = &item.node else {
        return None;
    };
    if !field.node.directives.is_empty() {
        return None;
    }
    let catchup = crate::schema::shared_feed(field.node.name.node.as_str())?;
    let key = FeedKey {
        query: request.query.clone(),
        operation_name,
        variables: serde_json::to_string(&request.variables).ok()?,
    };
    Some((key, catchup))
}

impl Feeds {
    pub fn counts(&self) -> FeedCounts {
        FeedCounts {
            started: self.started.load(Ordering::Relaxed),
            running: self.running.lock().expect("feeds").len(),
        }
    }

    /// Joins the feed of `key`, or starts it: `start` spawns its execution, which publishes
    /// into the channel it is given (see [`execute_shared`]).
    pub fn listen(
        &self,
        key: FeedKey,
        catchup: Catchup,
        start: impl FnOnce(Arc<Channel>) -> AbortHandle,
    ) -> Listener {
        let mut running = self.running.lock().expect("feeds");
        // upgraded outside the match so that a feed whose last listener is this one's own
        // stale handle is dropped after the lock is released (its drop takes the lock)
        let existing = running.get(&key).and_then(Weak::upgrade);
        if let Some(feed) = &existing
            && let Some(listener) = feed.join()
        {
            return listener;
        }
        let channel = Arc::new(Channel {
            catchup,
            messages: broadcast::channel(LISTENER_BACKLOG).0,
            state: Mutex::new((None, false)),
        });
        let messages = channel.messages.subscribe();
        let execution = start(channel.clone());
        self.started.fetch_add(1, Ordering::Relaxed);
        let feed = Arc::new(Feed {
            key: key.clone(),
            channel,
            execution,
            feeds: self.clone(),
        });
        running.insert(key, Arc::downgrade(&feed));
        metrics::gauge!(SHARED_FEEDS).increment(1.0);
        drop(running);
        drop(existing);
        Listener {
            feed,
            first: None,
            messages,
        }
    }
}

impl Feed {
    /// A new listener, unless the execution has ended.
    fn join(self: &Arc<Self>) -> Option<Listener> {
        let (first, messages) = self.channel.catch_up()?;
        Some(Listener {
            feed: self.clone(),
            first,
            messages,
        })
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.execution.abort();
        metrics::gauge!(SHARED_FEEDS).decrement(1.0);
        let mut running = self.feeds.running.lock().expect("feeds");
        if running
            .get(&self.key)
            .is_some_and(|feed| feed.strong_count() == 0)
        {
            running.remove(&self.key);
        }
    }
}

impl Channel {
    /// The latest snapshot (if the feed catches up with one) and a receiver of what follows it,
    /// taken together; `None` once the execution has ended.
    fn catch_up(&self) -> Option<(Option<Arc<str>>, broadcast::Receiver<FeedMessage>)> {
        let state = self.state.lock().expect("feed state");
        let (snapshot, ended) = &*state;
        if *ended {
            return None;
        }
        let first = match self.catchup {
            Catchup::LatestSnapshot => snapshot.clone(),
            Catchup::Nothing => None,
        };
        Some((first, self.messages.subscribe()))
    }

    /// Publishes the `index`th item of the execution (serialized).
    fn publish(&self, index: usize, payload: Arc<str>) {
        let mut state = self.state.lock().expect("feed state");
        let snapshot = self.catchup == Catchup::LatestSnapshot && index.is_multiple_of(2);
        if snapshot {
            state.0 = Some(payload.clone());
        }
        // the first snapshot goes to the listeners already there; later ones only to joiners
        if !snapshot || index == 0 {
            let _ = self.messages.send(FeedMessage::Next(payload));
        }
    }

    fn end(&self, last: FeedMessage) {
        let mut state = self.state.lock().expect("feed state");
        state.1 = true;
        let _ = self.messages.send(last);
    }
}

impl Listener {
    /// The next message for this listener; `None` when the feed is gone. A listener that fell
    /// behind skips to the latest snapshot, or (a feed of changes only) to the oldest change
    /// still kept.
    pub async fn next(&mut self) -> Option<FeedMessage> {
        if let Some(first) = self.first.take() {
            return Some(FeedMessage::Next(first));
        }
        loop {
            match self.messages.recv().await {
                Ok(message) => return Some(message),
                Err(RecvError::Closed) => return None,
                Err(RecvError::Lagged(_)) if self.feed.channel.catchup == Catchup::Nothing => {}
                Err(RecvError::Lagged(_)) => {
                    let (first, messages) = self.feed.channel.catch_up()?;
                    self.messages = messages;
                    if let Some(first) = first {
                        return Some(FeedMessage::Next(first));
                    }
                }
            }
        }
    }
}

/// The execution of a feed: runs `request` for no viewer in particular (a feed reads nothing of
/// the viewer) and publishes each response, serialized once.
pub async fn execute_shared(state: Arc<HttpState>, request: Request, channel: Arc<Channel>) {
    SOCKET_EXECUTIONS.increment("shared", 1);
    let request = request.data(Viewer::ANONYMOUS).data(SharedExecution);
    let mut stream = state.schema.execute_stream(request);
    let mut index = 0;
    while let Some(mut response) = stream.next().await {
        complete_error_codes(&mut response);
        if index == 0 && failed_before_execution(&response) {
            let errors = serde_json::to_string(&response.errors).unwrap_or_default();
            channel.end(FeedMessage::Error(errors.into()));
            return;
        }
        let payload = serde_json::to_string(&response).unwrap_or_default();
        channel.publish(index, payload.into());
        index += 1;
    }
    channel.end(FeedMessage::Complete);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;

    fn key(variables: &str) -> FeedKey {
        FeedKey {
            query: "subscription { rankingChanged { changes { movement } } }".into(),
            operation_name: None,
            variables: variables.into(),
        }
    }

    /// A feed whose execution publishes what the test sends it, as a shared execution would.
    fn feed(feeds: &Feeds, catchup: Catchup) -> (Listener, mpsc::UnboundedSender<Arc<str>>) {
        let (items, mut publish) = mpsc::unbounded_channel::<Arc<str>>();
        let listener = feeds.listen(key("{}"), catchup, |channel| {
            tokio::spawn(async move {
                let mut index = 0;
                while let Some(item) = publish.recv().await {
                    channel.publish(index, item);
                    index += 1;
                }
                channel.end(FeedMessage::Complete);
            })
            .abort_handle()
        });
        (listener, items)
    }

    async fn next_text(listener: &mut Listener) -> String {
        match tokio::time::timeout(Duration::from_secs(5), listener.next()).await {
            Ok(Some(FeedMessage::Next(text))) => text.to_string(),
            other => panic!("expected a next message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_joining_listener_gets_the_latest_snapshot_then_what_follows() {
        let feeds = Feeds::default();
        let (mut first, items) = feed(&feeds, Catchup::LatestSnapshot);
        for item in ["snapshot 0", "change 1", "snapshot 1"] {
            items.send(item.into()).unwrap();
        }
        assert_eq!(next_text(&mut first).await, "snapshot 0");
        assert_eq!(next_text(&mut first).await, "change 1");
        let mut joined = feeds.listen(key("{}"), Catchup::LatestSnapshot, |_| {
            panic!("a running feed is joined, not started again")
        });
        assert_eq!(next_text(&mut joined).await, "snapshot 1");
        items.send("change 2".into()).unwrap();
        items.send("snapshot 2".into()).unwrap();
        assert_eq!(next_text(&mut first).await, "change 2");
        assert_eq!(next_text(&mut joined).await, "change 2");
        assert_eq!(
            feeds.counts(),
            FeedCounts {
                started: 1,
                running: 1
            }
        );
    }

    #[tokio::test]
    async fn a_stalled_listener_delays_no_one_and_skips_to_the_latest_snapshot() {
        let feeds = Feeds::default();
        let (mut reading, items) = feed(&feeds, Catchup::LatestSnapshot);
        let mut stalled = feeds.listen(key("{}"), Catchup::LatestSnapshot, |_| unreachable!());
        items.send("snapshot 0".into()).unwrap();
        assert_eq!(next_text(&mut reading).await, "snapshot 0");
        // far more changes than a listener may fall behind: the reading one gets every one
        let changes = LISTENER_BACKLOG * 4;
        for n in 1..=changes {
            items.send(format!("change {n}").into()).unwrap();
            items.send(format!("snapshot {n}").into()).unwrap();
            assert_eq!(next_text(&mut reading).await, format!("change {n}"));
        }
        // the stalled one, reading at last, starts from the ranking now and misses nothing after
        assert_eq!(next_text(&mut stalled).await, format!("snapshot {changes}"));
        items.send("change last".into()).unwrap();
        assert_eq!(next_text(&mut stalled).await, "change last");
        assert_eq!(next_text(&mut reading).await, "change last");
    }

    #[tokio::test]
    async fn the_last_listener_to_leave_stops_the_execution() {
        let feeds = Feeds::default();
        let (first, items) = feed(&feeds, Catchup::Nothing);
        let second = feeds.listen(key("{}"), Catchup::Nothing, |_| unreachable!());
        drop(first);
        assert_eq!(feeds.counts().running, 1);
        drop(second);
        assert_eq!(
            feeds.counts(),
            FeedCounts {
                started: 1,
                running: 0
            }
        );
        // the execution was aborted: its input is no longer read
        tokio::time::timeout(Duration::from_secs(5), items.closed())
            .await
            .expect("the execution stops");
        // a new listener starts a new execution
        let (_again, _items) = feed(&feeds, Catchup::Nothing);
        assert_eq!(
            feeds.counts(),
            FeedCounts {
                started: 2,
                running: 1
            }
        );
    }

    #[tokio::test]
    async fn an_ended_feed_is_not_joined() {
        let feeds = Feeds::default();
        let (mut first, items) = feed(&feeds, Catchup::Nothing);
        drop(items);
        assert!(matches!(first.next().await, Some(FeedMessage::Complete)));
        let (_second, _items) = feed(&feeds, Catchup::Nothing);
        assert_eq!(feeds.counts().started, 2);
    }
}
