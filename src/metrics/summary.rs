//! Run summaries: the figures of one run, or of one of its scenarios, computed by
//! InfluxDB from the samples k6 wrote.
//!
//! Every query is bounded by the run's [`TimeWindow`] and filtered on `"testid"`; a
//! scenario's summary adds `"scenario"`. The definitions:
//!
//! - **requests**: `count` of `http_reqs`; **failed**: `sum` of `http_req_failed` (0/1).
//! - **test duration**: seconds from the first to the last `http_reqs` sample in scope —
//!   the time requests were actually made. The window is usually wider (k6 start-up, the
//!   flush at the end), and a scenario may run for only part of it.
//! - **TPS**: requests per one-second bucket (`GROUP BY time(1s)`, buckets aligned to whole
//!   seconds), over the *active span*: from the first to the last non-empty second. Seconds
//!   of the window before and after it are not part of the load and are ignored; a silent
//!   second inside it counts as 0.
//!   - `max_tps`: the busiest second.
//!   - `min_tps`: the quietest second, not counting the first and last second of the span
//!     when it has three or more: a run starts and stops mid-second, so those two buckets
//!     hold only part of a second of load and would report a slump that never happened.
//!   - `avg_tps`: `total_requests / test_duration` (at least one second). Dividing by
//!     whole buckets instead would count the two partial seconds as full ones and under-
//!     state a 10 s run at 100 TPS as ~91 TPS.
//! - **response time** (ms): `max`, `min`, `mean`, `median` (p50; the mean of the two
//!   middle values for an even count) and p95 and p99 of `http_req_duration`, computed as
//!   k6 computes them for its end-of-test summary (see [`K6Rank`]): over the n durations
//!   sorted ascending (0-based), position `i = p × (n − 1)`, the value at `floor(i)` plus
//!   the fraction `i − floor(i)` of the step to the value at `ceil(i)`. k6's median is the
//!   same formula at p = 0.5, which is what InfluxDB's `median` returns. InfluxDB's own
//!   `percentile` is nearest-rank and would differ from k6's figure by up to a rank step,
//!   so it is only used to *read* the two neighbouring values: `percentile(q)` returns the
//!   value at 0-based position `floor(n × q / 100 + 0.5) − 1`, hence q = 100 × (k + 1) / n
//!   reads position k exactly. Across N instances the figures are computed the same way
//!   over the union of all instances' samples (k6 itself has no merged figure to match).
//! - **error rate** (%): `avg` is `failed / total` — k6's own `http_req_failed` rate, so it
//!   matches k6's end-of-test summary; `max`/`min` are over the per-second rates of the
//!   seconds that had requests.
//! - **VUs**: `vus` is a run-wide gauge per k6 instance, without a scenario tag, so even a
//!   scenario's summary reports the run's VUs: per second, the highest value of each
//!   instance, summed over instances; then max/min/mean over the seconds with samples.
//!
//! The queries are independent and run concurrently, except the percentiles, which need
//! the count of durations first; the median and percentiles dominate (each sorts every
//! duration in scope).

use super::influx::{InfluxClient, InfluxError, RunFilter, Series, TimeWindow};
use crate::domain::MetricSummary;

