//! Run history: the board's filtered pages, active runs, deletes.

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select, sea_query::Query,
};

use super::Page;
use crate::{
    db::entities::{scenario_history, test_history},
    domain::TestStatus,
    error::{AppError, AppResult},
};

/// Which runs the board shows; parts combine with AND, statuses with OR.
#[derive(Debug, Default, Clone)]
pub struct TestHistoryFilter {
    pub project_id: Option<i64>,
    pub statuses: Option<Vec<TestStatus>>,
    pub endpoint_id: Option<i64>,
}

fn filtered(filter: &TestHistoryFilter) -> Select<test_history::Entity> {
    let mut select = test_history::Entity::find();
    if let Some(project_id) = filter.project_id {
        select = select.filter(test_history::Column::ProjectId.eq(project_id));
    }
    if let Some(statuses) = &filter.statuses {
        select = select.filter(test_history::Column::Status.is_in(statuses.iter().copied()));
    }
    if let Some(endpoint_id) = filter.endpoint_id {
        let runs_of_endpoint = Query::select()
            .column(scenario_history::Column::TestHistoryId)
            .from(scenario_history::Entity)
            .and_where(scenario_history::Column::EndpointId.eq(endpoint_id))
            .to_owned();
        select = select.filter(test_history::Column::Id.in_subquery(runs_of_endpoint));
    }
    select
}

/// One page of runs, newest first (ids grow with launch time), starting after `before_id`.
#[tracing::instrument(skip(db))]
pub async fn page(
    db: &DatabaseConnection,
    filter: &TestHistoryFilter,
    first: u64,
    before_id: Option<i64>,
) -> AppResult<Page<test_history::Model>> {
    let mut select = filtered(filter);
    if let Some(before_id) = before_id {
        select = select.filter(test_history::Column::Id.lt(before_id));
    }
    let rows = select.order_by_desc(test_history::Column::Id).limit(first + 1).all(db).await?;
    Ok(Page::from_probe(rows, first))
}

#[tracing::instrument(skip(db))]
pub async fn count(db: &DatabaseConnection, filter: &TestHistoryFilter) -> AppResult<u64> {
    Ok(filtered(filter).count(db).await?)
}

/// Runs that are pending or running, oldest first.
#[tracing::instrument(skip(db))]
pub async fn active(db: &DatabaseConnection) -> AppResult<Vec<test_history::Model>> {
    Ok(test_history::Entity::find()
        .filter(test_history::Column::Status.is_in([TestStatus::Pending, TestStatus::Running]))
        .order_by_asc(test_history::Column::Id)
        .all(db)
        .await?)
}

/// Deletes a finished run with its scenarios and stages. Active runs must be cancelled first.
#[tracing::instrument(skip(db))]
pub async fn delete(db: &DatabaseConnection, id: i64) -> AppResult<()> {
    let txn = crate::db::begin_write(db).await?;
    let run = test_history::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("TestHistory", id))?;
    if run.status.is_active() {
        return Err(AppError::Conflict(format!(
            "test run {id} is {:?}; cancel it before deleting it",
            run.status
        )));
    }
    test_history::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}
