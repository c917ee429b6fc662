//! Saved test plans and their schedules: save, edit, delete, launch, run again.

use async_graphql::{Context, ID, InputObject, Object, Result};

use super::launch_input::LaunchInput;
use crate::{
    access::{Role, RoleGuard},
    db::repo,
    graphql::{
        AppState,
        types::{
            db,
            history::TestHistory,
            parse_id,
            plan::{TestPlan, TestSchedule},
            to_id,
        },
    },
    lifecycle::schedule,
};

#[derive(Default)]
pub struct PlanMutation;

/// A new schedule: `CreateTestScheduleInput`.
#[derive(InputObject)]
pub struct CreateTestScheduleInput {
    pub plan_id: ID,
    /// Five fields: minute hour day-of-month month day-of-week, e.g. `0 2 * * 1-5`.
    pub cron: String,
    /// An IANA time zone name; the expression's hours are read in it (daylight saving included).
    #[graphql(default_with = "String::from(\"UTC\")")]
    pub time_zone: String,
    #[graphql(default = true)]
    pub enabled: bool,
}

/// What to change of a schedule: `UpdateTestScheduleInput`; absent fields stay.
#[derive(InputObject)]
pub struct UpdateTestScheduleInput {
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    pub enabled: Option<bool>,
}

#[Object]
impl PlanMutation {
    /// Saves a launch input as a test plan (version 1), after every check a launch makes.
    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn create_test_plan(&self, ctx: &Context<'_>, input: LaunchInput) -> Result<TestPlan> {
        let lifecycle = &ctx.data_unchecked::<AppState>().lifecycle;
        Ok(TestPlan(lifecycle.save_plan(input.into_request()?).await?))
    }

    /// Saves `input` as the plan's next version; runs keep the versions they ran.
    /// `expectedVersion`, when given, must be the plan's current version (else CONFLICT).
    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn update_test_plan(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: LaunchInput,
        expected_version: Option<i32>,
    ) -> Result<TestPlan> {
        let id = parse_id(&id, "id")?;
        let lifecycle = &ctx.data_unchecked::<AppState>().lifecycle;
        Ok(TestPlan(lifecycle.edit_plan(id, expected_version, input.into_request()?).await?))
    }

    /// Deletes a plan and its schedules; refused (CONFLICT) while a run of it is active.
    /// Its runs stay, with the versions they ran. Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn delete_test_plan(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let id = parse_id(&id, "id")?;
        repo::plans::delete(db(ctx), id).await?;
        Ok(to_id(id))
    }

    /// Launches the plan's current version. Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn launch_test_plan(&self, ctx: &Context<'_>, id: ID) -> Result<TestHistory> {
        let id = parse_id(&id, "id")?;
        let lifecycle = &ctx.data_unchecked::<AppState>().lifecycle;
        Ok(TestHistory(lifecycle.launch_plan(id).await?))
    }

    /// Launches what a run ran, again (its plan version, when its plan is still live).
    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn rerun_test_history(&self, ctx: &Context<'_>, id: ID) -> Result<TestHistory> {
        let id = parse_id(&id, "id")?;
        let lifecycle = &ctx.data_unchecked::<AppState>().lifecycle;
        Ok(TestHistory(lifecycle.rerun(id).await?))
    }

    /// Makes a COMPLETED run of the plan its baseline (null: none). Every later run of the plan
    /// gets regression verdicts against it (`TestHistory.regression`). Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn set_plan_baseline(
        &self,
        ctx: &Context<'_>,
        plan_id: ID,
        test_history_id: Option<ID>,
    ) -> Result<TestPlan> {
        let plan_id = parse_id(&plan_id, "planId")?;
        let run_id = test_history_id.as_ref().map(|id| parse_id(id, "testHistoryId")).transpose()?;
        Ok(TestPlan(repo::plans::set_baseline(db(ctx), plan_id, run_id).await?))
    }

    /// Adds a schedule to a plan. Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn create_test_schedule(
        &self,
        ctx: &Context<'_>,
        input: CreateTestScheduleInput,
    ) -> Result<TestSchedule> {
        let plan_id = parse_id(&input.plan_id, "input.planId")?;
        let settings = schedule::settings(&input.cron, &input.time_zone, input.enabled)?;
        let created = repo::schedules::create(db(ctx), plan_id, &settings).await?;
        ctx.data_unchecked::<AppState>().lifecycle.schedules_changed();
        Ok(TestSchedule(created))
    }

    /// Changes a schedule; its next due time is computed afresh. Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn update_test_schedule(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateTestScheduleInput,
    ) -> Result<TestSchedule> {
        let id = parse_id(&id, "id")?;
        let current = repo::schedules::get(db(ctx), id).await?;
        let settings = schedule::settings(
            input.cron.as_deref().unwrap_or(&current.cron),
            input.time_zone.as_deref().unwrap_or(&current.time_zone),
            input.enabled.unwrap_or(current.enabled),
        )?;
        let updated = repo::schedules::update(db(ctx), id, &settings).await?;
        ctx.data_unchecked::<AppState>().lifecycle.schedules_changed();
        Ok(TestSchedule(updated))
    }

    /// Deletes a schedule. Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn delete_test_schedule(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let id = parse_id(&id, "id")?;
        repo::schedules::delete(db(ctx), id).await?;
        Ok(to_id(id))
    }
}