impl InfluxClient {
    /// The run-wide (scenario = None) or one scenario's summary of run `test_id` within
    /// `window`; Ok(None) when there are no samples (no `http_reqs` in scope).
    ///
    /// See the module documentation for how each figure is defined.
    // The span records `test_id`, `window` and `scenario` as arguments; a bare
    // `fields(test_id)` would replace the argument with an empty field.
    #[tracing::instrument(skip(self), fields(db = %self.database()))]
    pub async fn summary(
        &self,
        test_id: i64,
        window: TimeWindow,
        scenario: Option<&str>,
    ) -> Result<Option<MetricSummary>, InfluxError> {
        let queries = SummaryQueries::new(test_id, window, scenario);
        let started = std::time::Instant::now();
        let query = |statement| self.query(statement);
        let (requests, durations, errors_and_vus) = tokio::try_join!(
            async {
                tokio::try_join!(
                    query(&queries.total_requests),
                    query(&queries.failed_requests),
                    query(&queries.requests_per_second),
                    query(&queries.first_request),
                    query(&queries.last_request),
                )
            },
            async {
                let (response_times, median) =
                    tokio::try_join!(query(&queries.response_times), query(&queries.median_response_time))?;
                let count = scalar(&response_times, "count").unwrap_or(0.0).round() as u64;
                let (p95, p99) = tokio::try_join!(
                    self.k6_percentile(&queries, count, K6Rank::new(0.95, count)),
                    self.k6_percentile(&queries, count, K6Rank::new(0.99, count)),
                )?;
                Ok::<_, InfluxError>((response_times, median, p95, p99))
            },
            async { tokio::try_join!(query(&queries.error_rates), query(&queries.vus)) },
        )?;
        let (total, failed, per_second, first, last) = requests;
        let (response_times, median, p95, p99) = durations;
        let (error_rates, vus) = errors_and_vus;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "summary queries answered");

        let total_requests = scalar(&total, "requests").unwrap_or(0.0).round() as i64;
        if total_requests == 0 {
            return Ok(None);
        }
        let failed_requests = scalar(&failed, "failed").unwrap_or(0.0).round() as i64;
        let (Some(first_ms), Some(last_ms)) = (scalar(&first, "time"), scalar(&last, "time")) else {
            return Err(InfluxError::Malformed(
                "requests were counted but their first/last sample has no time".to_owned(),
            ));
        };
        let test_duration = (last_ms - first_ms) / 1000.0;
        let throughput =
            Throughput::from_buckets(&buckets(&per_second, "requests"), total_requests, test_duration);
        let response = |series: &[Series], column| scalar(series, column).unwrap_or(0.0);
        let error_rate = |column| scalar(&error_rates, column).unwrap_or(0.0) * 100.0;
        let vus_figure = |column| scalar(&vus, column).unwrap_or(0.0);

        Ok(Some(MetricSummary {
            total_requests,
            failed_requests,
            test_duration,
            max_tps: throughput.max,
            min_tps: throughput.min,
            avg_tps: throughput.avg,
            max_response_time: response(&response_times, "max"),
            min_response_time: response(&response_times, "min"),
            avg_response_time: response(&response_times, "mean"),
            p50_response_time: response(&median, "median"),
            p95_response_time: p95.unwrap_or(0.0),
            p99_response_time: p99.unwrap_or(0.0),
            max_error_rate: error_rate("max"),
            min_error_rate: error_rate("min"),
            avg_error_rate: failed_requests as f64 / total_requests as f64 * 100.0,
            max_vus: vus_figure("max"),
            min_vus: vus_figure("min"),
            avg_vus: vus_figure("mean"),
        }))
    }
}

impl InfluxClient {
    /// k6's percentile at `rank` of the `count` durations in scope: the one or two
    /// neighbouring values read with InfluxDB's `percentile` (concurrently), interpolated.
    /// None when there are no durations.
    async fn k6_percentile(
        &self,
        queries: &SummaryQueries,
        count: u64,
        rank: Option<K6Rank>,
    ) -> Result<Option<f64>, InfluxError> {
        let Some(rank) = rank else {
            return Ok(None);
        };
        let read = |position| async move {
            let answer = self.query(&queries.duration_at(position, count)).await?;
            scalar(&answer, "value").map(Some).ok_or_else(|| {
                InfluxError::Malformed(format!("no duration at position {position} of {count}"))
            })
        };
        let (lower, upper) = if rank.upper == rank.lower {
            let value = read(rank.lower).await?;
            (value, value)
        } else {
            tokio::try_join!(read(rank.lower), read(rank.upper))?
        };
        Ok(lower.zip(upper).map(|(lower, upper)| rank.interpolate(lower, upper)))
    }
}

