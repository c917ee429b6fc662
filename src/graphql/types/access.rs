//! API tokens and the caller, as the API shows them (never a token's secret after creation).

use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    access::{Principal, Role},
    db::entities::api_token,
    graphql::types::to_id,
};

/// An API token's record. The token itself is shown once, by `createApiToken`.
#[derive(SimpleObject)]
pub struct ApiToken {
    pub id: ID,
    pub name: String,
    pub role: Role,
    /// The token's first characters (`mv_` and six more), to tell tokens apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// Updated at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set once the token no longer works.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_token::Model> for ApiToken {
    fn from(row: api_token::Model) -> Self {
        Self {
            id: to_id(row.id),
            name: row.name,
            role: row.role,
            prefix: row.token_prefix,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// A new token: `token` is the secret, shown only in this answer.
#[derive(SimpleObject)]
pub struct CreatedApiToken {
    /// Send it as `Authorization: Bearer <token>`. It cannot be shown again.
    pub token: String,
    pub api_token: ApiToken,
}

/// Who the server takes the caller to be.
#[derive(SimpleObject)]
pub struct Viewer {
    pub name: String,
    pub role: Role,
    /// The stored token's id; null for the bootstrap token and `AUTH_MODE=none`.
    pub token_id: Option<ID>,
}

impl From<&Principal> for Viewer {
    fn from(principal: &Principal) -> Self {
        Self { name: principal.name.clone(), role: principal.role, token_id: principal.token_id.map(to_id) }
    }
}
