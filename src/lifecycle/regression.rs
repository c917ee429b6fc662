//! Regression verdicts for runs of a plan with a baseline: when such a run ends with its
//! results, its per-interval p95, p99, error rate and throughput — run-wide and per scenario
//! (paired with the baseline's scenario of the same name) — are compared with the baseline's
//! ([`crate::metrics::regression::compare`]) and the verdicts are recorded with the run's end.

use chrono::{DateTime, Utc};

use super::{Lifecycle, WINDOW_MARGIN};
use crate::{
    config::RegressionSettings,
    db::{entities::test_history, repo},
    domain::regression::{
        EffectScale, MetricRegression, RegressionMetric, RegressionVerdict, RunRegression, ScenarioRegression,
    },
    metrics::{
        influx::{InfluxError, TimeWindow},
        intervals::{IntervalSamples, common_step},
        regression::{self, Comparison, Direction, Reason, Scale},
    },
};

impl Lifecycle {
    /// The verdicts of `run` (ended at `ended_at`) against its plan's baseline; None when it
    /// has no plan, the plan no baseline (or the run is the baseline), or InfluxDB fails.
    pub(super) async fn judge_regression(
        &self,
        run: &test_history::Model,
        ended_at: DateTime<Utc>,
    ) -> Option<RunRegression> {
        let plan = repo::plans::get(&self.db, run.plan_id?).await.ok()??;
        let baseline = plan.baseline_run_id.filter(|&id| id != run.id)?;
        let baseline = repo::runs::get(&self.db, baseline).await.ok()?;
        let candidate_window = window(run.started_at?, ended_at);
        let baseline_window = window(baseline.started_at?, baseline.completed_at?);
        match self.compare_runs(&baseline, baseline_window, run, candidate_window).await {
            Ok(judged) => Some(judged),
            Err(err) => {
                tracing::warn!(test_id = run.id, error = %err, "could not judge the run against its baseline");
                None
            }
        }
    }

    /// `candidate` against `baseline`, run-wide and scenario by scenario.
    pub async fn compare_runs(
        &self,
        baseline: &test_history::Model,
        baseline_window: TimeWindow,
        candidate: &test_history::Model,
        candidate_window: TimeWindow,
    ) -> Result<RunRegression, InfluxError> {
        let step = common_step(baseline_window, candidate_window);
        let samples = |id: i64, window: TimeWindow, scenario: Option<String>| async move {
            self.influx.interval_samples(id, window, step, scenario.as_deref()).await
        };
        let settings = self.settings.regression;
        let (base, cand) = tokio::try_join!(
            samples(baseline.id, baseline_window, None),
            samples(candidate.id, candidate_window, None)
        )?;
        let metrics = judge_all(&base, &cand, &settings);

        let base_scenarios =
            repo::runs::scenarios_with_stages(&self.db, baseline.id).await.unwrap_or_default();
        let cand_scenarios =
            repo::runs::scenarios_with_stages(&self.db, candidate.id).await.unwrap_or_default();
        let mut scenarios = Vec::new();
        for (scenario, _) in &cand_scenarios {
            let Some((paired, _)) = base_scenarios.iter().find(|(b, _)| b.name == scenario.name) else {
                continue;
            };
            let (base, cand) = tokio::try_join!(
                samples(baseline.id, baseline_window, Some(paired.scenario_tag.clone())),
                samples(candidate.id, candidate_window, Some(scenario.scenario_tag.clone()))
            )?;
            let metrics = judge_all(&base, &cand, &settings);
            let verdict = RegressionVerdict::worst(metrics.iter().map(|m| m.verdict));
            scenarios.push(ScenarioRegression { name: scenario.name.clone(), verdict, metrics });
        }
        let verdict = RegressionVerdict::worst(
            metrics.iter().chain(scenarios.iter().flat_map(|s| s.metrics.iter())).map(|m| m.verdict),
        );
        Ok(RunRegression {
            baseline_id: baseline.id,
            method: regression::METHOD.to_owned(),
            confidence: settings.confidence,
            min_effect: settings.min_effect,
            min_error_rate_change: settings.min_error_rate_change,
            step_seconds: step,
            verdict,
            metrics,
            scenarios,
        })
    }
}

fn window(started_at: DateTime<Utc>, ended_at: DateTime<Utc>) -> TimeWindow {
    TimeWindow { start: started_at - WINDOW_MARGIN, end: ended_at + WINDOW_MARGIN }
}

/// The four figures of one scope.
fn judge_all(
    base: &IntervalSamples,
    cand: &IntervalSamples,
    settings: &RegressionSettings,
) -> Vec<MetricRegression> {
    use RegressionMetric::*;
    [
        (P95ResponseTime, &base.p95, &cand.p95, Direction::HigherIsWorse),
        (P99ResponseTime, &base.p99, &cand.p99, Direction::HigherIsWorse),
        (ErrorRate, &base.error_rate, &cand.error_rate, Direction::HigherIsWorse),
        (Throughput, &base.tps, &cand.tps, Direction::LowerIsWorse),
    ]
    .into_iter()
    .map(|(metric, base, cand, direction)| {
        let absolute = if metric == ErrorRate { settings.min_error_rate_change } else { 0.0 };
        let statistics = regression::Settings {
            confidence: settings.confidence,
            min_effect: settings.min_effect,
            min_absolute_effect: absolute,
            min_samples: settings.min_intervals.max(2),
        };
        metric_regression(metric, &regression::compare(base, cand, direction, &statistics))
    })
    .collect()
}

fn metric_regression(metric: RegressionMetric, comparison: &Comparison) -> MetricRegression {
    MetricRegression {
        metric,
        verdict: comparison.verdict.into(),
        reason: match comparison.reason {
            Reason::InvalidSettings => "INVALID_SETTINGS",
            Reason::TooFewSamples => "TOO_FEW_SAMPLES",
            Reason::NotSignificant => "NOT_SIGNIFICANT",
            Reason::BelowMinEffect => "BELOW_MIN_EFFECT",
            Reason::SignificantChange => "SIGNIFICANT_CHANGE",
        }
        .to_owned(),
        baseline_median: comparison.baseline_median,
        candidate_median: comparison.candidate_median,
        effect: comparison.effect,
        scale: match comparison.scale {
            Scale::Relative => EffectScale::Relative,
            Scale::Absolute => EffectScale::Absolute,
        },
        interval_low: comparison.interval.map(|(low, _)| low),
        interval_high: comparison.interval.map(|(_, high)| high),
        p_value: comparison.p_value,
        baseline_samples: comparison.baseline_n as i32,
        candidate_samples: comparison.candidate_n as i32,
    }
}
