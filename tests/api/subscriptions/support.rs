//! What the subscription tests share: a lab with InfluxDB, a target API and a server; a
//! GraphQL websocket client speaking either subprotocol; a cuttable path to InfluxDB.

use std::{collections::HashMap, time::Duration};

use futures_util::{SinkExt, StreamExt};
use metric_vault::metrics::test_influxd::InfluxServer;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::{
    helpers::{TestApp, spawn_app_with},
    target_api::project_with_target,
};

/// Long enough for anything the server owes us, on a busy machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A server with its own InfluxDB (reached directly, or through a [`Cuttable`] path) and
/// a target API imported into a project.
pub struct LiveLab {
    pub app: TestApp,
    pub project: String,
    influx: InfluxServer,
    cuttable: Option<Cuttable>,
    /// Endpoint ids by operationId.
    endpoints: HashMap<String, String>,
}

impl LiveLab {
    pub async fn start() -> Self {
        Self::build(false).await
    }

    /// The server (and k6) reach InfluxDB through a path the test can cut.
    pub async fn with_cuttable_influxdb() -> Self {
        Self::build(true).await
    }

    async fn build(cuttable: bool) -> Self {
        let influx = InfluxServer::start().await;
        let cuttable = if cuttable { Some(Cuttable::to_port(influx.port()).await) } else { None };
        let port = cuttable.as_ref().map_or(influx.port(), |path| path.port);
        let app = spawn_app_with(&[("INFLUXDB_PORT", &port.to_string())]).await;
        let (project, endpoints) = project_with_target(&app, "Live target").await;
        Self { app, project, influx, cuttable, endpoints }
    }

    pub fn endpoint(&self, operation: &str) -> &str {
        &self.endpoints[operation]
    }

    /// Launches a run of two scenarios ("Browse" and "Create") lasting `seconds`; returns its id.
    pub async fn launch(&self, title: &str, seconds: u32) -> String {
        let duration = format!("{seconds}s");
        let input = json!({
            "title": title,
            "scenarios": [
                { "name": "Browse", "endpointId": self.endpoint("getItem"), "executor": "CONSTANT_VUS",
                  "thinkTime": 0.05, "stages": [{ "duration": duration, "target": 2 }] },
                { "name": "Create", "endpointId": self.endpoint("createItem"), "executor": "CONSTANT_ARRIVAL_RATE",
                  "thinkTime": 0, "stages": [{ "duration": duration, "target": 10 }] }
            ]
        });
        self.app.launch(input).await
    }

    /// The run once it has ended, with its summary.
    pub async fn wait_until_finished(&self, id: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let run = self
                .app
                .graphql(
                    "query($id: ID!) { testHistory(id: $id) { status isCompleted resultsComplete missingSamples
                       summary { totalRequests } } }",
                    json!({ "id": id }),
                )
                .await
                .data()["testHistory"]
                .clone();
            if run["isCompleted"] == true {
                return run;
            }
            assert!(started.elapsed() < PATIENCE, "run {id} still not finished: {run}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every `/query` request InfluxDB has answered so far (its own `httpd` statistics).
    pub async fn influx_query_requests(&self) -> u64 {
        let series =
            self.influx.client("_internal").query("SHOW STATS FOR 'httpd'").await.expect("SHOW STATS");
        series[0].first_f64("queryReq").expect("queryReq") as u64
    }

    /// Cuts (or restores) the path to InfluxDB.
    pub fn cut_influxdb(&self, cut: bool) {
        self.cuttable.as_ref().expect("a lab with a cuttable InfluxDB").cut(cut);
    }
}

/// A TCP path to a port that the test can cut: while cut, open connections are dropped and
/// new ones refused, as when InfluxDB goes down.
pub struct Cuttable {
    pub port: u16,
    cut: watch::Sender<bool>,
}

impl Cuttable {
    pub async fn to_port(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    continue; // dropped: the client sees the connection reset
                }
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { port, cut }
    }

    pub fn cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

/// The two GraphQL websocket subprotocols.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Protocol {
    /// `graphql-transport-ws` (the graphql-ws library).
    Modern,
    /// `graphql-ws` (subscriptions-transport-ws).
    Legacy,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Self::Modern => "graphql-transport-ws",
            Self::Legacy => "graphql-ws",
        }
    }
}

