//! TestPlan, TestPlanVersion, TestPlanScenario, TestSchedule, ScheduleFiring.

use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    catalogue::{Endpoint, Project, history_window, project_by_id, required},
    connection::{RUN_CURSOR, RunTotal, TestHistoryConnection, run_connection},
    db, decode_cursor,
    history::{TestHistory, TrendPoint, sees_secrets},
    loader, page_size, to_id,
};
use crate::{
    access::Principal,
    db::{
        entities::{schedule_firing, test_plan, test_plan_version, test_schedule},
        repo::{self, history::TestHistoryFilter},
    },
    domain::{
        Executor, FiringOutcome, RunnerKind,
        regression::{MetricRegression, RegressionVerdict, RunRegression, ScenarioRegression},
    },
    error::AppError,
    graphql::loaders::{EndpointById, TestHistoryById},
    k6::parse_k6_duration,
    lifecycle::{
        launch::{LaunchRequest, ScenarioRequest},
        plans::{masked_definition, parse_definition},
    },
};

/// A saved test: what `launchLoadTest` takes, kept with every version.
pub struct TestPlan(pub test_plan::Model);

#[Object]
impl TestPlan {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn project(&self, ctx: &Context<'_>) -> Result<Project> {
        project_by_id(ctx, self.0.project_id).await
    }
    /// Unique among the project's live plans.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// The current version; every edit adds one.
    async fn version(&self) -> i32 {
        self.0.current_version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Set once the plan is deleted; its runs keep showing the versions they ran.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    /// The current version's definition.
    async fn definition(&self, ctx: &Context<'_>) -> Result<TestPlanVersion> {
        let row = repo::plans::version(db(ctx), self.0.id, self.0.current_version).await?;
        Ok(TestPlanVersion::new(row)?)
    }
    /// Every version, newest first.
    async fn versions(&self, ctx: &Context<'_>) -> Result<Vec<TestPlanVersion>> {
        let rows = repo::plans::versions_of(db(ctx), &[self.0.id]).await?;
        Ok(rows.into_iter().rev().map(TestPlanVersion::new).collect::<Result<_, _>>()?)
    }
    async fn schedules(&self, ctx: &Context<'_>) -> Result<Vec<TestSchedule>> {
        let rows = repo::schedules::of_plans(db(ctx), &[self.0.id]).await?;
        Ok(rows.into_iter().map(TestSchedule).collect())
    }
    /// The run new runs of this plan are judged against (`TestHistory.regression`).
    async fn baseline(&self, ctx: &Context<'_>) -> Result<Option<TestHistory>> {
        let Some(id) = self.0.baseline_run_id else { return Ok(None) };
        Ok(loader(ctx).load_one(TestHistoryById(id)).await?.map(TestHistory))
    }
    /// The newest run of this plan, of any status.
    async fn last_run(&self, ctx: &Context<'_>) -> Result<Option<TestHistory>> {
        let runs = repo::plans::recent_runs(db(ctx), self.0.id, 1, false).await?;
        Ok(runs.into_iter().next().map(TestHistory))
    }
    /// This plan's runs, newest first.
    async fn test_histories(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<TestHistoryConnection> {
        let first = page_size(first, 20)?;
        let before = after.as_deref().map(|c| decode_cursor(RUN_CURSOR, c)).transpose()?;
        let filter = TestHistoryFilter { plan_id: Some(self.0.id), ..Default::default() };
        let page = repo::history::page(db(ctx), &filter, first, before).await?;
        Ok(run_connection(page, before.is_some(), RunTotal::Filter(filter)))
    }
    /// p95 / avg / TPS / error rate of this plan's COMPLETED runs, oldest first.
    async fn trend(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 30)] last: Option<i32>,
    ) -> Result<Vec<TrendPoint>> {
        let last = history_window(last, 30)?;
        let runs = repo::plans::recent_runs(db(ctx), self.0.id, last, true).await?;
        Ok(runs.into_iter().rev().map(TrendPoint::from).collect())
    }
}

/// A run against its plan's baseline: per figure, a verdict from a Mann–Whitney U test of the
/// two runs' per-interval samples with the Hodges–Lehmann shift and its interval.
pub struct Regression(pub RunRegression);

#[Object(name = "RunRegression")]
impl Regression {
    async fn baseline(&self, ctx: &Context<'_>) -> Result<Option<TestHistory>> {
        Ok(loader(ctx).load_one(TestHistoryById(self.0.baseline_id)).await?.map(TestHistory))
    }
    /// The worst verdict of every figure, run-wide and per scenario: any REGRESSED, else any
    /// INCONCLUSIVE, else any IMPROVED, else UNCHANGED.
    async fn verdict(&self) -> RegressionVerdict {
        self.0.verdict
    }
    /// `mann-whitney-u`.
    async fn method(&self) -> &str {
        &self.0.method
    }
    async fn confidence(&self) -> f64 {
        self.0.confidence
    }
    /// The smallest relative change that counts (0.05 = 5 %).
    async fn min_effect(&self) -> f64 {
        self.0.min_effect
    }
    /// Percentage points: the smallest error-rate change that counts over a baseline of 0.
    async fn min_error_rate_change(&self) -> f64 {
        self.0.min_error_rate_change
    }
    /// Seconds per interval.
    async fn step_seconds(&self) -> i64 {
        self.0.step_seconds
    }
    /// Run-wide figures.
    async fn metrics(&self) -> &[MetricRegression] {
        &self.0.metrics
    }
    /// Scenarios paired with the baseline's by name.
    async fn scenarios(&self) -> &[ScenarioRegression] {
        &self.0.scenarios
    }
}

