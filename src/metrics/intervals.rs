//! A run's figures interval by interval, as samples for a regression comparison
//! ([`super::regression`]): p95 and p99 response time, error rate and throughput per interval
//! of one step, from InfluxDB's `GROUP BY time(step)`.
//!
//! Only full intervals with requests count: the first and last bucket of a run hold k6's
//! start and stop (partial seconds), and an interval without requests measured nothing.
//! Two runs are compared at one step ([`common_step`]), so their intervals mean the same.

use std::collections::BTreeMap;

use super::{
    influx::{InfluxClient, InfluxError, RunFilter, Series, TimeWindow},
    timeseries::choose_step,
};

/// One run's (or scenario's) per-interval samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntervalSamples {
    pub step_seconds: i64,
    /// Milliseconds.
    pub p95: Vec<f64>,
    /// Milliseconds.
    pub p99: Vec<f64>,
    /// Percent of the interval's requests that failed.
    pub error_rate: Vec<f64>,
    /// Requests per second.
    pub tps: Vec<f64>,
}

/// The step at which two runs are compared: the coarser of the steps their charts use (at
/// most 2,000 intervals each).
pub fn common_step(a: TimeWindow, b: TimeWindow) -> i64 {
    choose_step(None, a).max(choose_step(None, b))
}

impl InfluxClient {
    /// The samples of run `test_id` (or of one scenario, by its `scenario` tag) within `window`.
    /// No samples (or no database yet) gives empty samples.
    pub async fn interval_samples(
        &self,
        test_id: i64,
        window: TimeWindow,
        step_seconds: i64,
        scenario: Option<&str>,
    ) -> Result<IntervalSamples, InfluxError> {
        let RunFilter { requests, .. } = RunFilter::new(test_id, window, scenario);
        let by_step = format!("GROUP BY time({step_seconds}s) fill(none)");
        let durations = format!(
            r#"SELECT count("value") AS "requests", percentile("value", 95) AS "p95", percentile("value", 99) AS "p99" FROM "http_req_duration" WHERE {requests} {by_step}"#
        );
        let failures =
            format!(r#"SELECT mean("value") AS "rate" FROM "http_req_failed" WHERE {requests} {by_step}"#);
        let (durations, failures) = match tokio::try_join!(self.query(&durations), self.query(&failures)) {
            Ok(answers) => answers,
            Err(InfluxError::Query(message)) if message.contains("database not found") => {
                return Ok(IntervalSamples { step_seconds, ..Default::default() });
            }
            Err(error) => return Err(error),
        };
        Ok(samples_of(step_seconds, &durations, &failures))
    }
}

fn column(series: &[Series], name: &str) -> BTreeMap<i64, f64> {
    series.first().map(|series| series.buckets(name).collect()).unwrap_or_default()
}

/// The full intervals with requests: every bucket but the first and the last.
fn samples_of(step_seconds: i64, durations: &[Series], failures: &[Series]) -> IntervalSamples {
    let requests = column(durations, "requests");
    let (p95, p99, rate) = (column(durations, "p95"), column(durations, "p99"), column(failures, "rate"));
    let (Some(&first), Some(&last)) = (requests.keys().next(), requests.keys().next_back()) else {
        return IntervalSamples { step_seconds, ..Default::default() };
    };
    let mut samples = IntervalSamples { step_seconds, ..Default::default() };
    for (&bucket, &count) in requests.range(first + 1..last) {
        if count <= 0.0 {
            continue;
        }
        samples.tps.push(count / step_seconds as f64);
        samples.p95.extend(p95.get(&bucket));
        samples.p99.extend(p99.get(&bucket));
        samples.error_rate.extend(rate.get(&bucket).map(|rate| rate * 100.0));
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::test_influxd::InfluxServer;

    #[tokio::test]
    async fn full_intervals_with_requests_become_samples_and_the_partial_ends_do_not() {
        let influx = InfluxServer::start().await;
        let client = influx.client("k6");
        client.create_database().await.unwrap();
        // Seconds 100..=104 of run 7: 10 requests a second, the 2nd second's all failing; the
        // 5th second (104) has requests too, so 101..=103 are the full intervals.
        let mut lines = String::new();
        for second in 100..=104i64 {
            for i in 0..10i64 {
                let ms = second * 1000 + i * 50;
                let failed = i64::from(second == 102);
                let duration = 10 + second - 100 + i;
                lines.push_str(&format!("http_req_duration,testid=7,scenario=a value={duration} {ms}\n"));
                lines.push_str(&format!("http_req_failed,testid=7,scenario=a value={failed} {ms}\n"));
            }
        }
        influx.write("k6", &lines).await;
        let window = TimeWindow {
            start: chrono::DateTime::from_timestamp(99, 0).unwrap(),
            end: chrono::DateTime::from_timestamp(106, 0).unwrap(),
        };
        let samples = client.interval_samples(7, window, 1, Some("a")).await.unwrap();
        assert_eq!(samples.tps, [10.0, 10.0, 10.0]);
        assert_eq!(samples.error_rate, [0.0, 100.0, 0.0]);
        // Nearest-rank over 10 values: p95 and p99 are the largest, 10 + (second − 100) + 9.
        assert_eq!(samples.p95, [20.0, 21.0, 22.0]);
        assert_eq!(samples.p99, [20.0, 21.0, 22.0]);
        let other = client.interval_samples(7, window, 1, Some("b")).await.unwrap();
        assert!(other.tps.is_empty());
    }
}
