//! k6's own counts of a run: what every k6 instance reports at its end, summed.
//!
//! InfluxDB can lose samples (two samples with the same series and nanosecond collapse into one
//! point; a refused batch is dropped by k6 with a log line), so the totals a run is judged on —
//! requests, failed requests, iterations, bytes sent and received, run-wide and per scenario —
//! come from k6 itself. The generated script ([`super::script`]) declares a never-crossed
//! threshold on each counted metric's scenario sub-metric (thresholds are what makes k6 keep
//! sub-metrics in its end-of-test summary) and exports a `handleSummary` that writes a compact
//! counts document to the file named by `MV_COUNTS_FILE` in k6's environment:
//!
//! ```json
//! {"metricVaultCounts":1,"run":[requests,failed,iterations,sent,received],"scenarios":[[…],…],"ranMs":…,"plannedMs":…}
//! ```
//!
//! `ranMs` (k6's `state.testRunDurationMs`) against `plannedMs` (the longest scenario's stages)
//! tells a run that went to its planned end (it lasts at least the plan) from one stopped early (through its REST API, or a
//! signal): what a server that re-attached to a k6 it did not start cannot learn from an exit
//! status.
//!
//! `scenarios` follows the plan's scenario order (keys are left out to keep the document small)
//! and is `null` when the whole document would not fit [`COUNTS_LIMIT_BYTES`].
//!
//! The local runner points `MV_COUNTS_FILE` at a file per instance in its work folder; the
//! Kubernetes runner at the container's termination-message file, which the kubelet copies into
//! the pod's status (`state.terminated.message`, at most 4 KiB): the counts come back through
//! the pod watch the runner already has, with no `pods/log` permission, no volume, and no
//! inbound connection from the pods to the server.

use serde::Deserialize;

/// The environment variable naming where k6 writes its counts document.
pub const COUNTS_FILE_VARIABLE: &str = "MV_COUNTS_FILE";
/// The Kubernetes termination-message file (its default path), read back from the pod status.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// The kubelet keeps at most 4096 bytes of a termination message.
pub const COUNTS_LIMIT_BYTES: usize = 4096;
/// The document's version marker (its first key).
const MARKER: &str = "metricVaultCounts";

pub use crate::domain::counts::K6Counts;

/// What one k6 instance reported at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceReport {
    pub run: K6Counts,
    /// Per scenario, in the plan's order; None when the instance left them out (too large).
    pub scenarios: Option<Vec<K6Counts>>,
    /// How long it ran when it stopped before its planned end; None when it ran its whole
    /// plan (or did not say).
    pub stopped_early_after: Option<std::time::Duration>,
}

/// Each instance's report by index; None where an instance wrote none (killed, crashed, or
/// its report was lost).
pub type InstanceReports = Vec<Option<InstanceReport>>;

#[derive(Deserialize)]
struct Document {
    #[serde(rename = "metricVaultCounts")]
    version: u32,
    run: [f64; 5],
    #[serde(default)]
    scenarios: Option<Vec<[f64; 5]>>,
    #[serde(default, rename = "ranMs")]
    ran_ms: Option<f64>,
    #[serde(default, rename = "plannedMs")]
    planned_ms: Option<f64>,
}