/// A GraphQL websocket client, written against the protocols' specifications.
pub struct GraphQlSocket<S> {
    pub socket: WebSocketStream<S>,
    protocol: Protocol,
}

pub type TcpGraphQlSocket = GraphQlSocket<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens a websocket with `protocol`, without sending anything.
pub async fn open_socket(address: &str, protocol: Protocol) -> TcpGraphQlSocket {
    let mut request = format!("ws://{address}/graphql").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(protocol.name()));
    let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("websocket handshake");
    let chosen = response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
    assert_eq!(chosen, Some(protocol.name()), "the server speaks what was asked");
    GraphQlSocket { socket, protocol }
}

/// Opens a websocket and completes `connection_init`.
pub async fn connect(address: &str, protocol: Protocol) -> TcpGraphQlSocket {
    let mut socket = open_socket(address, protocol).await;
    socket.init().await;
    socket
}

/// Connects over `stream` (e.g. a socket with a tiny receive buffer) and completes `connection_init`.
pub async fn connect_over<S: AsyncRead + AsyncWrite + Unpin>(
    address: &str,
    stream: S,
    protocol: Protocol,
) -> GraphQlSocket<S> {
    let mut request = format!("ws://{address}/graphql").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(protocol.name()));
    let (socket, _) = tokio_tungstenite::client_async(request, stream).await.expect("websocket handshake");
    let mut socket = GraphQlSocket { socket, protocol };
    socket.init().await;
    socket
}

impl<S: AsyncRead + AsyncWrite + Unpin> GraphQlSocket<S> {
    async fn init(&mut self) {
        let token = format!("Bearer {}", crate::helpers::ADMIN_TOKEN);
        let ack = self.init_with(json!({ "authorization": token })).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }

    /// Sends `connection_init` with `payload` and returns the server's first answer.
    pub async fn init_with(&mut self, payload: Value) -> Value {
        self.send(json!({ "type": "connection_init", "payload": payload })).await;
        self.next_message().await
    }

    pub async fn send(&mut self, message: Value) {
        self.socket.send(Message::text(message.to_string())).await.expect("send");
    }

    /// Starts operation `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.protocol == Protocol::Modern { "subscribe" } else { "start" };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next GraphQL message, keep-alives answered and skipped; at most [`PATIENCE`]
    /// in all, however many keep-alives come meanwhile.
    pub async fn next_message(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a message in time")
                .expect("the socket is open")
                .expect("a readable frame");
            match frame {
                Message::Text(text) => {
                    let message: Value = serde_json::from_str(&text).expect("JSON");
                    match message["type"].as_str() {
                        Some("ping") => self.send(json!({ "type": "pong" })).await,
                        Some("ka" | "pong") => {}
                        _ => return message,
                    }
                }
                Message::Close(frame) => panic!("closed by the server: {frame:?}"),
                _ => {}
            }
        }
    }

    /// The payloads of operation `id` until the server completes it.
    pub async fn payloads_until_complete(&mut self, id: &str) -> Vec<Value> {
        let mut payloads = Vec::new();
        loop {
            let message = self.next_message().await;
            if message["id"] != id {
                continue;
            }
            match message["type"].as_str() {
                Some("next" | "data") => payloads.push(message["payload"].clone()),
                Some("complete") => return payloads,
                _ => panic!("unexpected message for {id}: {message}"),
            }
        }
    }

    /// The next payload of operation `id`.
    pub async fn next_payload(&mut self, id: &str) -> Value {
        loop {
            let message = self.next_message().await;
            if message["id"] == id {
                assert!(matches!(message["type"].as_str(), Some("next" | "data")), "{message}");
                return message["payload"].clone();
            }
        }
    }
}

/// Everything `testMetrics` has, for assertions.
pub const METRICS: &str = "subscription($id: ID!) { testMetrics(testHistoryId: $id) {
    testHistoryId time elapsedSeconds tps avgResponseTime p95ResponseTime errorRate vus totalRequests final
    scenarios { name tps avgResponseTime p95ResponseTime errorRate totalRequests } } }";
