//! A run's live snapshots over the server's websocket (`graphql-transport-ws`, the protocol
//! of the graphql-ws library): `ws://` as is, `wss://` with rustls and the same roots as the
//! HTTP client. The socket only adds figures to the progress display; the run's status and end
//! come from polling (see `follow`), so a socket that cannot open, is refused or dies costs
//! the figures and nothing else.

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::mpsc,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};
use url::Url;

use crate::tls::TrustedRoots;

/// How long connecting, the TLS and websocket handshakes and `connection_init` may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence after which the socket is taken for dead: the server sends a keep-alive every 12 s.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(30);

const METRICS: &str = "subscription($id: ID!) { testMetrics(testHistoryId: $id) {
    elapsedSeconds tps p95ResponseTime errorRate vus totalRequests final samplesLagging } }";

/// One `testMetrics` snapshot: the run over its last interval.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub elapsed_seconds: f64,
    pub tps: f64,
    pub p95_response_time: f64,
    /// Percent.
    pub error_rate: f64,
    pub vus: f64,
    pub total_requests: i64,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub samples_lagging: bool,
}

/// What the socket reports.
#[derive(Debug)]
pub enum SocketEvent {
    Snapshot(Snapshot),
    /// A snapshot the server could not make (InfluxDB unavailable); later ones may come.
    Unavailable(String),
    /// No more snapshots: the subscription completed, or the socket failed (why, in words).
    Ended(Option<String>),
}

/// Follows run `run_id`'s snapshots on the websocket of `endpoint` (the GraphQL URL, http or
/// https), sending them to `events` until the subscription ends; the last event is `Ended`.
pub async fn follow_metrics(
    endpoint: Url,
    token: String,
    roots: TrustedRoots,
    run_id: String,
    events: mpsc::Sender<SocketEvent>,
) {
    let failed = speak(&endpoint, &token, &roots, &run_id, &events).await.err();
    let _ = events.send(SocketEvent::Ended(failed)).await;
}

async fn speak(
    endpoint: &Url,
    token: &str,
    roots: &TrustedRoots,
    run_id: &str,
    events: &mpsc::Sender<SocketEvent>,
) -> Result<(), String> {
    let mut url = endpoint.clone();
    let secure = endpoint.scheme() == "https";
    url.set_scheme(if secure { "wss" } else { "ws" }).expect("http(s) becomes ws(s)");
    let host = url.host_str().ok_or("the server URL has no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("the server URL has no port")?;
    let tcp = tokio::time::timeout(OPEN_TIMEOUT, TcpStream::connect((host.trim_matches(['[', ']']), port)))
        .await
        .map_err(|_| format!("could not connect within {} s", OPEN_TIMEOUT.as_secs()))?
        .map_err(|err| format!("could not connect: {err}"))?;
    if secure {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(roots.client_config()));
        let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
            .map_err(|err| format!("{host}: {err}"))?;
        let tls = tokio::time::timeout(OPEN_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| "no TLS handshake in time".to_owned())?
            .map_err(|err| format!("TLS: {err}"))?;
        subscribe(url, tls, token, run_id, events).await
    } else {
        subscribe(url, tcp, token, run_id, events).await
    }
}

async fn subscribe<S: AsyncRead + AsyncWrite + Unpin>(
    url: Url,
    stream: S,
    token: &str,
    run_id: &str,
    events: &mpsc::Sender<SocketEvent>,
) -> Result<(), String> {
    let mut request = url.as_str().into_client_request().map_err(|err| err.to_string())?;
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    let opening = async {
        let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|err| format!("handshake: {err}"))?;
        send(
            &mut socket,
            json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }),
        )
        .await?;
        loop {
            let message = next_message(&mut socket).await?;
            match message["type"].as_str() {
                Some("connection_ack") => return Ok(socket),
                Some("ping") => send(&mut socket, json!({ "type": "pong" })).await?,
                _ => return Err(format!("unexpected answer to connection_init: {message}")),
            }
        }
    };
    let mut socket = tokio::time::timeout(OPEN_TIMEOUT, opening)
        .await
        .map_err(|_| format!("not open within {} s", OPEN_TIMEOUT.as_secs()))??;
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": { "query": METRICS, "variables": { "id": run_id } } }))
        .await?;
    loop {
        let message = tokio::time::timeout(SILENCE_TIMEOUT, next_message(&mut socket))
            .await
            .map_err(|_| format!("silent for {} s", SILENCE_TIMEOUT.as_secs()))??;
        let event = match message["type"].as_str() {
            Some("ping") => {
                send(&mut socket, json!({ "type": "pong" })).await?;
                continue;
            }
            Some("next") => {
                let payload = &message["payload"];
                match serde_json::from_value::<Snapshot>(payload["data"]["testMetrics"].clone()) {
                    Ok(snapshot) => SocketEvent::Snapshot(snapshot),
                    Err(_) => SocketEvent::Unavailable(
                        payload["errors"][0]["message"]
                            .as_str()
                            .unwrap_or("a snapshot without figures")
                            .to_owned(),
                    ),
                }
            }
            Some("complete") => {
                let _ = socket.close(None).await;
                return Ok(());
            }
            Some("error") => return Err(format!("the subscription was refused: {}", message["payload"])),
            _ => continue,
        };
        if events.send(event).await.is_err() {
            // Nobody follows any more.
            return Ok(());
        }
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocketStream<S>,
    message: Value,
) -> Result<(), String> {
    socket.send(Message::text(message.to_string())).await.map_err(|err| format!("send: {err}"))
}

/// The next protocol message (JSON text); a close frame or a broken socket is an error.
async fn next_message<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocketStream<S>,
) -> Result<Value, String> {
    loop {
        match socket.next().await {
            None => return Err("closed by the server".into()),
            Some(Err(err)) => return Err(err.to_string()),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text).map_err(|_| format!("not a protocol message: {text}"));
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    Some(frame) if u16::from(frame.code) == 4403 => {
                        "the server refused the token (4403)".into()
                    }
                    Some(frame) => {
                        format!("closed by the server ({} {})", u16::from(frame.code), frame.reason)
                    }
                    None => "closed by the server".into(),
                });
            }
            // Pings are answered by tungstenite itself.
            Some(Ok(_)) => {}
        }
    }
}
