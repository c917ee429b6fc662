//! viewer, apiTokens.

use async_graphql::{Context, Object, Result};

use crate::{
    access::{Principal, Role, RoleGuard},
    db::repo,
    graphql::types::{
        access::{ApiToken, Viewer},
        db,
    },
};

#[derive(Default)]
pub struct AccessQuery;

#[Object]
impl AccessQuery {
    /// The caller: the token's name and role.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        Ok(ctx.data::<Principal>()?.into())
    }

    /// Every API token, revoked ones included (never their secrets). ADMIN only.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn api_tokens(&self, ctx: &Context<'_>) -> Result<Vec<ApiToken>> {
        Ok(repo::api_tokens::list(db(ctx)).await?.into_iter().map(ApiToken::from).collect())
    }
}
