//! Who a connection is: the token its `connection_init` (or upgrade request) carries, its place
//! among that token's sockets, and whether the token has been revoked since.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU16, Ordering},
};

use async_graphql::Data;
use tokio_tungstenite::tungstenite::Message;

use super::{
    Admission, Admissions, CLOSE_FORBIDDEN, CLOSE_TOO_MANY, SocketLimits, TokenKey, close, too_many_sockets,
};
use crate::access::{AuthError, AuthMode, Authenticator, Principal};

/// How a connection proves who it is.
pub struct Auth {
    pub authenticator: Authenticator,
    /// The upgrade request's `Authorization` header, used when `connection_init` carries none.
    pub upgrade_header: Option<String>,
    /// Open sockets per API token.
    pub tokens: Admissions<TokenKey>,
}

/// The token of a `connection_init` payload: `authorization`, `Authorization`, or either inside
/// `headers` (some Apollo setups), as `Bearer …` or bare.
pub(super) fn payload_authorization(payload: &serde_json::Value) -> Option<String> {
    let pick = |object: &serde_json::Value| {
        ["authorization", "Authorization"]
            .iter()
            .find_map(|key| object.get(*key)?.as_str().map(str::to_owned))
    };
    let value = pick(payload).or_else(|| payload.get("headers").and_then(pick))?;
    let value = value.trim();
    Some(if value.contains(' ') { value.to_owned() } else { format!("Bearer {value}") })
}

/// Answers a `connection_init`: the connection's data when its token is good and has room for
/// one more socket; otherwise the refusal, its close code kept in `refused`.
pub(super) async fn admit_connection(
    payload: serde_json::Value,
    auth: Auth,
    limits: SocketLimits,
    refused: Arc<AtomicU16>,
    admitted: Arc<Mutex<Option<Admitted>>>,
) -> async_graphql::Result<Data> {
    let authorization = payload_authorization(&payload).or(auth.upgrade_header);
    let principal = match auth.authenticator.authenticate(authorization.as_deref()).await {
        Ok(principal) => principal,
        Err(err) => {
            refused.store(CLOSE_FORBIDDEN, Ordering::Relaxed);
            return Err(async_graphql::Error::new(format!("Forbidden: {err}")));
        }
    };
    let token = match (auth.authenticator.mode(), principal.token_id) {
        (AuthMode::None, _) => None,
        (AuthMode::Token, Some(id)) => Some(TokenKey::Stored(id)),
        (AuthMode::Token, None) => Some(TokenKey::Bootstrap),
    };
    let place = match token {
        None => None,
        Some(key) => match auth.tokens.admit(key, limits.max_sockets_per_token) {
            Some(place) => Some(place),
            None => {
                refused.store(CLOSE_TOO_MANY, Ordering::Relaxed);
                return Err(async_graphql::Error::new(too_many_sockets(limits.max_sockets_per_token)));
            }
        },
    };
    *admitted.lock().expect("admitted token") = Some(Admitted {
        token_id: principal.token_id,
        authorization: authorization.unwrap_or_default(),
        _place: place,
    });
    let mut data = Data::default();
    data.insert::<Principal>(principal);
    Ok(data)
}

/// The token a connection was let in with, and its place among the token's sockets.
pub(super) struct Admitted {
    /// None for the bootstrap token and `AUTH_MODE=none`, which cannot be revoked.
    token_id: Option<i64>,
    authorization: String,
    _place: Option<Admission<TokenKey>>,
}

/// What a revocation check needs: a stored token (the others cannot be revoked).
#[derive(Clone)]
pub(super) struct Revocable {
    pub(super) token_id: i64,
    pub(super) authorization: String,
}

pub(super) fn revocable(admitted: &Mutex<Option<Admitted>>) -> Option<Revocable> {
    let admitted = admitted.lock().expect("admitted token");
    let admitted = admitted.as_ref()?;
    Some(Revocable { token_id: admitted.token_id?, authorization: admitted.authorization.clone() })
}

/// Whether the token store now says no to the token a connection was let in with. A store
/// that cannot be read keeps the connection open: that is an outage, not a revocation.
pub(super) async fn token_revoked(authenticator: &Authenticator, admitted: &Revocable) -> bool {
    matches!(authenticator.authenticate(Some(&admitted.authorization)).await, Err(AuthError::Invalid))
}

pub(super) fn revoked_close() -> Vec<Message> {
    vec![close(CLOSE_FORBIDDEN, "Forbidden: the API token was revoked".to_owned())]
}
