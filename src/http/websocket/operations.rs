//! The operations running on one socket: counted against the per-socket cap as the protocol
//! machine takes them, a `subscribe` past it refused with an `error` message.

use std::{
    borrow::Cow,
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
};

use async_graphql::http::WebSocketProtocols;
use futures_util::{StreamExt, future};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;

use super::{TOO_MANY_SUBSCRIPTIONS, close};

/// graphql-transport-ws: a `subscribe` whose id is already running.
const CLOSE_DUPLICATE_ID: u16 = 4409;

/// The operations running on one socket, counted as the protocol machine starts and ends
/// them, and the `subscribe` messages refused for the cap, waiting to be answered.
#[derive(Clone)]
pub(super) struct Operations {
    state: Arc<Mutex<OperationsState>>,
    pub(super) refusals: Arc<Notify>,
}

struct OperationsState {
    cap: usize,
    running: HashSet<String>,
    refused: VecDeque<String>,
    /// A graphql-transport-ws `subscribe` reused the id of a running operation: the protocol
    /// closes the socket with 4409 for that.
    duplicate: Option<String>,
}

/// The part of a client or server message that says what it is about.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

impl Operations {
    pub(super) fn new(cap: usize) -> Self {
        let state =
            OperationsState { cap, running: HashSet::new(), refused: VecDeque::new(), duplicate: None };
        Self { state: Arc::new(Mutex::new(state)), refusals: Arc::new(Notify::new()) }
    }

    /// The protocol machine's input: `queue`, with the operations counted as the machine
    /// takes each message (so the count is the machine's, whatever order messages cross in),
    /// and a `subscribe` past the cap held back and refused.
    pub(super) fn admit(
        self,
        mut queue: mpsc::Receiver<Vec<u8>>,
    ) -> impl futures_util::Stream<Item = Vec<u8>> {
        futures_util::stream::poll_fn(move |cx| queue.poll_recv(cx)).filter(move |message| {
            let Ok(envelope) = serde_json::from_slice::<Envelope>(message) else {
                // The machine answers what it cannot read.
                return future::ready(true);
            };
            let mut state = self.state.lock().expect("operations");
            let pass = match (envelope.kind.as_ref(), envelope.id) {
                ("subscribe", Some(id)) if state.running.contains(id.as_ref()) => {
                    state.duplicate = Some(id.into_owned());
                    self.refusals.notify_one();
                    false
                }
                ("subscribe" | "start", Some(id)) => {
                    // The legacy protocol's machine replaces an operation whose id is reused.
                    if state.running.contains(id.as_ref()) {
                        true
                    } else if state.running.len() < state.cap {
                        state.running.insert(id.into_owned());
                        true
                    } else {
                        state.refused.push_back(id.into_owned());
                        self.refusals.notify_one();
                        false
                    }
                }
                ("complete" | "stop", Some(id)) => {
                    state.running.remove(id.as_ref());
                    true
                }
                _ => true,
            };
            future::ready(pass)
        })
    }

    /// The machine has sent `complete` for `id`.
    pub(super) fn ended(&self, id: &str) {
        self.state.lock().expect("operations").running.remove(id);
    }

    /// An `error` message for each refused `subscribe`.
    pub(super) fn take_refusals(&self, protocol: WebSocketProtocols) -> Vec<Message> {
        let mut state = self.state.lock().expect("operations");
        let cap = state.cap;
        let mut answers: Vec<Message> = state
            .refused
            .drain(..)
            .map(|id| Message::text(too_many_operations(protocol, &id, cap)))
            .collect();
        if let Some(id) = state.duplicate.take() {
            answers.push(close(CLOSE_DUPLICATE_ID, format!("Subscriber for {id} already exists")));
        }
        answers
    }
}

/// graphql-transport-ws's `error` message (a list of errors) or the legacy protocol's (one).
fn too_many_operations(protocol: WebSocketProtocols, id: &str, cap: usize) -> String {
    let error = serde_json::json!({
        "message": format!(
            "this websocket already runs {cap} operations (WS_MAX_SUBSCRIPTIONS_PER_SOCKET): \
             complete one, or open another websocket"
        ),
        "extensions": { "code": TOO_MANY_SUBSCRIPTIONS },
    });
    let payload = match protocol {
        WebSocketProtocols::GraphQLWS => serde_json::Value::Array(vec![error]),
        WebSocketProtocols::SubscriptionsTransportWS => error,
    };
    serde_json::json!({ "type": "error", "id": id, "payload": payload }).to_string()
}

/// The id of the operation a server message completes.
pub(super) fn completed_operation(text: &str) -> Option<String> {
    // Events are nearly all the traffic: pass them without parsing their payload.
    if text.starts_with(r#"{"type":"next""#) || text.starts_with(r#"{"type":"data""#) {
        return None;
    }
    let envelope = serde_json::from_str::<Envelope>(text).ok()?;
    (envelope.kind == "complete").then(|| envelope.id.map(Cow::into_owned)).flatten()
}
