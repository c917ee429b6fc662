//! Who runs what: taking over the runs of servers that stopped (re-attaching their k6),
//! renewing this instance's leases, acting on other instances' cancel requests, handing runs
//! over on shutdown, and recording where local k6 processes are. The rules are in [`super::lease`].

use std::{collections::HashMap, sync::Arc};

use chrono::Utc;
use sea_orm::DatabaseConnection;

use super::{Flight, Lifecycle, RUN_TIME_MARGIN, lease};
use crate::{
    db::{entities::test_history, repo},
    domain::TestStatus,
    k6::runner::{InterruptedRun, LedgerError, ProcessLedger, RunOutcome},
};

/// Records where a run's k6 is, as its runner words it, on the run (`k6_processes`).
pub struct RunLedger(DatabaseConnection);

impl RunLedger {
    pub fn new(db: DatabaseConnection) -> Self {
        Self(db)
    }
}

#[async_trait::async_trait]
impl ProcessLedger for RunLedger {
    async fn record(&self, test_id: i64, record: &str) -> Result<(), LedgerError> {
        match repo::runs::set_k6_processes(&self.0, test_id, record).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(LedgerError::RunEnded),
            Err(err) => Err(LedgerError::Unwritable(err)),
        }
    }
}

impl Lifecycle {
    /// Active runs whose owner stopped renewing their lease — a server that was stopped,
    /// killed or cut off — or whose owner on this host is known to be gone, are taken over,
    /// one instance each, and re-attached to ([`Self::adopt`]).
    pub(super) async fn recover_orphaned_runs(&self) {
        let now = Utc::now();
        let candidates = match repo::runs::owned_by_others(&self.db, &self.instance).await {
            Ok(runs) => runs,
            Err(err) => {
                tracing::error!(error = ?err, "could not look for runs whose server stopped");
                return;
            }
        };
        let until = lease::expiry(now, self.settings.run_lease);
        let mut taken = Vec::new();
        for run in candidates {
            let expired = run.lease_expires_at.is_none_or(|expiry| expiry < now);
            let gone = run.owner_instance.as_deref().filter(|owner| lease::is_gone(owner));
            if !expired && gone.is_none() {
                continue;
            }
            match repo::runs::take_over(&self.db, run.id, &self.instance, until, now, gone).await {
                Ok(true) => taken.push(run),
                Ok(false) => {}
                Err(err) => tracing::warn!(test_id = run.id, error = ?err, "could not take over a run"),
            }
        }
        self.adopt(taken).await;
    }

    /// Runs this instance has just taken over: each one's runner re-attaches to its k6 where it
    /// still runs (local processes, Kubernetes Jobs) and follows it to its end; the others end
    /// FAILED, with the reason and whatever InfluxDB holds of them.
    pub(super) async fn adopt(&self, taken: Vec<test_history::Model>) {
        let mut lost = HashMap::new();
        for runner in self.runners.iter() {
            let interrupted: Vec<_> = taken
                .iter()
                .filter(|run| run.runner == runner.kind() && !runner.is_running(run.id))
                .map(|run| self.interrupted(run))
                .collect();
            if !interrupted.is_empty() {
                lost.extend(runner.reattach(&interrupted).await);
            }
        }
        for run in taken {
            match lost.remove(&run.id) {
                Some(reason) => {
                    tracing::warn!(test_id = run.id, %reason, "ending a run whose server stopped");
                    self.end_run(run.id, RunOutcome::Failed { reason }, Utc::now()).await;
                }
                None => {
                    tracing::info!(test_id = run.id, previous_owner = ?run.owner_instance, "took a run over");
                    self.set_flight(run.id, Some(Flight::WithRunner));
                    // A cancel asked of the previous owner is carried out here.
                    if run.cancel_requested_at.is_some() {
                        self.runner(run.runner).cancel(run.id).await;
                    }
                }
            }
        }
    }

