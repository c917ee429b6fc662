//! A run (TestHistory) and its series (MetricPoint); its scenarios and stages ([`scenario`]),
//! what a caller sees of its secrets ([`secrets`]), finished results as points on a trend
//! ([`trend`]), and the scheduler's view of active runs ([`scheduler`]).

mod scenario;
mod scheduler;
mod secrets;
mod trend;

use async_graphql::{Context, ID, Object, PathSegment, Result};
use chrono::{DateTime, Utc};

pub use scenario::{ScenarioHistory, Stage};
pub use scheduler::{SchedulerJob, SchedulerPod};
pub(crate) use secrets::{sees_secrets, visible_request, visible_script};
pub use trend::TrendPoint;

use super::{
    catalogue::{Project, project_by_id, required},
    integrity::{RunIntegrity, RunTotals},
    loader, to_id,
};
use crate::{
    access::{Principal, Role},
    db::{
        entities::{HasMetrics, scenario_history, test_history},
        repo,
    },
    domain::{MetricSummary, RunnerKind, TestStatus, Verdict, run_verdict},
    error::AppError,
    graphql::{
        AppState,
        fast::plain::graphql_object,
        loaders::{ScenariosOfRun, TestHistoryById},
    },
    metrics::timeseries::{TimeseriesPoint, run_window},
};

/// One load-test run.
pub struct TestHistory(pub test_history::Model);

