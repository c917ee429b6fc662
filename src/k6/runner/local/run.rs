//! One local run: its k6 instances spawned paused, un-paused together once every one answers,
//! followed to their end (a cancel, the time limit, k6's own exit) and read for the outcome.

use std::{
    collections::VecDeque,
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::{mpsc, watch},
};

use super::{
    LiveDashboards, LocalProcess, LocalProcesses, PORT_ATTEMPTS, STARTUP_LIMIT, STDERR_LINES, STOP_GRACE,
    THRESHOLDS_CROSSED, counts_path, report_file,
    samples::{SampleSink, Shipping, samples_path},
    this_machine,
};
use crate::k6::{
    counts::COUNTS_FILE_VARIABLE,
    runner::{
        K6ApiError, LedgerError, ProcessLedger, RunOutcome, RunRequest, RunnerEvent, execution_segment,
        set_k6_status,
    },
};

/// One k6 process of a run.
struct Instance {
    index: u32,
    child: Child,
    api: String,
    /// Where its web dashboard listens, when it serves one.
    dashboard: Option<SocketAddr>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Instance {
    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().expect("stderr lock");
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// What one run's task needs.
pub(super) struct LocalRun {
    pub(super) k6_binary: String,
    pub(super) http: reqwest::Client,
    pub(super) events: mpsc::UnboundedSender<RunnerEvent>,
    /// Where the run's dashboards are published; None when instances serve none.
    pub(super) dashboards: Option<LiveDashboards>,
    pub(super) ledger: Option<Arc<dyn ProcessLedger>>,
    pub(super) samples: SampleSink,
}

enum Ending {
    Exited(Vec<ExitStatus>),
    Stop,
    Deadline,
}

impl LocalRun {
    #[tracing::instrument(skip_all, fields(test_id = request.test_id, parallelism = request.parallelism))]
    /// Runs `request` to its end; `shipping` gets the instances' samples being shipped, to be
    /// finished once they ended.
    pub(super) async fn execute(
        &self,
        request: &RunRequest,
        mut stop: watch::Receiver<bool>,
        shipping: &mut Vec<Shipping>,
    ) -> RunOutcome {
        // Where its processes will be, before there are any: a server that takes the run over
        // after this one died while they started finds them by their script, wherever its own
        // script folder is.
        if let Err(err) = self.record(request, &[]).await {
            return RunOutcome::Failed { reason: format!("could not record where k6 runs: {err}") };
        }
        let mut attempt = 1;
        let mut instances = loop {
            match self.start_paused(request, &mut stop).await {
                Ok(instances) => break instances,
                // The ports are picked free and then bound by k6 a moment later; another
                // process may take one in between. Fresh ports are all that is needed.
                Err(RunOutcome::Failed { reason })
                    if reason.contains("address already in use") && attempt < PORT_ATTEMPTS =>
                {
                    tracing::debug!(attempt, "k6's REST port was taken; retrying on another one");
                    attempt += 1;
                }
                Err(outcome) => return outcome,
            }
        };
        shipping.extend(instances.iter().map(|instance| {
            Shipping::start(&request.work_dir, request.test_id, instance.index, self.samples.clone(), false)
        }));
        if let Some(dashboards) = &self.dashboards {
            dashboards
                .open(request.test_id, instances.iter().filter_map(|instance| instance.dashboard).collect());
        }
        if let Err(err) = self.record(request, &instances).await {
            kill_all(&mut instances).await;
            return RunOutcome::Failed { reason: format!("could not record where k6 runs: {err}") };
        }
        let mut unpause_failure = None;
        for instance in &instances {
            if let Err(err) = self.set_status(instance, json!({ "paused": false })).await {
                unpause_failure = Some(format!("could not start k6 instance {}: {err}", instance.index));
                break;
            }
        }
        if let Some(reason) = unpause_failure {
            kill_all(&mut instances).await;
            return RunOutcome::Failed { reason };
        }
        let _ = self.events.send(RunnerEvent::Started { test_id: request.test_id, at: Utc::now() });
        tracing::info!("k6 started");

        let deadline = tokio::time::sleep(request.timeout);
        tokio::pin!(deadline);
        let ending = tokio::select! {
            statuses = wait_all(&mut instances) => Ending::Exited(statuses),
            _ = stop.wait_for(|stop| *stop) => Ending::Stop,
            () = &mut deadline => Ending::Deadline,
        };
        match ending {
            Ending::Exited(statuses) => outcome_of(&instances, &statuses),
            Ending::Stop => {
                self.stop_gracefully(&mut instances).await;
                RunOutcome::Cancelled
            }
            Ending::Deadline => {
                self.stop_gracefully(&mut instances).await;
                RunOutcome::TimedOut
            }
        }
    }

    /// Spawns every instance paused and waits until all of them answer on their REST API.
    async fn start_paused(
        &self,
        request: &RunRequest,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Vec<Instance>, RunOutcome> {
        let mut instances = Vec::new();
        for index in 0..request.parallelism {
            match self.spawn(request, index) {
                Ok(instance) => instances.push(instance),
                Err(err) => {
                    kill_all(&mut instances).await;
                    return Err(RunOutcome::Failed { reason: err.to_string() });
                }
            }
        }
        if let Err(outcome) = self.wait_until_ready(&mut instances, stop).await {
            kill_all(&mut instances).await;
            return Err(outcome);
        }
        Ok(instances)
    }

    fn spawn(&self, request: &RunRequest, index: u32) -> Result<Instance, SpawnError> {
        let [port, dashboard_port] = free_ports().map_err(SpawnError::NoPort)?;
        let address = format!("127.0.0.1:{port}");
        let summary = request.work_dir.join(format!("summary-{}-{index}.json", request.test_id));
        let counts = counts_path(&request.work_dir, request.test_id, index);
        let report = report_file(&request.work_dir, request.test_id, index);
        let samples = samples_path(&request.work_dir, request.test_id, index);
        // Files left by an earlier server with the same run id must not pass for this run's.
        let _ = std::fs::remove_file(&counts);
        let _ = std::fs::remove_file(&report);
        let _ = std::fs::remove_file(&samples);
        let dashboard = self.dashboards.is_some().then(|| SocketAddr::from(([127, 0, 0, 1], dashboard_port)));
        let mut command = Command::new(&self.k6_binary);
        command
            .arg("run")
            .arg("--paused")
            .args(["--address", &address])
            // Every sample to a file the server ships to InfluxDB ([`super::samples`]).
            .arg("--out")
            .arg(format!("csv={}", samples.display()))
            .arg("--summary-export")
            .arg(&summary)
            .args(["--quiet", "--no-color"]);
        if let Some((segment, sequence)) = execution_segment(index, request.parallelism) {
            command.args(["--execution-segment", &segment, "--execution-segment-sequence", &sequence]);
        }
        command
            .arg(&request.script)
            .env("K6_NO_USAGE_REPORT", "true")
            .env(COUNTS_FILE_VARIABLE, &counts)
            .envs(crate::k6::influx_output::k6_environment())
            .envs(super::samples::environment())
            // Set either way: k6 would read the server's own `K6_WEB_DASHBOARD`, which may say `no`.
            .env("K6_WEB_DASHBOARD", if dashboard.is_some() { "true" } else { "false" })
            .envs(
                dashboard
                    .map(|address| super::dashboard::environment(address, &report))
                    .into_iter()
                    .flatten(),
            )
            // Only this process and its user see a process's environment (not its command line).
            .envs(request.secrets.0.iter().map(|(variable, value)| (variable, value)))
            .current_dir(script_folder(&request.script))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // k6 outlives this server (to be re-attached after a restart, [`adopt`]): its own
            // process group keeps a Ctrl-C meant for the server away from it.
            .process_group(0)
            .kill_on_drop(false);
        survive_this_process(&mut command);
        let mut child =
            command.spawn().map_err(|source| SpawnError::Start { binary: self.k6_binary.clone(), source })?;
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES)));
        if let Some(pipe) = child.stderr.take() {
            let tail = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut tail = tail.lock().expect("stderr lock");
                    if tail.len() == STDERR_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        }
        Ok(Instance { index, child, api: format!("http://{address}/v1/status"), dashboard, stderr })
    }

