//! `testStatusChanged`: every status change of runs, as the lifecycle publishes them.

use async_graphql::{Context, ID, Object, Result, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, stream};
use tokio::sync::broadcast::error::RecvError;

use crate::{
    db::repo,
    domain::{TestStatus, integrity::Integrity},
    graphql::{
        AppState,
        types::{db, history::TestHistory, integrity::RunIntegrity, parse_id},
    },
    lifecycle::events::StatusChange,
};

#[derive(Default)]
pub struct StatusSubscription;

#[Subscription]
impl StatusSubscription {
    /// Every status change of runs, optionally narrowed to one run or one project.
    #[tracing::instrument(skip(self, ctx))]
    async fn test_status_changed(
        &self,
        ctx: &Context<'_>,
        test_history_id: Option<ID>,
        project_id: Option<ID>,
    ) -> Result<impl Stream<Item = TestStatusEvent> + use<>> {
        let test_id = test_history_id.as_ref().map(|id| parse_id(id, "testHistoryId")).transpose()?;
        let project_id = project_id.as_ref().map(|id| parse_id(id, "projectId")).transpose()?;
        // Subscribe first: a change made while the filters are checked is not lost.
        let changes = ctx.data_unchecked::<AppState>().lifecycle.events().subscribe();
        if let Some(id) = test_id {
            repo::runs::get(db(ctx), id).await?;
        }
        if let Some(id) = project_id {
            repo::project::get(db(ctx), id).await?;
        }
        let wanted = move |change: &StatusChange| {
            test_id.is_none_or(|id| change.test_id == id)
                && project_id.is_none_or(|id| change.project_id == id)
        };
        Ok(stream::unfold(changes, move |mut changes| async move {
            loop {
                match changes.recv().await {
                    Ok(change) if wanted(&change) => return Some((TestStatusEvent(change), changes)),
                    Ok(_) => {}
                    // Fell more than the bus's buffer behind: skip rather than hold the publisher.
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "a slow subscriber skipped status changes")
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }))
    }
}

/// One status change of one run.
pub struct TestStatusEvent(StatusChange);

#[Object]
impl TestStatusEvent {
    /// The run as it is now, read afresh for every event (never from a cache of the connection).
    #[tracing::instrument(skip(self, ctx), fields(test_id = self.0.test_id))]
    async fn test_history(&self, ctx: &Context<'_>) -> Result<TestHistory> {
        Ok(TestHistory(repo::runs::get(db(ctx), self.0.test_id).await?))
    }
    /// None for the launch itself.
    async fn previous_status(&self) -> Option<TestStatus> {
        self.0.previous
    }
    async fn status(&self) -> TestStatus {
        self.0.status
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// Why, when it is worth saying: a failure reason, a cancellation, results filled in late.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
    /// Whether the run's results are exact as of this change (see `TestHistory.resultsComplete`):
    /// false until its end is recorded with every sample k6 reported stored.
    async fn results_complete(&self) -> bool {
        self.0.integrity.as_ref().is_some_and(Integrity::complete)
    }
    /// The run's reported-against-stored figures as of this change; null before its end.
    async fn integrity(&self) -> Option<RunIntegrity> {
        self.0.integrity.clone().map(RunIntegrity)
    }
}