    /// What a runner needs to take back run `run`.
    fn interrupted(&self, run: &test_history::Model) -> InterruptedRun {
        InterruptedRun {
            test_id: run.id,
            parallelism: run.parallelism.max(1) as u32,
            started: run.status == TestStatus::Running,
            since: run.started_at.unwrap_or(run.tested_at),
            timeout: self.launch_limits().max_test_duration + RUN_TIME_MARGIN,
            local_processes: run.k6_processes.clone(),
            script: Some(self.settings.k6_script_file_folder.join(&run.k6_script_file_name)),
            cancel_requested: run.cancel_requested_at.is_some(),
        }
    }

    /// Once at start: k6 on this machine of runs recorded as ended (a server on another
    /// machine ended them while this one was down) is stopped, so none goes on unseen.
    pub(super) async fn stop_strays(&self) {
        let since = Utc::now()
            - chrono::Duration::from_std(self.launch_limits().max_test_duration + RUN_TIME_MARGIN)
                .unwrap_or(chrono::Duration::days(1));
        let ended = match repo::runs::ended_with_k6_processes(&self.db, since).await {
            Ok(ended) => ended,
            Err(err) => return tracing::warn!(error = ?err, "could not look for k6 left by ended runs"),
        };
        for (test_id, kind, recorded) in ended {
            let stopped = self.runner(kind).stop_strays(test_id, &recorded);
            if stopped > 0 {
                tracing::warn!(test_id, stopped, "stopped k6 processes of a run that had ended");
            }
        }
    }

    /// Renews this instance's leases, and acts on the cancels other instances asked of it.
    /// When renewing has failed for a whole lease, another instance may have ended this
    /// instance's local runs already: their k6 processes are stopped so the record stays true.
    pub(super) async fn keep_leases(self: Arc<Self>) {
        let lease = self.settings.run_lease;
        let renew_every = lease::renew_every(lease);
        let mut ticker = tokio::time::interval(lease::CANCEL_CHECK_EVERY.min(renew_every));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewed_at = tokio::time::Instant::now();
        let mut next_renewal = tokio::time::Instant::now();
        loop {
            ticker.tick().await;
            let now = tokio::time::Instant::now();
            if now >= next_renewal {
                next_renewal = now + renew_every;
                match repo::runs::renew_leases(&self.db, &self.instance, lease::expiry(Utc::now(), lease))
                    .await
                {
                    Ok(_) => renewed_at = now,
                    Err(err) => {
                        tracing::warn!(error = ?err, "could not renew this server's run leases");
                        if now.duration_since(renewed_at) >= lease {
                            self.fence_runs().await;
                        }
                    }
                }
            }
            match repo::runs::cancel_requests(&self.db, &self.instance).await {
                Ok(ids) => {
                    for id in ids {
                        if let Ok(run) = repo::runs::get(&self.db, id).await
                            && self.runner(run.runner).is_running(id)
                        {
                            tracing::info!(test_id = id, "cancelling a run at another instance's request");
                            self.runner(run.runner).cancel(id).await;
                        }
                    }
                }
                Err(err) => tracing::debug!(error = ?err, "could not look for cancel requests"),
            }
        }
    }

    /// On shutdown (SIGTERM, a rolling update): this instance's runs are handed over at once
    /// rather than when their leases lapse. Their k6 goes on (local processes, Kubernetes
    /// Jobs), and the next instance that looks — another replica, or this server restarted —
    /// re-attaches to it.
    pub async fn hand_over(&self) {
        self.notifier.stop().await;
        match repo::runs::release_leases(&self.db, &self.instance, Utc::now()).await {
            Ok(0) => {}
            Ok(runs) => tracing::info!(runs, "shutting down: this server's runs are handed over"),
            Err(err) => {
                tracing::warn!(error = ?err, "could not hand this server's runs over; their leases will lapse")
            }
        }
    }

    /// This instance's leases have lapsed: each runner stops the k6 of its runs that no other
    /// instance could follow ([`crate::k6::runner::Runner::fence`]).
    pub(super) async fn fence_runs(&self) {
        let running: Vec<i64> = self.flights.lock().expect("flights lock").keys().copied().collect();
        for id in running {
            for runner in self.runners.iter() {
                runner.fence(id).await;
            }
        }
    }
}