/// Where k6 reads percentile `p` (a fraction, 0.95 for p(95)) in `n` sorted values, as its
/// trend sink does for the end-of-test summary: `i = p × (n − 1)`; the value at `floor(i)`,
/// moved `i − floor(i)` of the way to the value at `ceil(i)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct K6Rank {
    /// 0-based position of the value below (or at) the percentile.
    pub(crate) lower: u64,
    /// 0-based position of the value above (or at) it; equal to `lower` on an exact rank.
    pub(crate) upper: u64,
    /// How far between the two values the percentile lies, in [0, 1).
    pub(crate) fraction: f64,
}

impl K6Rank {
    /// None for no values. The arithmetic is k6's, in the same order, so the result is the
    /// same float k6 prints.
    pub(crate) fn new(p: f64, n: u64) -> Option<Self> {
        match n {
            0 => None,
            1 => Some(Self { lower: 0, upper: 0, fraction: 0.0 }),
            _ => {
                let i = p * (n as f64 - 1.0);
                let lower = i.floor();
                Some(Self { lower: lower as u64, upper: i.ceil() as u64, fraction: i - lower })
            }
        }
    }

    /// k6's `j + (k − j) × f`.
    pub(crate) fn interpolate(&self, lower: f64, upper: f64) -> f64 {
        lower + (upper - lower) * self.fraction
    }
}

/// The InfluxQL statements of one summary.
#[derive(Debug)]
pub(crate) struct SummaryQueries {
    pub(crate) total_requests: String,
    pub(crate) failed_requests: String,
    /// Non-empty seconds only (`fill(none)`): the answer grows with the active seconds,
    /// not with the window, which may be far wider than the run.
    pub(crate) requests_per_second: String,
    /// A selector alone returns the sample's own time.
    pub(crate) first_request: String,
    pub(crate) last_request: String,
    /// max, min and mean of `http_req_duration`.
    pub(crate) response_times: String,
    /// Each of these sorts every duration in scope (~1 s per 600,000 samples), and one
    /// statement evaluates its calls one after another: as separate queries, InfluxDB
    /// works on them in parallel.
    pub(crate) median_response_time: String,
    /// `FROM "http_req_duration" WHERE …`: the durations percentiles are read from with
    /// [`SummaryQueries::duration_at`].
    pub(crate) durations: String,
    pub(crate) error_rates: String,
    pub(crate) vus: String,
}

