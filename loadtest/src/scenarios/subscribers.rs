//! `subscribers`: many WebSocket clients subscribe to `rankingChanged`, then the tool makes a new
//! product the best seller and measures how long each client takes to see it at #1.
//!
//! Clients connect with bounded concurrency, each finishing the `graphql-transport-ws`
//! handshake and receiving its first snapshot before it counts as subscribed. The trigger orders
//! one unit more of the new product than the current #1 has sold (in orders of at most 1,000
//! units, the server's limit per product and order); a client's receive latency runs from the
//! last trigger order's answer to the first `next` message whose top entry is that product
//! (`receive_latency_ms`; `first_ms` is the earliest client). With `--server-pid`, the server's
//! RSS is read from `/proc/PID/status` before connecting, once everyone is subscribed (memory
//! per idle subscribed socket) and after the update, and its CPU time (`/proc/PID/stat`) spent
//! from the trigger until every client received the update.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Context, Outcome};
use crate::client::{Viewer, graphql_endpoint};
use crate::report::{Check, Latency, Report};
use crate::setup::{self, NewProduct, Setup};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SUBSCRIPTION: &str = "subscription { rankingChanged(days: 3, limit: 5) { topSellers { entries { product { id } quantity } } changes { movement } } }";
const TOP: &str = "{ topSellers(days: 3, limit: 1) { entries { quantity product { id } } } }";
const PLACE_ORDER: &str = "mutation($items: [OrderItemInput!]!) { placeOrder(input: { items: $items }) { order { id } userErrors { code } } }";
/// Most units of one product in one order (the server's limit).
const UNITS_PER_ORDER: i64 = 1_000;
/// How long one client may take to connect and get its snapshot.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args, Debug, Clone, Serialize)]
pub struct SubscribersArgs {
    /// WebSocket clients.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Clients connecting at once.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// The server's process id, to read its memory (VmRSS) before and after.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Seconds to wait for every client to receive the update.
    #[arg(long, default_value_t = 60.0)]
    pub wait: f64,
}

/// What a client tells the conductor.
enum Event {
    Subscribed(Duration),
    Failed(String),
    Received(Instant),
    Lost(String),
}

