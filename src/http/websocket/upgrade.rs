//! The websocket handshake (RFC 6455 §4.2), done here rather than by axum's
//! `WebSocketUpgrade`, which keeps the connection's IO to itself: ours is wrapped in
//! [`Metered`] before tungstenite reads from it.

use axum::{
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};

use super::budget::{InboundBudget, Metered};
use crate::http::error_response;

/// A websocket as [`super::serve`] drives it.
pub type Socket = WebSocketStream<Metered<TokioIo<Upgraded>>>;

/// A valid upgrade request, not answered yet.
pub struct Handshake {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why an upgrade request was refused.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: &'static str,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = error_response(self.status, self.message, "BAD_REQUEST");
        if self.status == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}

/// Checks an HTTP/1.1 upgrade request as RFC 6455 asks and takes hold of its connection.
pub fn handshake(parts: &mut Parts) -> Result<Handshake, Refusal> {
    let refuse = |message| Err(Refusal { status: StatusCode::BAD_REQUEST, message });
    if parts.method != Method::GET {
        return refuse("a websocket upgrade is a GET request");
    }
    if !lists_token(&parts.headers, header::CONNECTION, "upgrade") {
        return refuse("a websocket upgrade needs `Connection: upgrade`");
    }
    if !lists_token(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err(Refusal {
            status: StatusCode::UPGRADE_REQUIRED,
            message: "only websocket version 13 is spoken",
        });
    }
    let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return refuse("a websocket upgrade needs a `Sec-WebSocket-Key`");
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return refuse("this connection cannot be upgraded");
    };
    Ok(Handshake { key, on_upgrade })
}

impl Handshake {
    /// Answers 101 with `protocol`, then runs `serve` on the websocket in a task of its own.
    pub fn accept<F, Fut>(
        self,
        protocol: &'static str,
        config: WebSocketConfig,
        budget: InboundBudget,
        serve: F,
    ) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            // A client that went away before the switch is no error of ours.
            let Ok(upgraded) = on_upgrade.await else { return };
            let io = Metered::new(TokioIo::new(upgraded), budget);
            serve(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await).await;
        });
        let mut response = (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol)),
            ],
        )
            .into_response();
        // Base64 is always a valid header value.
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            response.headers_mut().insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

/// Whether the comma-separated header lists `token` (any case).
fn lists_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}
