//! deleteTestHistory.

use async_graphql::{Context, ID, Object, Result};

use crate::{
    access::{Role, RoleGuard},
    db::repo,
    graphql::{
        AppState,
        types::{db, parse_id, to_id},
    },
};

#[derive(Default)]
pub struct HistoryMutation;

#[Object]
impl HistoryMutation {
    /// Deletes a finished run with its scenarios and stages, and its samples in InfluxDB (later,
    /// when InfluxDB is unreachable now); an active run must be cancelled first.
    /// Needs the ADMIN role.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn delete_test_history(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let id = parse_id(&id, "id")?;
        repo::history::delete(db(ctx), id).await?;
        ctx.data_unchecked::<AppState>().lifecycle.forget_run_samples(id).await;
        Ok(to_id(id))
    }
}
