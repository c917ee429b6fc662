//! A run's figures interval by interval: the series a dashboard draws, computed by
//! InfluxDB with `GROUP BY time(step)` from the samples k6 wrote.
//!
//! Every query is bounded by the run's [`TimeWindow`] and filtered on `"testid"`; one
//! scenario's series adds `"scenario"` to the request measurements. Per bucket:
//!
//! - **time**: the bucket's start. Buckets are aligned to whole multiples of the step
//!   since the epoch (InfluxDB's default), so two runs' series line up.
//! - **tps**: requests in the bucket divided by the step. The first and last bucket of a
//!   run are partial (k6 starts and stops mid-bucket) and so show less than the rate of
//!   their covered part; in exchange `Σ tps × step` is exactly the number of requests,
//!   the stored `totalRequests`, whatever the step.
//! - **avgResponseTime**, **p95ResponseTime** (ms): `mean` and InfluxDB's nearest-rank
//!   `percentile` 95 of `http_req_duration`, as the summaries use them.
//! - **errorRate** (%): `mean` of `http_req_failed` (one 0/1 sample per request).
//! - **vus**: run-wide, even for one scenario (k6's `vus` gauge has no scenario tag): per
//!   bucket, the highest value of each k6 instance, summed over instances.
//!
//! The series runs from the first to the last bucket holding any sample (a request or a
//! VU reading): the window's margins and, for a running run, the time since the last
//! flush are not shown as idle seconds. A silent bucket inside that span reads 0 for
//! every figure but `vus` (no request, nothing measured).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::influx::{InfluxClient, InfluxError, RunFilter, Series, TimeWindow};

/// The most points one series has; the step grows until the window fits.
pub const MAX_POINTS: i64 = 2_000;
/// The step when the caller names none (or 0).
pub const DEFAULT_STEP_SECONDS: i64 = 1;
/// Samples are stamped when k6 takes them: allow for clock steps and the last flush, as
/// the stored summaries do, so the series adds up to the same totals.
pub const WINDOW_MARGIN: chrono::Duration = chrono::Duration::seconds(2);

/// One interval of a run; see the module documentation for the definitions.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeseriesPoint {
    /// The start of the interval.
    pub time: DateTime<Utc>,
    /// Requests per second.
    pub tps: f64,
    /// Mean response time, ms.
    pub avg_response_time: f64,
    /// 95th percentile response time, ms.
    pub p95_response_time: f64,
    /// Failed requests, percent of the interval's requests.
    pub error_rate: f64,
    /// Virtual users of the whole run.
    pub vus: f64,
}

/// A run's series: the points and the step they were computed with.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeseries {
    /// Seconds per point, at least the requested step.
    pub step_seconds: i64,
    /// Oldest first.
    pub points: Vec<TimeseriesPoint>,
}

