//! createApiToken, revokeApiToken.

use async_graphql::{Context, ID, InputObject, Object, Result};

use crate::{
    access::{Authenticator, Role, RoleGuard},
    db::repo,
    error::AppError,
    graphql::types::{
        access::{ApiToken, CreatedApiToken},
        db, parse_id,
    },
};

const NAME_MAX: usize = 100;

#[derive(Default)]
pub struct AccessMutation;

#[derive(InputObject)]
pub struct CreateApiTokenInput {
    /// Who or what uses the token, e.g. "ci-pipeline".
    name: String,
    role: Role,
}

#[Object]
impl AccessMutation {
    /// Creates an API token and shows it once. ADMIN only.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        input: CreateApiTokenInput,
    ) -> Result<CreatedApiToken> {
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > NAME_MAX {
            return Err(AppError::bad_input(
                "input.name",
                format!("name must be 1 to {NAME_MAX} characters"),
            )
            .into());
        }
        let (token, record) = ctx.data::<Authenticator>()?.issue(name, input.role).await?;
        tracing::info!(token_id = record.id, name, role = input.role.as_str(), "API token created");
        Ok(CreatedApiToken { token, api_token: record.into() })
    }

    /// Revokes an API token: it stops working at once on this server, within 30 s on other
    /// replicas; websockets opened with it are closed (4403) at once here, at their next
    /// keep-alive after that elsewhere. ADMIN only.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> Result<ApiToken> {
        let id = parse_id(&id, "id")?;
        let record = repo::api_tokens::revoke(db(ctx), id).await?;
        ctx.data::<Authenticator>()?.forget(id);
        tracing::info!(token_id = id, "API token revoked");
        Ok(record.into())
    }
}
