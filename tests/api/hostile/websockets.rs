//! Hostile input: websockets, and the `Host` and `Origin` a request carries (issue 14, items 5
//! and 10). What a socket may send before and after `connection_init`, how many sockets one
//! address and one token may hold, how many operations one socket may run, which pages may
//! use `/graphql`, and which names `AUTH_MODE=none` answers to.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        client::IntoClientRequest,
        http::{HeaderName, HeaderValue, Request},
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use crate::{
    helpers::{ADMIN_TOKEN, TestApp, spawn_app, spawn_app_with},
    subscriptions::support::{PATIENCE, Protocol, connect, open_socket},
};

/// A status stream: it runs until it is completed, and needs nothing but the server.
const STATUS: &str = "subscription { testStatusChanged { status } }";

/// An upgrade request for `graphql-transport-ws` with some headers added or replaced.
fn upgrade_request(app: &TestApp, headers: &[(&'static str, &str)]) -> Request<()> {
    let mut request = format!("ws://{}/graphql", app.address).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    for (name, value) in headers {
        request.headers_mut().insert(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
    }
    request
}

/// The status and JSON body of an upgrade the server refused.
async fn refused_upgrade(request: Request<()>) -> (u16, Value) {
    let address = request.uri().authority().unwrap().to_string();
    let stream = TcpStream::connect(address).await.unwrap();
    match tokio_tungstenite::client_async(request, stream).await {
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            (response.status().as_u16(), serde_json::from_slice(body).unwrap_or(Value::Null))
        }
        Ok(_) => panic!("the upgrade was accepted"),
        Err(other) => panic!("the upgrade failed otherwise: {other}"),
    }
}

/// Whether the server switches protocols for `request`.
async fn upgrades(request: Request<()>) -> bool {
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => true,
        Err(tungstenite::Error::Http(_)) => false,
        Err(other) => panic!("the upgrade failed otherwise: {other}"),
    }
}

/// A TCP connection to the server from another loopback address (127.0.0.x).
async fn tcp_from(source: &str, app: &TestApp) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(app.address.parse().unwrap()).await.expect("connect from another loopback address")
}

/// The close frame the server ends `socket` with; other messages (keep-alives) are skipped,
/// for at most [`PATIENCE`] in all.
async fn close_frame<S>(socket: &mut WebSocketStream<S>) -> CloseFrame
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(frame))) => return frame.expect("a close frame with a code"),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// The next text message, whatever it is (the support client skips pongs).
async fn next_text<S>(socket: &mut WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(Message::Close(frame))) => panic!("closed by the server: {frame:?}"),
            Some(Ok(_)) => {}
            other => panic!("the connection ended: {other:?}"),
        }
    }
}

/// `/health` answers, and so does a query: the server is up and serving.
async fn assert_serving(app: &TestApp) {
    super::assert_healthy(app).await;
    app.graphql("{ __typename }", json!({})).await.data();
}

