//! Public subscriptions served to many listeners from one execution (see `crate::http::feeds`):
//! what a resolver is told when it runs for all of them, and how a listener that joins a running
//! execution catches up.

/// In the data of a subscription executed once for many listeners. A resolver whose first
/// message is a snapshot of the state (rather than a change) then yields the snapshot as it
/// stands after every change, so that its items alternate: snapshot, change, snapshot, change,
/// snapshot... The snapshots after the first go only to listeners that join later.
#[derive(Copy, Clone, Debug)]
pub struct SharedExecution;

/// How a listener that joins a running shared execution catches up.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Catchup {
    /// The stream begins with a snapshot and honours [`SharedExecution`]: a joining listener
    /// first gets the latest snapshot, as if it had subscribed alone.
    LatestSnapshot,
    /// The stream only pushes changes: a joining listener gets those that come after it.
    Nothing,
}
