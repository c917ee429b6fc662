//! launchLoadTest, cancelLoadTest.

use async_graphql::{Context, ID, Object, Result};

use crate::{
    access::{Role, RoleGuard},
    graphql::{
        AppState,
        types::{history::TestHistory, parse_id},
    },
    lifecycle::Origin,
};

use super::launch_input::LaunchInput;

#[derive(Default)]
pub struct LaunchMutation;

#[Object]
impl LaunchMutation {
    /// Generates the k6 script, records the run and starts it on a runner. With
    /// `saveAsPlan`, the input is also saved as a new test plan (titled as the run) that the
    /// run belongs to, in the same transaction. Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn launch_load_test(
        &self,
        ctx: &Context<'_>,
        input: LaunchInput,
        #[graphql(default = false)] save_as_plan: bool,
    ) -> Result<TestHistory> {
        let lifecycle = &ctx.data_unchecked::<AppState>().lifecycle;
        let origin = if save_as_plan { Origin::SaveAsPlan } else { Origin::OneOff };
        Ok(TestHistory(lifecycle.launch_as(input.into_request()?, origin).await?))
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
