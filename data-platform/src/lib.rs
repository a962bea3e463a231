//! A mock of the external data platform, for tests and docker compose (the `data-platform`
//! binary; the API tests run it in-process).
//!
//! - `POST /events`: records an event (JSON with `eventId`, or the `Idempotency-Key` header) and
//!   answers 200, deduplicating by event id; or fails as told.
//! - `GET /events`: the unique events in arrival order, with counters (`calls`, `duplicates`,
//!   `overlaps`: a request for an event id while another for the same id was still in flight).
//! - `POST /control`: changes behaviour at run time: `{"failWith": 503}` (every request),
//!   `{"failWith": 500, "times": 3}` (the next three), `{"drop": true}` (connections are cut),
//!   `{"delayMs": 2000}` (slow answers), `{"recover": true}` (back to normal). Dropping cuts
//!   only the connections that deliver events (those opened with `POST /events`), so
//!   `/control` keeps answering.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// How the mock answers, as set through `/control`.
#[derive(Clone, Debug, Default)]
struct Behaviour {
    fail_with: Option<u16>,
    /// Failures left before answering normally again; `None`: until told otherwise.
    fail_times: Option<u32>,
    delay: Duration,
}

#[derive(Default)]
struct Recorded {
    events: Vec<Value>,
    seen: HashSet<String>,
    in_flight: HashMap<String, u32>,
    calls: u64,
    duplicates: u64,
    overlaps: u64,
}

#[derive(Clone, Default)]
struct Platform {
    behaviour: Arc<Mutex<Behaviour>>,
    recorded: Arc<Mutex<Recorded>>,
    dropping: Arc<AtomicBool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Control {
    fail_with: Option<u16>,
    times: Option<u32>,
    delay_ms: Option<u64>,
    drop: Option<bool>,
    recover: Option<bool>,
}

/// Serves the mock on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    let platform = Platform::default();
    let router = Router::new()
        .route("/events", post(receive).get(list))
        .route("/control", post(control))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(platform.clone());
    let listener = DroppingListener {
        inner: listener,
        dropping: platform.dropping.clone(),
    };
    axum::serve(listener, router).await
}

async fn receive(
    State(platform): State<Platform>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    let Json(event) = body;
    let id = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| event["eventId"].as_str().map(str::to_owned))
        .unwrap_or_default();
    {
        let mut recorded = platform.recorded.lock().await;
        recorded.calls += 1;
        let in_flight = recorded.in_flight.entry(id.clone()).or_default();
        *in_flight += 1;
        if *in_flight > 1 {
            recorded.overlaps += 1;
        }
    }
    let behaviour = {
        let mut behaviour = platform.behaviour.lock().await;
        let current = behaviour.clone();
        if let Some(left) = behaviour.fail_times.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                behaviour.fail_with = None;
                behaviour.fail_times = None;
            }
        }
        current
    };
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    let mut recorded = platform.recorded.lock().await;
    if let Some(count) = recorded.in_flight.get_mut(&id) {
        *count -= 1;
    }
    if let Some(status) = behaviour.fail_with {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, "failing as told").into_response();
    }
    if id.is_empty() {
        return (StatusCode::BAD_REQUEST, "an event needs an eventId").into_response();
    }
    if recorded.seen.insert(id) {
        recorded.events.push(event);
    } else {
        recorded.duplicates += 1;
    }
    (StatusCode::OK, Json(json!({ "accepted": true }))).into_response()
}

async fn list(State(platform): State<Platform>) -> Json<Value> {
    let recorded = platform.recorded.lock().await;
    Json(json!({
        "events": recorded.events,
        "calls": recorded.calls,
        "duplicates": recorded.duplicates,
        "overlaps": recorded.overlaps,
    }))
}

async fn control(State(platform): State<Platform>, Json(control): Json<Control>) -> Json<Value> {
    let mut behaviour = platform.behaviour.lock().await;
    if control.recover == Some(true) {
        *behaviour = Behaviour::default();
        platform.dropping.store(false, Ordering::SeqCst);
    }
    if let Some(status) = control.fail_with {
        behaviour.fail_with = Some(status);
        behaviour.fail_times = control.times;
    }
    if let Some(delay) = control.delay_ms {
        behaviour.delay = Duration::from_millis(delay);
    }
    if let Some(drop) = control.drop {
        platform.dropping.store(drop, Ordering::SeqCst);
    }
    Json(json!({
        "failWith": behaviour.fail_with,
        "times": behaviour.fail_times,
        "delayMs": behaviour.delay.as_millis() as u64,
        "drop": platform.dropping.load(Ordering::SeqCst),
    }))
}

/// Accepts connections; those that deliver events fail with a connection reset while `dropping`
/// is on, new and kept-alive ones alike.
struct DroppingListener {
    inner: TcpListener,
    dropping: Arc<AtomicBool>,
}

impl axum::serve::Listener for DroppingListener {
    type Io = DroppableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((stream, addr)) = self.inner.accept().await {
                let stream = DroppableStream {
                    inner: stream,
                    dropping: self.dropping.clone(),
                    delivers_events: None,
                };
                return (stream, addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

struct DroppableStream {
    inner: TcpStream,
    dropping: Arc<AtomicBool>,
    /// Known after the first bytes: whether the connection opened with `POST /events`.
    delivers_events: Option<bool>,
}

impl DroppableStream {
    fn cut(&self) -> bool {
        self.delivers_events == Some(true) && self.dropping.load(Ordering::SeqCst)
    }
}

impl AsyncRead for DroppableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.cut() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        let filled = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.delivers_events.is_none() && buf.filled().len() > filled {
            let first = &buf.filled()[filled..];
            self.delivers_events = Some(first.starts_with(b"POST /events"));
            if self.cut() {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
        }
        read
    }
}

impl AsyncWrite for DroppableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.cut() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
