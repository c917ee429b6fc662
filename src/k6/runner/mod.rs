//! Runners start k6 for a run and report what happens to it; the lifecycle turns their
//! reports into status changes and results.

pub mod kubernetes;
pub mod local;

use std::{collections::HashMap, path::PathBuf, time::Duration};

use chrono::{DateTime, Utc};

use crate::{
    domain::RunnerKind,
    k6::{ScriptSecrets, counts::InstanceReports},
};

/// Everything a runner needs to start one run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub test_id: i64,
    /// The generated script, already written.
    pub script: PathBuf,
    /// Number of k6 instances the load is split across (execution segments).
    pub parallelism: u32,
    /// `--out influxdb=` target: `http://host:port/database`.
    pub influxdb_out: String,
    /// A run still going after this is stopped and reported as timed out.
    pub timeout: Duration,
    /// Where the runner may keep per-run files (summary exports).
    pub work_dir: PathBuf,
    /// The secret header values the script reads from k6's environment; kept in memory only.
    pub secrets: ScriptSecrets,
}

/// What a runner reports about a run, in order: `Started` (maybe), then `Finished`.
#[derive(Clone, Debug)]
pub enum RunnerEvent {
    /// Every k6 instance is up and has been un-paused: the load begins now.
    Started { test_id: i64, at: DateTime<Utc> },
    /// The run is over; no k6 instance of it is left. `reports`: what each instance (by index)
    /// counted itself, None for one that wrote no end-of-test counts.
    Finished { test_id: i64, at: DateTime<Utc>, outcome: RunOutcome, reports: InstanceReports },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunOutcome {
    /// Every instance exited normally; `thresholds_crossed` when one exited with 99.
    Completed { thresholds_crossed: bool },
    /// k6 could not start, or exited with an error; `reason` carries k6's own words.
    Failed { reason: String },
    /// Stopped on request.
    Cancelled,
    /// Stopped because it outlived its time limit.
    TimedOut,
}

/// A run whose server stopped (killed, restarted, or handing over on SIGTERM), to be taken back
/// by the instance that took over its lease.
#[derive(Clone, Debug)]
pub struct InterruptedRun {
    pub test_id: i64,
    pub parallelism: u32,
    /// k6 was un-paused already (the run is RUNNING).
    pub started: bool,
    /// When the run's time limit began (its start, or its record when it never started).
    pub since: DateTime<Utc>,
    /// Its time limit, as at launch.
    pub timeout: Duration,
    /// Where a local run's k6 processes are, as recorded at launch
    /// ([`local::LocalProcesses`] as JSON); None for other runs, or before k6 was up.
    pub local_processes: Option<String>,
    /// A local run's script, where this server would have written it.
    pub script: Option<PathBuf>,
    /// A cancel was asked for before the run was taken over (it may have been carried out
    /// already, by the server that stopped): the run is stopped, and ends CANCELLED.
    pub cancel_requested: bool,
}

/// Why a run could not be handed to a runner at all.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{0}")]
    Unavailable(String),
    /// Where the run goes (the cluster) refused it; the message is its own.
    #[error("{0}")]
    Refused(String),
}

/// Starts and stops k6 runs somewhere (this machine, a cluster).
#[async_trait::async_trait]
pub trait Runner: Send + Sync {
    /// Which runner this is.
    fn kind(&self) -> RunnerKind;

    /// Takes the run over: returns at once, and reports through the runner's event channel.
    async fn start(&self, request: RunRequest) -> Result<(), RunnerError>;

    /// Asks a run to stop, keeping what it measured. False when the runner does not have it.
    async fn cancel(&self, test_id: i64) -> bool;

    /// Whether the runner is running `test_id` now.
    fn is_running(&self, test_id: i64) -> bool;

    /// Takes back runs that a stopped server had, where their k6 still runs, and follows them to
    /// their end as if this runner had started them. Returns, for each run it could not take
    /// back, why not: those are over, and the caller ends them with that reason.
    async fn reattach(&self, runs: &[InterruptedRun]) -> HashMap<i64, String>;
}

/// `--execution-segment` and `--execution-segment-sequence` values for instance `index` of `count`.
pub fn execution_segment(index: u32, count: u32) -> Option<(String, String)> {
    if count <= 1 {
        return None;
    }
    let bound = |i: u32| {
        if i == 0 {
            "0".to_owned()
        } else if i == count {
            "1".to_owned()
        } else {
            format!("{i}/{count}")
        }
    };
    let segment = format!("{}:{}", bound(index), bound(index + 1));
    let sequence = (0..=count).map(bound).collect::<Vec<_>>().join(",");
    Some((segment, sequence))
}

/// Why k6's REST API did not take a status change.
#[derive(Debug, thiserror::Error)]
pub enum K6ApiError {
    /// No answer (refused, reset, timed out): reqwest's error, with its causes.
    #[error(transparent)]
    Unreachable(#[from] reqwest::Error),
    /// k6 answered, and said no.
    #[error("k6 answered HTTP {status}: {body}")]
    Refused { status: reqwest::StatusCode, body: String },
}

/// PATCHes the status resource of the k6 REST API at `url` (JSON:API), e.g. `{"paused": false}`
/// to start a paused instance or `{"stopped": true}` to stop one; both runners drive k6 this way.
pub(crate) async fn set_k6_status(
    http: &reqwest::Client,
    url: &str,
    attributes: serde_json::Value,
) -> Result<(), K6ApiError> {
    let body = serde_json::json!({ "data": { "type": "status", "id": "default", "attributes": attributes } });
    let response = http.patch(url).json(&body).send().await?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(K6ApiError::Refused { status, body: response.text().await.unwrap_or_default() })
    }
}

/// Resolves a bare name through PATH, as a shell would; a path is checked as given.
pub fn find_executable(name: &str) -> Option<std::path::PathBuf> {
    let candidate = std::path::Path::new(name);
    if candidate.components().count() > 1 {
        return candidate.is_file().then(|| candidate.to_path_buf());
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_whole_run() {
        assert_eq!(execution_segment(0, 1), None);
        assert_eq!(execution_segment(0, 2), Some(("0:1/2".into(), "0,1/2,1".into())));
        assert_eq!(execution_segment(1, 2), Some(("1/2:1".into(), "0,1/2,1".into())));
        assert_eq!(execution_segment(1, 3), Some(("1/3:2/3".into(), "0,1/3,2/3,1".into())));
    }
}
