//! What a report page shows, read from the database (and InfluxDB for the charts): the
//! page's data, embedded in it as JSON and rendered as its tables.
//!
//! Secrets are masked here, once, for both: below OPERATOR the request values' secret headers
//! and old scripts' credential lines read `***` exactly as the API shows them.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;

use super::series::{self, SeriesColumns};
use crate::{
    access::Principal,
    db::{
        entities::{HasMetrics, scenario_history, stage_history, test_history},
        repo,
    },
    domain::{MetricSummary, TestStatus, Verdict, counts::K6Counts, run_verdict, scenario_verdict},
    error::AppResult,
    graphql::types::history::{sees_secrets, visible_request, visible_script},
    metrics::{influx::InfluxClient, timeseries::run_window},
};

/// Everything on one run's report page.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportData {
    pub generated_at: DateTime<Utc>,
    pub run: RunFacts,
    /// In launch order.
    pub scenarios: Vec<ScenarioFacts>,
    /// The exact k6 script, masked as the reader's role requires.
    pub script: String,
    pub charts: Charts,
    /// The comparison with the run's baseline, when it has one (issue 18, item 3); the page
    /// shows the section only then.
    pub baseline: Option<BaselineComparison>,
}

/// The run's own facts and figures.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFacts {
    pub id: i64,
    pub title: String,
    pub description: Option<String>,
    pub status: String,
    pub verdict: String,
    pub runner: String,
    pub parallelism: i32,
    pub tested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<String>,
    pub target_tps: Option<f64>,
    pub results_complete: bool,
    pub results_pending: bool,
    pub missing_samples: Option<i64>,
    pub plan: Option<PlanRef>,
    pub summary: Option<Figures>,
    pub totals: Option<Totals>,
}

/// The saved plan (and version) the run was launched from.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PlanRef {
    pub id: i64,
    pub version: Option<i32>,
}

/// One scenario: what it ran, its targets, its figures.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioFacts {
    pub name: String,
    pub scenario_tag: String,
    /// `GET http://host/items/{id}`; None when the endpoint's row is gone.
    pub endpoint: Option<String>,
    /// k6's name for it, e.g. `constant-vus`.
    pub executor: String,
    pub think_time: f64,
    pub max_vus_limit: Option<i32>,
    pub response_time_target: Option<f64>,
    pub error_rate_target: Option<f64>,
    pub verdict: String,
    pub stages: Vec<StageFacts>,
    /// The launch's request values; secret header values masked below OPERATOR.
    pub request: Option<serde_json::Value>,
    pub summary: Option<Figures>,
    pub totals: Option<Totals>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageFacts {
    pub duration: String,
    pub target: i32,
}

/// A summary's figures (see `crate::metrics::summary` for their definitions).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub total_requests: i64,
    pub failed_requests: i64,
    pub test_duration: f64,
    pub avg_tps: f64,
    pub max_tps: f64,
    pub avg_response_time: f64,
    pub p50_response_time: f64,
    pub p95_response_time: f64,
    pub p99_response_time: f64,
    pub max_response_time: f64,
    /// Percent.
    pub avg_error_rate: f64,
    pub max_vus: f64,
}

impl From<MetricSummary> for Figures {
    fn from(s: MetricSummary) -> Self {
        Self {
            total_requests: s.total_requests,
            failed_requests: s.failed_requests,
            test_duration: s.test_duration,
            avg_tps: s.avg_tps,
            max_tps: s.max_tps,
            avg_response_time: s.avg_response_time,
            p50_response_time: s.p50_response_time,
            p95_response_time: s.p95_response_time,
            p99_response_time: s.p99_response_time,
            max_response_time: s.max_response_time,
            avg_error_rate: s.avg_error_rate,
            max_vus: s.max_vus,
        }
    }
}

/// k6's own counts, summed over its instances.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub requests: i64,
    pub failed_requests: i64,
    pub iterations: i64,
    pub data_sent: i64,
    pub data_received: i64,
}

impl From<K6Counts> for Totals {
    fn from(c: K6Counts) -> Self {
        Self {
            requests: c.requests,
            failed_requests: c.failed_requests,
            iterations: c.iterations,
            data_sent: c.data_sent,
            data_received: c.data_received,
        }
    }
}

