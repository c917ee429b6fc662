//! A run as `run` reads it, what its end means for the exit status, and the summary table.

use std::{fmt::Write, time::Duration};

use serde::Deserialize;

use crate::k6::duration::parse_k6_duration;

/// The fields `run` reads of a run, wherever it reads one (launch, polls, the end): the JSON
/// document of `--json` is the server's answer to this selection, so its names are the API's.
pub const RUN_FIELDS: &str = "id title status verdict failureReason testedAt startedAt completedAt targetTps
    resultsPending resultsComplete missingSamples
    project { id title } plan { id title } planVersion { version }
    summary { totalRequests failedRequests testDuration avgTps p95ResponseTime p99ResponseTime avgErrorRate maxVus }
    scenarios { name verdict responseTimeTarget errorRateTarget stages { duration target }
                summary { totalRequests failedRequests avgTps p95ResponseTime p99ResponseTime avgErrorRate } }
    regression { verdict baseline { id } metrics { metric verdict effect scale }
                 scenarios { name metrics { metric verdict effect scale } } }";

/// A run, as [`RUN_FIELDS`] reads it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: String,
    #[serde(deserialize_with = "super::printable")]
    pub title: String,
    pub status: String,
    pub verdict: String,
    pub failure_reason: Option<String>,
    pub target_tps: Option<f64>,
    pub results_pending: bool,
    pub missing_samples: Option<i64>,
    pub project: Named,
    /// The plan it was launched from, and which version of it ran.
    pub plan: Option<Named>,
    pub plan_version: Option<PlanVersion>,
    pub summary: Option<Summary>,
    pub scenarios: Vec<Scenario>,
    /// Verdicts against the plan's baseline; None without one.
    #[serde(default)]
    pub regression: Option<Regression>,
}

/// `TestHistory.regression`, as far as the gate reads it.
#[derive(Clone, Debug, Deserialize)]
pub struct Regression {
    pub verdict: String,
    pub baseline: Option<Id>,
    pub metrics: Vec<RegressedMetric>,
    pub scenarios: Vec<RegressedScenario>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Id {
    pub id: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RegressedScenario {
    #[serde(deserialize_with = "super::printable")]
    pub name: String,
    pub metrics: Vec<RegressedMetric>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RegressedMetric {
    pub metric: String,
    pub verdict: String,
    pub effect: Option<f64>,
    pub scale: String,
}

impl RegressedMetric {
    /// `p95 response time +42%`.
    fn describe(&self) -> String {
        let name = self.metric.to_lowercase().replace('_', " ");
        match (self.effect, self.scale.as_str()) {
            (Some(effect), "RELATIVE") => format!("{name} {:+.0}%", effect * 100.0),
            (Some(effect), _) => format!("{name} {effect:+.2}"),
            (None, _) => name,
        }
    }
}

/// With `--fail-on-regression`: a run that met its targets but REGRESSED against its plan's
/// baseline fails (exit 1), saying what regressed. Without a baseline nothing changes.
pub fn judge_regression(run: &Run, outcome: Outcome, why: String) -> (Outcome, String) {
    let Some(regression) = run.regression.as_ref().filter(|r| r.verdict == "REGRESSED") else {
        return (outcome, why);
    };
    if outcome == Outcome::Error {
        return (outcome, why);
    }
    let regressed: Vec<String> = regression
        .metrics
        .iter()
        .filter(|m| m.verdict == "REGRESSED")
        .map(RegressedMetric::describe)
        .chain(regression.scenarios.iter().flat_map(|s| {
            s.metrics
                .iter()
                .filter(|m| m.verdict == "REGRESSED")
                .map(move |m| format!("{}: {}", s.name, m.describe()))
        }))
        .collect();
    let baseline = regression.baseline.as_ref().map_or("?", |b| b.id.as_str());
    let said = format!("regressed against baseline run {baseline}: {}", regressed.join("; "));
    let why = if outcome == Outcome::Failed { format!("{why}; {said}") } else { said };
    (Outcome::Failed, why)
}

#[derive(Clone, Debug, Deserialize)]
pub struct PlanVersion {
    pub version: i32,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Named {
    pub id: String,
    #[serde(deserialize_with = "super::printable")]
    pub title: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scenario {
    #[serde(deserialize_with = "super::printable")]
    pub name: String,
    pub verdict: String,
    pub response_time_target: Option<f64>,
    pub error_rate_target: Option<f64>,
    pub stages: Vec<Stage>,
    pub summary: Option<Summary>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Stage {
    pub duration: String,
}

/// A run's or a scenario's measured figures (times in ms, rates per second, errors in percent).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub total_requests: i64,
    pub failed_requests: i64,
    pub avg_tps: f64,
    pub p95_response_time: f64,
    pub p99_response_time: f64,
    pub avg_error_rate: f64,
}

impl Run {
    /// Whether the run is still to end.
    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "PENDING" | "RUNNING")
    }

    /// How long the load is planned to last: the longest scenario's stages (scenarios run side
    /// by side); None when a duration cannot be read.
    pub fn planned_length(&self) -> Option<Duration> {
        self.scenarios
            .iter()
            .map(|scenario| scenario.stages.iter().map(|stage| parse_k6_duration(&stage.duration).ok()).sum())
            .collect::<Option<Vec<Duration>>>()?
            .into_iter()
            .max()
    }

    /// Whether any target could judge the run.
    fn has_targets(&self) -> bool {
        self.target_tps.is_some()
            || self
                .scenarios
                .iter()
                .any(|s| s.response_time_target.is_some() || s.error_rate_target.is_some())
    }
}

/// What an ended run means for the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Without `--wait`: launched.
    Launched,
    /// COMPLETED, verdict PASSED: exit 0.
    Passed,
    /// COMPLETED, verdict FAILED: exit 1.
    Failed,
    /// Anything else: exit 2.
    Error,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Launched | Self::Passed => 0,
            Self::Failed => 1,
            Self::Error => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Launched => "LAUNCHED",
            Self::Passed => "PASSED",
            Self::Failed => "FAILED",
            Self::Error => "ERROR",
        }
    }
}