/// One version of a plan's definition, as saved.
pub struct TestPlanVersion {
    row: test_plan_version::Model,
    request: LaunchRequest,
}

impl TestPlanVersion {
    pub fn new(row: test_plan_version::Model) -> Result<Self, AppError> {
        let request = parse_definition(&row.definition)?;
        Ok(Self { row, request })
    }
}

#[Object]
impl TestPlanVersion {
    async fn version(&self) -> i32 {
        self.row.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    async fn title(&self) -> &str {
        &self.request.title
    }
    async fn description(&self) -> Option<&str> {
        self.request.description.as_deref()
    }
    async fn target_tps(&self) -> Option<f64> {
        self.request.target_tps
    }
    /// None: the server's configured runner at launch.
    async fn runner(&self) -> Option<RunnerKind> {
        self.request.runner
    }
    async fn parallelism(&self) -> i32 {
        self.request.parallelism.unwrap_or(1)
    }
    /// How long a run of it lasts: the longest scenario's stages, in seconds.
    async fn expected_duration_seconds(&self) -> f64 {
        self.request
            .scenarios
            .iter()
            .map(|scenario| {
                scenario
                    .stages
                    .iter()
                    .filter_map(|stage| parse_k6_duration(&stage.duration).ok())
                    .map(|d| d.as_secs_f64())
                    .sum::<f64>()
            })
            .fold(0.0, f64::max)
    }
    async fn scenarios(&self) -> Vec<TestPlanScenario> {
        self.request.scenarios.iter().cloned().map(TestPlanScenario).collect()
    }
    /// The definition as a `LaunchLoadTestInput` (ready to edit and save as the next
    /// version); below OPERATOR secret header values read `***`.
    async fn input(&self, ctx: &Context<'_>) -> Json<Value> {
        if sees_secrets(ctx.data_opt::<Principal>()) {
            Json(serde_json::from_str(&self.row.definition).unwrap_or(Value::Null))
        } else {
            Json(masked_definition(&self.row.definition))
        }
    }
}

/// One scenario of a plan version.
pub struct TestPlanScenario(ScenarioRequest);

/// One stage of a plan's scenario.
#[derive(SimpleObject)]
pub struct PlanStage {
    /// A k6 duration: "30s", "1m30s".
    pub duration: String,
    pub target: i32,
}

#[Object]
impl TestPlanScenario {
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn endpoint_id(&self) -> ID {
        to_id(self.0.endpoint_id)
    }
    /// Null when the endpoint no longer exists or a re-import of its document removed it
    /// (launching the plan then fails, naming this scenario).
    async fn endpoint(&self, ctx: &Context<'_>) -> Result<Option<Endpoint>> {
        let endpoint = loader(ctx).load_one(EndpointById(self.0.endpoint_id)).await?;
        Ok(endpoint.filter(|endpoint| endpoint.removed_at.is_none()).map(Endpoint::from))
    }
    async fn executor(&self) -> Executor {
        self.0.executor
    }
    async fn think_time(&self) -> f64 {
        self.0.think_time.unwrap_or(1.0)
    }
    async fn stages(&self) -> Vec<PlanStage> {
        self.0.stages.iter().map(|s| PlanStage { duration: s.duration.clone(), target: s.target }).collect()
    }
    async fn max_vus(&self) -> Option<i32> {
        self.0.max_vus
    }
    async fn response_time_target(&self) -> Option<f64> {
        self.0.response_time_target
    }
    async fn error_rate_target(&self) -> Option<f64> {
        self.0.error_rate_target
    }
    /// Request values; below OPERATOR secret header values read `***`.
    async fn request(&self, ctx: &Context<'_>) -> Option<Json<Value>> {
        let request = serde_json::to_value(self.0.request.as_ref()?).ok()?;
        Some(Json(if sees_secrets(ctx.data_opt::<Principal>()) {
            request
        } else {
            crate::lifecycle::launch::mask_secret_headers(&request)
        }))
    }
}

/// A cron expression in a time zone that launches a plan.
pub struct TestSchedule(pub test_schedule::Model);

#[Object]
impl TestSchedule {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn plan(&self, ctx: &Context<'_>) -> Result<TestPlan> {
        let plan = repo::plans::get(db(ctx), self.0.plan_id).await?;
        Ok(TestPlan(required(plan, "test plan", self.0.plan_id)?))
    }
    /// Five fields: minute hour day-of-month month day-of-week.
    async fn cron(&self) -> &str {
        &self.0.cron
    }
    /// The IANA time zone the expression is read in.
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// The next due time; null while disabled.
    async fn next_run_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_run_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// What its due times did, newest first.
    async fn firings(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] last: Option<i32>,
    ) -> Result<Vec<ScheduleFiring>> {
        let last = history_window(last, 20)?;
        let rows = repo::schedules::firings_of(db(ctx), &[self.0.id], last).await?;
        Ok(rows.into_iter().map(ScheduleFiring).collect())
    }
}

/// What one due time of a schedule did.
pub struct ScheduleFiring(pub schedule_firing::Model);

#[Object]
impl ScheduleFiring {
    async fn due_at(&self) -> DateTime<Utc> {
        self.0.due_at
    }
    async fn outcome(&self) -> FiringOutcome {
        self.0.outcome
    }
    /// The run launched, or (SKIPPED_OVERLAP) the active run that was in the way.
    async fn test_history(&self, ctx: &Context<'_>) -> Result<Option<TestHistory>> {
        let Some(id) = self.0.test_history_id else { return Ok(None) };
        Ok(loader(ctx).load_one(TestHistoryById(id)).await?.map(TestHistory))
    }
    /// Why it was skipped or failed.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
    /// The server instance that took the due time.
    async fn fired_by(&self) -> &str {
        &self.0.fired_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
