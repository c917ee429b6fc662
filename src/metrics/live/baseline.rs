//! The baseline beside a live run: when the run's plan has a baseline, the poller reads the
//! baseline's series once and each snapshot carries the baseline's figures at the same elapsed
//! time, plus a verdict on the run's p95 so far against the baseline's over the same span (the
//! Mann–Whitney test of [`crate::metrics::regression`], on one-second intervals), so a
//! dashboard can draw both lines and flag a regression before the run ends.

use chrono::{DateTime, Utc};

use super::Registry;
use crate::{
    db::{entities::test_history, repo},
    domain::regression::RegressionVerdict,
    metrics::{
        regression::{self, Direction},
        timeseries::{TimeseriesPoint, run_window},
    },
};

/// The baseline's figures at an elapsed time.
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineFigures {
    pub test_id: i64,
    /// Seconds from the start of the baseline's load to the start of the interval shown.
    pub elapsed_seconds: f64,
    pub tps: f64,
    pub p95_response_time: f64,
    pub error_rate: f64,
}

/// A baseline's series by elapsed time, read once per poller.
pub(super) struct BaselineSeries {
    pub(super) test_id: i64,
    /// (seconds from the baseline's start to the interval's start, the interval), in order.
    points: Vec<(f64, TimeseriesPoint)>,
}

impl BaselineSeries {
    /// The id of `run`'s plan's baseline now, when it has one (and it is not `run` itself).
    pub(super) async fn current_id(registry: &Registry, run: &test_history::Model) -> Option<i64> {
        let plan = repo::plans::get(&registry.db, run.plan_id?).await.ok()??;
        plan.baseline_run_id.filter(|&id| id != run.id)
    }

    /// The series of baseline run `baseline_id`, when it still exists.
    pub(super) async fn load(registry: &Registry, baseline_id: i64) -> Option<Self> {
        let baseline = repo::runs::get(&registry.db, baseline_id).await.ok()?;
        let started = baseline.started_at?;
        let window = run_window(started, baseline.completed_at, Utc::now());
        let series = registry.influx.timeseries(baseline.id, window, Some(1), None).await.ok()?;
        let points =
            series.points.into_iter().map(|point| (seconds_between(started, point.time), point)).collect();
        Some(Self { test_id: baseline.id, points })
    }

    /// The baseline's interval holding `elapsed` seconds (its last one past its end).
    pub(super) fn at(&self, elapsed: f64) -> Option<BaselineFigures> {
        let index = self.points.partition_point(|(start, _)| *start <= elapsed);
        let (start, point) = self.points.get(index.checked_sub(1)?)?;
        // The bucket before the baseline's start holds k6's first partial second only.
        if *start < 0.0 {
            return None;
        }
        Some(BaselineFigures {
            test_id: self.test_id,
            elapsed_seconds: *start,
            tps: point.tps,
            p95_response_time: point.p95_response_time,
            error_rate: point.error_rate,
        })
    }

    /// The run's p95 per interval so far against the baseline's full intervals (its first,
    /// partial one left out) up to the same elapsed time.
    pub(super) fn verdict(
        &self,
        run_p95: &[f64],
        elapsed: f64,
        settings: &regression::Settings,
    ) -> RegressionVerdict {
        let baseline: Vec<f64> = self
            .points
            .iter()
            .take_while(|(start, _)| *start + 1.0 <= elapsed)
            .filter(|(start, point)| *start >= 0.0 && point.tps > 0.0)
            .map(|(_, point)| point.p95_response_time)
            .collect();
        regression::compare(&baseline, run_p95, Direction::HigherIsWorse, settings).verdict.into()
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(p95: &[f64]) -> BaselineSeries {
        let start = DateTime::from_timestamp(1_000, 0).unwrap();
        let points = p95
            .iter()
            .enumerate()
            .map(|(i, &p95)| {
                let point = TimeseriesPoint {
                    time: start + chrono::Duration::seconds(i as i64),
                    tps: 10.0,
                    avg_response_time: p95 / 2.0,
                    p95_response_time: p95,
                    error_rate: 0.0,
                    vus: 1.0,
                };
                (i as f64, point)
            })
            .collect();
        BaselineSeries { test_id: 9, points }
    }

    #[test]
    fn the_baseline_is_read_at_the_same_elapsed_time() {
        let baseline = series(&[10.0, 11.0, 12.0]);
        assert_eq!(baseline.at(-0.5), None);
        assert_eq!(baseline.at(0.0).unwrap().p95_response_time, 10.0);
        assert_eq!(baseline.at(1.7).unwrap().p95_response_time, 11.0);
        assert_eq!(baseline.at(30.0).unwrap().elapsed_seconds, 2.0);
    }

    #[test]
    fn a_run_slower_so_far_is_flagged_before_it_ends() {
        let steady: Vec<f64> = (0..40).map(|i| 20.0 + f64::from(i % 5) * 0.1).collect();
        let baseline = series(&steady);
        let settings = regression::Settings { min_samples: 10, ..Default::default() };
        let slower: Vec<f64> = steady.iter().take(15).map(|p95| p95 * 1.5).collect();
        assert_eq!(baseline.verdict(&slower, 15.0, &settings), RegressionVerdict::Regressed);
        let alike: Vec<f64> = steady.iter().take(15).copied().collect();
        assert_eq!(baseline.verdict(&alike, 15.0, &settings), RegressionVerdict::Unchanged);
        assert_eq!(baseline.verdict(&slower[..3], 3.0, &settings), RegressionVerdict::Inconclusive);
    }
}
