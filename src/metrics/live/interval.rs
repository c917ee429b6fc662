//! The InfluxQL of one live snapshot, and reading its answer.
//!
//! Every statement of a snapshot travels in ONE request (statements separated by `;`), so
//! a poller costs one InfluxDB query per interval, whatever the number of scenarios. The
//! answer comes back flattened into series; each statement names its columns differently
//! (`requests`, `counted`, `avg`/`p95`, `run_avg`/`run_p95`, `failed`/`checked`, `vus`) so
//! every series can be told apart.
//!
//! Windows are half-open, `time > start AND time <= end`, so that consecutive counting
//! windows never count a sample twice.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::metrics::influx::{Series, quote_string};

/// `(start, end]`: the instants after `start` up to and including `end`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct HalfOpen {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl HalfOpen {
    fn condition(&self) -> String {
        let literal = |at: DateTime<Utc>| quote_string(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        format!("time > {} AND time <= {}", literal(self.start), literal(self.end))
    }
}

/// What one snapshot asks InfluxDB.
#[derive(Clone, Debug)]
pub(super) struct IntervalQuery {
    pub test_id: i64,
    /// Rates, response times and error rates are taken over this window.
    pub rates: HalfOpen,
    /// Requests counted here are added to (or, for the final snapshot, replace) the
    /// running totals; None when there is nothing new to count.
    pub counting: Option<HalfOpen>,
    /// The latest `vus` sample of each k6 instance is looked for here.
    pub vus: HalfOpen,
    /// Where the newest stored sample of each instance is looked for, to tell how far
    /// behind the present the stored samples are; None once the run has ended.
    pub newest: Option<HalfOpen>,
}

impl IntervalQuery {
    /// The statements, `;`-separated.
    pub fn influxql(&self) -> String {
        let test = format!(r#""testid" = {}"#, quote_string(&self.test_id.to_string()));
        let rates = format!("{test} AND {}", self.rates.condition());
        let mut statements = vec![
            format!(
                r#"SELECT count("value") AS "requests" FROM "http_reqs" WHERE {rates} GROUP BY "scenario""#
            ),
            format!(
                r#"SELECT mean("value") AS "avg", percentile("value", 95) AS "p95" FROM "http_req_duration" WHERE {rates} GROUP BY "scenario""#
            ),
            // A run-wide percentile cannot be put together from the scenarios' ones.
            format!(
                r#"SELECT mean("value") AS "run_avg", percentile("value", 95) AS "run_p95" FROM "http_req_duration" WHERE {rates}"#
            ),
            format!(
                r#"SELECT sum("value") AS "failed", count("value") AS "checked" FROM "http_req_failed" WHERE {rates} GROUP BY "scenario""#
            ),
            // `vus` is a run-wide gauge per k6 instance: the run's VUs are the instances' sum.
            format!(
                r#"SELECT last("value") AS "vus" FROM "vus" WHERE {test} AND {} GROUP BY "instance_id""#,
                self.vus.condition()
            ),
        ];
        if let Some(newest) = &self.newest {
            // k6 samples `vus` every second on every instance, in the same batches as the
            // requests: the newest one stored is where that instance's stored samples reach.
            statements.push(format!(
                r#"SELECT last("value") AS "newest" FROM "vus" WHERE {test} AND {} GROUP BY "instance_id""#,
                newest.condition()
            ));
        }
        if let Some(counting) = &self.counting {
            statements.push(format!(
                r#"SELECT count("value") AS "counted" FROM "http_reqs" WHERE {test} AND {} GROUP BY "scenario""#,
                counting.condition()
            ));
        }
        statements.join("; ")
    }
}

/// One scenario's samples within the rate window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct ScenarioSamples {
    pub requests: f64,
    pub avg_response_time: f64,
    pub p95_response_time: f64,
    pub failed: f64,
    pub checked: f64,
}

/// The answer to an [`IntervalQuery`], by scenario key.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct IntervalAnswer {
    pub scenarios: BTreeMap<String, ScenarioSamples>,
    pub run_avg_response_time: f64,
    pub run_p95_response_time: f64,
    /// Requests in the counting window, by scenario key.
    pub counted: BTreeMap<String, i64>,
    pub vus: f64,
    /// The time (epoch ms) of the newest stored sample, by k6 instance.
    pub newest: BTreeMap<String, i64>,
}

