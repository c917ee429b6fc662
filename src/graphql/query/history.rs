//! Runs: the board, one run, the active ones.

use async_graphql::{Context, ID, InputObject, Object, Result};

use crate::{
    db::repo::{self, history::TestHistoryFilter as TestHistoryFilterRow},
    domain::TestStatus,
    graphql::{
        AppState,
        fast::read_cache,
        loaders::{ProjectById, TestHistoryById},
        types::{
            comparison::TestComparison,
            connection::{RUN_CURSOR, RunTotal, TestHistoryConnection, run_connection},
            db, decode_cursor,
            history::{SchedulerJob, TestHistory},
            loader, page_size, parse_id,
        },
    },
};

#[derive(Default)]
pub struct HistoryQuery;

/// Which runs to list.
#[derive(InputObject, Default)]
pub struct TestHistoryFilter {
    project_id: Option<ID>,
    status: Option<Vec<TestStatus>>,
    endpoint_id: Option<ID>,
    /// Runs of one saved test plan (any of its versions).
    plan_id: Option<ID>,
}

impl TestHistoryFilter {
    fn into_row(self) -> Result<TestHistoryFilterRow> {
        Ok(TestHistoryFilterRow {
            project_id: self.project_id.as_ref().map(|id| parse_id(id, "filter.projectId")).transpose()?,
            statuses: self.status,
            endpoint_id: self.endpoint_id.as_ref().map(|id| parse_id(id, "filter.endpointId")).transpose()?,
            plan_id: self.plan_id.as_ref().map(|id| parse_id(id, "filter.planId")).transpose()?,
        })
    }
}

#[Object]
impl HistoryQuery {
    /// Test runs, newest first, filtered and paged (Relay cursor connection).
    async fn test_histories(
        &self,
        ctx: &Context<'_>,
        filter: Option<TestHistoryFilter>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<TestHistoryConnection> {
        let filter = filter.unwrap_or_default().into_row()?;
        let first = page_size(first, 20)?;
        let before = after.as_deref().map(|c| decode_cursor(RUN_CURSOR, c)).transpose()?;
        // The count is independent of the page: both statements run side by side. A whole
        // project's count comes from the read cache, under the project row read beside the page.
        let counted = ctx.look_ahead().field("totalCount").exists();
        let whole_project = match &filter {
            TestHistoryFilterRow {
                project_id: Some(id),
                statuses: None,
                endpoint_id: None,
                plan_id: None,
            } if counted && read_cache::enabled(ctx) => Some(*id),
            _ => None,
        };
        let page = async { repo::history::page(db(ctx), &filter, first, before).await.map_err(Into::into) };
        let (page, total) = futures_util::future::try_join(page, async {
            if let Some(project_id) = whole_project {
                let project = loader(ctx).load_one(ProjectById(project_id)).await?;
                Ok(Some(project.map_or(RunTotal::Counted(0), RunTotal::Project)))
            } else if counted {
                Ok(Some(RunTotal::Counted(repo::history::count(db(ctx), &filter).await?)))
            } else {
                Ok::<_, async_graphql::Error>(None)
            }
        })
        .await?;
        let total = total.unwrap_or(RunTotal::Filter(filter));
        Ok(run_connection(page, before.is_some(), total))
    }

    async fn test_history(&self, ctx: &Context<'_>, id: ID) -> Result<Option<TestHistory>> {
        let id = parse_id(&id, "id")?;
        Ok(loader(ctx).load_one(TestHistoryById(id)).await?.map(TestHistory))
    }

    /// Side-by-side comparison of two finished runs, scenario by scenario.
    #[tracing::instrument(skip(self, ctx), fields(base_id = %base_id.as_str(), candidate_id = %candidate_id.as_str()))]
    async fn compare_test_histories(
        &self,
        ctx: &Context<'_>,
        base_id: ID,
        candidate_id: ID,
    ) -> Result<TestComparison> {
        let base_id = parse_id(&base_id, "baseId")?;
        let candidate_id = parse_id(&candidate_id, "candidateId")?;
        TestComparison::load(ctx, base_id, candidate_id).await
    }

    /// Runs that are pending or running now, on any runner.
    async fn scheduler_jobs(&self, ctx: &Context<'_>) -> Result<Vec<SchedulerJob>> {
        let state = ctx.data_unchecked::<AppState>();
        let warning_hours = state.settings.scheduler_job_warning_hours;
        let runs = repo::history::active(db(ctx)).await?;
        Ok(runs
            .into_iter()
            .map(|run| {
                let pods = state.lifecycle.instances(&run);
                SchedulerJob { run, warning_hours, pods }
            })
            .collect())
    }
}
