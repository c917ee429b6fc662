//! A run's results as recorded at its end: the figures InfluxDB computes from the stored
//! samples, with the counts replaced by k6's own ([`crate::k6::counts`]), and the integrity
//! check between the two ([`crate::domain::integrity`]).

use std::collections::BTreeMap;

use crate::{domain::MetricSummary, k6::counts::K6Counts};

/// What InfluxDB gave for a run.
#[derive(Debug, Default)]
pub(super) struct StoredResults {
    /// Run-wide summary; None when InfluxDB holds no request of the run.
    pub summary: Option<MetricSummary>,
    /// Per scenario key, for the scenarios with samples.
    pub scenario_summaries: Vec<(String, MetricSummary)>,
    /// `http_reqs` samples by `instance_id`.
    pub stored: BTreeMap<String, i64>,
}

/// k6's counts of a run and of its scenarios (by key; empty when not every instance gave them).
pub use crate::domain::counts::RunCounts;

/// The summary with k6's exact request counts in place of InfluxDB's, and the figures derived
/// from the counts alone (average TPS over the active seconds, average error rate) recomputed
/// from them. The time-based figures stay InfluxDB's.
pub(super) fn with_exact_counts(summary: &mut MetricSummary, counts: &K6Counts) {
    summary.total_requests = counts.requests;
    summary.failed_requests = counts.failed_requests;
    summary.avg_tps = counts.requests as f64 / summary.test_duration.max(1.0);
    summary.avg_error_rate = if counts.requests > 0 {
        counts.failed_requests as f64 / counts.requests as f64 * 100.0
    } else {
        0.0
    };
}

/// [`with_exact_counts`] for the run and each scenario k6 counted.
pub(super) fn apply_counts(results: &mut StoredResults, counts: Option<&RunCounts>) {
    let Some((run, scenarios)) = counts else { return };
    if let Some(summary) = results.summary.as_mut() {
        with_exact_counts(summary, run);
    }
    for (key, summary) in &mut results.scenario_summaries {
        if let Some((_, counts)) = scenarios.iter().find(|(counted, _)| counted == key) {
            with_exact_counts(summary, counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_what_derives_from_them_follow_k6() {
        let mut summary = MetricSummary {
            total_requests: 990,
            failed_requests: 9,
            test_duration: 10.0,
            max_tps: 120.0,
            min_tps: 80.0,
            avg_tps: 99.0,
            max_response_time: 0.0,
            min_response_time: 0.0,
            avg_response_time: 0.0,
            p50_response_time: 0.0,
            p95_response_time: 0.0,
            p99_response_time: 0.0,
            max_error_rate: 0.0,
            min_error_rate: 0.0,
            avg_error_rate: 0.9,
            max_vus: 0.0,
            min_vus: 0.0,
            avg_vus: 0.0,
        };
        let counts = K6Counts { requests: 1000, failed_requests: 10, ..K6Counts::default() };
        with_exact_counts(&mut summary, &counts);
        assert_eq!((summary.total_requests, summary.failed_requests), (1000, 10));
        assert_eq!(summary.avg_tps, 100.0);
        assert_eq!(summary.avg_error_rate, 1.0);
        assert_eq!(summary.max_tps, 120.0, "per-second figures stay InfluxDB's");
    }
}
