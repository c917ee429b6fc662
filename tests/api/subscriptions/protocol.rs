//! The websocket protocol around subscriptions: init timeout and keep-alives.

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::support::{PATIENCE, Protocol, connect, open_socket};
use crate::helpers::spawn_app;

#[tokio::test]
async fn a_socket_that_never_sends_connection_init_is_closed_with_4408() {
    let app = spawn_app().await;

    for protocol in [Protocol::Modern, Protocol::Legacy] {
        let mut socket = open_socket(&app.address, protocol).await;
        let closed = loop {
            match tokio::time::timeout(PATIENCE, socket.socket.next()).await.expect("closed in time") {
                Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a code"),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(u16::from(closed.code), 4408, "{protocol:?}: {closed:?}");
        assert_eq!(closed.reason.as_str(), "Connection initialisation timeout");
    }
}

#[tokio::test]
async fn idle_connections_get_keep_alives_in_both_protocols() {
    let app = spawn_app().await;
    let mut modern = connect(&app.address, Protocol::Modern).await;
    let mut legacy = connect(&app.address, Protocol::Legacy).await;

    let (modern_first, legacy_first) =
        tokio::join!(first_text(&mut modern.socket), first_text(&mut legacy.socket));

    assert_eq!(modern_first.0, r#"{"type":"ping"}"#, "graphql-transport-ws keep-alive");
    assert_eq!(legacy_first.0, r#"{"type":"ka"}"#, "subscriptions-transport-ws keep-alive");
    assert!(modern_first.1 && legacy_first.1, "a websocket ping frame comes with each");
}

/// The first text message, and whether a websocket ping frame came before it.
async fn first_text<S>(socket: &mut S) -> (String, bool)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut pinged = false;
    loop {
        match tokio::time::timeout(PATIENCE, socket.next()).await.expect("a keep-alive in time") {
            Some(Ok(Message::Text(text))) => return (text.to_string(), pinged),
            Some(Ok(Message::Ping(_))) => pinged = true,
            Some(Ok(_)) => {}
            other => panic!("the connection ended: {other:?}"),
        }
    }
}
