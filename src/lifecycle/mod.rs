//! The life of a run: launch (validate, record, start), the runner's reports turned into
//! status changes, results read from InfluxDB when k6 ends, cancellation, and recovery of
//! runs a server restart interrupted.

mod backfill;
mod cleanup;
mod ending;
pub mod events;
pub mod launch;
pub mod lease;
mod ownership;
pub mod plans;
mod regression;
mod results;
pub mod schedule;
mod targets;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;

use crate::{
    config::Settings,
    db::{
        entities::test_history,
        repo::{
            self,
            runs::{NewRun, PlanLink},
        },
    },
    domain::{RunnerKind, TestStatus},
    error::{AppError, AppResult},
    k6::{
        TestPlan,
        runner::{
            InstancePhase, PreflightError, RunDashboards, RunOutcome, RunRequest, Runner, RunnerEvent,
            RunnerHealth, Runners,
        },
        script::{render_script, script_secrets},
    },
    metrics::influx::InfluxClient,
    notify::Notifier,
};
use events::{StatusBus, StatusChange};
use launch::{LaunchLimits, LaunchRequest, ValidatedLaunch};
pub use ownership::RunLedger;
pub use plans::Origin;
pub use results::RunCounts;

/// Samples are stamped when k6 takes them; allow for clock steps and the last flush.
const WINDOW_MARGIN: chrono::Duration = chrono::Duration::seconds(2);

/// Launches runs and follows them to their end.
pub struct Lifecycle {
    db: DatabaseConnection,
    settings: Arc<Settings>,
    influx: InfluxClient,
    /// One runner of each kind, a kind this server cannot use among them (it says why).
    runners: Runners,
    events: StatusBus,
    /// Deleted runs' samples and the raw-sample retention still to be seen to in InfluxDB.
    cleanup: cleanup::SampleCleanup,
    /// This server instance's id: the owner of the runs it launches (see [`lease`]).
    instance: String,
    /// Runs of this process between their record and their recorded end (see [`Flight`]).
    flights: std::sync::Mutex<HashMap<i64, Flight>>,
    /// Runs whose results are still missing: attempts so far and when to try next.
    backfill: std::sync::Mutex<HashMap<i64, (u32, tokio::time::Instant)>>,
    /// Webhooks: enqueued with a run's end, sent in the background.
    notifier: Notifier,
    /// Wakes the schedule loop when a schedule changes through this server.
    schedules_changed: tokio::sync::Notify,
}

/// Where a run of this process is between its record and its recorded end. A run is ended
/// by one path only: a cancel never ends a run a runner has (the runner reports the end,
/// whatever stopped k6), and two reports of one end record it once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flight {
    /// Recorded, on its way to a runner: a cancel waits for the hand-over.
    Starting,
    /// A runner has it; its end comes as the runner's report.
    WithRunner,
    /// Its end is being recorded.
    Ending,
}

/// How long a cancel waits for a launch to hand its run to a runner, or for an end being
/// recorded, before answering with the run as it is.
const CANCEL_PATIENCE: Duration = Duration::from_secs(30);
/// A run still going this long after its longest possible duration is stopped (timed out).
const RUN_TIME_MARGIN: Duration = Duration::from_secs(60);
/// The longest wait between two attempts at a run's missing results.
const BACKFILL_MAX_DELAY: Duration = Duration::from_secs(600);

