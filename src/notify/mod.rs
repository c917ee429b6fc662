//! Notifications: a project's webhooks are told when its runs end, fail, miss their targets or
//! regress.
//!
//! **Enqueued with the event.** A run's end is recorded in one transaction (`repo::runs::finish`),
//! and the deliveries it causes are written in that same transaction, in a savepoint: a crash
//! cannot record the end and lose its notifications, and a notification that cannot be written
//! never keeps the end from being recorded (it is logged instead). Results filled in later (after
//! InfluxDB was down) enqueue VERDICT_FAILED the same way, with the late results. Each event of a
//! run is enqueued once per webhook, whoever tries (a unique key).
//!
//! **Sent by one instance.** A background task per server ([`Notifier`]) sends due deliveries: it
//! is woken as soon as this server enqueues one, and looks every second for retries and for
//! deliveries other replicas enqueued. It claims each delivery with a conditional update, so of
//! several replicas exactly one sends it; a claim whose sender died expires and the delivery is
//! tried again. Delivery is therefore at least once: receivers should ignore a repeated
//! `X-MetricVault-Delivery`.
//!
//! **Each attempt** is a signed POST ([`signature`]) with a time limit (`WEBHOOK_TIMEOUT_SECONDS`),
//! no redirects followed, at most a few KB of the answer read, and the host checked again by the
//! import host policy on every DNS answer ([`target`]). A 2xx answer delivers it; anything else is
//! tried again after a wait that starts at `WEBHOOK_RETRY_SECONDS` and quadruples (up to an hour),
//! until `WEBHOOK_MAX_ATTEMPTS` attempts have failed: then it is FAILED with the last answer or error.

pub mod payload;
mod sender;
pub mod signature;
pub mod target;

use std::sync::Arc;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::{
    config::{Settings, WebhookSettings},
    db::{
        entities::{HasMetrics, test_history},
        repo,
    },
    domain::{TestStatus, Verdict, run_verdict, scenario_verdict, webhook::WebhookEvent},
    error::AppResult,
};
use payload::RunFacts;
pub use sender::retry_delay;

/// The most webhooks one project may have: each run's end writes a delivery per webhook in
/// the transaction that records it, so this bounds what an end costs.
pub const MAX_WEBHOOKS_PER_PROJECT: u64 = 20;

/// Enqueues this server's notifications and sends everyone's. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<sender::Shared>,
}

impl Notifier {
    /// Starts the sender of server instance `instance` (its claims carry that id).
    pub fn start(db: DatabaseConnection, settings: &Settings, instance: String) -> Self {
        let shared = Arc::new(sender::Shared::new(
            db,
            settings.webhooks.clone(),
            settings.import.policy.clone(),
            &settings.import.tls_roots,
            instance,
        ));
        let worker = tokio::spawn(shared.clone().run());
        *shared.worker.lock().expect("worker lock") = Some(worker);
        Self { shared }
    }