/// What is wrong with a counts document.
#[derive(Debug, thiserror::Error)]
pub enum CountsError {
    #[error("not a k6 counts document: {0}")]
    NotADocument(#[from] serde_json::Error),
    #[error("unknown k6 counts document version {0}")]
    UnknownVersion(u32),
    #[error("a k6 count is not a whole non-negative number: {0}")]
    NotACount(f64),
}

/// Reads a counts document.
pub fn parse_report(text: &str) -> Result<InstanceReport, CountsError> {
    let document: Document = serde_json::from_str(text.trim())?;
    if document.version != 1 {
        return Err(CountsError::UnknownVersion(document.version));
    }
    let counts = |figures: [f64; 5]| -> Result<K6Counts, CountsError> {
        let whole = |value: f64| {
            if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value < 9.0e15 {
                Ok(value as i64)
            } else {
                Err(CountsError::NotACount(value))
            }
        };
        Ok(K6Counts {
            requests: whole(figures[0])?,
            failed_requests: whole(figures[1])?,
            iterations: whole(figures[2])?,
            data_sent: whole(figures[3])?,
            data_received: whole(figures[4])?,
        })
    };
    Ok(InstanceReport {
        run: counts(document.run)?,
        scenarios: document
            .scenarios
            .map(|scenarios| scenarios.into_iter().map(counts).collect::<Result<Vec<_>, _>>())
            .transpose()?,
        stopped_early_after: match (document.ran_ms, document.planned_ms) {
            // A plan run to its end lasts at least the plan (then up to the graceful stop): any
            // shortfall is a stop.
            (Some(ran), Some(planned)) if ran.is_finite() && ran < planned => {
                Some(std::time::Duration::from_millis(ran.max(0.0) as u64))
            }
            _ => None,
        },
    })
}

/// Whether `text` looks like a counts document (so a termination message that is one is not
/// shown as a failure reason).
pub fn is_counts_document(text: &str) -> bool {
    text.trim_start().starts_with(&format!("{{\"{MARKER}\""))
}

/// The run's totals: the sum of every instance's counts, and per scenario key when every
/// instance gave them for exactly `scenario_keys`. None when an instance did not report.
pub fn sum_reports(
    reports: &[Option<InstanceReport>],
    scenario_keys: &[String],
) -> Option<(K6Counts, Vec<(String, K6Counts)>)> {
    if reports.is_empty() {
        return None;
    }
    let reports: Vec<&InstanceReport> = reports.iter().map(Option::as_ref).collect::<Option<_>>()?;
    let run = reports.iter().fold(K6Counts::default(), |sum, report| sum + report.run);
    let per_scenario =
        reports.iter().try_fold(vec![K6Counts::default(); scenario_keys.len()], |sums, report| {
            let scenarios = report.scenarios.as_ref().filter(|s| s.len() == scenario_keys.len())?;
            Some(sums.into_iter().zip(scenarios).map(|(sum, counts)| sum + *counts).collect::<Vec<_>>())
        });
    let scenarios =
        per_scenario.map(|sums| scenario_keys.iter().cloned().zip(sums).collect()).unwrap_or_default();
    Some((run, scenarios))
}

/// The metrics counted per scenario, with the figure of each read from k6's summary.
pub(crate) const COUNTED_METRICS: [(&str, &str); 5] = [
    ("http_reqs", "count"),
    ("http_req_failed", "passes"),
    ("iterations", "count"),
    ("data_sent", "count"),
    ("data_received", "count"),
];

/// A threshold expression that always holds for each counted metric: it only makes k6 keep the
/// scenario's sub-metric.
pub(crate) fn never_crossed(metric: &str) -> &'static str {
    if metric == "http_req_failed" { "rate>=0" } else { "count>=0" }
}