impl Lifecycle {
    /// Builds the lifecycle, starts following the reports of `runners` (what they send on
    /// `reports`), and finalises runs that a previous process left pending or running.
    pub async fn start(
        db: DatabaseConnection,
        settings: Arc<Settings>,
        http: reqwest::Client,
        runners: Runners,
        mut reports: mpsc::UnboundedReceiver<RunnerEvent>,
    ) -> Arc<Self> {
        let influx = InfluxClient::new(http, settings.influxdb_url(), settings.influxdb_database.clone());
        let events = StatusBus::for_database(&db).await;
        let cleanup = cleanup::SampleCleanup::new();
        let instance = lease::instance_id();
        let notifier = Notifier::start(db.clone(), &settings, instance.clone());
        let lifecycle = Arc::new(Self {
            db,
            settings,
            influx,
            runners,
            events,
            cleanup,
            instance,
            flights: Default::default(),
            backfill: Default::default(),
            notifier,
            schedules_changed: tokio::sync::Notify::new(),
        });
        let follower = lifecycle.clone();
        tokio::spawn(async move {
            while let Some(event) = reports.recv().await {
                let lifecycle = follower.clone();
                tokio::spawn(async move { lifecycle.on_runner_event(event).await });
            }
        });
        tracing::info!(instance = %lifecycle.instance, "this server's instance id (the owner of the runs it launches)");
        let recovering = lifecycle.clone();
        tokio::spawn(async move {
            recovering.stop_strays().await;
            let mut every = tokio::time::interval(recovering.settings.scheduler_poll_interval);
            loop {
                every.tick().await;
                recovering.recover_orphaned_runs().await;
                recovering.fill_in_missing_results().await;
                recovering.keep_influx_in_step().await;
            }
        });
        tokio::spawn(lifecycle.clone().keep_leases());
        tokio::spawn(lifecycle.clone().keep_schedules());
        lifecycle
    }

    /// Where every status change of every run is published.
    pub fn events(&self) -> &StatusBus {
        &self.events
    }

    /// The InfluxDB this lifecycle reads results from.
    pub fn influx(&self) -> &InfluxClient {
        &self.influx
    }

    /// Where runs' notifications go out (webhooks).
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// k6's web dashboards of run `test_id` while its k6 runs on this machine and serves them.
    pub fn live_dashboards(&self, test_id: i64) -> Option<RunDashboards> {
        self.runners.iter().find_map(|runner| runner.live_dashboards(test_id))
    }

    /// Where k6's HTML report of instance `index` of `run` is, when its runner has k6 write one
    /// this server can read (it may not have been written).
    pub fn k6_report_file(&self, run: &test_history::Model, index: u32) -> Option<PathBuf> {
        self.runner(run.runner).report_file(&self.settings.k6_script_file_folder, run.id, index)
    }

    fn runner(&self, kind: RunnerKind) -> &Arc<dyn Runner> {
        self.runners.get(kind)
    }

    /// Whether each runner can start runs now, and what it found, in [`RunnerKind`]'s order.
    pub async fn runner_health(&self) -> Vec<RunnerHealth> {
        self.runners.health().await
    }

    /// `run`'s k6 instances as its runner sees them now (a Kubernetes run's pods with their
    /// phases; none for a runner with nothing of them to show).
    pub fn instances(&self, run: &test_history::Model) -> Vec<InstancePhase> {
        self.runner(run.runner).instances(run.id)
    }

    /// Validates, records the run as PENDING with its exact script, and hands it to its runner.
    pub async fn launch(&self, input: LaunchRequest) -> AppResult<test_history::Model> {
        self.launch_as(input, Origin::OneOff).await
    }

    /// Every check a launch makes before it records anything: the input's rules, the load
    /// targets' policy, and what the runner can take. Saving a plan makes the same checks.
    pub(crate) async fn check_launch(&self, input: &LaunchRequest) -> AppResult<ValidatedLaunch> {
        let ids = launch::endpoint_ids(input);
        let endpoints = repo::catalogue::launch_endpoints(&self.db, &ids).await?;
        let limits = self.launch_limits();
        let validated = launch::validate(input, &endpoints, limits)?;
        targets::check_launch_targets(&self.db, &self.settings.security.targets, &validated, &endpoints)
            .await?;
        // The script carries the run's id, which exists only once recorded: the runner judges
        // it with the longest id there can be, so what passes here fits later.
        let widest = TestPlan {
            test_id: i64::MAX,
            title: validated.title.clone(),
            scenarios: validated.scenarios.iter().map(|s| s.plan.clone()).collect(),
        };
        self.runner(validated.runner).check_plan(&widest).map_err(refusal)?;
        Ok(validated)
    }

    fn launch_limits(&self) -> LaunchLimits {
        LaunchLimits {
            max_test_duration: Duration::from_secs_f64(self.settings.scheduler_job_timeout_hours * 3600.0),
            default_runner: self.settings.runner.kind(),
            budget: self.settings.load_budget,
        }
    }