    /// Sends what was just enqueued now rather than at the next look.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    fn settings(&self) -> &WebhookSettings {
        &self.shared.settings
    }

    /// Enqueues what the recorded end of `run` tells its project's webhooks (RUN_FINISHED or
    /// RUN_FAILED, and VERDICT_FAILED), inside `txn`, the transaction recording the end. A
    /// CANCELLED run tells nothing. Call [`Self::wake`] once `txn` is committed.
    pub async fn enqueue_run_end(
        &self,
        txn: &DatabaseTransaction,
        run: &test_history::Model,
    ) -> AppResult<()> {
        let mut events: Vec<WebhookEvent> = match run.status {
            TestStatus::Completed => vec![WebhookEvent::RunFinished],
            TestStatus::Failed => vec![WebhookEvent::RunFailed],
            TestStatus::Cancelled | TestStatus::Pending | TestStatus::Running => return Ok(()),
        };
        // Verdicts against the plan's baseline are recorded with the end.
        let regressed = regression_detail(run);
        if regressed.is_some() {
            events.push(WebhookEvent::Regression);
        }
        self.enqueue_in_savepoint(txn, run, events, regressed.as_deref()).await
    }

    /// Enqueues VERDICT_FAILED for `run`, whose results were just filled in (inside `txn`, the
    /// transaction storing them), when its verdict is FAILED now.
    pub async fn enqueue_late_verdict(
        &self,
        txn: &DatabaseTransaction,
        run: &test_history::Model,
    ) -> AppResult<()> {
        if run.status == TestStatus::Cancelled {
            return Ok(());
        }
        let regressed = regression_detail(run);
        let events = if regressed.is_some() { vec![WebhookEvent::Regression] } else { Vec::new() };
        self.enqueue_in_savepoint(txn, run, events, regressed.as_deref()).await
    }

    /// Enqueues REGRESSION for run `test_id` (`detail`: what regressed, one line) and wakes the
    /// sender; the number of webhooks told. (A run's end enqueues it by itself when its recorded
    /// verdicts say REGRESSED; this is for a verdict reached later.)
    pub async fn enqueue_regression(&self, test_id: i64, detail: &str) -> AppResult<usize> {
        let txn = crate::db::begin_write(&self.shared.db).await?;
        let run = repo::webhooks::run(&txn, test_id).await?;
        let verdict = verdict(&txn, &run).await?;
        let enqueued = self.enqueue(&txn, &run, verdict, &[WebhookEvent::Regression], Some(detail)).await?;
        txn.commit().await?;
        self.wake();
        Ok(enqueued)
    }

    /// Stops sending (the server is shutting down) without waiting for deliveries in flight:
    /// their claims are released, so another instance (or this one restarted) sends them again.
    pub async fn stop(&self) {
        if let Some(worker) = self.shared.worker.lock().expect("worker lock").take() {
            worker.abort();
        }
        match repo::webhooks::release_claims(&self.shared.db, &self.shared.instance, Utc::now()).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "shutting down: deliveries in flight are handed over"),
            Err(err) => {
                tracing::warn!(error = ?err, "could not hand deliveries over; their claims will lapse")
            }
        }
    }

    /// `events`, plus VERDICT_FAILED when the run's verdict is FAILED, in a savepoint of `txn`:
    /// a failure is logged and undone, and the caller's transaction goes on.
    async fn enqueue_in_savepoint(
        &self,
        txn: &DatabaseTransaction,
        run: &test_history::Model,
        mut events: Vec<WebhookEvent>,
        detail: Option<&str>,
    ) -> AppResult<()> {
        let savepoint = txn.begin().await?;
        let written = async {
            let verdict = verdict(&savepoint, run).await?;
            if verdict == Verdict::Failed {
                events.push(WebhookEvent::VerdictFailed);
            }
            self.enqueue(&savepoint, run, verdict, &events, detail).await
        };
        match written.await {
            Ok(_) => savepoint.commit().await?,
            Err(err) => {
                tracing::error!(test_id = run.id, error = ?err, "could not enqueue the run's notifications");
                savepoint.rollback().await?;
            }
        }
        Ok(())
    }

    /// Writes one delivery per subscribed webhook and event; how many were new.
    async fn enqueue(
        &self,
        conn: &impl ConnectionTrait,
        run: &test_history::Model,
        verdict: Verdict,
        events: &[WebhookEvent],
        detail: Option<&str>,
    ) -> AppResult<usize> {
        let project = repo::project::get(conn, run.project_id).await?;
        let facts = RunFacts::of(run, &project.title, verdict, self.settings().public_base_url());
        let now = Utc::now();
        let mut enqueued = 0;
        for &event in events {
            for hook in repo::webhooks::subscribed(conn, run.project_id, event).await? {
                let body = |id| payload::body(event, id, now, &facts, detail);
                if repo::webhooks::enqueue(conn, hook.id, event, Some(run.id), now, body).await?.is_some() {
                    enqueued += 1;
                }
            }
        }
        if enqueued > 0 {
            tracing::info!(test_id = run.id, enqueued, "webhook deliveries enqueued");
        }
        Ok(enqueued)
    }
}

/// The run's verdict, as the API shows it: from its summary and its scenarios' targets.
async fn verdict(conn: &impl ConnectionTrait, run: &test_history::Model) -> AppResult<Verdict> {
    let Some(summary) = run.metrics() else {
        return Ok(Verdict::Unknown);
    };
    let scenarios = repo::webhooks::scenarios_of_run(conn, run.id).await?;
    let scenario_verdicts = scenarios
        .iter()
        .map(|s| scenario_verdict(s.metrics().as_ref(), s.response_time_target, s.error_rate_target));
    Ok(run_verdict(run.status, Some(&summary), run.target_tps, scenario_verdicts))
}

/// What regressed against the baseline, in one line, when the run's recorded verdicts say
/// REGRESSED: `P95ResponseTime +42%, checkout: Throughput -31% against run 7`.
fn regression_detail(run: &test_history::Model) -> Option<String> {
    use crate::domain::regression::{EffectScale, MetricRegression, RegressionVerdict, RunRegression};
    let judged: RunRegression = serde_json::from_str(run.regression.as_deref()?).ok()?;
    if judged.verdict != RegressionVerdict::Regressed {
        return None;
    }
    let describe = |scope: Option<&str>, metric: &MetricRegression| {
        let effect = match (metric.effect, metric.scale) {
            (Some(effect), EffectScale::Relative) => format!(" {:+.0}%", effect * 100.0),
            (Some(effect), EffectScale::Absolute) => format!(" {effect:+.2}"),
            (None, _) => String::new(),
        };
        format!("{}{:?}{effect}", scope.map(|s| format!("{s}: ")).unwrap_or_default(), metric.metric)
    };
    let regressed: Vec<String> = judged
        .metrics
        .iter()
        .filter(|m| m.verdict == RegressionVerdict::Regressed)
        .map(|m| describe(None, m))
        .chain(judged.scenarios.iter().flat_map(|s| {
            s.metrics
                .iter()
                .filter(|m| m.verdict == RegressionVerdict::Regressed)
                .map(|m| describe(Some(&s.name), m))
        }))
        .collect();
    Some(format!("{} against run {}", regressed.join(", "), judged.baseline_id))
}
