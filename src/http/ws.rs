//! GraphQL subscriptions over WebSocket, protocol `graphql-transport-ws`, with its close codes
//! (which async-graphql's own handler does not all send):
//!
//! | code | when |
//! |---|---|
//! | 4400 | a message that is not valid JSON of the protocol, or a binary frame |
//! | 4401 | `subscribe` before the server acknowledged `connection_init` |
//! | 4403 | `connection_init` with wrong credentials |
//! | 4408 | no `connection_init` within the configured timeout |
//! | 4409 | `subscribe` with an id that is already running |
//! | 4429 | a second `connection_init` |
//!
//! Credentials come from the `connection_init` payload (`Authorization`, or `x-user-id` /
//! `x-role` in dev mode), else from the upgrade request's headers.
//!
//! A public subscription (`rankingChanged`, `stockChanged`) is served by the one execution that
//! every listener of the same document and variables shares ([`super::feeds`]); anything else
//! executes on its own.
//!
//! Limits: at most `WS_MAX_CONNECTIONS` connections (further upgrades get 503) and
//! `WS_MAX_SUBSCRIPTIONS` running operations per connection (further ones get an `error`
//! message); mutations count against the rate limits. When the server stops, every connection is
//! closed with 1001 (going away). A mutation is never aborted, not by `complete` nor by the
//! connection closing: its writes finish; only its answer is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_graphql::{Request, Response as GqlResponse};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::admission::{Carrier, admit};
use super::feeds::{self, FeedMessage, Listener};
use super::{HttpState, existing, request_id, viewer_from_headers};
use crate::auth::{Credentials, Viewer};
use crate::error::AppError;
use crate::graphql::top_level::{self, TopLevelCode};
use crate::graphql::{complete_error_codes, failed_before_execution};
use crate::infra::meters::{SOCKET_EXECUTIONS, SUBSCRIPTIONS_ACTIVE};
use crate::observability::RequestId;

pub const PROTOCOL: &str = "graphql-transport-ws";
/// Read buffer of one WebSocket connection (messages are small; a larger one grows as needed).
const WS_BUFFER_BYTES: usize = 4 * 1024;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {},
    Subscribe {
        id: String,
        payload: Box<Request>,
    },
    Complete {
        id: String,
    },
}

/// What a running operation sends back to the connection loop (responses boxed: the channel
/// allocates its slots in blocks, and an idle listener's connection should stay small).
enum Outbound {
    Next(String, Box<GqlResponse>),
    Error(String, Box<GqlResponse>),
    Complete(String),
    /// A message of a shared feed, serialized once for all its listeners.
    Feed(String, FeedMessage),
}

/// Accepts the upgrade when the client speaks `graphql-transport-ws` (or names no protocol).
pub fn upgrade(
    state: Arc<HttpState>,
    upgrade: WebSocketUpgrade,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Response {
    let offered: Vec<String> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    if !offered.is_empty() && !offered.iter().any(|p| p == PROTOCOL) {
        return (
            StatusCode::BAD_REQUEST,
            "unsupported WebSocket subprotocol: use graphql-transport-ws",
        )
            .into_response();
    }
    if !super::cors::permits_socket(&state.allowed_origins, headers) {
        return (
            StatusCode::FORBIDDEN,
            "this origin may not open WebSockets here (CORS_ALLOWED_ORIGINS)",
        )
            .into_response();
    }
    let open = state.open_sockets.load(Ordering::Relaxed);
    if open >= state.limits.ws_max_connections {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket connections; try again later",
        )
            .into_response();
    }
    let header_viewer = viewer_from_headers(&state.auth, headers).ok();
    let request_id = request_id(headers);
    // tungstenite's defaults (128 KiB read and write buffers, 64 MiB messages) cost ~170 KB of
    // memory per idle subscriber and let one client send huge frames
    let upgrade = upgrade
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(state.limits.max_body_bytes)
        .max_frame_size(state.limits.max_body_bytes);
    upgrade.protocols([PROTOCOL]).on_upgrade(move |socket| {
        let connections = state.connections.clone();
        let connection = Connection::new(state, header_viewer, peer, request_id);
        connections.track_future(connection.run(socket))
    })
}

struct Connection {
    state: Arc<HttpState>,
    /// The viewer of the upgrade request's headers (used when `connection_init` carries no
    /// credentials); `None` when those headers' credentials are wrong.
    header_viewer: Option<Viewer>,
    peer: Option<IpAddr>,
    /// The upgrade request's id, carried by every operation of the connection.
    request_id: RequestId,
    viewer: Option<Viewer>,
    running: HashMap<String, Running>,
}

/// A running operation. A mutation is never aborted (not by `complete`, not by the connection
/// closing): its writes run to commit or rollback, and only its answer is dropped.
struct Running {
    task: AbortHandle,
    mutation: bool,
}

impl Running {
    fn stop(self) {
        if !self.mutation {
            self.task.abort();
        }
    }
}

