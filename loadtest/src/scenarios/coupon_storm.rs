//! `coupon-storm`: N customers ask for a coupon of one event of C coupons at the same instant.
//!
//! Each customer is its own HTTP client with its own connection, opened (and used once) before
//! the start, so the storm measures issuance and not connection set-up. Exactly min(N, C) must
//! win, every other answer must be COUPON_EXHAUSTED, and nobody may hold two coupons of the event.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Context, Outcome};
use crate::chart::{self, Labels, Series};
use crate::client::{Client, OK, Reply, Viewer};
use crate::report::{Check, Report, Tally};
use crate::setup::Setup;

const EXHAUSTED: &str = "COUPON_EXHAUSTED";
const ISSUE: &str = "mutation($input: IssueCouponInput!) { issueCoupon(input: $input) { coupon { id } userErrors { code } } }";
const MY_COUPONS: &str = "{ me { coupons { id event { id } } } }";
const EVENT: &str = "query($id: ID!) { couponEvent(id: $id) { issuedQuantity totalQuantity } }";

#[derive(Args, Debug, Clone, Serialize)]
pub struct CouponStormArgs {
    /// Customers, each asking once.
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
    /// Coupons of the event.
    #[arg(long, default_value_t = 1)]
    pub coupons: u64,
    /// Connections opened at once before the storm.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Write an SVG chart of each request's latency, in send order, here.
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

/// One customer's request in the storm.
struct Attempt {
    user: i64,
    /// Since the start signal.
    sent: Duration,
    latency: Duration,
    reply: Reply,
}

pub async fn run(ctx: &Context, args: &CouponStormArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(args.users > 0, "--users must be positive");
    super::warn_about_open_files(args.users);
    let mut report = Report::new("coupon-storm", args);
    let setup = Setup::new(ctx.client.clone(), ctx.setup_concurrency, "coupon-storm");
    let users = setup.users(args.users).await?;
    let event = setup.coupon_event(args.coupons).await?;
    let (clients, connect_failures) = connect(ctx, &users, args.connect_concurrency).await?;
    report.setup_secs = setup.elapsed().as_secs_f64();

    println!(
        "run: {} customers ask for 1 of {} coupons of event {event} at once",
        users.len(),
        args.coupons
    );
    let (go, ready) = watch::channel(None::<Instant>);
    let variables = json!({ "input": { "eventId": event.to_string() } });
    let mut storm = tokio::task::JoinSet::new();
    for (user, client) in users.iter().copied().zip(clients) {
        let mut ready = ready.clone();
        let variables = variables.clone();
        storm.spawn(async move {
            let start = ready.wait_for(Option::is_some).await.ok().and_then(|s| *s);
            let sent = Instant::now();
            let reply = client.send(Viewer::User(user), ISSUE, variables).await;
            Attempt {
                user,
                sent: start.map_or(Duration::ZERO, |start| sent - start),
                latency: sent.elapsed(),
                reply,
            }
        });
    }
    let start = Instant::now();
    go.send(Some(start))?;
    let mut attempts = Vec::with_capacity(users.len());
    while let Some(joined) = storm.join_next().await {
        attempts.push(joined?);
    }
    let elapsed = start.elapsed();
    attempts.sort_by_key(|attempt| attempt.sent);

    let mut tally = Tally::default();
    for attempt in &attempts {
        tally.record(attempt.sent, attempt.latency, &attempt.reply);
    }
    let winners: Vec<i64> = attempts
        .iter()
        .filter(|a| a.reply.is_ok())
        .map(|a| a.user)
        .collect();
    let expected = (users.len() as u64).min(args.coupons);
    report.result("connect_failures", connect_failures.len());
    report.result(
        "connect_errors",
        connect_failures.iter().take(5).collect::<Vec<_>>(),
    );
    report.result("winners", winners.len());
    report.result("exhausted", tally.count(EXHAUSTED));
    report.result(
        "last_send_after_ms",
        attempts
            .last()
            .map_or(0.0, |a| a.sent.as_secs_f64() * 1000.0),
    );
    report.result("last_answer_after_ms", elapsed.as_secs_f64() * 1000.0);
    report.check(Check::new(
        "winners = min(users, coupons)",
        winners.len() as u64 == expected,
        format!("{} winners, expected {expected}", winners.len()),
    ));
    let unexpected = tally.unexpected(&[OK, EXHAUSTED]);
    report.check(Check::new(
        "every other answer COUPON_EXHAUSTED",
        unexpected.is_empty(),
        if unexpected.is_empty() {
            format!("{} COUPON_EXHAUSTED", tally.count(EXHAUSTED))
        } else {
            format!("other outcomes: {unexpected:?}")
        },
    ));
    report.check(issued_matches(&ctx.client, event, winners.len()).await?);
    if !ctx.sql_checks {
        report.check(one_coupon_each(ctx, event, &winners).await);
    }
    if let Some(path) = &args.chart {
        let points = attempts
            .iter()
            .enumerate()
            .map(|(i, a)| (i as f64, a.latency.as_secs_f64() * 1000.0))
            .collect();
        let svg = chart::line_chart(
            &Labels {
                title: &format!(
                    "issueCoupon latency: {} customers, {} coupons",
                    users.len(),
                    args.coupons
                ),
                x: "request, in send order",
                y: "latency (ms)",
            },
            &[Series {
                name: "latency".into(),
                color: "#1f77b4",
                points,
            }],
        );
        std::fs::write(path, svg)?;
        println!("chart: {}", path.display());
    }
    report.load = Some(tally.summary(elapsed));
    Ok(Outcome {
        report,
        initial_stock: Default::default(),
    })
}

/// One client per customer, each with its connection opened by a first small request; also
/// the errors of the connections that could not be opened (those clients try again in the storm).
async fn connect(
    ctx: &Context,
    users: &[i64],
    concurrency: usize,
) -> anyhow::Result<(Vec<Client>, Vec<String>)> {
    let step = Instant::now();
    let clients: Vec<Client> = users
        .iter()
        .map(|_| Client::new(&ctx.url, ctx.client_options))
        .collect::<anyhow::Result<_>>()?;
    let failures: Vec<String> = stream::iter(clients.iter())
        .map(|client| async move {
            let reply = client
                .send(Viewer::Anonymous, "{ __typename }", Value::Null)
                .await;
            (!reply.is_ok())
                .then(|| format!("{}: {}", reply.outcome, reply.detail.unwrap_or_default()))
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    println!(
        "setup: {} connections opened in {:.1} s ({} failed)",
        clients.len() - failures.len(),
        step.elapsed().as_secs_f64(),
        failures.len()
    );
    Ok((clients, failures))
}

/// The event's issued count (read through the API) equals the number of winners.
async fn issued_matches(client: &Client, event: i64, winners: usize) -> anyhow::Result<Check> {
    let data = client
        .expect(Viewer::Admin, EVENT, json!({ "id": event.to_string() }))
        .await?;
    let issued = data
        .pointer("/couponEvent/issuedQuantity")
        .and_then(Value::as_u64);
    Ok(Check::new(
        "event's issuedQuantity = winners",
        issued == Some(winners as u64),
        format!("issuedQuantity {issued:?}, {winners} winners"),
    ))
}

/// Without SQL: each winner holds exactly one coupon of the event.
async fn one_coupon_each(ctx: &Context, event: i64, winners: &[i64]) -> Check {
    let event = event.to_string();
    let wrong: Vec<String> = stream::iter(winners.iter().copied())
        .map(|user| {
            let event = event.clone();
            async move {
                let reply = ctx
                    .client
                    .send(Viewer::User(user), MY_COUPONS, Value::Null)
                    .await;
                let held = reply.data("/me/coupons").as_array().map(|coupons| {
                    coupons
                        .iter()
                        .filter(|c| c.pointer("/event/id").and_then(Value::as_str) == Some(&event))
                        .count()
                });
                match held {
                    Some(1) => None,
                    Some(n) => Some(format!("user {user} holds {n}")),
                    None => Some(format!("user {user}: {}", reply.outcome)),
                }
            }
        })
        .buffer_unordered(ctx.setup_concurrency.max(1))
        .filter_map(|wrong| async move { wrong })
        .collect()
        .await;
    Check::new(
        "each winner holds one coupon of the event (API)",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{} winners checked", winners.len())
        } else {
            format!(
                "{} wrong: {}",
                wrong.len(),
                wrong[..wrong.len().min(5)].join("; ")
            )
        },
    )
}