graphql_object! {
    impl TestHistory as this {
        plain id: ID = to_id(this.0.id);
        async fn project(&self, ctx: &Context<'_>) -> Result<Project> {
            project_by_id(ctx, self.0.project_id).await
        }
        plain title: String = this.0.title.clone();
        /// The saved test plan this run was launched from (deleted plans included).
        async fn plan(&self, ctx: &Context<'_>) -> Result<Option<super::plan::TestPlan>> {
            let Some(plan_id) = self.0.plan_id else { return Ok(None) };
            Ok(repo::plans::get(super::db(ctx), plan_id).await?.map(super::plan::TestPlan))
        }
        /// Verdicts against the plan's baseline (p95, p99, error rate, throughput; run-wide and per
        /// scenario), recorded when the run ended; null when its plan had no baseline then.
        async fn regression(&self) -> Option<super::plan::Regression> {
            let stored = self.0.regression.as_deref()?;
            serde_json::from_str(stored).ok().map(super::plan::Regression)
        }
        /// The version of `plan` this run ran, as it was then.
        async fn plan_version(&self, ctx: &Context<'_>) -> Result<Option<super::plan::TestPlanVersion>> {
            let (Some(plan_id), Some(version)) = (self.0.plan_id, self.0.plan_version) else { return Ok(None) };
            let row = repo::plans::version(super::db(ctx), plan_id, version).await?;
            Ok(Some(super::plan::TestPlanVersion::new(row)?))
        }
        plain description: Option<String> = this.0.description.clone();
        plain target_tps: Option<f64> = this.0.target_tps;
        plain status: TestStatus = this.0.status;
        plain runner: RunnerKind = this.0.runner;
        /// k6 processes (local) or pods (Kubernetes) the load was split across.
        plain parallelism: i32 = this.0.parallelism;
        plain job_name: String = this.0.job_name.clone();
        plain k6_script_file_name: String = this.0.k6_script_file_name.clone();
        /// The exact k6 script that ran (or will run). Secret header values are never in it (k6
        /// reads them from its environment); in scripts of runs launched before that rule, below
        /// OPERATOR, the values of credential headers read `***`.
        async fn k6_script(&self, ctx: &Context<'_>) -> String {
            visible_script(&self.0.k6_script, sees_secrets(ctx.data_opt::<Principal>())).into_owned()
        }
        plain tested_at: DateTime<Utc> = this.0.tested_at;
        plain started_at: Option<DateTime<Utc>> = this.0.started_at;
        plain completed_at: Option<DateTime<Utc>> = this.0.completed_at;
        plain failure_reason: Option<String> = this.0.failure_reason.clone();
        plain is_completed: bool = this.0.is_completed;
        /// Figures from k6's samples in InfluxDB, except the counts (`totalRequests`,
        /// `failedRequests`, and `avgTps`, `avgErrorRate` derived from them), which are k6's own
        /// whenever every k6 instance reported them (`totals`).
        async fn summary(&self) -> Option<MetricSummary> {
            self.0.metrics()
        }
        /// What k6 itself counted, summed over its instances' end-of-test summaries; null when an
        /// instance wrote none (killed, crashed) or before the run ends.
        async fn totals(&self) -> Option<RunTotals> {
            RunTotals::of(&self.0)
        }
        /// True only when every k6 instance reported its count and InfluxDB holds exactly that many
        /// request samples of each: the summary's sample-based figures are then exact. False while
        /// the run is active, when a sample is missing, or when it cannot be checked.
        plain results_complete: bool = this.0.results_complete;
        /// True while the run has ended but its results could not yet be read from InfluxDB
        /// (`failureReason` says why); the server keeps trying, however long it takes, and fills
        /// them in (with a `testStatusChanged` event) once InfluxDB answers.
        async fn results_pending(&self) -> bool {
            repo::runs::results_pending(&self.0)
        }
        /// Request samples k6 reported that InfluxDB does not hold; null when it cannot be told.
        plain missing_samples: Option<i64> = RunIntegrity::of_run(&this.0).and_then(|integrity| integrity.0.missing());
        /// Reported against stored samples, per run and per k6 instance; null before the run ends.
        async fn integrity(&self) -> Option<RunIntegrity> {
            RunIntegrity::of_run(&self.0)
        }
        /// A link to this run's report page (`/runs/{id}/report`, relative to this server) that
        /// opens without a token until it expires (`REPORT_LINK_LIFETIME_HOURS`, 24 by default). It
        /// shows what a VIEWER sees (secret header values read `***`), whoever asked for it: a link
        /// outlives a revoked token, so it never carries more than read access. Secrets need the
        /// token itself (`Authorization: Bearer`).
        async fn report_url(&self, ctx: &Context<'_>) -> Result<String> {
            let role = Role::Viewer;
            let state = ctx.data_unchecked::<AppState>();
            Ok(state.settings.report.link(&state.db, self.0.id, role, Utc::now()).await?)
        }
        /// k6's own web dashboard of this run, live: `/runs/{id}/dashboard/` relative to this server,
        /// with a signed query (as `reportUrl`'s) a browser can open as is; the API's token in an
        /// `Authorization` header works too. Null unless the run's k6 runs on this server now.
        async fn dashboard_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
            use crate::k6::runner::dashboard_url;
            let state = ctx.data_unchecked::<AppState>();
            if state.lifecycle.live_dashboards(self.0.id).is_none() {
                return Ok(None);
            }
            // Read access only, as `reportUrl`'s.
            let link = state.settings.report.link(&state.db, self.0.id, Role::Viewer, Utc::now()).await?;
            let query = link.split_once('?').map_or("", |(_, query)| query);
            Ok(Some(format!("{}?{query}", dashboard_url(self.0.id))))
        }
        /// k6's own HTML report of each k6 instance that wrote one (`/runs/{id}/k6-report/{instance}`,
        /// relative to this server), once a local run has ended.
        async fn k6_report_urls(&self, ctx: &Context<'_>) -> Vec<String> {
            use crate::k6::runner::k6_report_url;
            if self.0.status.is_active() {
                return Vec::new();
            }
            let state = ctx.data_unchecked::<AppState>();
            let mut urls = Vec::new();
            for index in 0..u32::try_from(self.0.parallelism).unwrap_or(0) {
                let Some(file) = state.lifecycle.k6_report_file(&self.0, index) else {
                    break;
                };
                if tokio::fs::try_exists(file).await.unwrap_or(false) {
                    urls.push(k6_report_url(self.0.id, index));
                }
            }
            // Signed like `reportUrl`, so a browser opens them as they are.
            if !urls.is_empty()
                && let Ok(link) = state.settings.report.link(&state.db, self.0.id, Role::Viewer, Utc::now()).await
            {
                let query = link.split_once('?').map_or("", |(_, query)| query).to_owned();
                urls.iter_mut().for_each(|url| *url = format!("{url}?{query}"));
            }
            urls
        }
        /// Whether the run met its targets: judged once it has COMPLETED; UNKNOWN before, and for
        /// a run that FAILED or was CANCELLED (it did not run its plan; see `status`).
        async fn verdict(&self, ctx: &Context<'_>) -> Result<Verdict> {
            if self.0.metrics().is_none() || !matches!(self.0.status, TestStatus::Completed) {
                // No summary yet: the scenarios cannot change an unknown verdict.
                return Ok(Verdict::Unknown);
            }
            Ok(self.verdict_with(scenarios_of_run(ctx, self.0.id).await?.iter()))
        }
        async fn scenarios(&self, ctx: &Context<'_>) -> Result<Vec<ScenarioHistory>> {
            Ok(scenarios_of_run(ctx, self.0.id).await?.into_iter().map(ScenarioHistory).collect())
        }
        /// Per-interval series read from InfluxDB (default step: 1 s, at most 2,000 points).
        // InfluxDB being down is reported as an `UPSTREAM_UNAVAILABLE` error at this field next
        // to an empty list, not as a failed field: the list is non-null, so a field error would
        // null the whole run and take the rest of the query with it.
        #[tracing::instrument(skip(self, ctx), fields(test_id = self.0.id))]
        async fn timeseries(
            &self,
            ctx: &Context<'_>,
            step_seconds: Option<i32>,
            scenario_name: Option<String>,
        ) -> Result<Vec<MetricPoint>> {
            if let Some(step) = step_seconds.filter(|step| *step < 0) {
                let message = format!("`stepSeconds` must be 0 (the default) or more, got {step}");
                return Err(AppError::bad_input("stepSeconds", message).into());
            }
            let scenario_tag = match scenario_name {
                Some(name) => Some(self.scenario_tag(ctx, &name).await?),
                None => None,
            };
            if self.0.status == TestStatus::Pending {
                return Ok(Vec::new());
            }
            let ended_at = if self.0.status.is_active() { None } else { self.0.completed_at };
            let window = run_window(self.0.started_at.unwrap_or(self.0.tested_at), ended_at, Utc::now());
            crate::graphql::limits::spend_upstream(ctx)?;
            let influx = ctx.data_unchecked::<AppState>().lifecycle.influx();
            let step = step_seconds.map(i64::from);
            match influx.timeseries(self.0.id, window, step, scenario_tag.as_deref()).await {
                Ok(series) => Ok(series.points.into_iter().map(MetricPoint).collect()),
                Err(error) => {
                    tracing::warn!(%error, "the time series could not be read from InfluxDB");
                    let message = format!(
                        "InfluxDB is unavailable: the time series of run {} cannot be read now",
                        self.0.id
                    );
                    report_beside(ctx, AppError::UpstreamUnavailable(message));
                    Ok(Vec::new())
                }
            }
        }
    }
}