/// Why the server closes the connection.
struct Close(u16, &'static str);

impl Connection {
    fn new(
        state: Arc<HttpState>,
        header_viewer: Option<Viewer>,
        peer: Option<IpAddr>,
        request_id: RequestId,
    ) -> Self {
        Self {
            state,
            header_viewer,
            peer,
            request_id,
            viewer: None,
            running: HashMap::new(),
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        self.state.open_sockets.fetch_add(1, Ordering::Relaxed);
        let shutdown = self.state.shutdown.clone();
        let (outbound_tx, mut outbound_rx) = mpsc::channel::<Outbound>(64);
        let init_deadline = tokio::time::sleep(self.state.limits.ws_init_timeout);
        tokio::pin!(init_deadline);
        let close = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Some(Close(1001, "Server shutting down")),
                _ = &mut init_deadline, if self.viewer.is_none() => {
                    break Some(Close(4408, "Connection initialisation timeout"));
                }
                incoming = socket.recv() => {
                    let text = match incoming {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Binary(_))) => break Some(Close(4400, "Binary frames are not supported")),
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                    };
                    match self.handle(text.as_str(), &outbound_tx, &mut socket).await {
                        Ok(()) => {}
                        Err(close) => break close,
                    }
                }
                Some(outbound) = outbound_rx.recv() => {
                    let Some(frame) = self.frame(outbound) else { continue };
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        break None;
                    }
                }
            }
        };
        for (_, running) in self.running.drain() {
            running.stop();
        }
        self.state.open_sockets.fetch_sub(1, Ordering::Relaxed);
        if let Some(Close(code, reason)) = close {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
    }

    /// The text frame for an operation's message; `None` when the operation was completed (by
    /// the client) meanwhile.
    fn frame(&mut self, outbound: Outbound) -> Option<String> {
        let message = match outbound {
            Outbound::Next(id, response) => {
                self.running.contains_key(&id).then_some(())?;
                json!({ "type": "next", "id": id, "payload": response })
            }
            Outbound::Error(id, response) => {
                self.running.remove(&id);
                json!({ "type": "error", "id": id, "payload": response.errors })
            }
            Outbound::Complete(id) | Outbound::Feed(id, FeedMessage::Complete) => {
                self.running.remove(&id)?;
                json!({ "type": "complete", "id": id })
            }
            Outbound::Feed(id, FeedMessage::Next(payload)) => {
                self.running.contains_key(&id).then_some(())?;
                return Some(shared_frame("next", &id, &payload));
            }
            Outbound::Feed(id, FeedMessage::Error(errors)) => {
                self.running.remove(&id);
                return Some(shared_frame("error", &id, &errors));
            }
        };
        Some(message.to_string())
    }

    /// Handles one client message; `Err` closes the connection (with a code, or silently).
    async fn handle(
        &mut self,
        text: &str,
        outbound: &mpsc::Sender<Outbound>,
        socket: &mut WebSocket,
    ) -> Result<(), Option<Close>> {
        let message: ClientMessage = serde_json::from_str(text)
            .map_err(|_| Some(Close(4400, "Invalid message received")))?;
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.viewer.is_some() {
                    return Err(Some(Close(4429, "Too many initialisation requests")));
                }
                let viewer = self.authenticate(payload.as_ref()).await?;
                self.viewer = Some(viewer);
                send(socket, json!({ "type": "connection_ack" })).await
            }
            ClientMessage::Ping { payload } => {
                let mut pong = json!({ "type": "pong" });
                if let Some(payload) = payload {
                    pong["payload"] = payload;
                }
                send(socket, pong).await
            }
            ClientMessage::Pong {} => Ok(()),
            ClientMessage::Subscribe { id, payload } => {
                self.subscribe(id, *payload, outbound, socket).await
            }
            ClientMessage::Complete { id } => {
                if let Some(running) = self.running.remove(&id) {
                    running.stop();
                }
                Ok(())
            }
        }
    }

    /// Starts the operation of a `subscribe` message, or answers it with an `error` message.
    async fn subscribe(
        &mut self,
        id: String,
        payload: Request,
        outbound: &mpsc::Sender<Outbound>,
        socket: &mut WebSocket,
    ) -> Result<(), Option<Close>> {
        let Some(viewer) = self.viewer else {
            return Err(Some(Close(4401, "Unauthorized")));
        };
        if self.running.contains_key(&id) {
            return Err(Some(Close(4409, "Subscriber for this id already exists")));
        }
        if self.running.len() >= self.state.limits.ws_max_subscriptions {
            let error = top_level::error(
                TopLevelCode::RateLimited,
                "too many operations on this connection",
            );
            return send_error(socket, &id, error).await;
        }
        let admitted = admit(
            &self.state,
            vec![payload],
            viewer,
            self.peer,
            self.request_id.clone(),
            Carrier::Socket,
        );
        let admitted = match admitted.await {
            Ok(admitted) => admitted,
            Err(refused) => return send_error(socket, &id, refused.error()).await,
        };
        let mutation = admitted.writes;
        let (state, outbound, op_id) = (self.state.clone(), outbound.clone(), id.clone());
        let serving = admitted.serve_one(&self.state, |request| {
            operate(state, op_id, request, outbound)
        });
        let serving = match serving {
            Ok(serving) => serving,
            Err(refused) => return send_error(socket, &id, refused).await,
        };
        let task = tokio::spawn(serving);
        self.running.insert(
            id,
            Running {
                task: task.abort_handle(),
                mutation,
            },
        );
        Ok(())
    }

    /// The viewer for a `connection_init` payload (else the upgrade request's headers); wrong
    /// credentials, or credentials of a user that does not exist, close with 4403.
    async fn authenticate(&self, payload: Option<&Value>) -> Result<Viewer, Option<Close>> {
        // a number is taken as its digits (`{"x-user-id": 1}`); any other non-string value is
        // a wrong credential rather than none
        let mut malformed = false;
        let mut entry = |name: &str| {
            let value = payload.and_then(Value::as_object).and_then(|map| {
                map.iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value)
            })?;
            match value {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => {
                    malformed = true;
                    None
                }
            }
        };
        let (authorization, user_id, role) =
            (entry("authorization"), entry("x-user-id"), entry("x-role"));
        if malformed {
            return Err(Some(Close(4403, "Forbidden")));
        }
        let credentials = Credentials {
            authorization: authorization.as_deref(),
            user_id: user_id.as_deref(),
            role: role.as_deref(),
        };
        let has_credentials = credentials.authorization.is_some()
            || credentials.user_id.is_some()
            || credentials.role.is_some();
        let viewer = if has_credentials {
            self.state.auth.authenticate(&credentials)
        } else {
            self.header_viewer.ok_or(AppError::InvalidCredentials(
                "wrong credentials in the upgrade request",
            ))
        };
        let viewer = match viewer {
            Ok(viewer) => existing(&self.state, viewer).await,
            Err(err) => Err(err),
        };
        match viewer {
            Ok(viewer) => Ok(viewer),
            Err(AppError::Unavailable) => Err(Some(Close(1013, "Try again later"))),
            Err(_) => Err(Some(Close(4403, "Forbidden"))),
        }
    }
}

