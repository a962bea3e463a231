//! Group commit: requests of this instance submit commands; writer lanes each apply whatever is
//! waiting in their own queue (up to a cap) in one transaction, so the locks, round trips and
//! commit of a transaction are shared by many commands when many arrive together. With nothing
//! waiting a lane starts at once with one command (waiting up to [`BatchSettings::linger`] for
//! company only when told to). What a batch does is a [`Batch`]: the order writer and the coupon
//! writer are two.
//!
//! - **Routing.** A command goes to the lane its [`Batch::route`] key names (orders: their lowest
//!   product; coupons: their event), so commands that lock the same rows meet in one batch of one
//!   lane instead of waiting for another lane's commit. Lanes run at once, each with its own
//!   connection; [`BatchSettings::for_machine`] sizes them by the cores.
//! - **Batch caps that follow contention.** A lane's cap grows by one per batch up to
//!   [`BatchSettings::max`] and halves after a batch that waited [`CONTENDED`] or more for its row
//!   locks (held by another lane or instance): a smaller batch holds its locks for less time.
//! - **Bounded queues.** A command that waited longer than [`BatchSettings::max_wait`] in its
//!   queue (or found the queue full) is answered [`Batch::overloaded`] without being applied, so
//!   a saturated writer sheds work with a clear answer instead of queueing it without end. A
//!   writer without a bound (coupons) never refuses: a caller finding the queue full waits.
//! - A batch the database aborts (deadlock, serialization failure) runs again, whole.
//! - A batch that fails for any other reason runs again one command at a time, so one poisoned
//!   command fails alone.
//! - A batch whose COMMIT got no answer may or may not have been applied: its commands are
//!   answered so ([`Batch::unconfirmed`]), never run again.
//! - The lanes own the transactions, on threads, a runtime and a pool of their own: a client
//!   that goes away does not cancel a write, no connection goes back to the pool inside a
//!   transaction, and a batch's round trips never wait behind the requests' work.
//! - **Requests first.** The lanes' threads may run at a lower priority
//!   ([`BatchSettings::nice`]): on a saturated machine the requests (reads, and orders being
//!   parsed and queued) get the cores first, and a lane then finds more commands waiting, so
//!   its batches grow instead of the reads' latency (BENCHMARKS.md "Reads beside orders flat
//!   out").
//! - Several instances stay correct without coordination: the row locks are the truth.

use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseTransaction, DbErr};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::db::{AttemptError, Database};
use super::meters::{BATCH_LOCK_WAIT, BATCH_SHED, BATCH_SIZE};

/// A batch that waited this long for its row locks was contended: its lane's cap halves.
pub const CONTENDED: Duration = Duration::from_millis(5);

/// Lanes a writer thread drives.
const LANES_PER_THREAD: usize = 4;

/// Commands waiting in one lane, beyond which a command is refused at once.
const QUEUE: usize = 8_192;

/// How a writer batches.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// Lanes, each running one transaction at a time on a connection of its own.
    pub writers: usize,
    /// Most commands in one transaction.
    pub max: usize,
    /// How long a lane with fewer commands than its cap waits for more (zero: not at all).
    pub linger: Duration,
    /// How long a command may wait in its lane's queue before it is refused unapplied (`None`:
    /// it waits however long it takes).
    pub max_wait: Option<Duration>,
    /// How far below the requests' priority the lanes' threads run, in steps of nice value (0:
    /// the same; the result is at most 19); Linux only.
    pub nice: i32,
}

impl BatchSettings {
    /// Lanes for a machine of `cores` cores: one per two cores, at least one. The lanes share
    /// the cores with the requests and a local database: one lane per core loses to one per two
    /// (see BENCHMARKS.md "Writers sized by the machine").
    pub fn lanes_for(cores: usize) -> usize {
        (cores / 2).max(1)
    }

    /// The cores of this machine (as the process may use them).
    pub fn machine_cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Threads driving the lanes.
    fn threads(&self) -> usize {
        self.writers.div_ceil(LANES_PER_THREAD).max(1)
    }
}