    /// [`Lifecycle::launch`], linking the run to the plan `origin` names (or saving one).
    #[tracing::instrument(skip(self, input), fields(test_id))]
    pub(crate) async fn launch_as(
        &self,
        input: LaunchRequest,
        origin: Origin,
    ) -> AppResult<test_history::Model> {
        let validated = self.check_launch(&input).await?;
        let limits = self.launch_limits();
        let runner = self.runner(validated.runner).clone();
        runner.preflight().await.map_err(refusal)?;
        let link = match origin {
            Origin::OneOff => PlanLink::None,
            Origin::SaveAsPlan => PlanLink::Save {
                title: validated.title.clone(),
                definition: plans::definition(&input, &validated),
            },
            Origin::Plan { id, version, exclusive } => PlanLink::Version { plan_id: id, version, exclusive },
        };

        // Secret header values go to k6 from memory; the stored script only names them.
        let secrets = script_secrets(&TestPlan {
            test_id: 0,
            title: String::new(),
            scenarios: validated.scenarios.iter().map(|s| s.plan.clone()).collect(),
        });
        let title = validated.title.clone();
        let plans: Vec<_> = validated.scenarios.iter().map(|s| s.plan.clone()).collect();
        let lease = lease::expiry(Utc::now(), self.settings.run_lease);
        let new_run = NewRun { plan: link, ..validated.new_run(&self.instance, lease) };
        let run = repo::runs::record_launch(&self.db, &new_run, |test_id| {
            render_script(&TestPlan { test_id, title, scenarios: plans })
        })
        .await?;
        tracing::Span::current().record("test_id", run.id);
        self.set_flight(run.id, Some(Flight::Starting));
        self.publish(&run, None, None);
        // A cancel that came between the record and the line above ended the run already.
        let run = repo::runs::get(&self.db, run.id).await?;
        if !run.status.is_active() {
            self.set_flight(run.id, None);
            return Ok(run);
        }
        let folder = self.settings.k6_script_file_folder.clone();
        let script = folder.join(&run.k6_script_file_name);
        if let Err(err) = write_script(&script, &run.k6_script).await {
            self.set_flight(run.id, None);
            self.end_run(run.id, RunOutcome::Failed { reason: err.to_string() }, Utc::now()).await;
            return repo::runs::get(&self.db, run.id).await;
        }
        let request = RunRequest {
            test_id: run.id,
            script,
            parallelism: validated.parallelism,
            influxdb_out: format!("{}/{}", self.settings.influxdb_url(), self.settings.influxdb_database),
            timeout: limits.max_test_duration + RUN_TIME_MARGIN,
            work_dir: folder,
            secrets,
        };
        match runner.start(request).await {
            // Unless the runner has already reported its end.
            Ok(()) => self.advance_flight(run.id, Flight::Starting, Flight::WithRunner),
            Err(err) => {
                self.set_flight(run.id, None);
                self.end_run(run.id, RunOutcome::Failed { reason: err.to_string() }, Utc::now()).await;
            }
        }
        repo::runs::get(&self.db, run.id).await
    }

    fn flight(&self, test_id: i64) -> Option<Flight> {
        self.flights.lock().expect("flights lock").get(&test_id).copied()
    }

    fn set_flight(&self, test_id: i64, flight: Option<Flight>) {
        let mut flights = self.flights.lock().expect("flights lock");
        match flight {
            Some(flight) => flights.insert(test_id, flight),
            None => flights.remove(&test_id),
        };
    }

    /// `from` → `to`, when the run is still at `from`.
    fn advance_flight(&self, test_id: i64, from: Flight, to: Flight) {
        if let Some(flight) = self.flights.lock().expect("flights lock").get_mut(&test_id)
            && *flight == from
        {
            *flight = to;
        }
    }

    /// Takes the right to record the run's end; false when another path is recording it.
    fn claim_end(&self, test_id: i64) -> bool {
        let mut flights = self.flights.lock().expect("flights lock");
        if flights.get(&test_id) == Some(&Flight::Ending) {
            return false;
        }
        flights.insert(test_id, Flight::Ending);
        true
    }

