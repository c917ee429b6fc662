//! The scheduler's view: runs pending or running now, with their pods.

use async_graphql::Object;
use chrono::{DateTime, Utc};

use super::TestHistory;
use crate::{
    db::entities::test_history,
    domain::{RunnerKind, TestStatus},
};

/// A run that is pending or running now.
pub struct SchedulerJob {
    pub run: test_history::Model,
    pub warning_hours: f64,
    /// The run's k6 instances as its runner sees them (a Kubernetes run's pods).
    pub pods: Vec<crate::k6::runner::InstancePhase>,
}

/// One k6 pod of a Kubernetes run.
#[derive(async_graphql::SimpleObject)]
pub struct SchedulerPod {
    pub name: String,
    /// Kubernetes' pod phase: Pending, Running, Succeeded, Failed.
    pub phase: String,
    /// Why it is waiting or ended, when Kubernetes says (ImagePullBackOff, Unschedulable, OOMKilled…).
    pub reason: Option<String>,
}

#[Object]
impl SchedulerJob {
    async fn test_history(&self) -> TestHistory {
        TestHistory(self.run.clone())
    }
    async fn job_name(&self) -> &str {
        &self.run.job_name
    }
    async fn runner(&self) -> RunnerKind {
        self.run.runner
    }
    async fn status(&self) -> TestStatus {
        self.run.status
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.run.started_at
    }
    /// Seconds since the run started (or was launched, while pending).
    async fn elapsed_seconds(&self) -> f64 {
        self.elapsed_seconds_now()
    }
    /// True once the run has gone past SCHEDULER_JOB_WARNING_HOURS.
    async fn overdue(&self) -> bool {
        self.elapsed_seconds_now() > self.warning_hours * 3600.0
    }
    /// The Kubernetes runner's pods of this run with their phases; empty for local runs.
    async fn pods(&self) -> Vec<SchedulerPod> {
        self.pods
            .iter()
            .map(|pod| SchedulerPod {
                name: pod.name.clone(),
                phase: pod.phase.clone(),
                reason: pod.reason.clone(),
            })
            .collect()
    }
}

impl SchedulerJob {
    fn elapsed_seconds_now(&self) -> f64 {
        let since = self.run.started_at.unwrap_or(self.run.tested_at);
        (Utc::now() - since).num_milliseconds().max(0) as f64 / 1000.0
    }
}