/// A text message of exactly `size` bytes: a `ping` whose payload is padding.
fn padded_ping(size: usize) -> String {
    let frame = r#"{"type":"ping","payload":{"pad":""}}"#;
    let pad = "x".repeat(size - frame.len());
    format!(r#"{{"type":"ping","payload":{{"pad":"{pad}"}}}}"#)
}

/// Retries `attempt` until it holds: a closed socket frees its place when the server's task for
/// it ends, a moment after the client sees the close.
async fn eventually(mut attempt: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !attempt().await {
        assert!(tokio::time::Instant::now() < deadline, "still refused after {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_socket_that_sends_too_much_before_connection_init_is_closed_with_1009() {
    let app = spawn_app().await;

    // Just under the budget (64 KiB, frame headers included): read and answered.
    let mut socket = open_socket(&app.address, Protocol::Modern).await;
    socket.socket.send(Message::text(padded_ping(60 * 1024))).await.unwrap();
    assert_eq!(next_text(&mut socket.socket).await, r#"{"type":"pong"}"#);
    let ack = socket.init_with(json!({ "authorization": format!("Bearer {ADMIN_TOKEN}") })).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");

    // Past it, in one message or in several, or in one frame that announces more: closed.
    for messages in [vec![100 * 1024], vec![40 * 1024, 40 * 1024], vec![3 * 1024 * 1024]] {
        let mut socket = open_socket(&app.address, Protocol::Modern).await;
        for size in &messages {
            // The server may close before the last byte: what matters is what it answers.
            let _ = socket.socket.send(Message::text(padded_ping(*size))).await;
        }
        let closed = close_frame(&mut socket.socket).await;
        assert_eq!(closed.code, CloseCode::Size, "{messages:?}: {closed:?}");
        assert!(closed.reason.contains("WS_MAX_BYTES_BEFORE_INIT"), "{closed:?}");
        assert_serving(&app).await;
    }
}

#[tokio::test]
async fn a_message_past_the_limit_after_connection_init_is_closed_with_1009() {
    let app = spawn_app_with(&[("WS_MAX_MESSAGE_BYTES", "262144")]).await;
    let mut socket = connect(&app.address, Protocol::Modern).await;

    // Larger than anything allowed before init, within the limit after it.
    socket.socket.send(Message::text(padded_ping(200 * 1024))).await.unwrap();
    assert_eq!(
        next_text(&mut socket.socket).await,
        r#"{"type":"pong"}"#,
        "large messages are served once let in"
    );

    let _ = socket.socket.send(Message::text(padded_ping(300 * 1024))).await;
    let closed = close_frame(&mut socket.socket).await;
    assert_eq!(closed.code, CloseCode::Size, "{closed:?}");
    assert!(closed.reason.contains("WS_MAX_MESSAGE_BYTES"), "{closed:?}");
    assert_serving(&app).await;
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_sockets() {
    let app = spawn_app_with(&[("WS_MAX_SOCKETS_PER_ADDRESS", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app.address, Protocol::Modern).await);
    }

    let (status, body) = refused_upgrade(upgrade_request(&app, &[])).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "TOO_MANY_SOCKETS", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("WS_MAX_SOCKETS_PER_ADDRESS"));

    // Another address is counted apart.
    let other = tcp_from("127.0.0.2", &app).await;
    let (mut socket, _) = tokio_tungstenite::client_async(upgrade_request(&app, &[]), other).await.unwrap();
    socket.close(None).await.unwrap();

    // A closed socket frees its place.
    held.pop().unwrap().socket.close(None).await.unwrap();
    eventually(async || upgrades(upgrade_request(&app, &[])).await).await;
    assert_serving(&app).await;
}

#[tokio::test]
async fn one_token_holds_at_most_its_share_of_sockets_and_the_next_is_closed_with_4429() {
    let app = spawn_app_with(&[("WS_MAX_SOCKETS_PER_TOKEN", "2")]).await;
    let created = app
        .graphql(
            "mutation { createApiToken(input: {name: \"wall screen\", role: VIEWER}) { token } }",
            json!({}),
        )
        .await;
    let token = created.data()["createApiToken"]["token"].as_str().unwrap().to_owned();
    let init = json!({ "authorization": format!("Bearer {token}") });

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut socket = open_socket(&app.address, Protocol::Modern).await;
        assert_eq!(socket.init_with(init.clone()).await["type"], "connection_ack");
        held.push(socket);
    }
    for protocol in [Protocol::Modern, Protocol::Legacy] {
        let mut third = open_socket(&app.address, protocol).await;
        third.send(json!({ "type": "connection_init", "payload": init })).await;
        let closed = close_frame(&mut third.socket).await;
        assert_eq!(u16::from(closed.code), 4429, "{protocol:?}: {closed:?}");
        assert!(closed.reason.contains("WS_MAX_SOCKETS_PER_TOKEN"), "{closed:?}");
    }

    // Another token is counted apart, and a closed socket frees its place.
    connect(&app.address, Protocol::Modern).await;
    held.pop().unwrap().socket.close(None).await.unwrap();
    eventually(async || {
        let mut socket = open_socket(&app.address, Protocol::Modern).await;
        socket.send(json!({ "type": "connection_init", "payload": init })).await;
        let answer = tokio::time::timeout(PATIENCE, socket.socket.next()).await.expect("an answer in time");
        matches!(answer, Some(Ok(Message::Text(text))) if text.contains("connection_ack"))
    })
    .await;
    assert_serving(&app).await;
}

#[tokio::test]
async fn a_socket_runs_at_most_its_share_of_operations_and_stays_usable() {
    let app = spawn_app_with(&[("WS_MAX_SUBSCRIPTIONS_PER_SOCKET", "2")]).await;

    for protocol in [Protocol::Modern, Protocol::Legacy] {
        let (start, stop) =
            if protocol == Protocol::Modern { ("subscribe", "complete") } else { ("start", "stop") };
        let mut socket = connect(&app.address, protocol).await;
        socket.subscribe("1", STATUS, json!({})).await;
        socket.subscribe("2", STATUS, json!({})).await;
        socket.subscribe("3", STATUS, json!({})).await;

        let refused = socket.next_message().await;
        assert_eq!(
            (&refused["type"], &refused["id"]),
            (&json!("error"), &json!("3")),
            "{protocol:?}: {refused}"
        );
        let error = if protocol == Protocol::Modern { &refused["payload"][0] } else { &refused["payload"] };
        assert_eq!(error["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS", "{refused}");
        assert!(error["message"].as_str().unwrap().contains("WS_MAX_SUBSCRIPTIONS_PER_SOCKET"));

        // Ending one makes room for one, not two.
        socket.send(json!({ "id": "1", "type": stop })).await;
        socket.send(json!({ "id": "4", "type": start, "payload": { "query": STATUS } })).await;
        socket.send(json!({ "id": "5", "type": start, "payload": { "query": STATUS } })).await;
        let refused = loop {
            let message = socket.next_message().await;
            if message["type"] != "complete" {
                break message;
            }
        };
        assert_eq!(
            (&refused["type"], &refused["id"]),
            (&json!("error"), &json!("5")),
            "{protocol:?}: {refused}"
        );

        // The socket still serves.
        socket.send(json!({ "id": "2", "type": stop })).await;
        socket.subscribe("q", "{ __typename }", json!({})).await;
        let payloads = socket.payloads_until_complete("q").await;
        assert_eq!(payloads, vec![json!({ "data": { "__typename": "Query" } })], "{protocol:?}");
    }
    assert_serving(&app).await;
}

#[tokio::test]
async fn a_subscribe_that_reuses_a_running_id_closes_the_socket_with_4409() {
    let app = spawn_app().await;
    let mut socket = connect(&app.address, Protocol::Modern).await;
    socket.subscribe("1", STATUS, json!({})).await;
    socket.subscribe("1", STATUS, json!({})).await;
    let frame = close_frame(&mut socket.socket).await;
    assert_eq!(u16::from(frame.code), 4409, "{frame:?}");
    assert!(frame.reason.contains("already exists"), "{frame:?}");
    assert_serving(&app).await;
}

#[tokio::test]
async fn a_foreign_origin_may_not_open_a_websocket_unless_it_is_listed() {
    let app = spawn_app_with(&[("ALLOWED_ORIGINS", "http://dash.example:3000")]).await;
    let own = format!("http://{}", app.address);

    for foreign in ["http://evil.example", "null", "http://dash.example:3001", "https://dash.example:3000"] {
        let (status, body) = refused_upgrade(upgrade_request(&app, &[("origin", foreign)])).await;
        assert_eq!(status, 403, "{foreign}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN_ORIGIN", "{foreign}: {body}");
    }
    assert!(upgrades(upgrade_request(&app, &[])).await, "no Origin: not a browser");
    assert!(upgrades(upgrade_request(&app, &[("origin", &own)])).await, "same origin");
    assert!(upgrades(upgrade_request(&app, &[("origin", "http://dash.example:3000")])).await, "listed");
    assert_serving(&app).await;
}

#[tokio::test]
async fn a_foreign_origin_may_not_post_to_graphql_in_either_auth_mode() {
    for mode in ["none", "token"] {
        let app = spawn_app_with(&[("AUTH_MODE", mode)]).await;
        let post = |origin: Option<String>| {
            let mut request =
                app.client.post(app.url("/graphql")).json(&json!({ "query": "{ __typename }" }));
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            request.send()
        };

        let refused = post(Some("http://evil.example".into())).await.unwrap();
        assert_eq!(refused.status(), 403, "{mode}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN_ORIGIN", "{mode}: {body}");

        assert_eq!(post(Some(format!("http://{}", app.address))).await.unwrap().status(), 200, "{mode}");
        assert_eq!(post(None).await.unwrap().status(), 200, "{mode}");
        assert_serving(&app).await;
    }
}

#[tokio::test]
async fn without_auth_only_addresses_localhost_and_listed_names_are_answered() {
    let app = spawn_app_with(&[("AUTH_MODE", "none"), ("ALLOWED_HOSTS", "mv.lan")]).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let post = |host: String| {
        app.client
            .post(app.url("/graphql"))
            .header("host", host)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
    };

    // DNS rebinding: a name the attacker points at 127.0.0.1. Nothing leaves loopback: the
    // request goes to the server's address, only its `Host` says otherwise.
    for host in
        ["evil.example".to_owned(), format!("evil.example:{port}"), format!("127.0.0.1.nip.io:{port}")]
    {
        let refused = post(host.clone()).await.unwrap();
        assert_eq!(refused.status(), 403, "{host}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN_HOST", "{host}: {body}");
    }
    let playground =
        app.client.get(app.url("/playground")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(playground.status(), 403);
    let (status, body) = refused_upgrade(upgrade_request(&app, &[("host", "evil.example")])).await;
    assert_eq!((status, &body["errors"][0]["extensions"]["code"]), (403, &json!("FORBIDDEN_HOST")), "{body}");

    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("mv.lan:{port}")] {
        assert_eq!(post(host.clone()).await.unwrap().status(), 200, "{host}");
    }
    for open in ["/health", "/ready"] {
        let answer = app.client.get(app.url(open)).header("host", "evil.example").send().await.unwrap();
        assert_eq!(answer.status(), 200, "{open} stays open");
    }
    assert_serving(&app).await;

    // With tokens a rebound page has no token to send: any name is answered.
    let app = spawn_app().await;
    let answer = app
        .client
        .post(app.url("/graphql"))
        .header("host", "evil.example")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}
