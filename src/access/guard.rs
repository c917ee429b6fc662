//! The role check on fields: `#[graphql(guard = "RoleGuard(Role::Operator)")]`.

use async_graphql::{Context, ErrorExtensions, Guard, Result};

use super::{Principal, Role};

/// Lets the field run only for callers with at least this role.
pub struct RoleGuard(pub Role);

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        match ctx.data_opt::<Principal>() {
            Some(principal) if principal.role >= self.0 => Ok(()),
            Some(principal) => Err(async_graphql::Error::new(format!(
                "this needs the {} role; the token `{}` has {}",
                self.0.as_str(),
                principal.name,
                principal.role.as_str()
            ))
            .extend_with(|_, ext| ext.set("code", "FORBIDDEN"))),
            // Every transport attaches a principal; a request without one was not authenticated.
            None => Err(async_graphql::Error::new("authentication required")
                .extend_with(|_, ext| ext.set("code", "UNAUTHENTICATED"))),
        }
    }
}