/// The charts' data, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Charts {
    #[serde(rename_all = "camelCase")]
    Drawn { step_seconds: i64, run: SeriesColumns, scenarios: Vec<SeriesColumns> },
    /// Nothing to draw (the run has not started), or InfluxDB could not be read.
    Unavailable { reason: String },
}

/// The run against its baseline: filled in by the baseline work (issue 18, item 3).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineComparison {
    pub baseline_id: i64,
    pub baseline_title: String,
    pub baseline_tested_at: DateTime<Utc>,
    pub rows: Vec<BaselineRow>,
}

/// One figure of the run (`scope` None) or of a scenario, against the baseline's.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineRow {
    pub scope: Option<String>,
    pub metric: String,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// `IMPROVED`, `UNCHANGED`, `REGRESSED` or `INCONCLUSIVE`.
    pub verdict: Option<String>,
    /// The change with its confidence interval and p-value, in words: `+42% (+35% to +50%), p 0.0001`.
    pub change: Option<String>,
}

/// How long the charts' InfluxDB queries may take before the page is served without them.
const SERIES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads run `run` (found by the caller) with everything its page shows, as `reader` may see it.
#[tracing::instrument(skip_all, fields(test_id = run.id))]
pub async fn load(
    db: &DatabaseConnection,
    influx: &InfluxClient,
    run: test_history::Model,
    reader: &Principal,
    now: DateTime<Utc>,
) -> AppResult<ReportData> {
    let scenarios = repo::runs::scenarios_with_stages(db, run.id).await?;
    let endpoint_ids: Vec<i64> = scenarios.iter().map(|(scenario, _)| scenario.endpoint_id).collect();
    let endpoints = repo::catalogue::launch_endpoints(db, &endpoint_ids).await?;
    let sees_secrets = sees_secrets(Some(reader));
    let charts = charts(influx, &run, &scenarios, now).await;

    let scenario_verdicts: Vec<Verdict> = scenarios
        .iter()
        .map(|(row, _)| {
            scenario_verdict(row.metrics().as_ref(), row.response_time_target, row.error_rate_target)
        })
        .collect();
    let verdict =
        run_verdict(run.status, run.metrics().as_ref(), run.target_tps, scenario_verdicts.iter().copied());
    let scenarios = scenarios
        .into_iter()
        .zip(scenario_verdicts)
        .map(|((row, stages), verdict)| {
            let endpoint = endpoints.iter().find(|found| found.endpoint.id == row.endpoint_id).map(|found| {
                format!("{} {}{}", found.endpoint.method.as_str(), found.base_url, found.endpoint.path)
            });
            scenario_facts(row, stages, endpoint, verdict, sees_secrets)
        })
        .collect();
    Ok(ReportData {
        generated_at: now,
        script: visible_script(&run.k6_script, sees_secrets).into_owned(),
        run: RunFacts {
            id: run.id,
            title: run.title.clone(),
            description: run.description.clone(),
            status: upper(run.status),
            verdict: upper(verdict),
            runner: upper(run.runner),
            parallelism: run.parallelism,
            tested_at: run.tested_at,
            started_at: run.started_at,
            completed_at: run.completed_at,
            failure_reason: run.failure_reason.clone(),
            target_tps: run.target_tps,
            results_complete: run.results_complete,
            results_pending: repo::runs::results_pending(&run),
            missing_samples: repo::runs::integrity_of(&run).and_then(|integrity| integrity.missing()),
            plan: run.plan_id.map(|id| PlanRef { id, version: run.plan_version }),
            summary: run.metrics().map(Figures::from),
            totals: run.k6_counts().map(Totals::from),
        },
        scenarios,
        charts,
        baseline: baseline_comparison(db, &run).await,
    })
}

fn metric_label(metric: crate::domain::regression::RegressionMetric) -> &'static str {
    use crate::domain::regression::RegressionMetric::*;
    match metric {
        P95ResponseTime => "p95 response time, ms (median per interval)",
        P99ResponseTime => "p99 response time, ms (median per interval)",
        ErrorRate => "error rate, % (median per interval)",
        Throughput => "requests/s (median per interval)",
    }
}

