//! Schedules of saved plans and what each due time did.
//!
//! A due time is taken by one server: [`take`] moves `next_run_at` on only if it still holds
//! the due time the server read, so of several replicas that see it at once exactly one wins.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, sea_query::Expr,
};

use crate::{
    db::entities::{schedule_firing, test_schedule},
    domain::FiringOutcome,
    error::{AppError, AppResult},
};

/// A schedule's settings as the API sets them.
#[derive(Clone, Debug)]
pub struct ScheduleSettings {
    pub cron: String,
    pub time_zone: String,
    pub enabled: bool,
    /// The first due time (None while disabled).
    pub next_run_at: Option<DateTime<Utc>>,
}

/// Most schedules one plan may have.
pub const MAX_PER_PLAN: usize = 20;

/// Adds a schedule to a live plan.
pub async fn create(
    db: &DatabaseConnection,
    plan_id: i64,
    settings: &ScheduleSettings,
) -> AppResult<test_schedule::Model> {
    let txn = crate::db::begin_write(db).await?;
    super::plans::hold_live(&txn, plan_id).await?;
    let existing =
        test_schedule::Entity::find().filter(test_schedule::Column::PlanId.eq(plan_id)).all(&txn).await?;
    if existing.len() >= MAX_PER_PLAN {
        return Err(AppError::bad_input(
            "input.planId",
            format!("test plan {plan_id} already has {MAX_PER_PLAN} schedules, the most a plan may have"),
        ));
    }
    let now = Utc::now();
    let schedule = test_schedule::ActiveModel {
        plan_id: Set(plan_id),
        cron: Set(settings.cron.clone()),
        time_zone: Set(settings.time_zone.clone()),
        enabled: Set(settings.enabled),
        next_run_at: Set(settings.next_run_at),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(schedule)
}

/// Replaces a schedule's settings.
pub async fn update(
    db: &DatabaseConnection,
    id: i64,
    settings: &ScheduleSettings,
) -> AppResult<test_schedule::Model> {
    let txn = crate::db::begin_write(db).await?;
    let schedule = get_in(&txn, id).await?;
    let mut row: test_schedule::ActiveModel = schedule.into();
    row.cron = Set(settings.cron.clone());
    row.time_zone = Set(settings.time_zone.clone());
    row.enabled = Set(settings.enabled);
    row.next_run_at = Set(settings.next_run_at);
    row.updated_at = Set(Utc::now());
    let schedule = row.update(&txn).await?;
    txn.commit().await?;
    Ok(schedule)
}

/// Deletes a schedule and its record of firings.
pub async fn delete(db: &DatabaseConnection, id: i64) -> AppResult<()> {
    let deleted = test_schedule::Entity::delete_by_id(id).exec(db).await?;
    if deleted.rows_affected == 0 {
        return Err(AppError::not_found("TestSchedule", id));
    }
    Ok(())
}

/// Deletes the schedules of a plan being deleted.
pub async fn delete_of_plan<C: ConnectionTrait>(db: &C, plan_id: i64) -> AppResult<()> {
    test_schedule::Entity::delete_many().filter(test_schedule::Column::PlanId.eq(plan_id)).exec(db).await?;
    Ok(())
}

/// One schedule, or `NOT_FOUND`.
pub async fn get(db: &DatabaseConnection, id: i64) -> AppResult<test_schedule::Model> {
    get_in(db, id).await
}

async fn get_in<C: ConnectionTrait>(db: &C, id: i64) -> AppResult<test_schedule::Model> {
    test_schedule::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("TestSchedule", id))
}

/// The schedules of the given plans, oldest first.
pub async fn of_plans(db: &DatabaseConnection, plan_ids: &[i64]) -> AppResult<Vec<test_schedule::Model>> {
    Ok(test_schedule::Entity::find()
        .filter(test_schedule::Column::PlanId.is_in(plan_ids.iter().copied()))
        .order_by_asc(test_schedule::Column::Id)
        .all(db)
        .await?)
}

