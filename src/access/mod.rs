//! Who may do what, and where load may go.
//!
//! Callers present an API token (`Authorization: Bearer mv_…`). Each token has a [`Role`]:
//! `VIEWER` reads and subscribes, `OPERATOR` also imports, launches and cancels, `ADMIN` also
//! deletes and manages tokens. Tokens are 256 random bits; only their SHA-256 digest is
//! stored (see [`tokens`] for why a plain digest and not a password hash).

mod guard;
pub mod report_link;
pub mod targets;
pub mod tokens;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sea_orm::DatabaseConnection;

pub use crate::domain::Role;
pub use guard::RoleGuard;

use crate::{db::repo, error::AppResult};

/// Who is calling: attached to every request and websocket connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The stored token, or None for the bootstrap token and `AUTH_MODE=none`.
    pub token_id: Option<i64>,
    pub name: String,
    pub role: Role,
}

/// Whether callers must present a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request needs a valid token (the default).
    Token,
    /// Everyone is an admin: for a laptop, never for a network.
    None,
}

/// Why a caller was not let in; the text is shown to the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send `Authorization: Bearer <API token>`")]
    Missing,
    #[error("the Authorization header must be `Bearer <API token>`")]
    Malformed,
    #[error("the API token is not valid (unknown or revoked)")]
    Invalid,
    #[error("the token store cannot be read right now; try again")]
    Unavailable,
}

/// How long a token found in the database is trusted without asking again. A token revoked
/// on another replica stops working within this time; on the replica that revoked it, at once.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(30);
/// `last_used_at` is written at most this often per token.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

struct Cached {
    principal: Principal,
    checked_at: Instant,
    touched_at: Option<Instant>,
}

/// Checks tokens: the bootstrap token from the environment, then the database (cached).
#[derive(Clone)]
pub struct Authenticator {
    mode: AuthMode,
    db: DatabaseConnection,
    /// Digest of `METRIC_VAULT_ADMIN_TOKEN`.
    bootstrap: Option<[u8; 32]>,
    cache: Arc<Mutex<HashMap<[u8; 32], Cached>>>,
    /// Ids of tokens revoked on this replica, for the open websockets that were let in by one.
    revoked: tokio::sync::broadcast::Sender<i64>,
}

/// How many revocations an open websocket may fall behind before it re-checks its token.
const REVOCATIONS_BUFFERED: usize = 16;

impl Authenticator {
    pub fn new(mode: AuthMode, db: DatabaseConnection, bootstrap_token: Option<&str>) -> Self {
        Self {
            mode,
            db,
            bootstrap: bootstrap_token.map(tokens::digest),
            cache: Arc::new(Mutex::new(HashMap::new())),
            revoked: tokio::sync::broadcast::channel(REVOCATIONS_BUFFERED).0,
        }
    }

    /// The ids of tokens revoked on this replica from now on.
    pub fn revocations(&self) -> tokio::sync::broadcast::Receiver<i64> {
        self.revoked.subscribe()
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The caller behind an `Authorization` value (`Bearer …`), or why there is none.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        if self.mode == AuthMode::None {
            return Ok(Principal {
                token_id: None,
                name: "anonymous (AUTH_MODE=none)".into(),
                role: Role::Admin,
            });
        }
        let header = authorization.map(str::trim).filter(|h| !h.is_empty()).ok_or(AuthError::Missing)?;
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        self.check_token(token.trim()).await
    }

    async fn check_token(&self, token: &str) -> Result<Principal, AuthError> {
        let digest = tokens::digest(token);
        if self.bootstrap.is_some_and(|b| tokens::same_digest(&b, &digest)) {
            return Ok(Principal { token_id: None, name: "bootstrap admin".into(), role: Role::Admin });
        }
        if let Some(principal) = self.cached(&digest) {
            return Ok(principal);
        }
        let found = repo::api_tokens::find_live(&self.db, &tokens::hex(&digest)).await.map_err(|err| {
            tracing::error!(error = ?err, "reading API tokens failed");
            AuthError::Unavailable
        })?;
        let token = found.ok_or(AuthError::Invalid)?;
        let principal = Principal { token_id: Some(token.id), name: token.name, role: token.role };
        let now = Instant::now();
        self.cache
            .lock()
            .expect("token cache")
            .insert(digest, Cached { principal: principal.clone(), checked_at: now, touched_at: None });
        self.touch(&digest, token.id);
        Ok(principal)
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Principal> {
        let mut cache = self.cache.lock().expect("token cache");
        let entry = cache.get(digest)?;
        if entry.checked_at.elapsed() > TOKEN_CACHE_TTL {
            cache.remove(digest);
            return None;
        }
        let principal = entry.principal.clone();
        drop(cache);
        if let Some(id) = principal.token_id {
            self.touch(digest, id);
        }
        Some(principal)
    }

    /// Writes `last_used_at` in the background, at most once a minute per token.
    fn touch(&self, digest: &[u8; 32], id: i64) {
        {
            let mut cache = self.cache.lock().expect("token cache");
            let Some(entry) = cache.get_mut(digest) else { return };
            if entry.touched_at.is_some_and(|at| at.elapsed() < TOUCH_EVERY) {
                return;
            }
            entry.touched_at = Some(Instant::now());
        }
        let db = self.db.clone();
        tokio::spawn(async move {
            if let Err(err) = repo::api_tokens::touch(&db, id, chrono::Utc::now()).await {
                tracing::warn!(error = ?err, token_id = id, "could not record a token's last use");
            }
        });
    }

    /// Forgets a revoked token at once and tells the websockets it opened to close (other
    /// replicas forget it within the cache's lifetime; their websockets re-check at keep-alive).
    pub fn forget(&self, token_id: i64) {
        self.cache.lock().expect("token cache").retain(|_, c| c.principal.token_id != Some(token_id));
        // Nobody listening (no open websocket) is no error.
        let _ = self.revoked.send(token_id);
    }

    /// Creates a token; returns it (shown once) with its stored record.
    pub async fn issue(
        &self,
        name: &str,
        role: Role,
    ) -> AppResult<(String, crate::db::entities::api_token::Model)> {
        issue_token(&self.db, name, role).await
    }
}

/// Creates a token in `db` (also used by the `metric-vault token create` command).
pub async fn issue_token(
    db: &DatabaseConnection,
    name: &str,
    role: Role,
) -> AppResult<(String, crate::db::entities::api_token::Model)> {
    let token = tokens::generate();
    let record = repo::api_tokens::create(
        db,
        name,
        role,
        tokens::hex(&tokens::digest(&token)),
        tokens::prefix(&token),
    )
    .await?;
    Ok((token, record))
}