/// What a batch's transaction did, before its commit.
pub struct Applied<O, A> {
    /// One outcome per command, in order.
    pub outcomes: Vec<O>,
    pub aftermath: A,
    /// How long locking the batch's rows took (round trips included): long when another
    /// transaction held them.
    pub locking: Duration,
}

/// A kind of batch: how its commands are applied together in one transaction.
pub trait Batch: Send + Sync + 'static {
    type Command: Clone + Send + Sync + 'static;
    type Outcome: Send + 'static;
    /// What a committed batch leaves to do (announcements, ...).
    type Aftermath: Send;
    /// Names the writer's threads, its log lines and its metrics.
    const NAME: &'static str;

    /// Commands with the same key lock the same rows first: they go to the same lane.
    fn route(command: &Self::Command) -> i64;

    /// Applies the commands inside `txn` (not yet committed). A refusal is an outcome; an error
    /// aborts the whole batch.
    fn apply(
        &self,
        txn: &DatabaseTransaction,
        commands: &[Self::Command],
    ) -> impl Future<Output = Result<Applied<Self::Outcome, Self::Aftermath>, AttemptError>> + Send;

    /// Runs once the batch is committed.
    fn committed(&self, aftermath: Self::Aftermath);

    /// The answer to a command whose COMMIT got no answer.
    fn unconfirmed(&self) -> Self::Outcome;

    /// The answer to a command that failed alone.
    fn failed(&self, command: &Self::Command, err: DbErr) -> Self::Outcome;

    /// The answer to a command refused unapplied: its lane's queue was past its bound.
    fn overloaded(&self) -> Self::Outcome;
}

struct Job<B: Batch> {
    command: B::Command,
    queued: Instant,
    reply: oneshot::Sender<B::Outcome>,
    /// The submitter's span: its batch is linked to it (traces).
    span: tracing::Span,
}

/// The handle requests submit their commands to.
pub struct BatchWriter<B: Batch> {
    lanes: Arc<[mpsc::Sender<Job<B>>]>,
    batch: Arc<B>,
    hasher: std::collections::hash_map::RandomState,
    /// Whether a command is refused when its lane is past its bound ([`BatchSettings::max_wait`]).
    sheds: bool,
}

impl<B: Batch> Clone for BatchWriter<B> {
    fn clone(&self) -> Self {
        Self {
            lanes: self.lanes.clone(),
            batch: self.batch.clone(),
            hasher: self.hasher.clone(),
            sheds: self.sheds,
        }
    }
}

/// One lane: its queue, its connections and its current cap.
struct Lane<B> {
    db: Database,
    batch: Arc<B>,
    settings: BatchSettings,
    cap: usize,
}

impl<B: Batch> BatchWriter<B> {
    /// Starts the lanes on threads and a runtime of their own, with a pool of their own; they
    /// stop when every handle is gone.
    pub fn start(db: Database, settings: BatchSettings, batch: B) -> std::io::Result<Self> {
        let lanes = settings.writers.max(1);
        let nice = settings.nice;
        let runtime = match settings.threads() {
            1 => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            threads => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name(format!("{}-writer", B::NAME))
                .on_thread_start(move || lower_priority::<B>(nice))
                .enable_all()
                .build()?,
        };
        let batch = Arc::new(batch);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..lanes).map(|_| mpsc::channel(QUEUE)).unzip();
        let lane_batch = batch.clone();
        std::thread::Builder::new()
            .name(format!("{}-writer", B::NAME))
            .spawn(move || {
                lower_priority::<B>(nice);
                runtime.block_on(async move {
                    let db = own_pool::<B>(&db, lanes).await;
                    let tasks: Vec<_> = receivers
                        .into_iter()
                        .map(|jobs| {
                            let lane = Lane {
                                db: db.clone(),
                                batch: lane_batch.clone(),
                                settings,
                                cap: settings.max.max(1),
                            };
                            tokio::spawn(lane.run(jobs))
                        })
                        .collect();
                    for task in tasks {
                        let _ = task.await;
                    }
                })
            })?;
        Ok(Self {
            lanes: senders.into(),
            batch,
            hasher: Default::default(),
            sheds: settings.max_wait.is_some(),
        })
    }

    /// Applies one command with whatever else is waiting in its lane; its outcome once
    /// committed (or refused unapplied when the lane is overloaded), or `None` when the writer
    /// has stopped.
    pub async fn submit(&self, command: B::Command) -> Option<B::Outcome> {
        let lane = &self.lanes[self.lane_of(&command)];
        let (reply, answer) = oneshot::channel();
        let job = Job {
            command,
            queued: Instant::now(),
            reply,
            span: tracing::Span::current(),
        };
        if !self.sheds {
            // a writer that never sheds makes its callers wait for room instead
            lane.send(job).await.ok()?;
            return answer.await.ok();
        }
        match lane.try_send(job) {
            Ok(()) => answer.await.ok(),
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(BATCH_SHED, "writer" => B::NAME).increment(1);
                Some(self.batch.overloaded())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => None,
        }
    }

    fn lane_of(&self, command: &B::Command) -> usize {
        if self.lanes.len() == 1 {
            return 0;
        }
        let key = B::route(command);
        (self.hasher.hash_one(key) % self.lanes.len() as u64) as usize
    }
}

