//! Group commit: requests of this instance submit commands to a queue; a few writer tasks each
//! apply whatever is waiting (up to [`BatchSettings::max`] commands) in one transaction, so the
//! locks, round trips and commit of a transaction are shared by many commands when many arrive
//! together. With nothing waiting a writer starts at once with one command (waiting up to
//! [`BatchSettings::linger`] for company only when told to). What a batch does is a [`Batch`]:
//! the order writer and the coupon writer are two.
//!
//! - A batch the database aborts (deadlock, serialization failure) runs again, whole.
//! - A batch that fails for any other reason runs again one command at a time, so one poisoned
//!   command fails alone.
//! - A batch whose COMMIT got no answer may or may not have been applied: its commands are
//!   answered so ([`Batch::unconfirmed`]), never run again.
//! - The writer tasks own the transactions, on a thread, runtime and pool of their own: a client
//!   that goes away does not cancel a write, no connection goes back to the pool inside a
//!   transaction, and a batch's round trips never wait behind the requests' work.
//! - Several instances stay correct without coordination: the row locks are the truth.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::{DatabaseTransaction, DbErr};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::db::{AttemptError, Database};
use super::meters::BATCH_SIZE;

/// How a writer batches.
#[derive(Copy, Clone, Debug)]
pub struct BatchSettings {
    /// Writer tasks, each running one transaction at a time.
    pub writers: usize,
    /// Most commands in one transaction.
    pub max: usize,
    /// How long a writer with fewer than `max` commands waits for more (zero: not at all).
    pub linger: Duration,
}

/// A kind of batch: how its commands are applied together in one transaction.
pub trait Batch: Send + Sync + 'static {
    type Command: Clone + Send + Sync + 'static;
    type Outcome: Send + 'static;
    /// What a committed batch leaves to do (announcements, ...).
    type Aftermath: Send;
    /// Names the writer's thread, its log lines and its `batch_size` metric.
    const NAME: &'static str;

    /// Applies the commands inside `txn` (not yet committed): one outcome per command, in order.
    /// A refusal is an outcome; an error aborts the whole batch.
    fn apply(
        &self,
        txn: &DatabaseTransaction,
        commands: &[Self::Command],
    ) -> impl Future<Output = Result<(Vec<Self::Outcome>, Self::Aftermath), AttemptError>> + Send;

    /// Runs once the batch is committed.
    fn committed(&self, aftermath: Self::Aftermath);

    /// The answer to a command whose COMMIT got no answer.
    fn unconfirmed(&self) -> Self::Outcome;

    /// The answer to a command that failed alone.
    fn failed(&self, command: &Self::Command, err: DbErr) -> Self::Outcome;
}

/// Commands waiting for a writer, beyond which submitting waits.
const QUEUE: usize = 16_384;

struct Job<B: Batch> {
    command: B::Command,
    reply: oneshot::Sender<B::Outcome>,
}

/// The handle requests submit their commands to.
pub struct BatchWriter<B: Batch> {
    queue: mpsc::Sender<Job<B>>,
}

impl<B: Batch> Clone for BatchWriter<B> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

struct Writer<B> {
    db: Database,
    batch: Arc<B>,
    settings: BatchSettings,
}

impl<B> Clone for Writer<B> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            batch: self.batch.clone(),
            settings: self.settings,
        }
    }
}

impl<B: Batch> BatchWriter<B> {
    /// Starts the writer tasks on a thread and runtime of their own, with a pool of their own;
    /// they stop when every handle is gone.
    pub fn start(db: Database, settings: BatchSettings, batch: B) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("{}-writer", B::NAME))
            .spawn(move || {
                runtime.block_on(async move {
                    let writer = Writer {
                        db: own_pool::<B>(&db, settings.writers).await,
                        batch: Arc::new(batch),
                        settings,
                    };
                    let jobs = Arc::new(Mutex::new(jobs));
                    let tasks: Vec<_> = (0..settings.writers.max(1))
                        .map(|_| tokio::spawn(writer.clone().run(jobs.clone())))
                        .collect();
                    for task in tasks {
                        let _ = task.await;
                    }
                })
            })?;
        Ok(Self { queue })
    }

    /// Applies one command with whatever else is waiting; its outcome once committed, or `None`
    /// when the writer has stopped.
    pub async fn submit(&self, command: B::Command) -> Option<B::Outcome> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job { command, reply }).await.ok()?;
        answer.await.ok()
    }
}

/// The writers' own connections, driven by their runtime; retried until the database answers
/// (commands wait in the queue meanwhile).
async fn own_pool<B: Batch>(db: &Database, writers: usize) -> Database {
    let mut delay = Duration::from_millis(100);
    loop {
        match db.another_pool(writers.max(1) as u32).await {
            Ok(pool) => return pool,
            Err(err) => {
                tracing::warn!(error = %err, writer = B::NAME, "batch writer: cannot connect; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl<B: Batch> Writer<B> {
    async fn run(self, jobs: Arc<Mutex<mpsc::Receiver<Job<B>>>>) {
        while let Some(batch) = self.next_batch(&jobs).await {
            self.apply(batch).await;
        }
    }

    /// Waits for a command, then takes what else is waiting, up to the batch size.
    async fn next_batch(&self, jobs: &Mutex<mpsc::Receiver<Job<B>>>) -> Option<Vec<Job<B>>> {
        let mut jobs = jobs.lock().await;
        let first = jobs.recv().await?;
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + self.settings.linger;
        while batch.len() < self.settings.max {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) if self.settings.linger.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, jobs.recv()).await {
                    Ok(Some(job)) => batch.push(job),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        Some(batch)
    }

    /// Applies a batch; if it fails for a reason other than a transient abort, each of its
    /// commands alone (nothing of it was committed).
    async fn apply(&self, batch: Vec<Job<B>>) {
        metrics::histogram!(BATCH_SIZE, "writer" => B::NAME).record(batch.len() as f64);
        let commands: Vec<B::Command> = batch.iter().map(|job| job.command.clone()).collect();
        let commit_sent = AtomicBool::new(false);
        let result = self
            .db
            .write(|| self.attempt(&commands, &commit_sent))
            .await;
        match result {
            Ok((outcomes, aftermath)) => {
                self.batch.committed(aftermath);
                for (job, outcome) in batch.into_iter().zip(outcomes) {
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

    /// One attempt at a batch's transaction. `commit_sent` tells whether a failure came from the
    /// COMMIT itself (its outcome unknown) rather than before it (nothing committed).
    async fn attempt(
        &self,
        commands: &[B::Command],
        commit_sent: &AtomicBool,
    ) -> Result<(Vec<B::Outcome>, B::Aftermath), AttemptError> {
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
