//! A run's regression verdicts against its plan's baseline, as stored with the run
//! (`test_history.regression`, JSON) and shown by the API.

use async_graphql::{Enum, SimpleObject};
use serde::{Deserialize, Serialize};

/// What a comparison with the baseline concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegressionVerdict {
    /// A significant change of at least the minimum effect, the better way.
    Improved,
    /// No significant change, or one smaller than the minimum effect.
    Unchanged,
    /// A significant change of at least the minimum effect, the worse way.
    Regressed,
    /// Too few intervals to tell (see `reason`).
    Inconclusive,
}

impl RegressionVerdict {
    /// The verdict of several: any REGRESSED, else any INCONCLUSIVE, else any IMPROVED, else UNCHANGED.
    pub fn worst(verdicts: impl IntoIterator<Item = Self>) -> Self {
        let verdicts: Vec<Self> = verdicts.into_iter().collect();
        [Self::Regressed, Self::Inconclusive, Self::Improved]
            .into_iter()
            .find(|wanted| verdicts.contains(wanted))
            .unwrap_or(if verdicts.is_empty() { Self::Inconclusive } else { Self::Unchanged })
    }
}

/// The figure compared, interval by interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegressionMetric {
    /// 95th percentile response time per interval (ms); higher is worse.
    P95ResponseTime,
    /// 99th percentile response time per interval (ms); higher is worse.
    P99ResponseTime,
    /// Failed requests per interval (%); higher is worse.
    ErrorRate,
    /// Requests per second per interval; lower is worse.
    Throughput,
}

/// How an effect is expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EffectScale {
    /// A fraction of the baseline's median: 0.2 is +20 %.
    Relative,
    /// In the metric's own unit (the baseline's median was 0).
    Absolute,
}

/// One figure of a run or scenario against the baseline's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SimpleObject)]
#[serde(rename_all = "camelCase")]
pub struct MetricRegression {
    pub metric: RegressionMetric,
    pub verdict: RegressionVerdict,
    /// Why: `NOT_SIGNIFICANT`, `BELOW_MIN_EFFECT`, `SIGNIFICANT_CHANGE`, `TOO_FEW_SAMPLES`.
    pub reason: String,
    pub baseline_median: Option<f64>,
    pub candidate_median: Option<f64>,
    /// The Hodges–Lehmann shift of the candidate from the baseline, on `scale`.
    pub effect: Option<f64>,
    pub scale: EffectScale,
    /// The shift's confidence interval, on `scale`.
    pub interval_low: Option<f64>,
    pub interval_high: Option<f64>,
    /// Two-sided Mann–Whitney U p-value.
    pub p_value: Option<f64>,
    /// Intervals compared.
    pub baseline_samples: i32,
    pub candidate_samples: i32,
}

/// One scenario's figures against the baseline scenario of the same name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SimpleObject)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioRegression {
    pub name: String,
    pub verdict: RegressionVerdict,
    pub metrics: Vec<MetricRegression>,
}

/// A run against its plan's baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRegression {
    pub baseline_id: i64,
    /// The test: `mann-whitney-u` (with the Hodges–Lehmann interval).
    pub method: String,
    pub confidence: f64,
    /// The smallest relative change that counts (0.05 = 5 %).
    pub min_effect: f64,
    /// The smallest error-rate change that counts when the baseline's median is 0 (percentage points).
    pub min_error_rate_change: f64,
    /// Seconds per interval.
    pub step_seconds: i64,
    /// The worst of every metric's verdict, run-wide and per scenario.
    pub verdict: RegressionVerdict,
    pub metrics: Vec<MetricRegression>,
    pub scenarios: Vec<ScenarioRegression>,
}