/// Where a run's samples can be: from `started_at` − margin to `ended_at` + margin, or to
/// `now` while it runs (nothing is stamped in the future).
pub fn run_window(
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> TimeWindow {
    let start = started_at - WINDOW_MARGIN;
    let end = ended_at.map_or(now, |ended| ended + WINDOW_MARGIN).max(start);
    TimeWindow { start, end }
}

/// How many `GROUP BY time(step)` buckets InfluxDB makes for `window`: one per
/// epoch-aligned step that the window touches, partial ones at both ends included.
pub fn bucket_count(step_seconds: i64, window: TimeWindow) -> i64 {
    let step_ms = step_seconds.max(1) * 1000;
    let first = window.start.timestamp_millis().div_euclid(step_ms);
    let last = window.end.timestamp_millis().div_euclid(step_ms);
    last - first + 1
}

/// The step a series uses: the requested one (default 1 s; 0 counts as unset), raised to
/// the smallest whole number of seconds for which `window` has at most [`MAX_POINTS`]
/// buckets.
pub fn choose_step(requested: Option<i64>, window: TimeWindow) -> i64 {
    let requested = requested.filter(|&step| step > 0).unwrap_or(DEFAULT_STEP_SECONDS);
    let span_ms = (window.end - window.start).num_milliseconds().max(0);
    // A lower bound (span / step ≤ MAX_POINTS); alignment may add one bucket, so the loop
    // runs at most a couple of times.
    let floor = (span_ms + MAX_POINTS * 1000 - 1) / (MAX_POINTS * 1000);
    let mut step = requested.max(floor).max(1);
    while bucket_count(step, window) > MAX_POINTS {
        step += 1;
    }
    step
}

impl InfluxClient {
    /// The series of run `test_id` (or of one scenario, by its `scenario` tag) within
    /// `window`, with the step chosen by [`choose_step`]. No samples (or no database yet,
    /// before k6 first wrote) is an empty series.
    #[tracing::instrument(skip(self), fields(db = %self.database()))]
    pub async fn timeseries(
        &self,
        test_id: i64,
        window: TimeWindow,
        requested_step: Option<i64>,
        scenario: Option<&str>,
    ) -> Result<Timeseries, InfluxError> {
        let step_seconds = choose_step(requested_step, window);
        let queries = TimeseriesQueries::new(test_id, window, step_seconds, scenario);
        let query = |statement| self.query(statement);
        let answers = tokio::try_join!(
            query(&queries.requests),
            query(&queries.response_times),
            query(&queries.p95_response_times),
            query(&queries.error_rates),
            query(&queries.vus),
        );
        let (requests, response_times, p95, error_rates, vus) = match answers {
            Ok(answers) => answers,
            Err(InfluxError::Query(message)) if message.contains("database not found") => {
                return Ok(Timeseries { step_seconds, points: Vec::new() });
            }
            Err(error) => return Err(error),
        };
        let columns = BucketColumns {
            requests: by_bucket(&requests, "requests"),
            avg_response_time: by_bucket(&response_times, "avg"),
            p95_response_time: by_bucket(&p95, "p95"),
            error_rate: by_bucket(&error_rates, "rate"),
            vus: by_bucket(&vus, "vus"),
        };
        Ok(Timeseries { step_seconds, points: columns.points(step_seconds) })
    }
}

/// The InfluxQL statements of one series, each answering non-empty buckets only
/// (`fill(none)`): the answer grows with the run, not with the window.
#[derive(Debug)]
pub(crate) struct TimeseriesQueries {
    pub(crate) requests: String,
    pub(crate) response_times: String,
    /// Apart from the mean: each percentile sorts its bucket's durations, and InfluxDB
    /// works on separate queries in parallel.
    pub(crate) p95_response_times: String,
    pub(crate) error_rates: String,
    pub(crate) vus: String,
}

impl TimeseriesQueries {
    pub(crate) fn new(test_id: i64, window: TimeWindow, step_seconds: i64, scenario: Option<&str>) -> Self {
        let RunFilter { time, run, requests } = RunFilter::new(test_id, window, scenario);
        let by_step = format!("GROUP BY time({step_seconds}s)");
        let of_requests =
            |measurement: &str| format!(r#"FROM "{measurement}" WHERE {requests} {by_step} fill(none)"#);
        // The same step and time bound at both levels, so the buckets coincide.
        let vus_per_instance = format!(
            r#"SELECT max("value") AS "instance_vus" FROM "vus" WHERE {run} {by_step}, "instance_id""#
        );
        Self {
            requests: format!(r#"SELECT count("value") AS "requests" {}"#, of_requests("http_reqs")),
            response_times: format!(r#"SELECT mean("value") AS "avg" {}"#, of_requests("http_req_duration")),
            p95_response_times: format!(
                r#"SELECT percentile("value", 95) AS "p95" {}"#,
                of_requests("http_req_duration")
            ),
            error_rates: format!(r#"SELECT mean("value") AS "rate" {}"#, of_requests("http_req_failed")),
            vus: format!(
                r#"SELECT sum("instance_vus") AS "vus" FROM ({vus_per_instance}) WHERE {time} {by_step} fill(none)"#
            ),
        }
    }
}

/// `column` of a `GROUP BY time` answer by bucket start (epoch ms), nulls left out.
fn by_bucket(series: &[Series], column: &str) -> BTreeMap<i64, f64> {
    series.first().map(|series| series.buckets(column).collect()).unwrap_or_default()
}

/// The non-empty buckets of each figure.
#[derive(Default)]
struct BucketColumns {
    requests: BTreeMap<i64, f64>,
    avg_response_time: BTreeMap<i64, f64>,
    p95_response_time: BTreeMap<i64, f64>,
    /// A 0–1 rate.
    error_rate: BTreeMap<i64, f64>,
    vus: BTreeMap<i64, f64>,
}

impl BucketColumns {
    /// One point per bucket from the first to the last holding any sample.
    fn points(&self, step_seconds: i64) -> Vec<TimeseriesPoint> {
        let occupied: BTreeSet<i64> = self.requests.keys().chain(self.vus.keys()).copied().collect();
        let (Some(&first), Some(&last)) = (occupied.first(), occupied.last()) else {
            return Vec::new();
        };
        let step_ms = step_seconds * 1000;
        let value = |column: &BTreeMap<i64, f64>, at: i64| column.get(&at).copied().unwrap_or(0.0);
        (0..=(last - first) / step_ms)
            .map(|index| first + index * step_ms)
            .filter_map(|at| {
                Some(TimeseriesPoint {
                    time: DateTime::from_timestamp_millis(at)?,
                    tps: value(&self.requests, at) / step_seconds as f64,
                    avg_response_time: value(&self.avg_response_time, at),
                    p95_response_time: value(&self.p95_response_time, at),
                    error_rate: value(&self.error_rate, at) * 100.0,
                    vus: value(&self.vus, at),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