    /// Waits until every instance answers on its REST API and accepts connections on its
    /// dashboard (k6 may open them in either order); an exit or a stop request ends the wait.
    async fn wait_until_ready(
        &self,
        instances: &mut [Instance],
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), RunOutcome> {
        let started = tokio::time::Instant::now();
        for instance in instances.iter_mut() {
            loop {
                if *stop.borrow() {
                    return Err(RunOutcome::Cancelled);
                }
                if let Ok(Some(status)) = instance.child.try_wait() {
                    tokio::time::sleep(Duration::from_millis(50)).await; // let the stderr reader catch up
                    return Err(RunOutcome::Failed {
                        reason: format!(
                            "k6 instance {} exited before starting ({status}): {}",
                            instance.index,
                            instance.stderr_tail()
                        ),
                    });
                }
                if self.http.get(&instance.api).send().await.is_ok_and(|r| r.status().is_success())
                    && match instance.dashboard {
                        Some(address) => tokio::net::TcpStream::connect(address).await.is_ok(),
                        None => true,
                    }
                {
                    break;
                }
                if started.elapsed() > STARTUP_LIMIT {
                    return Err(RunOutcome::Failed {
                        reason: format!(
                            "k6 instance {} did not open its REST API{} within {STARTUP_LIMIT:?}",
                            instance.index,
                            if instance.dashboard.is_some() { " and its dashboard" } else { "" }
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(())
    }

    /// PATCHes k6's status resource (JSON:API), e.g. `{"paused": false}` or `{"stopped": true}`.
    /// Has the ledger record where the run's instances are (none when there is no ledger).
    async fn record(&self, request: &RunRequest, instances: &[Instance]) -> Result<(), LedgerError> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let record =
            serde_json::to_string(&processes_of(request, instances)).expect("process records are JSON");
        ledger.record(request.test_id, &record).await
    }

    async fn set_status(&self, instance: &Instance, attributes: serde_json::Value) -> Result<(), K6ApiError> {
        set_k6_status(&self.http, &instance.api, attributes).await
    }

    /// Asks every instance to stop (k6 then flushes its samples), and kills what is left after a grace period.
    async fn stop_gracefully(&self, instances: &mut [Instance]) {
        for instance in instances.iter() {
            if let Err(err) = self.set_status(instance, json!({ "stopped": true })).await {
                tracing::debug!(instance = instance.index, %err, "k6 did not take the stop request");
            }
        }
        if tokio::time::timeout(STOP_GRACE, wait_all(instances)).await.is_err() {
            tracing::warn!("k6 did not stop within {STOP_GRACE:?}; killing it");
            kill_all(instances).await;
        }
    }
}

async fn wait_all(instances: &mut [Instance]) -> Vec<ExitStatus> {
    let waits = instances.iter_mut().map(|instance| instance.child.wait());
    futures_util::future::join_all(waits)
        .await
        .into_iter()
        .map(|status| status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(1 << 8)))
        .collect()
}

async fn kill_all(instances: &mut [Instance]) {
    for instance in instances.iter_mut() {
        let _ = instance.child.kill().await;
    }
}

/// Completed when every instance exited with 0 or 99 (thresholds crossed); failed otherwise.
fn outcome_of(instances: &[Instance], statuses: &[ExitStatus]) -> RunOutcome {
    let mut thresholds_crossed = false;
    for (instance, status) in instances.iter().zip(statuses) {
        match status.code() {
            Some(0) => {}
            Some(THRESHOLDS_CROSSED) => thresholds_crossed = true,
            _ => {
                return RunOutcome::Failed {
                    reason: format!(
                        "k6 instance {} exited with {status}: {}",
                        instance.index,
                        instance.stderr_tail()
                    ),
                };
            }
        }
    }
    RunOutcome::Completed { thresholds_crossed }
}

/// Where a run's instances are, for the ledger.
fn processes_of(request: &RunRequest, instances: &[Instance]) -> LocalProcesses {
    LocalProcesses {
        machine: this_machine(),
        script: request.script.clone(),
        work_dir: request.work_dir.clone(),
        instances: instances
            .iter()
            .map(|instance| LocalProcess {
                index: instance.index,
                pid: instance.child.id().unwrap_or_default(),
                api: instance.api.clone(),
                dashboard: instance.dashboard,
            })
            .collect(),
    }
}

/// Two different ports that were free a moment ago (REST API, dashboard); k6 binds them right after.
fn free_ports() -> std::io::Result<[u16; 2]> {
    let (first, second) = (TcpListener::bind("127.0.0.1:0")?, TcpListener::bind("127.0.0.1:0")?);
    Ok([first.local_addr()?.port(), second.local_addr()?.port()])
}

fn script_folder(script: &Path) -> &Path {
    script.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Why a k6 instance could not be started.
#[derive(Debug, thiserror::Error)]
enum SpawnError {
    #[error("no free loopback port for k6's REST API and dashboard: {0}")]
    NoPort(#[source] std::io::Error),
    #[error("could not start k6 (`{binary}`): {source}")]
    Start { binary: String, source: std::io::Error },
}

/// k6 must not die with this server: the Rust runtime ignores SIGPIPE and `Command` sets it back
/// to the default for the child, under which k6 (Go) exits on its first write to a stderr pipe
/// whose reader — this server — is gone. Ignored, the write fails and k6 goes on.
fn survive_this_process(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and calls only signal(2), which
    // is async-signal-safe, touching no memory of the parent's.
    unsafe {
        command.pre_exec(|| {
            if libc::signal(libc::SIGPIPE, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
