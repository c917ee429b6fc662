//! GraphQL over websocket: async-graphql's protocol machine (`graphql-transport-ws` and the
//! legacy `graphql-ws`), driven by a loop of our own that adds what a long-lived dashboard
//! connection needs and async-graphql does not do:
//!
//! - **connection-init timeout**: a socket that has not completed `connection_init` within
//!   [`CONNECTION_INIT_TIMEOUT`] is closed with 4408, as the graphql-ws protocol specifies;
//! - **keep-alive**: every [`KEEPALIVE_INTERVAL`] the server sends the protocol's own
//!   keep-alive (`ping` for graphql-transport-ws, `ka` for the legacy protocol) and a
//!   websocket ping frame, which every client answers with a pong frame;
//! - **dead peers**: a client silent for [`IDLE_LIMIT`] (not even a pong) is closed, so
//!   its subscriptions stop and their pollers can retire.
//!
//! - **authentication**: the token comes in `connection_init`'s payload
//!   (`{"authorization": "Bearer …"}`, what graphql-ws clients send), or else in the upgrade
//!   request's `Authorization` header; a missing or bad one closes the socket with 4403
//!   before any subscription can start. A token revoked while its socket is open closes it
//!   with 4403 too: at once on the replica that revoked it, and on others at the next
//!   keep-alive after their token cache has forgotten it.
//!
//! - **limits** (issue 14): before `connection_init` is acknowledged a socket may send
//!   [`SocketLimits::max_bytes_before_init`] bytes in all ([`budget`]), after it messages of
//!   up to [`SocketLimits::max_message_bytes`]; past either it is closed with 1009. A token
//!   holds at most [`SocketLimits::max_sockets_per_token`] sockets (the next is closed with
//!   4429 instead of its acknowledgement), and a socket runs at most
//!   [`SocketLimits::max_subscriptions_per_socket`] operations at once (the next gets an
//!   `error` message; the socket stays open). The per-address cap is checked before the
//!   upgrade, in `http.rs`.
//!
//! async-graphql's own `keepalive_timeout` is not used: it closes any client that sends
//! nothing for a while, which is what a healthy subscriber that only listens does.

mod admission;
mod auth;
mod budget;
mod operations;
mod upgrade;

use std::{
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use async_graphql::{
    Data,
    http::{WebSocket as GraphQLProtocolMachine, WebSocketProtocols, WsMessage},
};
use axum::http::{HeaderMap, header};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    sync::{broadcast::error::RecvError, mpsc},
    time::Instant,
};
use tokio_tungstenite::tungstenite::{
    Error as WsError, Message,
    error::CapacityError,
    protocol::{CloseFrame, WebSocketConfig},
};

pub use admission::{Admission, Admissions, TokenKey, client_key};
pub use auth::Auth;
pub use budget::InboundBudget;
pub use upgrade::{Socket, handshake};

use auth::{Admitted, admit_connection, revocable, revoked_close, token_revoked};
use operations::{Operations, completed_operation};

use crate::{
    config::ConnectionSettings,
    graphql::{AppSchema, subscription::SubscriptionExecutor},
};

/// What one socket may send and hold (from [`ConnectionSettings`]).
#[derive(Clone, Copy, Debug)]
pub struct SocketLimits {
    pub max_bytes_before_init: usize,
    pub max_message_bytes: usize,
    pub max_sockets_per_token: usize,
    pub max_subscriptions_per_socket: usize,
}

impl From<&ConnectionSettings> for SocketLimits {
    fn from(settings: &ConnectionSettings) -> Self {
        Self {
            max_bytes_before_init: settings.max_bytes_before_init,
            max_message_bytes: settings.max_message_bytes,
            max_sockets_per_token: settings.max_sockets_per_token,
            max_subscriptions_per_socket: settings.max_subscriptions_per_socket,
        }
    }
}

