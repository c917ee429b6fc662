//! Saved test plans: their versions (never changed once written), soft deletes, and the hold
//! a launch takes on a plan so that a delete cannot slip in between.
//!
//! A plan's title is unique among its project's live plans (a partial unique index backs
//! the friendly check here). An edit adds a version with a conditional update of the plan's
//! `current_version`, so two concurrent edits cannot both become version N+1.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set, sea_query::Expr,
};

use crate::{
    db::entities::{test_history, test_plan, test_plan_version},
    domain::TestStatus,
    error::{AppError, AppResult},
};

/// The plan a new run is linked to.
#[derive(Clone, Debug, Default)]
pub enum PlanLink {
    /// A one-off run.
    #[default]
    None,
    /// A version of a saved plan, which must still be live when the run is recorded; when
    /// `exclusive` (a schedule's launch), also without an active run.
    Version { plan_id: i64, version: i32, exclusive: bool },
    /// Save the launch input as a new plan (version 1) in the run's transaction.
    Save { title: String, definition: String },
}

/// Records a new plan with its first version, in the caller's transaction.
pub async fn insert<C: ConnectionTrait>(
    db: &C,
    project_id: i64,
    title: &str,
    definition: &str,
) -> AppResult<test_plan::Model> {
    refuse_taken_title(db, project_id, title, None).await?;
    let now = Utc::now();
    let plan = test_plan::ActiveModel {
        project_id: Set(project_id),
        title: Set(title.to_owned()),
        current_version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        baseline_run_id: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|err| title_taken_on_race(err, title))?;
    insert_version(db, plan.id, 1, definition).await?;
    Ok(plan)
}

/// Saves a new plan.
pub async fn create(
    db: &DatabaseConnection,
    project_id: i64,
    title: &str,
    definition: &str,
) -> AppResult<test_plan::Model> {
    let txn = crate::db::begin_write(db).await?;
    let plan = insert(&txn, project_id, title, definition).await?;
    txn.commit().await?;
    Ok(plan)
}

