//! The Kubernetes runner of a server without a cluster: it takes no runs, and says why.

use std::{collections::HashMap, sync::Arc};

use super::ClusterError;
use crate::{
    domain::RunnerKind,
    k6::{
        TestPlan,
        runner::{InterruptedRun, PreflightError, RunRequest, Runner, RunnerError, RunnerHealth},
    },
};

/// Stands for the Kubernetes runner when there is no cluster client: every launch on it is
/// refused with why, `health` says why, and runs of it another server started cannot be
/// taken back here.
pub struct NoCluster {
    why: Arc<ClusterError>,
}

impl NoCluster {
    pub fn new(why: ClusterError) -> Self {
        Self { why: Arc::new(why) }
    }

    fn unavailable(&self) -> PreflightError {
        PreflightError::Unavailable { runner: "Kubernetes", why: self.why.clone() }
    }
}

#[async_trait::async_trait]
impl Runner for NoCluster {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Kubernetes
    }

    /// Nothing to measure a plan against (how scripts would travel is the cluster's); a launch
    /// is refused at [`Runner::preflight`], and a plan may be saved for a server that has one.
    fn check_plan(&self, _plan: &TestPlan) -> Result<(), PreflightError> {
        Ok(())
    }

    async fn preflight(&self) -> Result<(), PreflightError> {
        Err(self.unavailable())
    }

    async fn start(&self, _request: RunRequest) -> Result<(), RunnerError> {
        Err(self.unavailable().into())
    }

    async fn cancel(&self, _test_id: i64) -> bool {
        false
    }

    fn is_running(&self, _test_id: i64) -> bool {
        false
    }

    async fn reattach(&self, runs: &[InterruptedRun]) -> HashMap<i64, String> {
        let reason = format!(
            "interrupted by server restart, and this server cannot take it back: {}",
            self.unavailable()
        );
        runs.iter().map(|run| (run.test_id, reason.clone())).collect()
    }

    async fn fence(&self, _test_id: i64) -> bool {
        false
    }

    async fn health(&self) -> RunnerHealth {
        RunnerHealth { runner: RunnerKind::Kubernetes, available: false, detail: self.why.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;

    #[tokio::test]
    async fn without_a_cluster_every_answer_says_why() {
        let runner = NoCluster::new(ClusterError::from("no cluster here".to_owned()));
        let refused = runner.preflight().await.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the Kubernetes runner is not available on this server (no cluster here); use LOCAL"
        );
        let health = runner.health().await;
        assert_eq!((health.available, health.detail.as_str()), (false, "no cluster here"));
        let run = InterruptedRun {
            test_id: 3,
            parallelism: 1,
            started: true,
            since: Utc::now(),
            timeout: Duration::from_secs(60),
            local_processes: None,
            script: None,
            cancel_requested: false,
        };
        let lost = runner.reattach(&[run]).await;
        assert_eq!(
            lost[&3],
            "interrupted by server restart, and this server cannot take it back: the Kubernetes runner \
             is not available on this server (no cluster here); use LOCAL"
        );
    }
}