impl SocketLimits {
    /// tungstenite's settings: small buffers, and the limit after `connection_init` (the one
    /// before it is the [`InboundBudget`]).
    pub fn config(&self) -> WebSocketConfig {
        let mut config = WebSocketConfig::default();
        config.read_buffer_size = BUFFER_BYTES;
        config.write_buffer_size = BUFFER_BYTES;
        config.max_message_size = Some(self.max_message_bytes);
        config.max_frame_size = Some(self.max_message_bytes);
        config
    }
}

/// How long a client has to send `connection_init`.
pub const CONNECTION_INIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time between two keep-alives; well under the 30 s after which legacy clients give up
/// on a server that sends none.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(12);
/// A client that has sent nothing, not even a pong, for this long is gone.
pub const IDLE_LIMIT: Duration = Duration::from_secs(40);

/// Read and write buffers of one socket. GraphQL messages are small, and a dashboard
/// connection is mostly idle: the 128 KiB defaults would cost a quarter of a megabyte per
/// subscriber. (Larger messages still fit: the read buffer grows as a message needs.)
pub const BUFFER_BYTES: usize = 8 * 1024;

/// graphql-ws: "Connection initialisation timeout".
const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// The close code async-graphql uses for a keep-alive timeout.
const CLOSE_IDLE: u16 = 3008;
/// graphql-ws: "Forbidden", for a connection whose `connection_init` was refused.
const CLOSE_FORBIDDEN: u16 = 4403;
/// RFC 6455: "Message Too Big".
const CLOSE_TOO_BIG: u16 = 1009;
/// graphql-ws's "Too many …" code, for a token that already holds its share of sockets.
const CLOSE_TOO_MANY: u16 = 4429;
/// How long a socket closed for sending too much still has its input read (and dropped),
/// so that the client reads the close frame before the connection goes.
const LINGER: Duration = Duration::from_secs(2);
/// Messages read from the socket that the protocol machine has not taken yet; past this,
/// the socket is not read.
const FORWARD_QUEUE: usize = 16;
/// `extensions.code` of a subscription refused for the per-socket cap.
pub const TOO_MANY_SUBSCRIPTIONS: &str = "TOO_MANY_SUBSCRIPTIONS";

/// The first GraphQL subprotocol the client offers that the server speaks.
pub fn negotiate(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|offered| WebSocketProtocols::from_str(offered.trim()).ok())
}

