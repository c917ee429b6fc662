//! How demanding regression verdicts are (`REGRESSION_*`).

use super::{ConfigError, Env};

/// `REGRESSION_CONFIDENCE`, `REGRESSION_MIN_EFFECT_PERCENT`, `REGRESSION_MIN_ERROR_RATE_CHANGE`,
/// `REGRESSION_MIN_INTERVALS`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegressionSettings {
    /// Confidence of the test and of the effect's interval (0.95).
    pub confidence: f64,
    /// The smallest relative change that counts, as a fraction (0.05 = 5 %).
    pub min_effect: f64,
    /// The smallest error-rate change that counts when the baseline's median error rate is 0,
    /// in percentage points (1.0).
    pub min_error_rate_change: f64,
    /// Intervals each run needs for a verdict (20).
    pub min_intervals: usize,
}

impl RegressionSettings {
    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            confidence: env.number(
                "REGRESSION_CONFIDENCE",
                0.95,
                |c| c > 0.5 && c < 1.0,
                "a confidence level between 0.5 and 1, e.g. 0.95",
            )?,
            min_effect: env.number(
                "REGRESSION_MIN_EFFECT_PERCENT",
                5.0,
                |p| (0.0..=1000.0).contains(&p),
                "a percentage (0 or more), e.g. 5",
            )? / 100.0,
            min_error_rate_change: env.number(
                "REGRESSION_MIN_ERROR_RATE_CHANGE",
                1.0,
                |p| (0.0..=100.0).contains(&p),
                "percentage points between 0 and 100, e.g. 1",
            )?,
            min_intervals: env.parsed(
                "REGRESSION_MIN_INTERVALS",
                "20",
                "a whole number of intervals (2 or more)",
            )?,
        })
    }
}
