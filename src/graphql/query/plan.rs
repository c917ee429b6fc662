//! Saved test plans.

use async_graphql::{Context, ID, Object, Result};

use crate::{
    db::repo,
    graphql::types::{db, parse_id, plan::TestPlan},
};

#[derive(Default)]
pub struct PlanQuery;

#[Object]
impl PlanQuery {
    /// Live test plans, of one project or of all, newest first.
    async fn test_plans(&self, ctx: &Context<'_>, project_id: Option<ID>) -> Result<Vec<TestPlan>> {
        let project_id = project_id.as_ref().map(|id| parse_id(id, "projectId")).transpose()?;
        Ok(repo::plans::list(db(ctx), project_id).await?.into_iter().map(TestPlan).collect())
    }

    /// One test plan, deleted ones included (their runs still point at them).
    async fn test_plan(&self, ctx: &Context<'_>, id: ID) -> Result<Option<TestPlan>> {
        let id = parse_id(&id, "id")?;
        Ok(repo::plans::get(db(ctx), id).await?.map(TestPlan))
    }
}
