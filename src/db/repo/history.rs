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
    pub plan_id: Option<i64>,
}

fn filtered(filter: &TestHistoryFilter) -> Select<test_history::Entity> {
    let mut select = test_history::Entity::find();
    if let Some(project_id) = filter.project_id {
        select = select.filter(test_history::Column::ProjectId.eq(project_id));
    }
    if let Some(statuses) = &filter.statuses {
        select = select.filter(test_history::Column::Status.is_in(statuses.iter().copied()));
    }
    if let Some(plan_id) = filter.plan_id {
        select = select.filter(test_history::Column::PlanId.eq(plan_id));
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

/// A table read by column index: `$columns`, the columns to select in order, and `$decode`,
/// which reads the table's model from [`Cells`] in that order — both from one list of
/// `Column field` pairs, followed by the summary columns (`domain::summary_metrics`) and k6's
/// counts that `test_history` and `scenario_history` share, so the two orders cannot drift apart.
macro_rules! summary_table_by_index {
    ([$columns:ident, $decode:ident, $table:ident: $($column:ident $field:ident,)*] $($name:ident $metric:ident $type:ty,)*) => {
        $crate::db::repo::history::summary_table_by_index!(@both $columns, $decode, $table:
            $($column $field,)*
            $($metric $name,)*
            K6Requests k6_requests, K6FailedRequests k6_failed_requests, K6Iterations k6_iterations,
            K6DataSent k6_data_sent, K6DataReceived k6_data_received,);
    };
    ($columns:ident, $decode:ident, $table:ident: $($column:ident $field:ident),* $(,)?) => {
        $crate::domain::summary_metrics!($crate::db::repo::history::summary_table_by_index,
            [$columns, $decode, $table: $($column $field,)*]);
    };
    (@both $columns:ident, $decode:ident, $table:ident: $($column:ident $field:ident,)*) => {
        const $columns: &[$table::Column] = &[$($table::Column::$column),*];

        fn $decode(
            cells: &mut $crate::db::repo::history::Cells<'_>,
        ) -> Result<$table::Model, sea_orm::DbErr> {
            // A struct expression evaluates its fields in source order: the order of `$columns`.
            Ok($table::Model { $($field: cells.next()?),* })
        }
    };
}
pub(crate) use summary_table_by_index;

summary_table_by_index!(RUN_COLUMNS, decode_run, test_history:
    Id id, ProjectId project_id, Title title, Description description, TargetTps target_tps,
    Status status, Runner runner, Parallelism parallelism, JobName job_name,
    K6ScriptFileName k6_script_file_name, K6Script k6_script, TestedAt tested_at,
    StartedAt started_at, CompletedAt completed_at, FailureReason failure_reason,
    IsCompleted is_completed, CreatedAt created_at, UpdatedAt updated_at,
    InstanceSamples instance_samples, ResultsComplete results_complete,
    OwnerInstance owner_instance, LeaseExpiresAt lease_expires_at, CancelRequestedAt cancel_requested_at,
    PlanId plan_id, PlanVersion plan_version, Regression regression, K6Processes k6_processes);

/// A `test_history` row selected as [`RUN_COLUMNS`].
struct RunByIndex(test_history::Model);

impl FromQueryResult for RunByIndex {
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        decode_run(&mut Cells::from(row, 0)).map(Self)
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
    let mut select = filtered(filter).select_only().columns(RUN_COLUMNS.iter().copied());
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
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
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
    super::project::runs_changed(&txn, run.project_id).await?;
    txn.commit().await?;
    Ok(())
}

/// Which of `ids` are runs in the database (the rest were deleted, or never were).
pub async fn existing_ids(
    db: &DatabaseConnection,
    ids: &[i64],
) -> AppResult<std::collections::BTreeSet<i64>> {
    let mut existing = std::collections::BTreeSet::new();
    // Bounded IN lists: SQLite allows 32,766 parameters, PostgreSQL 65,535.
    for chunk in ids.chunks(1000) {
        let found: Vec<i64> = test_history::Entity::find()
            .select_only()
            .column(test_history::Column::Id)
            .filter(test_history::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        existing.extend(found);
    }
    Ok(existing)
}
