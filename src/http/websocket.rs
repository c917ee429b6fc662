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
//! async-graphql's own `keepalive_timeout` is not used: it closes any client that sends
//! nothing for a while, which is what a healthy subscriber that only listens does.

use std::{
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_graphql::{
    Data,
    http::{WebSocket as GraphQLProtocolMachine, WebSocketProtocols, WsMessage},
};
use axum::{
    extract::ws::{CloseFrame, Message, WebSocket},
    http::{HeaderMap, header},
};
use futures_util::{SinkExt, StreamExt, future};
use tokio::{sync::broadcast::error::RecvError, time::Instant};

use crate::{
    access::{AuthError, Authenticator, Principal},
    graphql::{AppSchema, subscription::SubscriptionExecutor},
};

/// How a connection proves who it is.
pub struct Auth {
    pub authenticator: Authenticator,
    /// The upgrade request's `Authorization` header, used when `connection_init` carries none.
    pub upgrade_header: Option<String>,
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

/// The token of a `connection_init` payload: `authorization`, `Authorization`, or either inside
/// `headers` (some Apollo setups), as `Bearer …` or bare.
fn payload_authorization(payload: &serde_json::Value) -> Option<String> {
    let pick = |object: &serde_json::Value| {
        ["authorization", "Authorization"]
            .iter()
            .find_map(|key| object.get(*key)?.as_str().map(str::to_owned))
    };
    let value = pick(payload).or_else(|| payload.get("headers").and_then(pick))?;
    let value = value.trim();
    Some(if value.contains(' ') { value.to_owned() } else { format!("Bearer {value}") })
}

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
/// operation of the connection.
pub async fn serve(
    socket: WebSocket,
    schema: AppSchema,
    protocol: WebSocketProtocols,
    data: Data,
    auth: Auth,
) {
    let opened = Instant::now();
    let heard_at = Arc::new(AtomicU64::new(0));
    let (mut sink, incoming) = socket.split();
    let heard = heard_at.clone();
    let messages = incoming.take_while(|frame| future::ready(frame.is_ok())).filter_map(move |frame| {
        // Every frame counts as a sign of life, pongs included.
        heard.store(opened.elapsed().as_millis() as u64, Ordering::Relaxed);
        future::ready(match frame {
            Ok(Message::Text(text)) => Some(text.as_bytes().to_vec()),
            Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
            _ => None,
        })
    });
    let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let authenticator = auth.authenticator.clone();
    let mut revocations = authenticator.revocations();
    let mut hearing_revocations = true;
    let admitted: Arc<Mutex<Option<Admitted>>> = Arc::default();
    let on_init = {
        let refused = refused.clone();
        let admitted = admitted.clone();
        move |payload: serde_json::Value| async move {
            let authorization = payload_authorization(&payload).or(auth.upgrade_header);
            match auth.authenticator.authenticate(authorization.as_deref()).await {
                Ok(principal) => {
                    if let (Some(token_id), Some(authorization)) = (principal.token_id, authorization) {
                        *admitted.lock().expect("admitted token") =
                            Some(Admitted { token_id, authorization });
                    }
                    let mut data = Data::default();
                    data.insert::<Principal>(principal);
                    Ok(data)
                }
                Err(err) => {
                    refused.store(true, Ordering::Relaxed);
                    Err(async_graphql::Error::new(format!("Forbidden: {err}")))
                }
            }
        }
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
                    }
                    if refused.load(Ordering::Relaxed) {
                        // The legacy protocol says so with `connection_error`; then close as the new one does.
                        vec![Message::Text(text.into()), close(CLOSE_FORBIDDEN, "Forbidden".to_owned())]
                    } else {
                        vec![Message::Text(text.into())]
                    }
                }
                // async-graphql closes a refused `connection_init` with 1002; graphql-ws says 4403.
                Some(WsMessage::Close(_, reason)) if refused.load(Ordering::Relaxed) => {
                    vec![close(CLOSE_FORBIDDEN, truncate_reason(reason))]
                }
                Some(WsMessage::Close(code, reason)) => vec![close(code, reason)],
                None => break,
            },
            revoked = revocations.recv(), if acknowledged && hearing_revocations => {
                let ours = admitted.lock().expect("admitted token").clone();
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
                let silent = opened.elapsed().saturating_sub(Duration::from_millis(heard_at.load(Ordering::Relaxed)));
                let ours = admitted.lock().expect("admitted token").clone();
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
            // here, its subscriptions are not polled, and their feeds keep just the latest.
            if sink.send(message).await.is_err() {
                return;
            }
        }
        if closing {
            return;
        }
    }
    let _ = sink.close().await;
}

/// The stored token a connection was let in with.
#[derive(Clone)]
struct Admitted {
    token_id: i64,
    authorization: String,
}

/// Whether the token store now says no to the token a connection was let in with. A store
/// that cannot be read keeps the connection open: that is an outage, not a revocation.
async fn token_revoked(authenticator: &Authenticator, admitted: &Admitted) -> bool {
    matches!(authenticator.authenticate(Some(&admitted.authorization)).await, Err(AuthError::Invalid))
}

fn revoked_close() -> Vec<Message> {
    vec![close(CLOSE_FORBIDDEN, "Forbidden: the API token was revoked".to_owned())]
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

fn close(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