async fn send(socket: &mut WebSocket, message: Value) -> Result<(), Option<Close>> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .map_err(|_| None)
}

/// Answers the operation `id` with an `error` message holding `error`.
async fn send_error(
    socket: &mut WebSocket,
    id: &str,
    error: async_graphql::ServerError,
) -> Result<(), Option<Close>> {
    send(
        socket,
        json!({ "type": "error", "id": id, "payload": [error] }),
    )
    .await
}

/// Counts a running operation in `commerce_subscriptions_active` for as long as it lives (also when
/// aborted).
struct ActiveOperation;

impl ActiveOperation {
    fn start() -> Self {
        metrics::gauge!(SUBSCRIPTIONS_ACTIVE).increment(1.0);
        ActiveOperation
    }
}

impl Drop for ActiveOperation {
    fn drop(&mut self) {
        metrics::gauge!(SUBSCRIPTIONS_ACTIVE).decrement(1.0);
    }
}

/// A message whose payload is already serialized (by a shared feed).
fn shared_frame(kind: &str, id: &str, payload: &str) -> String {
    let id = serde_json::to_string(id).unwrap_or_default();
    format!(r#"{{"type":"{kind}","id":{id},"payload":{payload}}}"#)
}

/// Serves one operation: as a listener of its feed when it is a public subscription, else by
/// its own execution.
async fn operate(
    state: Arc<HttpState>,
    id: String,
    mut request: Request,
    outbound: mpsc::Sender<Outbound>,
) {
    let Some((key, catchup)) = feeds::shareable(&mut request) else {
        return execute(state, id, request, outbound).await;
    };
    let listener = state.feeds.listen(key, catchup, |channel| {
        let db = state.app.db.clone();
        let execution = feeds::execute_shared(state.clone(), request, channel);
        tokio::spawn(async move { db.serve(None, false, execution).await }).abort_handle()
    });
    listen(listener, id, outbound).await;
}

/// Forwards a shared feed's messages to one listener.
async fn listen(mut listener: Listener, id: String, outbound: mpsc::Sender<Outbound>) {
    let _active = ActiveOperation::start();
    while let Some(message) = listener.next().await {
        let last = !matches!(message, FeedMessage::Next(_));
        if outbound
            .send(Outbound::Feed(id.clone(), message))
            .await
            .is_err()
            || last
        {
            return;
        }
    }
    let _ = outbound.send(Outbound::Complete(id)).await;
}

/// Runs one operation and forwards its responses; a request that fails before execution gets
/// an `error` message, anything else `next` messages then `complete`.
async fn execute(
    state: Arc<HttpState>,
    id: String,
    request: Request,
    outbound: mpsc::Sender<Outbound>,
) {
    let _active = ActiveOperation::start();
    SOCKET_EXECUTIONS.increment("own", 1);
    let mut stream = state.schema.execute_stream(request);
    let mut first = true;
    while let Some(mut response) = stream.next().await {
        complete_error_codes(&mut response);
        if first && failed_before_execution(&response) {
            let _ = outbound.send(Outbound::Error(id, Box::new(response))).await;
            return;
        }
        first = false;
        if outbound
            .send(Outbound::Next(id.clone(), Box::new(response)))
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = outbound.send(Outbound::Complete(id)).await;
}
