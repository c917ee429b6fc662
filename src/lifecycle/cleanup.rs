//! Keeping InfluxDB in step with the runs: a deleted run's samples are dropped, at once when
//! InfluxDB answers, otherwise by a sweep once it does; the raw-sample retention is applied.
//!
//! The sweep compares the run ids InfluxDB holds samples for with the runs in the database
//! and drops the samples of the missing ones (see `metrics::hygiene`). It runs on the
//! lifecycle's poll tick whenever it is due: after start-up (deletions a previous process
//! could not finish), after a deletion whose drop failed, and after a project was deleted with
//! its runs. Nothing needs to be recorded per deletion: the absence of the run is the record.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use super::Lifecycle;
use crate::db::repo;

/// How long a deletion waits for InfluxDB to drop the run's samples before leaving it to the
/// sweep: a deletion must not hang on a wedged InfluxDB.
const DROP_LIMIT: Duration = Duration::from_secs(5);

/// What is still to be done.
pub(super) struct SampleCleanup {
    sweep_due: AtomicBool,
    retention_applied: AtomicBool,
}

impl SampleCleanup {
    /// A sweep is due at start-up; the retention is applied once.
    pub(super) fn new() -> Self {
        Self { sweep_due: AtomicBool::new(true), retention_applied: AtomicBool::new(false) }
    }
}

impl Lifecycle {
    /// Drops the samples of run `test_id`, which was just deleted. When InfluxDB does not
    /// manage within a few seconds, the sweep drops them later; the deletion stands either way.
    #[tracing::instrument(skip(self))]
    pub async fn forget_run_samples(&self, test_id: i64) {
        match tokio::time::timeout(DROP_LIMIT, self.influx.drop_run_samples(test_id)).await {
            Ok(Ok(())) => tracing::debug!("samples dropped"),
            Ok(Err(err)) => {
                tracing::warn!(%err, "could not drop the deleted run's samples; the sweep will");
                self.cleanup.sweep_due.store(true, Ordering::SeqCst);
            }
            Err(_) => {
                tracing::warn!("InfluxDB did not drop the deleted run's samples in time; the sweep will");
                self.cleanup.sweep_due.store(true, Ordering::SeqCst);
            }
        }
    }

    /// After runs were deleted without their ids at hand (a project with its runs): sweeps
    /// now, or on a later tick when InfluxDB does not answer in time.
    pub async fn forget_orphaned_samples(&self) {
        self.cleanup.sweep_due.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(DROP_LIMIT, self.sweep_samples_if_due()).await;
    }

    /// The poll tick's share: the retention until it is applied, the sweep when it is due.
    pub(super) async fn keep_influx_in_step(&self) {
        if !self.cleanup.retention_applied.load(Ordering::SeqCst) {
            match self.influx.apply_raw_retention(self.settings.raw_retention).await {
                Ok(()) => self.cleanup.retention_applied.store(true, Ordering::SeqCst),
                Err(err) => tracing::debug!(%err, "raw-sample retention not applied yet"),
            }
        }
        self.sweep_samples_if_due().await;
    }

    async fn sweep_samples_if_due(&self) {
        if !self.cleanup.sweep_due.swap(false, Ordering::SeqCst) {
            return;
        }
        if let Err(err) = self.sweep_samples().await {
            tracing::debug!(%err, "orphaned samples not swept yet");
            self.cleanup.sweep_due.store(true, Ordering::SeqCst);
        }
    }

    /// Drops the samples of every run id InfluxDB has and the database does not.
    #[tracing::instrument(skip(self))]
    async fn sweep_samples(&self) -> Result<(), SweepError> {
        let in_influx: Vec<i64> = self.influx.run_ids_with_samples().await?.into_iter().collect();
        if in_influx.is_empty() {
            return Ok(());
        }
        let existing = repo::history::existing_ids(&self.db, &in_influx).await?;
        let orphans: Vec<i64> = in_influx.into_iter().filter(|id| !existing.contains(id)).collect();
        if !orphans.is_empty() {
            self.influx.drop_runs_samples(&orphans).await?;
            tracing::info!(runs = orphans.len(), "dropped the samples of deleted runs");
        }
        Ok(())
    }
}

/// Why deleted runs' samples could not be swept this time.
#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error(transparent)]
    Influx(#[from] crate::metrics::influx::InfluxError),
    #[error("{}", .0.message())]
    Database(crate::error::AppError),
}

impl From<crate::error::AppError> for SweepError {
    fn from(err: crate::error::AppError) -> Self {
        Self::Database(err)
    }
}