impl TestHistory {
    /// The run's verdict, given its scenarios.
    pub(in crate::graphql) fn verdict_with<'a>(
        &self,
        scenarios: impl Iterator<Item = &'a scenario_history::Model>,
    ) -> Verdict {
        let summary = self.0.metrics();
        run_verdict(
            self.0.status,
            summary.as_ref(),
            self.0.target_tps,
            scenarios.map(ScenarioHistory::verdict_of),
        )
    }

    /// The `scenario` tag of the run's scenario called `name` (its name or its tag).
    async fn scenario_tag(&self, ctx: &Context<'_>, name: &str) -> Result<String> {
        let scenarios = scenarios_of_run(ctx, self.0.id).await?;
        let found = scenarios
            .iter()
            .find(|scenario| scenario.name == name)
            .or_else(|| scenarios.iter().find(|scenario| scenario.scenario_tag == name));
        match found {
            Some(scenario) => Ok(scenario.scenario_tag.clone()),
            None => {
                let known: Vec<&str> = scenarios.iter().map(|scenario| scenario.name.as_str()).collect();
                let message = format!(
                    "run {} has no scenario `{name}`; its scenarios are: {}",
                    self.0.id,
                    known.join(", ")
                );
                Err(AppError::bad_input("scenarioName", message).into())
            }
        }
    }
}

/// Run `id`, through the request's loader: one that a row being resolved names.
async fn run_by_id(ctx: &Context<'_>, id: i64) -> Result<test_history::Model> {
    let run = loader(ctx).load_one(TestHistoryById(id)).await?;
    required(run, "test history", id)
}

/// The scenarios of run `id`, in launch order.
async fn scenarios_of_run(ctx: &Context<'_>, id: i64) -> Result<Vec<scenario_history::Model>> {
    let scenarios = loader(ctx).load_one(ScenariosOfRun::rows(id)).await?.unwrap_or_default();
    Ok(scenarios.into_iter().map(|(scenario, _)| scenario).collect())
}

/// Adds `error` to the response at the current field's path while the field still answers.
fn report_beside(ctx: &Context<'_>, error: AppError) {
    let mut error = async_graphql::Error::from(error).into_server_error(ctx.item.pos);
    if let Some(node) = ctx.path_node {
        let mut path: Vec<PathSegment> = std::iter::once(&node)
            .chain(node.parents())
            .map(|node| match node.segment {
                async_graphql::QueryPathSegment::Name(name) => PathSegment::Field(name.to_owned()),
                async_graphql::QueryPathSegment::Index(index) => PathSegment::Index(index),
            })
            .collect();
        path.reverse();
        error.path = path;
    }
    ctx.add_error(error);
}

/// One interval of a run's series.
pub struct MetricPoint(TimeseriesPoint);

#[Object]
impl MetricPoint {
    /// The start of the interval.
    async fn time(&self) -> DateTime<Utc> {
        self.0.time
    }
    /// Requests per second over the interval.
    async fn tps(&self) -> f64 {
        self.0.tps
    }
    async fn avg_response_time(&self) -> f64 {
        self.0.avg_response_time
    }
    async fn p95_response_time(&self) -> f64 {
        self.0.p95_response_time
    }
    /// Failed requests, percent (0–100).
    async fn error_rate(&self) -> f64 {
        self.0.error_rate
    }
    async fn vus(&self) -> f64 {
        self.0.vus
    }
}