/// Enabled schedules whose due time has come.
pub async fn due(db: &DatabaseConnection, now: DateTime<Utc>) -> AppResult<Vec<test_schedule::Model>> {
    Ok(test_schedule::Entity::find()
        .filter(test_schedule::Column::Enabled.eq(true))
        .filter(test_schedule::Column::NextRunAt.lte(now))
        .order_by_asc(test_schedule::Column::NextRunAt)
        .limit(100)
        .all(db)
        .await?)
}

/// The enabled schedules due at `now` (at most 100), and the due time of the nearest one to
/// come after them, in one statement.
pub async fn upcoming(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> AppResult<(Vec<test_schedule::Model>, Option<DateTime<Utc>>)> {
    let mut rows = test_schedule::Entity::find()
        .filter(test_schedule::Column::Enabled.eq(true))
        .filter(test_schedule::Column::NextRunAt.is_not_null())
        .order_by_asc(test_schedule::Column::NextRunAt)
        .limit(101)
        .all(db)
        .await?;
    let split =
        rows.iter().position(|s| s.next_run_at.is_some_and(|at| at > now)).unwrap_or(rows.len()).min(100);
    let nearest = rows.get(split).and_then(|s| s.next_run_at);
    rows.truncate(split);
    Ok((rows, nearest))
}

/// The nearest due time of any enabled schedule.
pub async fn nearest_due(db: &DatabaseConnection) -> AppResult<Option<DateTime<Utc>>> {
    Ok(test_schedule::Entity::find()
        .filter(test_schedule::Column::Enabled.eq(true))
        .filter(test_schedule::Column::NextRunAt.is_not_null())
        .order_by_asc(test_schedule::Column::NextRunAt)
        .one(db)
        .await?
        .and_then(|schedule| schedule.next_run_at))
}

/// Takes the due time `due_at` of a schedule, moving it on to `next`; false when another
/// server took it first (or the schedule changed meanwhile).
pub async fn take(
    db: &DatabaseConnection,
    id: i64,
    due_at: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
) -> AppResult<bool> {
    let moved = test_schedule::Entity::update_many()
        .col_expr(test_schedule::Column::NextRunAt, Expr::value(next))
        .filter(test_schedule::Column::Id.eq(id))
        .filter(test_schedule::Column::Enabled.eq(true))
        .filter(test_schedule::Column::NextRunAt.eq(due_at))
        .exec(db)
        .await?;
    Ok(moved.rows_affected == 1)
}

/// What a due time did. The row is unique per (schedule, due time): a second record of the
/// same due time is refused by the database.
#[derive(Clone, Debug)]
pub struct Firing {
    pub schedule_id: i64,
    pub due_at: DateTime<Utc>,
    pub outcome: FiringOutcome,
    pub test_history_id: Option<i64>,
    pub message: Option<String>,
    pub fired_by: String,
}

/// Records a firing.
pub async fn record_firing(db: &DatabaseConnection, firing: Firing) -> AppResult<schedule_firing::Model> {
    Ok(schedule_firing::ActiveModel {
        schedule_id: Set(firing.schedule_id),
        due_at: Set(firing.due_at),
        outcome: Set(firing.outcome),
        test_history_id: Set(firing.test_history_id),
        message: Set(firing.message),
        fired_by: Set(firing.fired_by),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// The newest `last` firings of each given schedule, newest first.
pub async fn firings_of(
    db: &DatabaseConnection,
    schedule_ids: &[i64],
    last: u64,
) -> AppResult<Vec<schedule_firing::Model>> {
    let mut rows = Vec::new();
    for id in schedule_ids {
        rows.extend(
            schedule_firing::Entity::find()
                .filter(schedule_firing::Column::ScheduleId.eq(*id))
                .order_by_desc(schedule_firing::Column::DueAt)
                .limit(last)
                .all(db)
                .await?,
        );
    }
    Ok(rows)
}
