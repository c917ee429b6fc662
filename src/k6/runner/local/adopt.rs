//! Local k6 processes outlive the server that started them, and are taken back after a restart.
//!
//! Each instance runs in a process group of its own, ignoring SIGPIPE (its stderr pipe breaks
//! when the server dies; k6 must not die of it), with its REST API on a loopback port. Before the
//! instances are un-paused, the runner has the lifecycle record where they are
//! ([`LocalProcesses`]: machine, pids, API addresses, work folder) with the run. A server that
//! takes the run over — the same one restarted, or another on the same machine — re-attaches:
//! every instance must either still run (the pid shows the run's script, its REST API answers)
//! or have ended after writing its end-of-test counts. It then follows the run through the
//! REST API and `/proc` as the original runner would have (cancel, time limit, the end with
//! k6's counts). When that is not so, the instances left are stopped, and the run ends with the
//! reason. A server on another machine cannot reach the processes; it ends the run, and the
//! machine's own server stops what is left of it when it starts ([`stop_strays`]).
//!
//! Linux only: liveness and identity come from `/proc`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use super::{
    LocalRunner, STOP_GRACE, read_reports,
    samples::{SampleSink, Shipping, settle},
};
use crate::k6::{
    counts::InstanceReports,
    runner::{InterruptedRun, RunOutcome, RunnerEvent, set_k6_status},
};

/// How often an adopted run's processes are looked at.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Where one local run's k6 processes are: recorded with the run before they are un-paused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalProcesses {
    /// The machine they run on ([`this_machine`]): pids and loopback ports mean something only there.
    pub machine: String,
    /// The script every instance runs; a pid whose command line does not name it is not ours.
    pub script: PathBuf,
    /// Where the instances write their end-of-test counts.
    pub work_dir: PathBuf,
    pub instances: Vec<LocalProcess>,
}

/// One k6 instance of a local run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalProcess {
    pub index: u32,
    pub pid: u32,
    /// Its REST API's status resource, `http://127.0.0.1:port/v1/status`.
    pub api: String,
    /// Its web dashboard, when it serves one.
    pub dashboard: Option<SocketAddr>,
}

/// This machine, as this boot of it: the host name and the kernel's boot id (a pid from before
/// a reboot names nothing).
pub fn this_machine() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    format!("{}/{}", host_name().unwrap_or_default(), boot.trim())
}

/// This host's name, as the kernel has it; None when it cannot be read.
pub fn host_name() -> Option<String> {
    let read = |path: &str| std::fs::read_to_string(path).map(|text| text.trim().to_owned()).ok();
    read("/proc/sys/kernel/hostname").or_else(|| read("/etc/hostname"))
}

impl LocalProcess {
    /// Whether the process still runs the run's `script` (not a zombie, not a reused pid).
    pub fn is_running(&self, script: &Path) -> bool {
        runs_script(self.pid, script)
    }
}

/// Whether process `pid` is alive and was started with `script` among its arguments.
fn runs_script(pid: u32, script: &Path) -> bool {
    let Ok(command_line) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let script = script.as_os_str().as_encoded_bytes();
    command_line.split(|byte| *byte == 0).any(|argument| argument == script)
}

