//! The request loop of the duration-bound scenarios (`orders`, `reads`).
//!
//! - Closed loop (no `--rate`): `--concurrency` workers send flat out, each its next request as
//!   soon as the previous answer is in. Latency runs from the actual send.
//! - Open loop (`--rate R`): request `i` is due at `start + i / R` whatever the answers do.
//!   Latency runs from the *due* time, so a server that falls behind shows its queueing delay
//!   instead of silently slowing the senders down (no coordinated omission). At most
//!   `--max-in-flight` requests are outstanding; past that, sends wait, and their wait counts.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::client::Reply;
use crate::report::Tally;

#[derive(Args, Debug, Clone, Serialize)]
pub struct LoadArgs {
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Concurrent workers of the closed loop.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Open loop: this many requests per second on a fixed schedule (instead of a closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: most requests outstanding at once.
    #[arg(long, default_value_t = 10_000)]
    pub max_in_flight: usize,
}

impl LoadArgs {
    pub fn mode(&self) -> String {
        match self.rate {
            Some(rate) => format!("open loop at {rate} req/s for {} s", self.duration),
            None => format!(
                "closed loop, {} workers for {} s",
                self.concurrency, self.duration
            ),
        }
    }
}

/// Runs `request` (which builds and sends one request) as `args` say; returns every request's
/// sample and the wall-clock time until the last answer.
pub async fn run<F, Fut>(args: &LoadArgs, request: F) -> (Tally, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let request = Arc::new(request);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    match args.rate {
        None => closed_loop(args.concurrency, start + duration, start, request, &tally).await,
        Some(rate) => {
            open_loop(rate, duration, args.max_in_flight, start, request, &tally).await;
        }
    }
    let elapsed = start.elapsed();
    let tally = std::mem::take(&mut *tally.lock().expect("tally lock"));
    (tally, elapsed)
}

async fn closed_loop<F, Fut>(
    workers: usize,
    deadline: Instant,
    start: Instant,
    request: Arc<F>,
    tally: &Arc<Mutex<Tally>>,
) where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let request = request.clone();
        let tally = tally.clone();
        tasks.spawn(async move {
            let mut local = Tally::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let reply = request().await;
                local.record(sent - start, sent.elapsed(), &reply);
            }
            tally.lock().expect("tally lock").merge(local);
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn open_loop<F, Fut>(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    start: Instant,
    request: Arc<F>,
    tally: &Arc<Mutex<Tally>>,
) where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let total = (duration.as_secs_f64() * rate).floor() as u64;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        // the timer ticks by the millisecond: sleep only when ahead, then send all that is due
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let slot = slots.clone().acquire_owned().await.expect("semaphore open");
        let request = request.clone();
        let tally = tally.clone();
        tokio::spawn(async move {
            let reply = request().await;
            let latency = due.elapsed();
            tally
                .lock()
                .expect("tally lock")
                .record(due - start, latency, &reply);
            drop(slot);
        });
    }
    // every slot back means every request answered
    let _all = slots
        .acquire_many(max_in_flight.max(1) as u32)
        .await
        .expect("semaphore open");
}