    /// Waits (up to [`CANCEL_PATIENCE`]) until the run is no longer at a flight `waiting`
    /// accepts, and returns where it is then.
    async fn wait_flight(&self, test_id: i64, waiting: impl Fn(Option<Flight>) -> bool) -> Option<Flight> {
        let deadline = tokio::time::Instant::now() + CANCEL_PATIENCE;
        loop {
            let flight = self.flight(test_id);
            if !waiting(flight) || tokio::time::Instant::now() >= deadline {
                return flight;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The run once its end is recorded (or as it is after [`CANCEL_PATIENCE`]).
    async fn recorded_end(&self, test_id: i64) -> AppResult<test_history::Model> {
        let deadline = tokio::time::Instant::now() + CANCEL_PATIENCE;
        loop {
            let run = repo::runs::get(&self.db, test_id).await?;
            if !run.status.is_active() || tokio::time::Instant::now() >= deadline {
                return Ok(run);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops an active run; what was measured so far is kept.
    #[tracing::instrument(skip(self))]
    pub async fn cancel(&self, id: i64) -> AppResult<test_history::Model> {
        // A run on its way to a runner is cancelled through the runner, once it has it.
        self.wait_flight(id, |flight| flight == Some(Flight::Starting)).await;
        let run = repo::runs::get(&self.db, id).await?;
        if !run.status.is_active() {
            return Err(AppError::Conflict(
                format!("test run {id} is already {:?}", run.status).to_uppercase(),
            ));
        }
        let runner = self.runner(run.runner);
        if runner.is_running(id) {
            // Written first: should this server die before the end is recorded, the instance
            // that takes the run over knows it was cancelled (the runner may have stopped k6).
            repo::runs::request_cancel(&self.db, id, Utc::now()).await?;
            runner.cancel(id).await;
            // The runner reports the end; wait for it to be recorded so the answer shows it.
            return self.recorded_end(id).await;
        }
        let now = Utc::now();
        if let Some(owner) = run.owner_instance.as_deref().filter(|owner| *owner != self.instance) {
            let gone = lease::is_gone(owner);
            if !gone && run.lease_expires_at.is_some_and(|expiry| expiry >= now) {
                // Another live instance runs it: ask it through the database, and answer with
                // the end it records.
                repo::runs::request_cancel(&self.db, id, now).await?;
                return self.recorded_end(id).await;
            }
            // Its owner is gone: this instance takes the run over — and its k6, where that
            // still runs — and cancels it through its runner.
            let until = lease::expiry(now, self.settings.run_lease);
            if repo::runs::take_over(&self.db, id, &self.instance, until, now, gone.then_some(owner)).await? {
                self.adopt(vec![run]).await;
                if runner.is_running(id) {
                    runner.cancel(id).await;
                }
            }
            return self.recorded_end(id).await;
        }
        match self.flight(id) {
            // k6 has ended and its end is on its way or being recorded: that end stands (a
            // cancel after k6 exited returns the finished run).
            Some(Flight::WithRunner | Flight::Ending) => self.recorded_end(id).await,
            // Nothing runs it (it never reached a runner): end it here.
            _ => {
                self.end_run(id, RunOutcome::Cancelled, Utc::now()).await;
                repo::runs::get(&self.db, id).await
            }
        }
    }
}

impl Lifecycle {
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

/// What the caller is told of a runner's refusal before anything is recorded.
fn refusal(err: PreflightError) -> AppError {
    match err {
        PreflightError::Unavailable { .. } => AppError::bad_input("input.runner", err.to_string()),
        PreflightError::NotInstalled { .. } => AppError::UpstreamUnavailable(err.to_string()),
        PreflightError::Plan(_) => AppError::bad_input("input.scenarios", err.to_string()),
    }
}

/// Why a run's script could not be written (the run then fails with this as its reason).
#[derive(Debug, thiserror::Error)]
enum ScriptWriteError {
    #[error("could not create {}: {source}", .folder.display())]
    Folder { folder: PathBuf, source: std::io::Error },
    #[error("could not write the script {}: {source}", .path.display())]
    File { path: PathBuf, source: std::io::Error },
}

async fn write_script(path: &Path, script: &str) -> Result<(), ScriptWriteError> {
    if let Some(folder) = path.parent() {
        tokio::fs::create_dir_all(folder)
            .await
            .map_err(|source| ScriptWriteError::Folder { folder: folder.to_owned(), source })?;
    }
    tokio::fs::write(path, script)
        .await
        .map_err(|source| ScriptWriteError::File { path: path.to_owned(), source })
}
