//! The order writer: `placeOrder`, `createOrder` and `payOrder` of this instance go through a
//! queue to a few writer tasks, each applying whatever is waiting (up to `ORDER_BATCH_MAX`
//! commands) in one transaction ([`super::placing`]), so the locks, round trips and commit of a
//! transaction are shared by many orders when many arrive together. With nothing waiting a
//! writer starts at once with one command (waiting up to `ORDER_BATCH_LINGER_US` for company only
//! when told to).
//!
//! - A batch the database aborts (deadlock, serialization failure) runs again, whole.
//! - A batch that fails for any other reason runs again one command at a time, so one poisoned
//!   order fails alone.
//! - The writer tasks own the transactions: a client that goes away does not cancel a write, and
//!   no connection goes back to the pool inside a transaction.
//! - Several instances stay correct without coordination: the row locks are the truth.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::DbErr;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::announce::Announcer;
use super::placing::{self, Applied, Command, Outcome};
use super::service::{OrderError, OrderSettings};
use crate::infra::db::{AttemptError, Database};

/// How the writer batches.
#[derive(Copy, Clone, Debug)]
pub struct BatchSettings {
    /// Writer tasks, each running one transaction at a time.
    pub writers: usize,
    /// Most commands in one transaction.
    pub max: usize,
    /// How long a writer with fewer than `max` commands waits for more (zero: not at all).
    pub linger: Duration,
}

/// Commands waiting for a writer, beyond which submitting waits.
const QUEUE: usize = 16_384;

struct Job {
    command: Command,
    reply: oneshot::Sender<Outcome>,
}

/// The handle requests submit their commands to.
#[derive(Clone)]
pub struct OrderWriter {
    queue: mpsc::Sender<Job>,
}

#[derive(Clone)]
struct Writer {
    db: Database,
    orders: OrderSettings,
    batches: BatchSettings,
    announcer: Announcer,
}

impl OrderWriter {
    /// Starts the writer tasks on a thread and runtime of their own, so a batch's round trips
    /// never wait behind the requests' work; they stop when every handle is gone.
    pub fn start(
        db: Database,
        orders: OrderSettings,
        batches: BatchSettings,
        announcer: Announcer,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("order-writer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let writer = Writer {
                        db: own_pool(&db, batches.writers).await,
                        orders,
                        batches,
                        announcer,
                    };
                    let jobs = Arc::new(Mutex::new(jobs));
                    let tasks: Vec<_> = (0..batches.writers.max(1))
                        .map(|_| tokio::spawn(writer.clone().run(jobs.clone())))
                        .collect();
                    for task in tasks {
                        let _ = task.await;
                    }
                })
            })?;
        Ok(Self { queue })
    }

    /// Applies one command with whatever else is waiting; its outcome once committed.
    pub async fn submit(&self, command: Command) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { command, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// The writers' own connections, driven by their runtime; retried until the database answers
/// (commands wait in the queue meanwhile).
async fn own_pool(db: &Database, writers: usize) -> Database {
    let mut delay = Duration::from_millis(100);
    loop {
        match db.another_pool(writers.max(1) as u32).await {
            Ok(pool) => return pool,
            Err(err) => {
                tracing::warn!(error = %err, "order writer: cannot connect; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn stopped() -> OrderError {
    OrderError::Db(DbErr::Custom("the order writer has stopped".into()))
}

impl Writer {
    async fn run(self, jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
        while let Some(batch) = self.next_batch(&jobs).await {
            self.apply(batch).await;
        }
    }

    /// Waits for a command, then takes what else is waiting, up to the batch size.
    async fn next_batch(&self, jobs: &Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
        let mut jobs = jobs.lock().await;
        let first = jobs.recv().await?;
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + self.batches.linger;
        while batch.len() < self.batches.max {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) if self.batches.linger.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, jobs.recv()).await {
                    Ok(Some(job)) => batch.push(job),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        Some(batch)
    }

    /// Applies a batch; if it fails for a reason other than a transient abort, each of its
    /// commands alone (nothing of it was committed). A batch whose COMMIT got no answer may or
    /// may not have been committed: its commands are answered so, never run again.
    async fn apply(&self, batch: Vec<Job>) {
        metrics::histogram!("order_batch_size").record(batch.len() as f64);
        let commands: Vec<Command> = batch.iter().map(|job| job.command.clone()).collect();
        let commit_sent = AtomicBool::new(false);
        let result = self
            .db
            .write(|| attempt(&self.db, &commands, &self.orders, &commit_sent))
            .await;
        match result {
            Ok(applied) => {
                self.announcer.announce(&applied.aftermath);
                for (job, outcome) in batch.into_iter().zip(applied.outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(err) if commit_sent.load(Ordering::Relaxed) => {
                tracing::error!(error = %err, orders = batch.len(), "an order batch's COMMIT got no answer; it may or may not have been applied");
                for job in batch {
                    let _ = job.reply.send(Err(OrderError::Unconfirmed));
                }
            }
            Err(err) if batch.len() > 1 => {
                tracing::warn!(error = %err, orders = batch.len(), "an order batch failed; applying its orders one by one");
                for job in batch {
                    Box::pin(self.apply(vec![job])).await;
                }
            }
            Err(err) => {
                // a batch of one: its command fails alone
                if let Some(job) = batch.into_iter().next() {
                    let _ = job.reply.send(Err(OrderError::Db(err)));
                }
            }
        }
    }
}

/// One attempt at a batch's transaction. `commit_sent` tells whether a failure came from the
/// COMMIT itself (its outcome unknown) rather than before it (nothing committed).
async fn attempt(
    db: &Database,
    commands: &[Command],
    settings: &OrderSettings,
    commit_sent: &AtomicBool,
) -> Result<Applied, AttemptError> {
    let txn = db.begin_write().await?;
    match placing::apply(&*txn, commands, settings).await {
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