/// The script's `handleSummary`, given the scenario keys as JS string literals and how long
/// the plan runs (its longest scenario) in milliseconds.
pub(crate) fn handle_summary_source(scenario_literals: &[String], planned_ms: u128) -> String {
    let metrics: Vec<String> =
        COUNTED_METRICS.iter().map(|(metric, figure)| format!("[\"{metric}\", \"{figure}\"]")).collect();
    format!(
        "
// The counts of k6 itself, read by Metric Vault for exact totals (written only when {COUNTS_FILE_VARIABLE} is set).
const COUNTED_SCENARIOS = [{scenarios}];
const COUNTED_METRICS = [{metrics}];
const PLANNED_MS = {planned_ms};

function countsOf(metrics, suffix) {{
  return COUNTED_METRICS.map(([name, figure]) => {{
    const metric = metrics[name + suffix];
    return metric && metric.values[figure] ? metric.values[figure] : 0;
  }});
}}

export function handleSummary(data) {{
  const file = __ENV.{COUNTS_FILE_VARIABLE};
  if (!file) {{
    return {{}};
  }}
  const counts = {{
    {MARKER}: 1,
    run: countsOf(data.metrics, \"\"),
    scenarios: COUNTED_SCENARIOS.map((key) => countsOf(data.metrics, \"{{scenario:\" + key + \"}}\")),
    ranMs: Math.round((data.state && data.state.testRunDurationMs) || 0),
    plannedMs: PLANNED_MS,
  }};
  let text = JSON.stringify(counts);
  if (text.length > {COUNTS_LIMIT_BYTES}) {{
    counts.scenarios = null;
    text = JSON.stringify(counts);
  }}
  return {{ [file]: text }};
}}
",
        scenarios = scenario_literals.join(", "),
        metrics = metrics.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: i64) -> K6Counts {
        K6Counts { requests, failed_requests: 1, iterations: requests, data_sent: 10, data_received: 20 }
    }

    #[test]
    fn a_document_reads_back() {
        let report = parse_report(
            r#"{"metricVaultCounts":1,"run":[7,1,7,10,20],"scenarios":[[3,1,3,4,5],[4,0,4,6,15]]}"#,
        )
        .unwrap();
        assert_eq!(report.run, counts(7));
        assert_eq!(report.scenarios.unwrap()[1].data_received, 15);
        let without =
            parse_report(r#"{"metricVaultCounts":1,"run":[7,1,7,10,20],"scenarios":null}"#).unwrap();
        assert_eq!(without.scenarios, None);
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "k6 exited: boom",
            r#"{"metricVaultCounts":2,"run":[1,0,1,0,0]}"#,
            r#"{"metricVaultCounts":1,"run":[1.5,0,1,0,0]}"#,
            r#"{"metricVaultCounts":1,"run":[-1,0,1,0,0]}"#,
            r#"{"metricVaultCounts":1,"run":[1,0,1]}"#,
        ] {
            assert!(parse_report(text).is_err(), "{text}");
        }
        assert!(is_counts_document(r#"{"metricVaultCounts":1,"run":[1,0,1,0,0]}"#));
        let stopped = |ran: u32| {
            let text =
                format!(r#"{{"metricVaultCounts":1,"run":[1,0,1,0,0],"ranMs":{ran},"plannedMs":20000}}"#);
            parse_report(&text).unwrap().stopped_early_after
        };
        assert_eq!(stopped(5000), Some(std::time::Duration::from_secs(5)), "stopped after 5 s of 20");
        assert_eq!(stopped(19_900), Some(std::time::Duration::from_millis(19_900)), "100 ms short is a stop");
        assert_eq!(stopped(20_000), None, "at its end");
        assert_eq!(stopped(31_000), None, "its end and a graceful stop");
        assert!(!is_counts_document("level=error msg=boom"));
    }

    #[test]
    fn totals_need_every_instance() {
        let keys = vec!["a_0".to_owned(), "b_1".to_owned()];
        let report = |n| InstanceReport {
            run: counts(n),
            scenarios: Some(vec![counts(n - 1), counts(1)]),
            stopped_early_after: None,
        };
        let (run, scenarios) = sum_reports(&[Some(report(5)), Some(report(7))], &keys).unwrap();
        assert_eq!(run.requests, 12);
        assert_eq!(run.failed_requests, 2);
        assert_eq!(
            scenarios,
            vec![("a_0".to_owned(), counts(4) + counts(6)), ("b_1".to_owned(), counts(1) + counts(1))]
        );
        assert_eq!(sum_reports(&[Some(report(5)), None], &keys), None);
        assert_eq!(sum_reports(&[], &keys), None);
        // An instance without per-scenario counts leaves the scenarios out, not the run.
        let partial = InstanceReport { run: counts(3), scenarios: None, stopped_early_after: None };
        let (run, scenarios) = sum_reports(&[Some(report(5)), Some(partial)], &keys).unwrap();
        assert_eq!((run.requests, scenarios.len()), (8, 0));
    }
}
