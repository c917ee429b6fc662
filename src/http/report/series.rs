//! The report's charts' data: per interval, for the run and for each scenario, what
//! `TestHistory.timeseries` gives (TPS, mean and p95 response time, error rate, VUs; see
//! [`crate::metrics::timeseries`] for the definitions), plus the p50 and p99 response time.
//!
//! One step for every series, chosen by [`choose_step`] from the run's window (at most
//! [`MAX_POINTS`] points per series: 4 s for a 2-hour run), so the charts line up. p50 and p99
//! are InfluxDB's nearest-rank `percentile` per bucket, as p95 is in the time series; the
//! summary table's figures are k6's interpolated ones over the whole run.
//!
//! Response-time and error-rate values of an interval without requests are `null` (a gap in
//! the chart), not the 0 the API's series reads: no request, nothing measured.

use std::collections::BTreeMap;

use futures_util::future::try_join_all;
use serde::Serialize;

use crate::metrics::{
    influx::{InfluxClient, InfluxError, RunFilter, Series, TimeWindow},
    timeseries::{MAX_POINTS, choose_step},
};

/// One chart group's data, column by column (compact in the page, and what uPlot draws).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesColumns {
    /// Interval starts, unix seconds.
    pub time: Vec<i64>,
    pub tps: Vec<f64>,
    pub avg: Vec<Option<f64>>,
    pub p50: Vec<Option<f64>>,
    pub p95: Vec<Option<f64>>,
    pub p99: Vec<Option<f64>>,
    /// Failed requests, percent.
    pub error_rate: Vec<Option<f64>>,
    /// Run-wide VUs (k6's `vus` gauge has no scenario tag).
    pub vus: Vec<f64>,
}

/// The series of a run and of each of its scenarios (in the order of `scenario_tags`).
#[derive(Clone, Debug, PartialEq)]
pub struct RunSeries {
    pub step_seconds: i64,
    pub run: SeriesColumns,
    pub scenarios: Vec<SeriesColumns>,
}

/// Reads every series of run `test_id` within `window`.
#[tracing::instrument(skip(influx, scenario_tags), fields(scenarios = scenario_tags.len()))]
pub async fn read(
    influx: &InfluxClient,
    test_id: i64,
    window: TimeWindow,
    scenario_tags: &[String],
) -> Result<RunSeries, InfluxError> {
    let step_seconds = choose_step(None, window);
    debug_assert!(bucket_bound(window, step_seconds) <= MAX_POINTS);
    let run = columns(influx, test_id, window, step_seconds, None);
    let scenarios = try_join_all(
        scenario_tags.iter().map(|tag| columns(influx, test_id, window, step_seconds, Some(tag))),
    );
    let (run, scenarios) = tokio::try_join!(run, scenarios)?;
    Ok(RunSeries { step_seconds, run, scenarios })
}

/// Buckets InfluxDB makes for `window` at `step_seconds`.
fn bucket_bound(window: TimeWindow, step_seconds: i64) -> i64 {
    crate::metrics::timeseries::bucket_count(step_seconds, window)
}

/// One series: the API's time series and the two extra percentiles, read concurrently.
async fn columns(
    influx: &InfluxClient,
    test_id: i64,
    window: TimeWindow,
    step_seconds: i64,
    scenario: Option<&str>,
) -> Result<SeriesColumns, InfluxError> {
    let requests = RunFilter::new(test_id, window, scenario).requests;
    let percentile = |p: u8| {
        format!(
            r#"SELECT percentile("value", {p}) AS "p" FROM "http_req_duration" WHERE {requests} GROUP BY time({step_seconds}s) fill(none)"#
        )
    };
    let (p50, p99) = (percentile(50), percentile(99));
    let (series, p50, p99) = tokio::try_join!(
        influx.timeseries(test_id, window, Some(step_seconds), scenario),
        query_or_empty(influx, &p50),
        query_or_empty(influx, &p99),
    )?;
    let (p50, p99) = (by_bucket(&p50), by_bucket(&p99));
    let mut columns = SeriesColumns::default();
    for point in series.points {
        let at = point.time.timestamp_millis();
        let measured = point.tps > 0.0;
        let when_measured = |value: f64| measured.then_some(round(value));
        columns.time.push(point.time.timestamp());
        columns.tps.push(round(point.tps));
        columns.avg.push(when_measured(point.avg_response_time));
        columns.p50.push(measured.then(|| p50.get(&at).copied().map(round)).flatten());
        columns.p95.push(when_measured(point.p95_response_time));
        columns.p99.push(measured.then(|| p99.get(&at).copied().map(round)).flatten());
        columns.error_rate.push(when_measured(point.error_rate));
        columns.vus.push(round(point.vus));
    }
    Ok(columns)
}

/// A query's answer; none (no database yet: k6 never wrote) is an empty one, as the time
/// series takes it.
async fn query_or_empty(influx: &InfluxClient, statement: &str) -> Result<Vec<Series>, InfluxError> {
    match influx.query(statement).await {
        Err(InfluxError::Query(message)) if message.contains("database not found") => Ok(Vec::new()),
        answer => answer,
    }
}

fn by_bucket(series: &[Series]) -> BTreeMap<i64, f64> {
    series.first().map(|series| series.buckets("p").collect()).unwrap_or_default()
}

/// Three decimals: finer than any chart shows, and a third of the page's size.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn a_two_hour_run_is_drawn_with_at_most_the_api_s_point_limit() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
        let window =
            crate::metrics::timeseries::run_window(start, Some(start + chrono::Duration::hours(2)), start);
        let step = choose_step(None, window);
        assert_eq!(step, 4);
        assert!(bucket_bound(window, step) <= MAX_POINTS);
    }

    #[test]
    fn values_keep_three_decimals() {
        assert_eq!(round(12.345_678), 12.346);
        assert_eq!(round(0.0004), 0.0);
        assert_eq!(serde_json::to_string(&round(2.0 / 3.0)).unwrap(), "0.667");
    }
}