pub async fn run(ctx: &Context, args: &SubscribersArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(args.clients > 0, "--clients must be positive");
    super::warn_about_open_files(args.clients);
    let mut report = Report::new("subscribers", args);
    let setup = Setup::new(ctx.client.clone(), ctx.setup_concurrency, "subscribers");
    // a product that can outsell today's #1, and a buyer who can pay for it at 1 won a unit
    let headroom = 10 * UNITS_PER_ORDER;
    let stock = top_quantity(ctx).await? + headroom;
    anyhow::ensure!(
        stock <= setup::MAX_BALANCE,
        "the current #1 sold too much to be outsold"
    );
    let products = setup.products(vec![NewProduct { price: 1, stock }]).await?;
    let target = products[0].id;
    let buyer = setup.users(1).await?[0];
    setup.charge(&[buyer], stock).await?;
    let rss_before = rss_kb(args.server_pid)?;

    let (shutdown, stop) = watch::channel(false);
    let (events, mut inbox) = mpsc::unbounded_channel();
    let ws_url = websocket_url(&ctx.url);
    let slots = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut clients = tokio::task::JoinSet::new();
    let connecting = Instant::now();
    for _ in 0..args.clients {
        clients.spawn(subscriber(
            ws_url.clone(),
            target.to_string(),
            slots.clone(),
            events.clone(),
            stop.clone(),
        ));
    }
    drop(events);
    let mut subscribed = Vec::new();
    let mut failures = Vec::new();
    let mut lost = Vec::new();
    while subscribed.len() + failures.len() < args.clients {
        match inbox.recv().await {
            Some(Event::Subscribed(took)) => subscribed.push(took),
            Some(Event::Failed(why)) => failures.push(why),
            Some(Event::Lost(why)) => lost.push(why),
            Some(Event::Received(_)) => bail!("an update arrived before the trigger"),
            None => break,
        }
    }
    let connect_secs = connecting.elapsed().as_secs_f64();
    println!(
        "setup: {} clients subscribed in {connect_secs:.1} s ({} failed)",
        subscribed.len(),
        failures.len()
    );
    report.setup_secs = setup.elapsed().as_secs_f64();
    let rss_subscribed = rss_kb(args.server_pid)?;

    println!("run: making product {target} the best seller");
    let cpu_before = cpu_ms(args.server_pid)?;
    let triggered = Instant::now();
    let (units, answered) = trigger(ctx, buyer, target, stock).await?;
    let trigger_ms = (answered - triggered).as_secs_f64() * 1000.0;
    let deadline = triggered + Duration::from_secs_f64(args.wait);
    let mut received = Vec::new();
    while received.len() + lost.len() < subscribed.len() {
        match tokio::time::timeout_at(deadline.into(), inbox.recv()).await {
            Ok(Some(Event::Received(at))) => received.push(at.saturating_duration_since(answered)),
            Ok(Some(Event::Lost(why) | Event::Failed(why))) => lost.push(why),
            Ok(Some(Event::Subscribed(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let rss_after = rss_kb(args.server_pid)?;
    let cpu_after = cpu_ms(args.server_pid)?;
    shutdown.send(true)?;
    while clients.join_next().await.is_some() {}

    let within = |limit: Duration| received.iter().filter(|&&d| d <= limit).count();
    report.result("clients", args.clients);
    report.result("subscribed", subscribed.len());
    report.result("connect_failures", failures.len());
    report.result(
        "connect_errors",
        failures.iter().take(5).collect::<Vec<_>>(),
    );
    report.result("connect_secs", connect_secs);
    report.result(
        "subscribe_latency_ms",
        Latency::of(subscribed.iter().copied()),
    );
    report.result("trigger_units", units);
    report.result("trigger_ms", trigger_ms);
    report.result("received", received.len());
    report.result("lost_after_subscribing", lost.len());
    report.result("lost_errors", lost.iter().take(5).collect::<Vec<_>>());
    report.result("receive_latency_ms", Latency::of(received.iter().copied()));
    let first = received.iter().min().copied().unwrap_or_default();
    report.result("first_ms", first.as_secs_f64() * 1000.0);
    report.result("received_within_1s", within(Duration::from_secs(1)));
    report.result("received_within_5s", within(Duration::from_secs(5)));
    if let (Some(before), Some(subscribed_kb)) = (rss_before, rss_subscribed) {
        report.result(
            "server_rss_kb",
            json!({ "before": before, "subscribed": subscribed_kb, "after_update": rss_after }),
        );
        let per_socket =
            subscribed_kb.saturating_sub(before) as f64 / subscribed.len().max(1) as f64;
        report.result("server_rss_kb_per_subscriber", per_socket);
    }
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        report.result("server_cpu_ms_for_update", after - before);
    }
    report.check(Check::new(
        "every client subscribed",
        failures.is_empty(),
        format!("{} of {} subscribed", subscribed.len(), args.clients),
    ));
    report.check(Check::new(
        "every subscriber received the update",
        received.len() == subscribed.len(),
        format!(
            "{} of {} within {} s",
            received.len(),
            subscribed.len(),
            args.wait
        ),
    ));
    Ok(Outcome {
        report,
        initial_stock: setup::initial_stock(&products),
    })
}

/// Units sold by today's #1 in the 3-day window (0 when nothing sold).
async fn top_quantity(ctx: &Context) -> anyhow::Result<i64> {
    let data = ctx
        .client
        .expect(Viewer::Anonymous, TOP, Value::Null)
        .await?;
    Ok(data
        .pointer("/topSellers/entries/0/quantity")
        .and_then(Value::as_i64)
        .unwrap_or(0))
}

/// Orders one unit more of `target` than the #1 sold; returns the units ordered and when the
/// last order was answered.
async fn trigger(
    ctx: &Context,
    buyer: i64,
    target: i64,
    stock: i64,
) -> anyhow::Result<(i64, Instant)> {
    let units = top_quantity(ctx).await? + 1;
    anyhow::ensure!(units <= stock, "the #1 sold {units} units meanwhile");
    let mut left = units;
    while left > 0 {
        let quantity = left.min(UNITS_PER_ORDER);
        let items = json!([{ "productId": target.to_string(), "quantity": quantity }]);
        ctx.client
            .expect(Viewer::User(buyer), PLACE_ORDER, json!({ "items": items }))
            .await?;
        left -= quantity;
    }
    Ok((units, Instant::now()))
}

/// One client: connect and subscribe (while holding a connection slot), then listen until told
/// to stop, reporting the first update that shows `target` at #1.
async fn subscriber(
    url: String,
    target: String,
    slots: Arc<Semaphore>,
    events: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let slot = slots.acquire_owned().await;
    let began = Instant::now();
    let socket = match tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe(&url)).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(error)) => {
            let _ = events.send(Event::Failed(format!("{error:#}")));
            return;
        }
        Err(_) => {
            let _ = events.send(Event::Failed("timed out subscribing".into()));
            return;
        }
    };
    drop(slot);
    let _ = events.send(Event::Subscribed(began.elapsed()));
    let mut socket = socket;
    let mut seen = false;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            message = next_message(&mut socket) => match message {
                Ok(message) if message["type"] == "next" => {
                    let top = message.pointer("/payload/data/rankingChanged/topSellers/entries/0/product/id");
                    if !seen && top.and_then(Value::as_str) == Some(target.as_str()) {
                        seen = true;
                        let _ = events.send(Event::Received(Instant::now()));
                    }
                }
                Ok(message) => {
                    let _ = events.send(Event::Lost(format!("server sent {message}")));
                    return;
                }
                Err(error) => {
                    let _ = events.send(Event::Lost(format!("{error:#}")));
                    return;
                }
            },
        }
    }
    let _ = socket.close(None).await;
}