/// The outcome of an ended run, and why in a sentence.
pub fn judge(run: &Run) -> (Outcome, String) {
    let reason = run.failure_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    match (run.status.as_str(), run.verdict.as_str()) {
        ("COMPLETED", "PASSED") => (Outcome::Passed, "every target was met".into()),
        ("COMPLETED", "FAILED") => (Outcome::Failed, format!("targets missed: {}", missed_targets(run).join("; "))),
        ("COMPLETED", _) if run.results_pending => {
            (Outcome::Error, format!("the run ended but its results are not read yet{reason}"))
        }
        ("COMPLETED", _) if !run.has_targets() => (
            Outcome::Error,
            "the plan sets no target (responseTimeTarget, errorRateTarget or targetTps), so nothing can pass or fail"
                .into(),
        ),
        ("COMPLETED", verdict) => (Outcome::Error, format!("the verdict is {verdict}")),
        ("FAILED", _) => (Outcome::Error, format!("the run failed{reason}")),
        ("CANCELLED", _) => (Outcome::Error, format!("the run was cancelled{reason}")),
        (status, _) => (Outcome::Error, format!("the run is still {status}")),
    }
}

/// Each target the run missed, in words.
fn missed_targets(run: &Run) -> Vec<String> {
    let mut missed = Vec::new();
    for scenario in run.scenarios.iter().filter(|s| s.verdict == "FAILED") {
        let Some(figures) = &scenario.summary else { continue };
        if let Some(target) = scenario.response_time_target.filter(|t| figures.p95_response_time > *t) {
            missed.push(format!(
                "{}: p95 {:.2} ms > {} ms",
                scenario.name,
                figures.p95_response_time,
                number(target)
            ));
        }
        if let Some(target) = scenario.error_rate_target.filter(|t| figures.avg_error_rate > *t) {
            missed.push(format!(
                "{}: errors {:.2}% > {}%",
                scenario.name,
                figures.avg_error_rate,
                number(target)
            ));
        }
    }
    if let (Some(target), Some(figures)) = (run.target_tps, &run.summary)
        && figures.avg_tps < target
    {
        missed.push(format!("run: TPS {:.1} < {}", figures.avg_tps, number(target)));
    }
    if missed.is_empty() {
        missed.push("see the verdicts above".into());
    }
    missed
}

