//! A run's end: the runner's reports turned into status changes, and the end — however it
//! came — recorded once, with the results InfluxDB holds and the instances' own counts.

use chrono::{DateTime, Utc};

use super::{Lifecycle, results, results::StoredResults};
use crate::{
    db::repo::{
        self,
        runs::{RunEnding, finish_with},
    },
    domain::{TestStatus, integrity::Integrity},
    k6::{
        counts::{InstanceReports, sum_reports},
        runner::{RunOutcome, RunnerEvent},
    },
};

impl Lifecycle {
    pub(super) async fn on_runner_event(&self, event: RunnerEvent) {
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
    pub(super) async fn end_run(&self, test_id: i64, outcome: RunOutcome, ended_at: DateTime<Utc>) {
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
        if !self.claim_end(test_id) {
            tracing::debug!(test_id, ?outcome, "the run's end is being recorded already");
            return;
        }
        self.record_end(test_id, outcome, ended_at, reports).await;
        self.set_flight(test_id, None);
    }

    async fn record_end(
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
        if !run.status.is_active() {
            tracing::debug!(test_id, status = ?run.status, "the run has ended already");
            return;
        }
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
        let regression = match (status, &results.summary) {
            (TestStatus::Completed, Some(_)) => self.judge_regression(&run, ended_at).await,
            _ => None,
        };
        let ending = RunEnding {
            status,
            completed_at: ended_at,
            failure_reason,
            summary: results.summary,
            scenario_summaries: results.scenario_summaries,
            counts,
            integrity,
            regression: regression.map(|judged| serde_json::to_string(&judged).expect("verdicts are JSON")),
        };
        // The end's notifications are written with it, in its transaction.
        let notify = async |txn: &_, ended: &_| self.notifier.enqueue_run_end(txn, ended).await;
        match finish_with(&self.db, test_id, ending, notify).await {
            Ok(Some(ended)) => {
                self.notifier.wake();
                self.publish(&ended, Some(run.status), message)
            }
            // Another instance recorded the end first; it published it.
            Ok(None) => tracing::info!(test_id, "the run's end was recorded elsewhere first"),
            Err(err) => tracing::error!(test_id, error = ?err, "could not record the end of the run"),
        }
    }
}