/// Sends `signal` to process `pid` if it still runs `script`.
fn signal(pid: u32, script: &Path, signal: libc::c_int) {
    if runs_script(pid, script) {
        // SAFETY: kill(2) with a pid just checked to be one of the run's k6 processes.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

impl LocalProcesses {
    fn running(&self) -> impl Iterator<Item = &LocalProcess> {
        self.instances.iter().filter(|instance| instance.is_running(&self.script))
    }

    /// Asks every instance still running to stop (k6 flushes its samples on SIGTERM), and kills
    /// what is left after [`STOP_GRACE`].
    async fn stop(&self, http: &reqwest::Client) {
        for instance in self.running() {
            if set_k6_status(http, &instance.api, json!({ "stopped": true })).await.is_err() {
                signal(instance.pid, &self.script, libc::SIGTERM);
            }
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while self.running().next().is_some() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for instance in self.running() {
            tracing::warn!(
                pid = instance.pid,
                "an adopted k6 did not stop within {STOP_GRACE:?}; killing it"
            );
            signal(instance.pid, &self.script, libc::SIGKILL);
        }
    }
}

/// Stops every k6 process of `processes` still running on this machine: what an ended run
/// left behind when a server elsewhere ended it. Returns how many there were.
pub fn stop_strays(processes: &LocalProcesses) -> usize {
    if processes.machine != this_machine() {
        return 0;
    }
    let strays: Vec<_> = processes.running().collect();
    for instance in &strays {
        tracing::warn!(pid = instance.pid, "stopping a k6 left running by a run that has ended");
        signal(instance.pid, &processes.script, libc::SIGTERM);
    }
    strays.len()
}

/// Stops every process on this machine started with `script` among its arguments: the k6 of
/// a run whose server died before it could record them (they wait, paused, for ever).
fn stop_unrecorded(script: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| *pid != std::process::id() && runs_script(*pid, script))
        .collect();
    for pid in &pids {
        tracing::warn!(pid, script = %script.display(), "stopping an unrecorded k6 of an interrupted run");
        signal(*pid, script, libc::SIGKILL);
    }
    pids.len()
}

/// Why an interrupted local run could not be taken back (it then ends FAILED with this).
#[derive(Debug, thiserror::Error)]
pub(super) enum ReattachError {
    #[error("interrupted by server restart before its k6 processes were up")]
    NotUp,
    #[error("interrupted by server restart; its k6 processes' record is unreadable: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error(
        "interrupted by server restart: its k6 ran on another machine ({0}), which this server cannot reach"
    )]
    OtherMachine(String),
    #[error("interrupted by server restart: {0}; the rest of it was stopped")]
    Broken(#[from] InstanceProblem),
}

/// What was wrong with one k6 instance of an interrupted run.
#[derive(Debug, thiserror::Error)]
pub(super) enum InstanceProblem {
    #[error("k6 instance {index} (pid {pid}) no longer answered on its REST API ({source})")]
    NotAnswering { index: u32, pid: u32, source: reqwest::Error },
    #[error("k6 instance {index} (pid {pid}) had ended without writing its end-of-test counts")]
    NoCounts { index: u32, pid: u32 },
}

impl LocalRunner {
    /// Takes one interrupted run back, or says why it cannot be.
    pub(super) async fn reattach_run(&self, run: &InterruptedRun) -> Result<(), ReattachError> {
        let Some(recorded) = &run.local_processes else {
            if let Some(script) = &run.script {
                stop_unrecorded(script);
            }
            return Err(ReattachError::NotUp);
        };
        let processes: LocalProcesses = serde_json::from_str(recorded)?;
        if processes.machine != this_machine() {
            return Err(ReattachError::OtherMachine(processes.machine));
        }
        if processes.instances.len() < run.parallelism as usize {
            // Recorded before its instances were up: whatever of them started waits, paused.
            stop_unrecorded(&processes.script);
            return Err(ReattachError::NotUp);
        }
        if let Err(problem) = self.check_instances(run, &processes).await {
            processes.stop(&self.http).await;
            return Err(problem.into());
        }
        let (stop_tx, stop_rx) = watch::channel(run.cancel_requested);
        self.running.lock().expect("runner lock").insert(run.test_id, stop_tx);
        let dashboards = self.web_dashboard.then(|| self.dashboards.clone());
        if let Some(dashboards) = &dashboards {
            let addresses: Option<Vec<_>> =
                processes.instances.iter().map(|instance| instance.dashboard).collect();
            if let Some(addresses) =
                addresses.filter(|_| processes.running().count() == processes.instances.len())
            {
                dashboards.open(run.test_id, addresses);
            }
        }
        let follower = Adopted {
            run: run.clone(),
            processes,
            http: self.http.clone(),
            events: self.events.clone(),
            running: self.running.clone(),
            dashboards,
            samples: self.samples.clone(),
            shipping_runs: self.shipping.clone(),
        };
        tokio::spawn(follower.follow(stop_rx));
        Ok(())
    }

    /// Each instance either still runs and answers on its REST API, or ended having written
    /// its end-of-test counts; otherwise, what is wrong.
    async fn check_instances(
        &self,
        run: &InterruptedRun,
        processes: &LocalProcesses,
    ) -> Result<(), InstanceProblem> {
        for instance in &processes.instances {
            let (index, pid) = (instance.index, instance.pid);
            if instance.is_running(&processes.script) {
                let answer = self.http.get(&instance.api).send().await.and_then(|r| r.error_for_status());
                if let Err(source) = answer {
                    return Err(InstanceProblem::NotAnswering { index, pid, source });
                }
            } else if !super::counts_path(&processes.work_dir, run.test_id, index).is_file() {
                return Err(InstanceProblem::NoCounts { index, pid });
            }
        }
        Ok(())
    }
}

/// An adopted run, followed to its end.
struct Adopted {
    run: InterruptedRun,
    processes: LocalProcesses,
    http: reqwest::Client,
    events: tokio::sync::mpsc::UnboundedSender<RunnerEvent>,
    running: super::RunningRuns,
    dashboards: Option<super::LiveDashboards>,
    /// Where the instances' samples go (what is left of their files, and what they still write).
    samples: Option<SampleSink>,
    shipping_runs: super::ShippingRuns,
}

impl Adopted {
    #[tracing::instrument(skip_all, fields(test_id = self.run.test_id))]
    async fn follow(self, mut stop: watch::Receiver<bool>) {
        let test_id = self.run.test_id;
        tracing::info!(pids = ?self.processes.instances.iter().map(|i| i.pid).collect::<Vec<_>>(),
            "re-attached to a local run's k6 after a restart");
        if !self.run.started {
            // Stopped while its instances were paused: start them now, together.
            for instance in self.processes.running() {
                if let Err(err) = set_k6_status(&self.http, &instance.api, json!({ "paused": false })).await {
                    tracing::warn!(instance = instance.index, %err, "could not un-pause an adopted k6");
                }
            }
            let _ = self.events.send(RunnerEvent::Started { test_id, at: Utc::now() });
        }
        let shipping: Vec<Shipping> = match &self.samples {
            Some(sink) => self
                .processes
                .instances
                .iter()
                .map(|instance| {
                    Shipping::start(&self.processes.work_dir, test_id, instance.index, sink.clone(), true)
                })
                .collect(),
            None => {
                tracing::warn!("no InfluxDB to ship an adopted run's samples to");
                Vec::new()
            }
        };
        let limit = chrono::Duration::from_std(self.run.timeout).unwrap_or(chrono::Duration::days(1));
        let left = (self.run.since + limit - Utc::now()).to_std().unwrap_or_default();
        let deadline = tokio::time::sleep(left);
        tokio::pin!(deadline);
        let mut thresholds_crossed = false;
        let ending = loop {
            let running: Vec<_> = self.processes.running().collect();
            if running.is_empty() {
                break None;
            }
            for instance in running {
                thresholds_crossed |= self.tainted(&instance.api).await;
            }
            tokio::select! {
                () = tokio::time::sleep(WATCH_EVERY) => {}
                _ = stop.wait_for(|stop| *stop) => break Some(RunOutcome::Cancelled),
                () = &mut deadline => break Some(RunOutcome::TimedOut),
            }
        };
        if let Some(outcome) = &ending {
            tracing::info!(?outcome, "stopping an adopted run");
            self.processes.stop(&self.http).await;
        }
        let ended_at = Utc::now();
        if let Some(dashboards) = &self.dashboards {
            dashboards.close(test_id);
        }
        settle(shipping, test_id, &self.shipping_runs).await;
        let unwatched_end = ending.is_none();
        let reports =
            read_reports(&self.processes.work_dir, test_id, self.processes.instances.len() as u32).await;
        let outcome =
            ending.unwrap_or_else(|| self.outcome_of_ended(&reports, *stop.borrow(), thresholds_crossed));
        self.running.lock().expect("runner lock").remove(&test_id);
        // k6 writes its counts as it ends: for a run that ended unwatched, that is when it ended.
        let at = if unwatched_end { self.last_counts_written().unwrap_or(ended_at) } else { ended_at };
        let _ = self.events.send(RunnerEvent::Finished { test_id, at, outcome, reports });
    }

    /// How a run ended whose k6 processes had all exited on their own — not children of this
    /// process, so without an exit status: their end-of-test counts say whether each one ran
    /// its whole plan. One that stopped early was stopped: by the cancel a server carried out
    /// before it went (`cancelled`), or by someone else, with a signal or through its REST API.
    fn outcome_of_ended(
        &self,
        reports: &InstanceReports,
        cancelled: bool,
        thresholds_crossed: bool,
    ) -> RunOutcome {
        if let Some(index) = reports.iter().position(Option::is_none) {
            return RunOutcome::Failed {
                reason: format!(
                    "k6 instance {index} ended without writing its end-of-test counts (it was re-attached \
                     after a server restart, so its exit status is unknown; it was probably killed)"
                ),
            };
        }
        let stopped_early = reports
            .iter()
            .enumerate()
            .find_map(|(index, report)| Some((index, report.as_ref()?.stopped_early_after?)));
        match stopped_early {
            Some(_) if cancelled => RunOutcome::Cancelled,
            Some((index, ran)) => RunOutcome::Failed {
                reason: format!(
                    "k6 instance {index} stopped after {:.1} s, before the end of its plan, and not at a \
                     server's request (a signal, or a stop through its REST API)",
                    ran.as_secs_f64()
                ),
            },
            // Every instance ran its whole plan: a cancel, if one was asked, came too late.
            None => RunOutcome::Completed { thresholds_crossed },
        }
    }

    /// When the last instance wrote its end-of-test counts; None unless every one did.
    fn last_counts_written(&self) -> Option<chrono::DateTime<Utc>> {
        self.processes
            .instances
            .iter()
            .map(|instance| {
                let path = super::counts_path(&self.processes.work_dir, self.run.test_id, instance.index);
                std::fs::metadata(path)
                    .and_then(|meta| meta.modified())
                    .ok()
                    .map(chrono::DateTime::<Utc>::from)
            })
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    }

    /// Whether k6 says a threshold has been crossed (its status resource's `tainted`).
    async fn tainted(&self, api: &str) -> bool {
        let Ok(response) = self.http.get(api).send().await else {
            return false;
        };
        let status: serde_json::Value = response.json().await.unwrap_or_default();
        status["data"]["attributes"]["tainted"].as_bool().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_is_ours_only_while_it_runs_the_script() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        // Until it has exec'd, the child shows this test's command line.
        let spawned = std::time::Instant::now();
        while !runs_script(child.id(), Path::new("30")) {
            assert!(spawned.elapsed() < Duration::from_secs(5), "the child runs `sleep 30`");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!runs_script(child.id(), Path::new("/tmp/test-1.js")), "another script");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!runs_script(child.id(), Path::new("30")), "ended");
        assert!(!runs_script(std::process::id(), Path::new("30")), "not this test's script");
    }

    /// The server died after recording where its k6 would be but before they were up (or
    /// recorded): whatever started of them waits, paused, and is stopped by its script — the
    /// one on record, not where the adopting server would put it.
    #[tokio::test]
    async fn a_run_recorded_before_its_k6_was_up_has_what_started_stopped() {
        use std::os::unix::process::ExitStatusExt;

        use crate::k6::runner::Runner;

        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("test-7.js");
        // Stands for a paused k6: a process with the script among its arguments.
        let mut waiting =
            std::process::Command::new("sh").args(["-c", "sleep 30; true"]).arg(&script).spawn().unwrap();
        let spawned = std::time::Instant::now();
        while !runs_script(waiting.id(), &script) {
            assert!(spawned.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(10));
        }
        let record = LocalProcesses {
            machine: this_machine(),
            script: script.clone(),
            work_dir: dir.path().to_owned(),
            instances: Vec::new(),
        };
        let run = InterruptedRun {
            test_id: 7,
            parallelism: 1,
            started: false,
            since: Utc::now(),
            timeout: Duration::from_secs(60),
            local_processes: Some(serde_json::to_string(&record).unwrap()),
            script: Some(dir.path().join("another-folder").join("test-7.js")),
            cancel_requested: false,
        };
        let (events, _reports) = tokio::sync::mpsc::unbounded_channel();
        let lost = LocalRunner::new("k6", events).reattach(&[run]).await;
        assert!(lost[&7].contains("before its k6 processes were up"), "{lost:?}");
        assert_eq!(waiting.wait().unwrap().signal(), Some(libc::SIGKILL), "stopped");
    }

    #[test]
    fn the_machine_names_host_and_boot() {
        let machine = this_machine();
        assert_eq!(machine, this_machine());
        let (host, boot) = machine.split_once('/').unwrap();
        assert!(!host.is_empty() && boot.len() >= 32, "{machine}");
    }
}
