//! launchLoadTest, cancelLoadTest.

use async_graphql::{Context, ID, Object, Result};

use crate::{
    access::{Role, RoleGuard},
    graphql::{
        AppState,
        types::{history::TestHistory, parse_id},
    },
};

use super::launch_input::LaunchInput;

#[derive(Default)]
pub struct LaunchMutation;

#[Object]
impl LaunchMutation {
    /// Generates the k6 script, records the run and starts it on a runner.
    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn launch_load_test(&self, ctx: &Context<'_>, input: LaunchInput) -> Result<TestHistory> {
        let lifecycle = &ctx.data_unchecked::<AppState>().lifecycle;
        Ok(TestHistory(lifecycle.launch(input.into_request()?).await?))
    }

    /// Stops an active run; what was measured so far is kept.
    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn cancel_load_test(&self, ctx: &Context<'_>, id: ID) -> Result<TestHistory> {
        let id = parse_id(&id, "id")?;
        let lifecycle = &ctx.data_unchecked::<AppState>().lifecycle;
        Ok(TestHistory(lifecycle.cancel(id).await?))
    }
}