/// Serves one GraphQL websocket until either side closes it. `data` is added to every
/// operation of the connection; `budget` is the one the socket's reads count against.
pub async fn serve(
    mut socket: Socket,
    budget: InboundBudget,
    schema: AppSchema,
    protocol: WebSocketProtocols,
    data: Data,
    auth: Auth,
    limits: SocketLimits,
) {
    let opened = Instant::now();
    let mut heard_at = opened;
    // What the socket sends goes to the protocol machine through this queue, past the
    // operation count; the machine reads it only while it has nothing else to do.
    let (to_machine, from_socket) = mpsc::channel::<Vec<u8>>(FORWARD_QUEUE);
    let operations = Operations::new(limits.max_subscriptions_per_socket);
    let messages = operations.clone().admit(from_socket);

    // The close code of a refused `connection_init` (4403 or 4429), 0 while none was refused.
    let refused = Arc::new(AtomicU16::new(0));
    let authenticator = auth.authenticator.clone();
    let mut revocations = authenticator.revocations();
    let mut hearing_revocations = true;
    let admitted: Arc<Mutex<Option<Admitted>>> = Arc::default();
    let on_init = {
        let (refused, admitted) = (refused.clone(), admitted.clone());
        move |payload| admit_connection(payload, auth, limits, refused, admitted)
    };
    let graphql = GraphQLProtocolMachine::new(SubscriptionExecutor(schema), messages, protocol)
        .connection_data(data)
        .on_connection_init(on_init);
    futures_util::pin_mut!(graphql);

    let init_deadline = tokio::time::sleep(CONNECTION_INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let mut keepalive = tokio::time::interval_at(opened + KEEPALIVE_INTERVAL, KEEPALIVE_INTERVAL);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut acknowledged = false;

    loop {
        let outgoing = tokio::select! {
            message = graphql.next() => match message {
                Some(WsMessage::Text(text)) => {
                    if !acknowledged && is_connection_ack(&text) {
                        acknowledged = true;
                        budget.lift();
                    }
                    if let Some(id) = completed_operation(&text) {
                        operations.ended(&id);
                    }
                    match refused.load(Ordering::Relaxed) {
                        0 => vec![Message::Text(text.into())],
                        // The legacy protocol says so with `connection_error`; then close as the new one does.
                        CLOSE_TOO_MANY => vec![
                            Message::Text(text.into()),
                            close(CLOSE_TOO_MANY, too_many_sockets(limits.max_sockets_per_token)),
                        ],
                        code => vec![Message::Text(text.into()), close(code, "Forbidden".to_owned())],
                    }
                }
                // async-graphql closes a refused `connection_init` with 1002; graphql-ws says 4403 (or 4429).
                Some(WsMessage::Close(_, reason)) if refused.load(Ordering::Relaxed) != 0 => {
                    vec![close(refused.load(Ordering::Relaxed), truncate_reason(reason))]
                }
                Some(WsMessage::Close(code, reason)) => vec![close(code, reason)],
                None => break,
            },
            frame = socket.next(), if to_machine.capacity() > 0 => {
                // Every frame counts as a sign of life, pongs included.
                heard_at = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => forward(&to_machine, text.as_bytes().to_vec()),
                    Some(Ok(Message::Binary(bytes))) => forward(&to_machine, bytes.to_vec()),
                    // tungstenite answers pings and close frames itself; after a close frame the
                    // next read ends the stream.
                    Some(Ok(_)) => Vec::new(),
                    Some(Err(err)) if budget.exceeded() || is_too_big(&err) => {
                        let reason = if acknowledged {
                            format!("a message larger than {} bytes (WS_MAX_MESSAGE_BYTES)", limits.max_message_bytes)
                        } else {
                            format!(
                                "more than {} bytes before connection_init (WS_MAX_BYTES_BEFORE_INIT)",
                                budget.limit()
                            )
                        };
                        if socket.send(close(CLOSE_TOO_BIG, reason)).await.is_ok() {
                            socket.get_mut().discard_for(LINGER).await;
                        }
                        return;
                    }
                    Some(Err(_)) | None => break,
                }
            }
            () = operations.refusals.notified() => operations.take_refusals(protocol),
            revoked = revocations.recv(), if acknowledged && hearing_revocations => {
                let ours = revocable(&admitted);
                match (revoked, ours) {
                    (Ok(id), Some(ours)) if id == ours.token_id => revoked_close(),
                    // Too many revocations at once to tell: ask the token store.
                    (Err(RecvError::Lagged(_)), Some(ours)) if token_revoked(&authenticator, &ours).await => {
                        revoked_close()
                    }
                    (Err(RecvError::Closed), _) => {
                        hearing_revocations = false;
                        Vec::new()
                    }
                    _ => Vec::new(),
                }
            }
            () = &mut init_deadline, if !acknowledged => {
                vec![close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout".to_owned())]
            }
            _ = keepalive.tick(), if acknowledged => {
                let silent = heard_at.elapsed();
                let ours = revocable(&admitted);
                if silent > IDLE_LIMIT {
                    vec![close(CLOSE_IDLE, "keep-alive timeout".to_owned())]
                } else if let Some(ours) = ours
                    && token_revoked(&authenticator, &ours).await
                {
                    // Revoked on another replica: its cache entry has expired by now or will soon.
                    revoked_close()
                } else {
                    vec![Message::Ping(Default::default()), Message::Text(keepalive_message(protocol).into())]
                }
            }
        };
        let closing = outgoing.iter().any(|message| matches!(message, Message::Close(_)));
        for message in outgoing {
            // A client that stops reading holds only its own connection: this loop waits
            // here, its subscriptions are not polled, its socket is not read, and their
            // feeds keep just the latest.
            if socket.send(message).await.is_err() {
                return;
            }
        }
        if closing {
            return;
        }
    }
    let _ = socket.close(None).await;
}

/// Hands a message to the protocol machine; the read that got it ran only while the queue
/// had room, so it has.
fn forward(to_machine: &mpsc::Sender<Vec<u8>>, message: Vec<u8>) -> Vec<Message> {
    if to_machine.try_send(message).is_err() {
        tracing::warn!("a websocket message found the protocol machine's queue full");
    }
    Vec::new()
}

fn is_too_big(err: &WsError) -> bool {
    matches!(err, WsError::Capacity(CapacityError::MessageTooLong { .. }))
}

fn too_many_sockets(cap: usize) -> String {
    format!("this API token already holds {cap} open websockets (WS_MAX_SOCKETS_PER_TOKEN)")
}

/// A close frame's reason must fit in 123 bytes.
fn truncate_reason(mut reason: String) -> String {
    if reason.len() > 120 {
        let mut end = 120;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

fn is_connection_ack(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|message| message["type"] == "connection_ack")
}

fn keepalive_message(protocol: WebSocketProtocols) -> &'static str {
    match protocol {
        WebSocketProtocols::GraphQLWS => r#"{"type":"ping"}"#,
        WebSocketProtocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
    }
}

/// A close frame; its reason cut to what a control frame may carry (RFC 6455 §5.5: 125 bytes
/// with the code), since async-graphql's reasons may quote what the client sent.
fn close(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame { code: code.into(), reason: truncate_reason(reason).into() }))
}