impl SummaryQueries {
    pub(crate) fn new(test_id: i64, window: TimeWindow, scenario: Option<&str>) -> Self {
        let RunFilter { time, run, requests } = RunFilter::new(test_id, window, scenario);
        let of_requests = |measurement: &str| format!(r#"FROM "{measurement}" WHERE {requests}"#);
        let durations = of_requests("http_req_duration");

        // Seconds without requests are null in the inner query and ignored outside.
        let error_rate_per_second =
            format!(r#"SELECT mean("value") AS "rate" {} GROUP BY time(1s)"#, of_requests("http_req_failed"));
        // The time bound is repeated at every level so each GROUP BY time() has the same,
        // explicit range. Samples of a single k6 without `instance_id` form one group with
        // an empty tag.
        let vus_per_instance = format!(
            r#"SELECT max("value") AS "instance_vus" FROM "vus" WHERE {run} GROUP BY time(1s), "instance_id""#
        );
        let vus_per_second = format!(
            r#"SELECT sum("instance_vus") AS "vus" FROM ({vus_per_instance}) WHERE {time} GROUP BY time(1s)"#
        );

        Self {
            total_requests: format!(r#"SELECT count("value") AS "requests" {}"#, of_requests("http_reqs")),
            failed_requests: format!(r#"SELECT sum("value") AS "failed" {}"#, of_requests("http_req_failed")),
            requests_per_second: format!(
                r#"SELECT count("value") AS "requests" {} GROUP BY time(1s) fill(none)"#,
                of_requests("http_reqs")
            ),
            first_request: format!(r#"SELECT first("value") {}"#, of_requests("http_reqs")),
            last_request: format!(r#"SELECT last("value") {}"#, of_requests("http_reqs")),
            response_times: format!(
                r#"SELECT max("value") AS "max", min("value") AS "min", mean("value") AS "mean", count("value") AS "count" {durations}"#
            ),
            median_response_time: format!(r#"SELECT median("value") AS "median" {durations}"#),
            error_rates: format!(
                r#"SELECT max("rate") AS "max", min("rate") AS "min" FROM ({}) WHERE {time}"#,
                error_rate_per_second
            ),
            // Columns are named after the functions: max, min, mean.
            vus: format!(
                r#"SELECT max("vus"), min("vus"), mean("vus") FROM ({vus_per_second}) WHERE {time}"#
            ),
            durations,
        }
    }

    /// The duration at 0-based `position` of the `count` in scope, sorted ascending, as a
    /// `value` column. InfluxDB's nearest-rank `percentile(q)` returns position
    /// `floor(count × q / 100 + 0.5) − 1`; q = 100 × (position + 1) / count puts
    /// `count × q / 100` on `position + 1` (give or take rounding far below 0.5), so the
    /// floor lands on `position` itself. `{}` prints the shortest text that reads back as
    /// the same float.
    pub(crate) fn duration_at(&self, position: u64, count: u64) -> String {
        let q = 100.0 * (position + 1) as f64 / count as f64;
        format!(r#"SELECT percentile("value", {q}) AS "value" {}"#, self.durations)
    }
}

/// `column` of the first row of the first series: the answer of an aggregate query.
fn scalar(series: &[Series], column: &str) -> Option<f64> {
    series.first()?.first_f64(column)
}

/// `(bucket start in epoch ms, value)` rows of the first series, nulls left out.
fn buckets(series: &[Series], column: &str) -> Vec<(i64, f64)> {
    series.first().map(|series| series.buckets(column).collect()).unwrap_or_default()
}

/// Requests per second; see the module documentation for the definitions.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Throughput {
    max: f64,
    min: f64,
    avg: f64,
}

impl Throughput {
    /// From the non-empty one-second buckets (`fill(none)`), the total and the seconds from
    /// the first to the last request.
    fn from_buckets(non_empty: &[(i64, f64)], total_requests: i64, active_seconds: f64) -> Self {
        let mut non_empty = non_empty.to_vec();
        non_empty.sort_by_key(|&(start_ms, _)| start_ms);
        let (Some(&(first_ms, _)), Some(&(last_ms, _))) = (non_empty.first(), non_empty.last()) else {
            return Self { max: 0.0, min: 0.0, avg: 0.0 };
        };
        let span_seconds = ((last_ms - first_ms) as f64 / 1000.0).round() as usize + 1;
        let max = non_empty.iter().map(|&(_, count)| count).fold(0.0, f64::max);

        // The first and last second are partial; judge the quietest second without them.
        let (candidates, candidate_seconds): (Vec<f64>, usize) = if span_seconds >= 3 {
            let interior =
                non_empty.iter().filter(|&&(start_ms, _)| start_ms != first_ms && start_ms != last_ms);
            (interior.map(|&(_, count)| count).collect(), span_seconds - 2)
        } else {
            (non_empty.iter().map(|&(_, count)| count).collect(), span_seconds)
        };
        let min = if candidates.len() < candidate_seconds {
            0.0 // a second without any request inside the active span
        } else {
            candidates.into_iter().fold(f64::INFINITY, f64::min)
        };

        let avg = total_requests as f64 / active_seconds.max(1.0);
        Self { max, min, avg }
    }
}

#[cfg(test)]
mod tests;

/// k6 itself writing to InfluxDB, compared with k6's own end-of-test summary.
#[cfg(test)]
mod k6_end_to_end;