/// `250`, `0.001`: a target as it was set.
fn number(value: f64) -> String {
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The summary table: one row per scenario and one for the whole run, with targets and verdicts.
pub fn table(run: &Run) -> String {
    const HEADER: [&str; 9] =
        ["scenario", "requests", "failed", "TPS", "p95 ms", "p99 ms", "errors %", "targets", "verdict"];
    let figures = |summary: &Option<Summary>| -> [String; 6] {
        match summary {
            Some(f) => [
                f.total_requests.to_string(),
                f.failed_requests.to_string(),
                format!("{:.1}", f.avg_tps),
                format!("{:.2}", f.p95_response_time),
                format!("{:.2}", f.p99_response_time),
                format!("{:.2}", f.avg_error_rate),
            ],
            None => Default::default(),
        }
    };
    let mut rows: Vec<[String; 9]> = Vec::new();
    for scenario in &run.scenarios {
        let mut targets = Vec::new();
        if let Some(target) = scenario.response_time_target {
            targets.push(format!("p95 <= {} ms", number(target)));
        }
        if let Some(target) = scenario.error_rate_target {
            targets.push(format!("errors <= {}%", number(target)));
        }
        let [requests, failed, tps, p95, p99, errors] = figures(&scenario.summary);
        let targets = if targets.is_empty() { "-".to_owned() } else { targets.join(", ") };
        rows.push([
            scenario.name.clone(),
            requests,
            failed,
            tps,
            p95,
            p99,
            errors,
            targets,
            scenario.verdict.clone(),
        ]);
    }
    let [requests, failed, tps, p95, p99, errors] = figures(&run.summary);
    let targets = run.target_tps.map_or("-".to_owned(), |target| format!("TPS >= {}", number(target)));
    rows.push(["(run)".into(), requests, failed, tps, p95, p99, errors, targets, run.verdict.clone()]);

    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 9]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            // Names and words to the left, numbers to the right.
            let numeric = (1..=6).contains(&index);
            let _ = if numeric { write!(text, "{cell:>width$}  ") } else { write!(text, "{cell:<width$}  ") };
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(HEADER);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

/// The lines above the table: the run, its status and how its results stand.
pub fn heading(run: &Run) -> String {
    let plan = match (&run.plan, &run.plan_version) {
        (Some(plan), Some(version)) => {
            format!("test plan {} \"{}\" version {}, ", plan.id, plan.title, version.version)
        }
        (Some(plan), None) => format!("test plan {} \"{}\", ", plan.id, plan.title),
        _ => String::new(),
    };
    let mut text = format!(
        "run {} \"{}\" ({plan}project {} \"{}\"): {}, verdict {}\n",
        run.id, run.title, run.project.id, run.project.title, run.status, run.verdict
    );
    if let Some(reason) = &run.failure_reason {
        let _ = writeln!(text, "  {reason}");
    }
    if run.results_pending {
        text.push_str("  results pending: the server fills them in once InfluxDB answers\n");
    } else if let Some(missing) = run.missing_samples.filter(|m| *m > 0) {
        let _ = writeln!(
            text,
            "  {missing} request samples are missing: time-based figures rest on fewer samples"
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(status: &str, verdict: &str, p95: f64, target: Option<f64>) -> Run {
        serde_json::from_value(json!({
            "id": "42", "title": "Checkout", "status": status, "verdict": verdict, "failureReason": null,
            "targetTps": null, "resultsPending": false, "missingSamples": 0,
            "project": {"id": "1", "title": "Shop"}, "plan": {"id": "7", "title": "Checkout"}, "planVersion": {"version": 3},
            "summary": {"totalRequests": 1234, "failedRequests": 2, "avgTps": 41.13, "p95ResponseTime": p95,
                        "p99ResponseTime": 9.5, "avgErrorRate": 0.16},
            "scenarios": [
                {"name": "Browse", "verdict": verdict, "responseTimeTarget": target, "errorRateTarget": 1.0,
                 "stages": [{"duration": "10s"}, {"duration": "1m"}],
                 "summary": {"totalRequests": 1000, "failedRequests": 2, "avgTps": 33.3, "p95ResponseTime": p95,
                             "p99ResponseTime": 9.5, "avgErrorRate": 0.2}},
                {"name": "Order", "verdict": "UNKNOWN", "responseTimeTarget": null, "errorRateTarget": null,
                 "stages": [{"duration": "1m30s"}], "summary": null}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn the_planned_length_is_the_longest_scenario() {
        assert_eq!(run("RUNNING", "UNKNOWN", 1.0, None).planned_length(), Some(Duration::from_secs(90)));
        let mut unreadable = run("RUNNING", "UNKNOWN", 1.0, None);
        unreadable.scenarios[0].stages[0].duration = "soon".into();
        assert_eq!(unreadable.planned_length(), None);
    }

    #[test]
    fn only_a_completed_run_with_a_verdict_passes_or_fails() {
        assert_eq!(judge(&run("COMPLETED", "PASSED", 5.0, Some(250.0))).0, Outcome::Passed);
        let (outcome, why) = judge(&run("COMPLETED", "FAILED", 5.25, Some(0.001)));
        assert_eq!(outcome, Outcome::Failed);
        assert_eq!(why, "targets missed: Browse: p95 5.25 ms > 0.001 ms");
        let mut untargeted = run("COMPLETED", "UNKNOWN", 5.0, None);
        untargeted.scenarios[0].error_rate_target = None;
        let (outcome, why) = judge(&untargeted);
        assert_eq!(outcome, Outcome::Error);
        assert!(why.contains("no target"), "{why}");
        let mut failed = run("FAILED", "UNKNOWN", 5.0, Some(250.0));
        failed.failure_reason = Some("k6 exited with 107".into());
        assert_eq!(judge(&failed), (Outcome::Error, "the run failed: k6 exited with 107".into()));
        assert_eq!(judge(&run("CANCELLED", "PASSED", 5.0, Some(250.0))).0, Outcome::Error);
        let mut pending = run("COMPLETED", "UNKNOWN", 5.0, Some(250.0));
        pending.results_pending = true;
        assert!(judge(&pending).1.contains("not read yet"));
        assert_eq!(
            [Outcome::Launched, Outcome::Passed, Outcome::Failed, Outcome::Error].map(Outcome::exit_code),
            [0, 0, 1, 2]
        );
    }

    #[test]
    fn the_heading_names_the_plan_version_that_ran() {
        let mut failed = run("FAILED", "UNKNOWN", 5.0, Some(250.0));
        failed.failure_reason = Some("k6 exited with 107".into());
        assert_eq!(
            heading(&failed),
            "run 42 \"Checkout\" (test plan 7 \"Checkout\" version 3, project 1 \"Shop\"): FAILED, verdict UNKNOWN\n  k6 exited with 107\n"
        );
    }

    #[test]
    fn the_table_has_a_row_per_scenario_and_one_for_the_run() {
        let table = table(&run("COMPLETED", "FAILED", 5.25, Some(0.001)));
        assert_eq!(
            table,
            "\
scenario  requests  failed   TPS  p95 ms  p99 ms  errors %  targets                        verdict
Browse        1000       2  33.3    5.25    9.50      0.20  p95 <= 0.001 ms, errors <= 1%  FAILED
Order                                                       -                              UNKNOWN
(run)         1234       2  41.1    5.25    9.50      0.16  -                              FAILED
"
        );
    }
}