/// Adds a version to a live plan. `expected_version`, when given, must be the plan's current
/// version (an editor's optimistic lock); a plan cannot move to another project.
pub async fn update(
    db: &DatabaseConnection,
    id: i64,
    expected_version: Option<i32>,
    project_id: i64,
    title: &str,
    definition: &str,
) -> AppResult<test_plan::Model> {
    let txn = crate::db::begin_write(db).await?;
    let plan = live(&txn, id).await?;
    if plan.project_id != project_id {
        return Err(AppError::bad_input(
            "input.scenarios",
            format!("test plan {id} belongs to project {}; its scenarios must stay in it", plan.project_id),
        ));
    }
    if let Some(expected) = expected_version
        && expected != plan.current_version
    {
        return Err(AppError::Conflict(format!(
            "test plan {id} is at version {}, not {expected}: someone else edited it; reload it and edit again",
            plan.current_version
        )));
    }
    refuse_taken_title(&txn, project_id, title, Some(id)).await?;
    let next = plan.current_version + 1;
    let moved = test_plan::Entity::update_many()
        .col_expr(test_plan::Column::CurrentVersion, Expr::value(next))
        .col_expr(test_plan::Column::Title, Expr::value(title))
        .col_expr(test_plan::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(test_plan::Column::Id.eq(id))
        .filter(test_plan::Column::CurrentVersion.eq(plan.current_version))
        .filter(test_plan::Column::DeletedAt.is_null())
        .exec(&txn)
        .await
        .map_err(|err| title_taken_on_race(err, title))?;
    if moved.rows_affected != 1 {
        return Err(AppError::Conflict(format!("test plan {id} was changed at the same time; try again")));
    }
    insert_version(&txn, id, next, definition).await?;
    let plan = live(&txn, id).await?;
    txn.commit().await?;
    Ok(plan)
}

/// Marks a plan deleted, with its schedules; refused while a run of it is active. Its runs
/// keep the versions they ran.
pub async fn delete(db: &DatabaseConnection, id: i64) -> AppResult<()> {
    let txn = crate::db::begin_write(db).await?;
    // Holding the row first: a launch that holds it commits before the check below reads.
    hold_live(&txn, id).await?;
    if let Some(run) = active_run(&txn, id).await? {
        return Err(AppError::Conflict(format!(
            "test plan {id} has an active run ({run}); cancel it or wait for it to end before deleting the plan"
        )));
    }
    test_plan::Entity::update_many()
        .col_expr(test_plan::Column::DeletedAt, Expr::value(Utc::now()))
        .filter(test_plan::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    super::schedules::delete_of_plan(&txn, id).await?;
    txn.commit().await?;
    Ok(())
}

/// Takes a write hold on a live plan's row for the rest of the transaction (the launch of a
/// run of it); `NOT_FOUND` when it does not exist or was deleted.
pub async fn hold_live<C: ConnectionTrait>(db: &C, id: i64) -> AppResult<()> {
    let held = test_plan::Entity::update_many()
        .col_expr(test_plan::Column::CurrentVersion, Expr::col(test_plan::Column::CurrentVersion))
        .filter(test_plan::Column::Id.eq(id))
        .filter(test_plan::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    if held.rows_affected == 0 {
        return Err(AppError::not_found("TestPlan", id));
    }
    Ok(())
}

/// A live plan, or `NOT_FOUND`.
pub async fn live<C: ConnectionTrait>(db: &C, id: i64) -> AppResult<test_plan::Model> {
    test_plan::Entity::find_by_id(id)
        .filter(test_plan::Column::DeletedAt.is_null())
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("TestPlan", id))
}

/// A plan, deleted or not.
pub async fn get(db: &DatabaseConnection, id: i64) -> AppResult<Option<test_plan::Model>> {
    Ok(test_plan::Entity::find_by_id(id).one(db).await?)
}

/// Plans by id, deleted ones included (for runs that point at them).
pub async fn by_ids(db: &DatabaseConnection, ids: &[i64]) -> AppResult<Vec<test_plan::Model>> {
    Ok(test_plan::Entity::find().filter(test_plan::Column::Id.is_in(ids.iter().copied())).all(db).await?)
}

/// Live plans, of one project or of all, newest first.
pub async fn list(db: &DatabaseConnection, project_id: Option<i64>) -> AppResult<Vec<test_plan::Model>> {
    let mut select = test_plan::Entity::find().filter(test_plan::Column::DeletedAt.is_null());
    if let Some(project_id) = project_id {
        select = select.filter(test_plan::Column::ProjectId.eq(project_id));
    }
    Ok(select.order_by_desc(test_plan::Column::Id).all(db).await?)
}

/// One version of a plan.
pub async fn version<C: ConnectionTrait>(
    db: &C,
    plan_id: i64,
    version: i32,
) -> AppResult<test_plan_version::Model> {
    test_plan_version::Entity::find()
        .filter(test_plan_version::Column::PlanId.eq(plan_id))
        .filter(test_plan_version::Column::Version.eq(version))
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("TestPlanVersion", format!("{plan_id} v{version}")))
}

/// Every version of the given plans, oldest first.
pub async fn versions_of(
    db: &DatabaseConnection,
    plan_ids: &[i64],
) -> AppResult<Vec<test_plan_version::Model>> {
    Ok(test_plan_version::Entity::find()
        .filter(test_plan_version::Column::PlanId.is_in(plan_ids.iter().copied()))
        .order_by_asc(test_plan_version::Column::Version)
        .all(db)
        .await?)
}

/// A pending or running run of the plan, if any.
pub async fn active_run<C: ConnectionTrait>(db: &C, plan_id: i64) -> AppResult<Option<i64>> {
    Ok(test_history::Entity::find()
        .filter(test_history::Column::PlanId.eq(plan_id))
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
        .one(db)
        .await?
        .map(|run| run.id))
}

async fn insert_version<C: ConnectionTrait>(
    db: &C,
    plan_id: i64,
    version: i32,
    definition: &str,
) -> AppResult<()> {
    test_plan_version::ActiveModel {
        plan_id: Set(plan_id),
        version: Set(version),
        definition: Set(definition.to_owned()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

async fn refuse_taken_title<C: ConnectionTrait>(
    db: &C,
    project_id: i64,
    title: &str,
    except: Option<i64>,
) -> AppResult<()> {
    let mut same = test_plan::Entity::find()
        .filter(test_plan::Column::ProjectId.eq(project_id))
        .filter(test_plan::Column::Title.eq(title))
        .filter(test_plan::Column::DeletedAt.is_null());
    if let Some(id) = except {
        same = same.filter(test_plan::Column::Id.ne(id));
    }
    match same.one(db).await? {
        Some(other) => Err(title_taken(title, Some(other.id))),
        None => Ok(()),
    }
}

fn title_taken(title: &str, other: Option<i64>) -> AppError {
    let which = other.map(|id| format!(" (test plan {id})")).unwrap_or_default();
    AppError::bad_input(
        "input.title",
        format!(
            "a test plan titled `{title}` already exists in this project{which}; plan titles are unique per project"
        ),
    )
}

/// A unique-index violation from a concurrent save of the same title, as the same refusal.
fn title_taken_on_race(err: sea_orm::DbErr, title: &str) -> AppError {
    match err.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => title_taken(title, None),
        _ => err.into(),
    }
}

/// How many live plans a project has (the limit on saving more).
pub async fn count_live(db: &DatabaseConnection, project_id: i64) -> AppResult<u64> {
    Ok(test_plan::Entity::find()
        .filter(test_plan::Column::ProjectId.eq(project_id))
        .filter(test_plan::Column::DeletedAt.is_null())
        .count(db)
        .await?)
}

/// The plan's newest `last` runs, newest first; only COMPLETED ones when `completed_only`.
pub async fn recent_runs(
    db: &DatabaseConnection,
    plan_id: i64,
    last: u64,
    completed_only: bool,
) -> AppResult<Vec<test_history::Model>> {
    use sea_orm::QuerySelect;
    let mut select = test_history::Entity::find().filter(test_history::Column::PlanId.eq(plan_id));
    if completed_only {
        select = select.filter(test_history::Column::Status.eq(TestStatus::Completed));
    }
    Ok(select.order_by_desc(test_history::Column::Id).limit(last).all(db).await?)
}

/// Makes `run_id` the baseline of live plan `plan_id` (None: no baseline). The run must be
/// one of the plan's, COMPLETED, with its results.
pub async fn set_baseline(
    db: &DatabaseConnection,
    plan_id: i64,
    run_id: Option<i64>,
) -> AppResult<test_plan::Model> {
    let txn = crate::db::begin_write(db).await?;
    hold_live(&txn, plan_id).await?;
    if let Some(run_id) = run_id {
        let run = test_history::Entity::find_by_id(run_id)
            .one(&txn)
            .await?
            .ok_or_else(|| AppError::not_found("TestHistory", run_id))?;
        let refusal = if run.plan_id != Some(plan_id) {
            Some(format!("run {run_id} is not a run of test plan {plan_id}"))
        } else if run.status != TestStatus::Completed || run.avg_tps.is_none() {
            Some(format!(
                "run {run_id} is {}{}; a baseline is a COMPLETED run with its results",
                sea_orm::ActiveEnum::to_value(&run.status),
                if run.avg_tps.is_none() { " without results" } else { "" }
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            return Err(AppError::bad_input("testHistoryId", message));
        }
    }
    test_plan::Entity::update_many()
        .col_expr(test_plan::Column::BaselineRunId, Expr::value(run_id))
        .filter(test_plan::Column::Id.eq(plan_id))
        .exec(&txn)
        .await?;
    let plan = live(&txn, plan_id).await?;
    txn.commit().await?;
    Ok(plan)
}