/// Connects, initialises, subscribes and waits for the first snapshot.
async fn subscribe(url: &str) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("connecting")?;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": {} }),
    )
    .await?;
    let ack = next_message(&mut socket).await?;
    if ack["type"] != "connection_ack" {
        bail!("expected connection_ack, got {ack}");
    }
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": SUBSCRIPTION } }),
    )
    .await?;
    let snapshot = next_message(&mut socket).await?;
    if snapshot["type"] != "next" {
        bail!("expected the first snapshot, got {snapshot}");
    }
    Ok(socket)
}

/// The next protocol message, answering the protocol's pings on the way.
async fn next_message(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        let frame = socket
            .next()
            .await
            .ok_or_else(|| anyhow!("connection closed"))??;
        match frame {
            Message::Text(text) => {
                let message: Value = serde_json::from_str(text.as_str())?;
                if message["type"] == "ping" {
                    send(socket, json!({ "type": "pong" })).await?;
                } else if message["type"] != "pong" {
                    return Ok(message);
                }
            }
            Message::Close(frame) => bail!("closed by the server: {frame:?}"),
            _ => {}
        }
    }
}

async fn send(socket: &mut Socket, message: Value) -> anyhow::Result<()> {
    socket.send(Message::text(message.to_string())).await?;
    Ok(())
}

/// `http://host:port` to `ws://host:port/graphql`.
fn websocket_url(base_url: &str) -> String {
    let endpoint = graphql_endpoint(base_url);
    match endpoint.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => format!("ws://{endpoint}"),
    }
}

/// The resident memory of a process in kB (`VmRSS`), when a pid is given.
fn rss_kb(pid: Option<u32>) -> anyhow::Result<Option<u64>> {
    let Some(pid) = pid else { return Ok(None) };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?;
    Ok(Some(kb))
}

/// The CPU time (user and system) a process has used in ms, when a pid is given.
fn cpu_ms(pid: Option<u32>) -> anyhow::Result<Option<u64>> {
    let Some(pid) = pid else { return Ok(None) };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // the fields after the command name (which may hold spaces) are space-separated; utime and
    // stime are the 14th and 15th of the line, in clock ticks (100 a second on Linux)
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(index)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    Ok(Some((ticks(11)? + ticks(12)?) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        assert_eq!(
            websocket_url("http://127.0.0.1:8000"),
            "ws://127.0.0.1:8000/graphql"
        );
        assert_eq!(websocket_url("https://h/graphql"), "wss://h/graphql");
    }

    #[test]
    fn reads_own_rss() {
        let kb = rss_kb(Some(std::process::id())).unwrap().unwrap();
        assert!(kb > 0);
        assert_eq!(rss_kb(None).unwrap(), None);
    }

    #[test]
    fn reads_own_cpu_time() {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_ms(Some(std::process::id())).unwrap().unwrap() >= 10);
        assert_eq!(cpu_ms(None).unwrap(), None);
    }
}