/// The run's recorded verdicts against its plan's baseline, as the page's rows.
async fn baseline_comparison(
    db: &DatabaseConnection,
    run: &test_history::Model,
) -> Option<BaselineComparison> {
    use crate::domain::regression::{EffectScale, MetricRegression, RunRegression};
    let judged: RunRegression = serde_json::from_str(run.regression.as_deref()?).ok()?;
    let baseline = repo::runs::get(db, judged.baseline_id).await.ok()?;
    let row = |scope: Option<&str>, m: &MetricRegression| {
        let shown = |v: f64| match m.scale {
            EffectScale::Relative => format!("{:+.1}%", v * 100.0),
            EffectScale::Absolute => format!("{v:+.2}"),
        };
        let change = m.effect.map(|effect| {
            let interval = match (m.interval_low, m.interval_high) {
                (Some(low), Some(high)) => format!(" ({} to {})", shown(low), shown(high)),
                _ => String::new(),
            };
            let p = m.p_value.map(|p| format!(", p {p:.4}")).unwrap_or_default();
            format!("{}{interval}{p}", shown(effect))
        });
        BaselineRow {
            scope: scope.map(str::to_owned),
            metric: metric_label(m.metric).to_owned(),
            baseline: m.baseline_median,
            candidate: m.candidate_median,
            verdict: Some(upper(m.verdict)),
            change: change.or_else(|| Some(m.reason.to_lowercase().replace('_', " "))),
        }
    };
    let rows = judged
        .metrics
        .iter()
        .map(|m| row(None, m))
        .chain(judged.scenarios.iter().flat_map(|s| s.metrics.iter().map(move |m| row(Some(&s.name), m))))
        .collect();
    Some(BaselineComparison {
        baseline_id: baseline.id,
        baseline_title: baseline.title,
        baseline_tested_at: baseline.tested_at,
        rows,
    })
}

fn scenario_facts(
    row: scenario_history::Model,
    stages: Vec<stage_history::Model>,
    endpoint: Option<String>,
    verdict: Verdict,
    sees_secrets: bool,
) -> ScenarioFacts {
    ScenarioFacts {
        summary: row.metrics().map(Figures::from),
        totals: row.k6_counts().map(Totals::from),
        request: visible_request(&row, sees_secrets).map(|json| json.0),
        name: row.name,
        scenario_tag: row.scenario_tag,
        endpoint,
        executor: row.executor.as_k6().to_owned(),
        think_time: row.think_time,
        max_vus_limit: row.max_vus_limit,
        response_time_target: row.response_time_target,
        error_rate_target: row.error_rate_target,
        verdict: upper(verdict),
        stages: stages
            .into_iter()
            .map(|stage| StageFacts { duration: stage.duration, target: stage.target })
            .collect(),
    }
}

/// The charts of `run`: its series and each scenario's, or why there are none.
async fn charts(
    influx: &InfluxClient,
    run: &test_history::Model,
    scenarios: &[(scenario_history::Model, Vec<stage_history::Model>)],
    now: DateTime<Utc>,
) -> Charts {
    if run.status == TestStatus::Pending {
        return Charts::Unavailable {
            reason: "The run has not started yet: nothing has been measured.".into(),
        };
    }
    let ended_at = if run.status.is_active() { None } else { run.completed_at };
    let window = run_window(run.started_at.unwrap_or(run.tested_at), ended_at, now);
    let tags: Vec<String> = scenarios.iter().map(|(scenario, _)| scenario.scenario_tag.clone()).collect();
    let unreachable = |detail: String| Charts::Unavailable {
        reason: format!(
            "InfluxDB could not be read when this page was made ({detail}), so it has no charts. \
             The tables come from the summary stored when the run ended; reload the page once InfluxDB is back."
        ),
    };
    match tokio::time::timeout(SERIES_TIMEOUT, series::read(influx, run.id, window, &tags)).await {
        Ok(Ok(series)) if series.run.time.is_empty() => Charts::Unavailable {
            reason: "InfluxDB holds no samples of this run (none were written, or they are past \
                     INFLUXDB_RAW_RETENTION)."
                .into(),
        },
        Ok(Ok(series)) => {
            Charts::Drawn { step_seconds: series.step_seconds, run: series.run, scenarios: series.scenarios }
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "the report's series could not be read from InfluxDB");
            unreachable(error.to_string())
        }
        Err(_) => unreachable(format!("no answer within {} s", SERIES_TIMEOUT.as_secs())),
    }
}

/// An API enum's name as the API spells it (`COMPLETED`, `PASSED`, `LOCAL`).
fn upper(value: impl std::fmt::Debug) -> String {
    format!("{value:?}").to_uppercase()
}