#[cfg(test)]
mod tests {
    use super::{auth::payload_authorization, *};

    #[test]
    fn close_frames_fit_a_control_frame_whatever_the_reason_quotes() {
        // The red team's case: async-graphql echoed a 60,000-byte message type in its reason.
        let Message::Close(Some(frame)) = close(4400, "x".repeat(60_000)) else { panic!("a close frame") };
        assert!(2 + frame.reason.len() <= 125, "{} bytes", frame.reason.len());
    }

    #[test]
    fn the_first_offered_graphql_subprotocol_wins() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value.parse().unwrap());
            headers
        };
        assert_eq!(negotiate(&headers("graphql-transport-ws")), Some(WebSocketProtocols::GraphQLWS));
        assert_eq!(
            negotiate(&headers("chat, graphql-ws, graphql-transport-ws")),
            Some(WebSocketProtocols::SubscriptionsTransportWS)
        );
        assert_eq!(negotiate(&headers("chat")), None);
        assert_eq!(negotiate(&HeaderMap::new()), None);
    }

    #[test]
    fn the_token_is_found_where_clients_put_it() {
        use serde_json::json;
        let bearer = Some("Bearer mv_x".to_owned());
        assert_eq!(payload_authorization(&json!({"authorization": "Bearer mv_x"})), bearer);
        assert_eq!(payload_authorization(&json!({"Authorization": "Bearer mv_x"})), bearer);
        assert_eq!(payload_authorization(&json!({"headers": {"Authorization": "Bearer mv_x"}})), bearer);
        assert_eq!(payload_authorization(&json!({"authorization": "mv_x"})), bearer);
        assert_eq!(payload_authorization(&json!({})), None);
        assert_eq!(payload_authorization(&json!({"authorization": 7})), None);
        assert_eq!(truncate_reason("é".repeat(100)).len(), 120);
    }

    #[test]
    fn only_a_connection_ack_acknowledges() {
        assert!(is_connection_ack(r#"{"type":"connection_ack"}"#));
        assert!(!is_connection_ack(r#"{"type":"next","id":"connection_ack"}"#));
        assert!(!is_connection_ack("not json"));
    }
}
