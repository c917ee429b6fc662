//! Results read from InfluxDB when a run ends, and filled in later for runs that ended while
//! InfluxDB could not answer — however long that takes.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    BACKFILL_MAX_DELAY, Lifecycle, WINDOW_MARGIN,
    results::{self, StoredResults},
};
use crate::{
    db::{entities::test_history, repo},
    domain::{TestStatus, integrity::Integrity},
    metrics::influx::{InfluxError, TimeWindow},
};

impl Lifecycle {
    /// The run-wide and per-scenario summaries, retried while InfluxDB is unreachable.
    pub(super) async fn read_results(
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
            let read = if self.runners.iter().any(|runner| runner.samples_pending(run.id)) {
                // Read now, the results would miss samples that are on their way.
                Err(InfluxError::Unreachable {
                    url: self.settings.influxdb_url(),
                    reason: "the run's last samples are still being written to it".into(),
                })
            } else {
                self.read_once(run.id, window, &scenarios).await
            };
            match read {
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

    /// Runs that ended while InfluxDB was unreachable get their results once it answers again,
    /// however long that takes. While InfluxDB is down this costs one ping per pass; a run that
    /// InfluxDB answers for but whose results still cannot be read (no samples yet, a failing
    /// query) is tried again after a delay that doubles each time, up to 10 minutes.
    pub(super) async fn fill_in_missing_results(&self) {
        let runs = match repo::runs::runs_missing_results(&self.db).await {
            Ok(runs) => runs,
            Err(err) => {
                tracing::warn!(error = ?err, "could not look for runs without results");
                return;
            }
        };
        // Runs filled in by another replica, or deleted, are no longer tried.
        self.backfill.lock().expect("backfill lock").retain(|id, _| runs.iter().any(|run| run.id == *id));
        if runs.is_empty() || !self.influx.ping().await {
            return;
        }
        let now = tokio::time::Instant::now();
        for run in runs {
            let due =
                self.backfill.lock().expect("backfill lock").get(&run.id).is_none_or(|(_, at)| *at <= now);
            if !due {
                continue;
            }
            let ended_at = run.completed_at.unwrap_or(run.updated_at);
            let filled = self.fill_in(&run, ended_at).await;
            let mut backfill = self.backfill.lock().expect("backfill lock");
            if filled {
                backfill.remove(&run.id);
            } else {
                let attempts = backfill.get(&run.id).map_or(0, |(attempts, _)| *attempts) + 1;
                let delay = self.settings.scheduler_poll_interval.saturating_mul(1 << attempts.min(16));
                backfill.insert(run.id, (attempts, now + delay.min(BACKFILL_MAX_DELAY)));
            }
        }
    }

    /// One attempt at a run's missing results; true when they are stored now.
    async fn fill_in(&self, run: &test_history::Model, ended_at: DateTime<Utc>) -> bool {
        match self.read_results(run, ended_at).await {
            Ok(mut results @ StoredResults { summary: Some(_), .. }) => {
                let reported = repo::runs::integrity_of(run);
                let integrity = match &reported {
                    Some(integrity) => integrity.with_stored(&results.stored),
                    None => Integrity::new(run.parallelism.max(1) as u32, &[], Some(&results.stored)),
                };
                let counts = repo::runs::k6_counts(&self.db, run).await.unwrap_or_default();
                results::apply_counts(&mut results, counts.as_ref());
                let summary = results.summary.expect("matched Some");
                let scenarios = results.scenario_summaries;
                let regression = match run.status {
                    TestStatus::Completed => self.judge_regression(run, ended_at).await,
                    _ => None,
                };
                let regression =
                    regression.map(|judged| serde_json::to_string(&judged).expect("verdicts are JSON"));
                let notify =
                    async |txn: &_, stored: &_| self.notifier.enqueue_late_verdict(txn, stored).await;
                let stored = repo::runs::store_late_results_with(
                    &self.db,
                    run.id,
                    &summary,
                    &scenarios,
                    Some(&integrity),
                    regression,
                    notify,
                );
                match stored.await {
                    Ok(()) => {
                        self.notifier.wake();
                        tracing::info!(test_id = run.id, "results filled in after InfluxDB came back");
                        if let Ok(run) = repo::runs::get(&self.db, run.id).await {
                            let note = "results filled in after InfluxDB came back; the verdict is known";
                            self.publish(&run, Some(run.status), Some(note.to_owned()));
                        }
                        true
                    }
                    Err(err) => {
                        tracing::warn!(test_id = run.id, error = ?err, "could not store late results");
                        false
                    }
                }
            }
            Ok(_) => false,
            Err(err) => {
                tracing::debug!(test_id = run.id, %err, "results still unreadable");
                false
            }
        }
    }
}