/// Lowers the calling thread's priority by `nice` steps of nice value (Linux keeps one per
/// thread; at most 19); a failure is logged and the thread keeps its priority.
#[cfg(target_os = "linux")]
fn lower_priority<B: Batch>(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid, getpriority and setpriority take no pointers and read or change nothing
    // but this thread's nice value; raising it (a lower priority) needs no privilege.
    let result = unsafe {
        let tid = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (current + nice).min(19))
    };
    if result != 0 {
        let err = std::io::Error::last_os_error();
        tracing::warn!(error = %err, writer = B::NAME, nice, "batch writer: cannot lower its thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority<B: Batch>(_nice: i32) {}

/// The writers' own connections (one per lane), driven by their runtime; retried until the
/// database answers (commands wait in the queues meanwhile).
async fn own_pool<B: Batch>(db: &Database, lanes: usize) -> Database {
    let mut delay = Duration::from_millis(100);
    loop {
        match db.another_pool(lanes as u32).await {
            Ok(pool) => return pool,
            Err(err) => {
                tracing::warn!(error = %err, writer = B::NAME, "batch writer: cannot connect; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl<B: Batch> Lane<B> {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job<B>>) {
        while let Some(batch) = self.next_batch(&mut jobs).await {
            if !batch.is_empty() {
                self.apply(batch).await;
            }
        }
    }

    /// Waits for a command, then takes what else is waiting, up to the lane's cap; commands
    /// that waited past the bound are answered overloaded instead (possibly all of them).
    async fn next_batch(&self, jobs: &mut mpsc::Receiver<Job<B>>) -> Option<Vec<Job<B>>> {
        let first = jobs.recv().await?;
        let mut batch = Vec::with_capacity(self.cap.min(jobs.len() + 1));
        self.admit(first, &mut batch);
        let deadline = tokio::time::Instant::now() + self.settings.linger;
        while batch.len() < self.cap {
            let job = match jobs.try_recv() {
                Ok(job) => job,
                Err(_) if self.settings.linger.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, jobs.recv()).await {
                    Ok(Some(job)) => job,
                    Ok(None) | Err(_) => break,
                },
            };
            self.admit(job, &mut batch);
        }
        Some(batch)
    }

    /// Adds `job` to the batch, or answers it overloaded when it waited past the bound.
    fn admit(&self, job: Job<B>, batch: &mut Vec<Job<B>>) {
        match self.settings.max_wait {
            Some(bound) if job.queued.elapsed() > bound => {
                metrics::counter!(BATCH_SHED, "writer" => B::NAME).increment(1);
                let _ = job.reply.send(self.batch.overloaded());
            }
            _ => batch.push(job),
        }
    }

    /// Applies a batch; if it fails for a reason other than a transient abort, each of its
    /// commands alone (nothing of it was committed).
    async fn apply(&mut self, batch: Vec<Job<B>>) {
        metrics::histogram!(BATCH_SIZE, "writer" => B::NAME).record(batch.len() as f64);
        let commands: Vec<B::Command> = batch.iter().map(|job| job.command.clone()).collect();
        let commit_sent = AtomicBool::new(false);
        let span = tracing::info_span!(
            "group commit",
            otel.name = %format!("{} batch", B::NAME),
            writer = B::NAME,
            commands = batch.len(),
        );
        crate::telemetry::link_batch(&span, batch.iter().map(|job| &job.span));
        let result = self
            .db
            .write(|| self.attempt(&commands, &commit_sent))
            .instrument(span)
            .await;
        match result {
            Ok(applied) => {
                self.adapt_cap(applied.locking);
                self.batch.committed(applied.aftermath);
                for (job, outcome) in batch.into_iter().zip(applied.outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(err) if commit_sent.load(Ordering::Relaxed) => {
                tracing::error!(error = %err, writer = B::NAME, commands = batch.len(), "a batch's COMMIT got no answer; it may or may not have been applied");
                for job in batch {
                    let _ = job.reply.send(self.batch.unconfirmed());
                }
            }
            Err(err) if batch.len() > 1 => {
                tracing::warn!(error = %err, writer = B::NAME, commands = batch.len(), "a batch failed; applying its commands one by one");
                for job in batch {
                    Box::pin(self.apply(vec![job])).await;
                }
            }
            Err(err) => {
                // a batch of one: its command fails alone
                if let Some(job) = batch.into_iter().next() {
                    let outcome = self.batch.failed(&job.command, err);
                    let _ = job.reply.send(outcome);
                }
            }
        }
    }

    /// Halves the cap after a contended batch, else lets it grow by one towards the maximum.
    fn adapt_cap(&mut self, locking: Duration) {
        metrics::histogram!(BATCH_LOCK_WAIT, "writer" => B::NAME).record(locking.as_secs_f64());
        self.cap = if locking >= CONTENDED {
            (self.cap / 2).max(1)
        } else {
            (self.cap + 1).min(self.settings.max.max(1))
        };
    }

    /// One attempt at a batch's transaction. `commit_sent` tells whether a failure came from the
    /// COMMIT itself (its outcome unknown) rather than before it (nothing committed).
    async fn attempt(
        &self,
        commands: &[B::Command],
        commit_sent: &AtomicBool,
    ) -> Result<Applied<B::Outcome, B::Aftermath>, AttemptError> {
        let txn = self.db.begin_write().await?;
        match self.batch.apply(&txn, commands).await {
            Ok(applied) => {
                commit_sent.store(true, Ordering::Relaxed);
                txn.commit().await?;
                Ok(applied)
            }
            Err(err) => {
                // a rollback that fails (the connection is gone) rolls back all the same
                let _ = txn.rollback().await;
                Err(err)
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    struct Nothing;

    impl Batch for Nothing {
        type Command = ();
        type Outcome = ();
        type Aftermath = ();
        const NAME: &'static str = "test";
        fn route(_: &()) -> i64 {
            0
        }
        async fn apply(
            &self,
            _: &DatabaseTransaction,
            _: &[()],
        ) -> Result<Applied<(), ()>, AttemptError> {
            Ok(Applied {
                outcomes: vec![],
                aftermath: (),
                locking: Duration::ZERO,
            })
        }
        fn committed(&self, _: ()) {}
        fn unconfirmed(&self) {}
        fn failed(&self, _: &(), _: DbErr) {}
        fn overloaded(&self) {}
    }

    /// The nice value of the calling thread, as the kernel reports it.
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // the fields after the command name (which may hold spaces), from the state (3rd) on
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[19 - 3].parse().unwrap()
    }

    #[test]
    fn a_lane_thread_runs_at_the_nice_value_it_is_given_and_no_other_thread_does() {
        let before = own_nice();
        let lowered = std::thread::spawn(|| {
            lower_priority::<Nothing>(7);
            own_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + 7).min(19));
        assert_eq!(own_nice(), before, "only the lane's thread is lowered");
    }
}
