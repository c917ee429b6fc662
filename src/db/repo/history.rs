//! Run history: the board's filtered pages, active runs, deletes.

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, Select, TryGetable, sea_query::Query,
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

/// Reads a row's cells in select order, by index: SeaORM's by-name decoding formats and
/// hashes the column name for every cell.
pub(crate) struct Cells<'a> {
    row: &'a QueryResult,
    next: usize,
}

impl<'a> Cells<'a> {
    /// The cells of `row` from column `first` on.
    pub(crate) fn from(row: &'a QueryResult, first: usize) -> Self {
        Self { row, next: first }
    }

    pub(crate) fn next<T: TryGetable>(&mut self) -> Result<T, DbErr> {
        self.next += 1;
        self.row.try_get_by_index(self.next - 1)
    }
}

/// Every column of `test_history`, in the order [`RunByIndex`] decodes them.
const RUN_COLUMNS: [test_history::Column; 36] = {
    use test_history::Column as C;
    [
        C::Id,
        C::ProjectId,
        C::Title,
        C::Description,
        C::TargetTps,
        C::Status,
        C::Runner,
        C::Parallelism,
        C::JobName,
        C::K6ScriptFileName,
        C::K6Script,
        C::TestedAt,
        C::StartedAt,
        C::CompletedAt,
        C::FailureReason,
        C::IsCompleted,
        C::CreatedAt,
        C::UpdatedAt,
        C::TestDuration,
        C::MaxTps,
        C::MinTps,
        C::AvgTps,
        C::MaxResponseTime,
        C::MinResponseTime,
        C::AvgResponseTime,
        C::P50ResponseTime,
        C::P95ResponseTime,
        C::P99ResponseTime,
        C::MaxErrorRate,
        C::MinErrorRate,
        C::AvgErrorRate,
        C::MaxVus,
        C::MinVus,
        C::AvgVus,
        C::TotalRequests,
        C::FailedRequests,
    ]
};

/// A `test_history` row selected as [`RUN_COLUMNS`].
struct RunByIndex(test_history::Model);

impl FromQueryResult for RunByIndex {
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        let mut cells = Cells::from(row, 0);
        // Fields in the order of RUN_COLUMNS: a struct expression evaluates in source order.
        Ok(Self(test_history::Model {
            id: cells.next()?,
            project_id: cells.next()?,
            title: cells.next()?,
            description: cells.next()?,
            target_tps: cells.next()?,
            status: cells.next()?,
            runner: cells.next()?,
            parallelism: cells.next()?,
            job_name: cells.next()?,
            k6_script_file_name: cells.next()?,
            k6_script: cells.next()?,
            tested_at: cells.next()?,
            started_at: cells.next()?,
            completed_at: cells.next()?,
            failure_reason: cells.next()?,
            is_completed: cells.next()?,
            created_at: cells.next()?,
            updated_at: cells.next()?,
            test_duration: cells.next()?,
            max_tps: cells.next()?,
            min_tps: cells.next()?,
            avg_tps: cells.next()?,
            max_response_time: cells.next()?,
            min_response_time: cells.next()?,
            avg_response_time: cells.next()?,
            p50_response_time: cells.next()?,
            p95_response_time: cells.next()?,
            p99_response_time: cells.next()?,
            max_error_rate: cells.next()?,
            min_error_rate: cells.next()?,
            avg_error_rate: cells.next()?,
            max_vus: cells.next()?,
            min_vus: cells.next()?,
            avg_vus: cells.next()?,
            total_requests: cells.next()?,
            failed_requests: cells.next()?,
        }))
    }
}

/// One page of runs, newest first (ids grow with launch time), starting after `before_id`.
/// Every column, decoded by index.
#[tracing::instrument(skip(db))]
pub async fn page(
    db: &DatabaseConnection,
    filter: &TestHistoryFilter,
    first: u64,
    before_id: Option<i64>,
) -> AppResult<Page<test_history::Model>> {
    let mut select = filtered(filter).select_only().columns(RUN_COLUMNS);
    if let Some(before_id) = before_id {
        select = select.filter(test_history::Column::Id.lt(before_id));
    }
    let rows: Vec<RunByIndex> =
        select.order_by_desc(test_history::Column::Id).limit(first + 1).into_model().all(db).await?;
    Ok(Page::from_probe(rows.into_iter().map(|row| row.0).collect(), first))
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