impl IntervalAnswer {
    /// Sorts the flattened series of the answer back into their statements.
    pub fn read(series: &[Series]) -> Self {
        let mut answer = Self::default();
        for one in series {
            let scenario = one.tags.get("scenario").cloned().unwrap_or_default();
            let value = |column: &str| one.first_f64(column);
            if let Some(requests) = value("requests") {
                answer.scenarios.entry(scenario).or_default().requests = requests;
            } else if let Some(counted) = value("counted") {
                *answer.counted.entry(scenario).or_default() += counted.round() as i64;
            } else if one.column_index("run_avg").is_some() {
                answer.run_avg_response_time = value("run_avg").unwrap_or(0.0);
                answer.run_p95_response_time = value("run_p95").unwrap_or(0.0);
            } else if one.column_index("avg").is_some() {
                let samples = answer.scenarios.entry(scenario).or_default();
                samples.avg_response_time = value("avg").unwrap_or(0.0);
                samples.p95_response_time = value("p95").unwrap_or(0.0);
            } else if one.column_index("failed").is_some() {
                let samples = answer.scenarios.entry(scenario).or_default();
                samples.failed = value("failed").unwrap_or(0.0);
                samples.checked = value("checked").unwrap_or(0.0);
            } else if one.column_index("newest").is_some() {
                let instance = one.tags.get("instance_id").cloned().unwrap_or_default();
                if let Some(at) = value("time") {
                    answer.newest.insert(instance, at as i64);
                }
            } else if let Some(vus) = value("vus") {
                answer.vus += vus;
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    fn series(name: &str, scenario: Option<&str>, columns: &[&str], row: &[f64]) -> Series {
        Series {
            name: name.into(),
            tags: scenario.map(|s| [("scenario".to_owned(), s.to_owned())].into()).unwrap_or_default(),
            columns: std::iter::once("time").chain(columns.iter().copied()).map(str::to_owned).collect(),
            values: vec![
                std::iter::once(0.0).chain(row.iter().copied()).map(serde_json::Value::from).collect(),
            ],
        }
    }

    #[test]
    fn statements_use_half_open_windows_and_one_request() {
        let query = IntervalQuery {
            test_id: 7,
            rates: HalfOpen { start: at(1_700_000_000_000), end: at(1_700_000_001_000) },
            counting: Some(HalfOpen { start: at(1_699_999_990_000), end: at(1_700_000_001_000) }),
            vus: HalfOpen { start: at(1_699_999_998_000), end: at(1_700_000_001_000) },
            newest: Some(HalfOpen { start: at(1_699_999_970_000), end: at(1_700_000_004_000) }),
        };
        let influxql = query.influxql();
        assert_eq!(influxql.matches("; ").count(), 6, "{influxql}");
        assert!(influxql.contains(r#"SELECT last("value") AS "newest" FROM "vus""#), "{influxql}");
        assert!(influxql.contains(
            r#""testid" = '7' AND time > '2023-11-14T22:13:20Z' AND time <= '2023-11-14T22:13:21Z'"#
        ));
        assert!(influxql.contains(
            r#"AS "counted" FROM "http_reqs" WHERE "testid" = '7' AND time > '2023-11-14T22:13:10Z'"#
        ));
        let without_counting = IntervalQuery { counting: None, newest: None, ..query }.influxql();
        assert!(!without_counting.contains("counted"));
        assert!(!without_counting.contains("newest"));
    }

    #[test]
    fn answers_are_sorted_back_into_their_statements() {
        let answer = IntervalAnswer::read(&[
            series("http_reqs", Some("browse"), &["requests"], &[10.0]),
            series("http_reqs", Some("buy"), &["requests"], &[4.0]),
            series("http_reqs", Some("browse"), &["counted"], &[120.0]),
            series("http_req_duration", Some("browse"), &["avg", "p95"], &[3.5, 7.0]),
            series("http_req_duration", None, &["run_avg", "run_p95"], &[4.0, 9.0]),
            series("http_req_failed", Some("buy"), &["failed", "checked"], &[1.0, 4.0]),
            series("vus", None, &["vus"], &[3.0]),
            series("vus", None, &["vus"], &[2.0]),
        ]);
        assert_eq!(answer.scenarios["browse"].requests, 10.0);
        assert_eq!(answer.scenarios["browse"].p95_response_time, 7.0);
        assert_eq!(answer.scenarios["buy"].failed, 1.0);
        assert_eq!(answer.scenarios["buy"].checked, 4.0);
        assert_eq!(answer.counted["browse"], 120);
        assert_eq!((answer.run_avg_response_time, answer.run_p95_response_time), (4.0, 9.0));
        assert_eq!(answer.vus, 5.0, "instances add up");
    }
}
