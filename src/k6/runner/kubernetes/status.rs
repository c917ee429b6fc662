//! What the Jobs and pods of a run say about it, decided without I/O: still starting, ready
//! to be un-paused, or over (and how).

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use chrono::{DateTime, Utc};
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ContainerStateTerminated, Pod},
};

use super::manifests::{CONTAINER, INSTANCE_LABEL, TEST_ID_LABEL, secret_name};
use crate::k6::{
    counts::{InstanceReports, is_counts_document, parse_report},
    runner::{InstancePhase, RunOutcome},
};

/// k6's exit code when a threshold was crossed: the run itself went fine.
const THRESHOLDS_CROSSED: i32 = 99;

/// Waiting reasons a pod does not recover from by itself.
const FATAL_WAITING: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The Jobs and pods of one run, as last seen by the watchers.
#[derive(Clone, Debug, Default)]
pub struct RunState {
    pub jobs: BTreeMap<String, Job>,
    pub pods: BTreeMap<String, Pod>,
    /// The Jobs' initial list has been seen: an empty `jobs` now means they are gone.
    pub jobs_listed: bool,
}

/// A k6 pod that can be un-paused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyPod {
    pub index: u32,
    pub name: String,
    pub ip: IpAddr,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Wait,
    /// Every instance runs and answers: un-pause them.
    Start(Vec<ReadyPod>),
    Ended(RunOutcome),
}

pub fn instance_of(pod: &Pod) -> Option<u32> {
    pod.metadata.labels.as_ref()?.get(INSTANCE_LABEL)?.parse().ok()
}

fn k6_status(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == CONTAINER)
}

fn terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    k6_status(pod)?.state.as_ref()?.terminated.as_ref()
}

fn waiting_reason(pod: &Pod) -> Option<(String, String)> {
    let waiting = k6_status(pod)?.state.as_ref()?.waiting.as_ref()?;
    Some((waiting.reason.clone()?, waiting.message.clone().unwrap_or_default()))
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("?")
}

/// Since when the pod has been unschedulable, and the lifecycle's message.
fn unschedulable_since(pod: &Pod) -> Option<(DateTime<Utc>, String)> {
    let condition = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| {
        c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
    })?;
    let at = condition.last_transition_time.as_ref()?.0;
    let since = DateTime::from_timestamp(at.as_second(), at.subsec_nanosecond().max(0) as u32)?;
    Some((since, condition.message.clone().unwrap_or_default()))
}

/// Whether the pod waits only for its run's Secret, which the runner creates just after the
/// Jobs: a pod that got there first shows `CreateContainerConfigError` until the kubelet
/// tries again. Past `grace` from the pod's creation it is a real failure.
fn awaits_own_secret(pod: &Pod, reason: &str, message: &str, now: DateTime<Utc>, grace: Duration) -> bool {
    let Some(test_id) = pod.metadata.labels.as_ref().and_then(|l| l.get(TEST_ID_LABEL)?.parse::<i64>().ok())
    else {
        return false;
    };
    let Some(created) = pod.metadata.creation_timestamp.as_ref().and_then(|time| {
        DateTime::from_timestamp(time.0.as_second(), time.0.subsec_nanosecond().max(0) as u32)
    }) else {
        return false;
    };
    reason == "CreateContainerConfigError"
        && message.contains(&format!("\"{}\"", secret_name(test_id)))
        && (now - created).to_std().map_or(true, |age| age < grace)
}

fn is_ready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else { return false };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .as_ref()
            .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn job_failure(job: &Job) -> Option<(String, String)> {
    let condition = job
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")?;
    Some((condition.reason.clone().unwrap_or_default(), condition.message.clone().unwrap_or_default()))
}

fn job_complete(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Complete" && c.status == "True"))
}

fn termination_reason(pod: &Pod, state: &ContainerStateTerminated) -> String {
    let name = pod_name(pod);
    // k6's counts document is the message of a pod whose k6 reached its end: no reason.
    let message = state.message.as_deref().map(str::trim).filter(|m| !m.is_empty() && !is_counts_document(m));
    match state.reason.as_deref() {
        Some("OOMKilled") => {
            let limit = pod
                .spec
                .as_ref()
                .and_then(|spec| spec.containers.iter().find(|c| c.name == CONTAINER))
                .and_then(|c| c.resources.as_ref()?.limits.as_ref()?.get("memory").map(|q| q.0.clone()));
            match limit {
                Some(limit) => {
                    format!("k6 pod {name} was OOMKilled (memory limit {limit}); raise K8S_K6_MEMORY_LIMIT")
                }
                None => format!("k6 pod {name} was OOMKilled"),
            }
        }
        reason => {
            let mut text = format!("k6 pod {name} exited with code {}", state.exit_code);
            if let Some(reason) = reason {
                text.push_str(&format!(" ({reason})"));
            }
            if let Some(message) = message {
                text.push_str(&format!(": {message}"));
            }
            text
        }
    }
}

impl RunState {
    /// Decides what the run's objects mean, `started` telling whether k6 was un-paused already.
    pub fn next(
        &self,
        parallelism: u32,
        started: bool,
        now: DateTime<Utc>,
        unschedulable_grace: Duration,
    ) -> Next {
        // The deadline is the cluster's own timeout: its pods are killed, whatever they say.
        if self
            .jobs
            .values()
            .any(|job| job_failure(job).is_some_and(|(reason, _)| reason == "DeadlineExceeded"))
        {
            return Next::Ended(RunOutcome::TimedOut);
        }
        // One instance that cannot run fails the whole run; the first one found names why.
        for pod in self.pods.values() {
            if let Some(state) = terminated(pod)
                && state.exit_code != 0
                && state.exit_code != THRESHOLDS_CROSSED
            {
                return Next::Ended(RunOutcome::Failed { reason: termination_reason(pod, state) });
            }
            if let Some((reason, message)) = waiting_reason(pod)
                && FATAL_WAITING.contains(&reason.as_str())
                && !awaits_own_secret(pod, &reason, &message, now, unschedulable_grace)
            {
                return Next::Ended(RunOutcome::Failed {
                    reason: format!("k6 pod {} cannot start: {reason}: {message}", pod_name(pod)),
                });
            }
            if let Some((since, message)) = unschedulable_since(pod)
                && (now - since).to_std().is_ok_and(|waited| waited >= unschedulable_grace)
            {
                return Next::Ended(RunOutcome::Failed {
                    reason: format!(
                        "k6 pod {} could not be scheduled for {}s: {message}",
                        pod_name(pod),
                        unschedulable_grace.as_secs()
                    ),
                });
            }
            let status = pod.status.as_ref();
            if status.and_then(|s| s.phase.as_deref()) == Some("Failed") && terminated(pod).is_none() {
                let reason = status.and_then(|s| s.reason.clone()).unwrap_or_else(|| "Failed".into());
                let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
                return Next::Ended(RunOutcome::Failed {
                    reason: format!("k6 pod {} failed: {reason}: {message}", pod_name(pod)),
                });
            }
        }
        // Every instance's verdict, by index (a pod may have been removed after it ended).
        let mut ended: BTreeMap<u32, i32> = BTreeMap::new();
        for pod in self.pods.values() {
            if let (Some(index), Some(state)) = (instance_of(pod), terminated(pod)) {
                ended.insert(index, state.exit_code);
            }
        }
        for job in self.jobs.values() {
            let index = job.metadata.labels.as_ref().and_then(|l| l.get(INSTANCE_LABEL)?.parse().ok());
            if let Some(index) = index
                && job_complete(job)
            {
                ended.entry(index).or_insert(0);
            }
        }
        if (0..parallelism).all(|index| ended.contains_key(&index)) {
            let thresholds_crossed = ended.values().any(|code| *code == THRESHOLDS_CROSSED);
            return Next::Ended(RunOutcome::Completed { thresholds_crossed });
        }
        // A Job that failed with no pod left to say why.
        for job in self.jobs.values() {
            let index = job.metadata.labels.as_ref().and_then(|l| l.get(INSTANCE_LABEL)?.parse::<u32>().ok());
            if let Some((reason, message)) = job_failure(job)
                && index.is_none_or(|index| !ended.contains_key(&index))
            {
                let name = job.metadata.name.as_deref().unwrap_or("?");
                return Next::Ended(RunOutcome::Failed {
                    reason: format!("Job {name} failed: {reason}: {message}"),
                });
            }
        }
        if self.jobs_listed && self.jobs.len() < parallelism as usize {
            let missing: Vec<String> = (0..parallelism)
                .filter(|index| {
                    !self.jobs.values().any(|job| {
                        job.metadata.labels.as_ref().and_then(|l| l.get(INSTANCE_LABEL)).map(String::as_str)
                            == Some(index.to_string().as_str())
                    })
                })
                .map(|index| index.to_string())
                .collect();
            return Next::Ended(RunOutcome::Failed {
                reason: format!(
                    "the Job(s) of k6 instance(s) {} were deleted outside Metric Vault before the run ended",
                    missing.join(", ")
                ),
            });
        }
        if started {
            return Next::Wait;
        }
        let mut ready: Vec<ReadyPod> = self
            .pods
            .values()
            .filter(|pod| is_ready(pod))
            .filter_map(|pod| {
                let ip = pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
                Some(ReadyPod { index: instance_of(pod)?, name: pod_name(pod).to_owned(), ip })
            })
            .collect();
        ready.sort_by_key(|pod| pod.index);
        ready.dedup_by_key(|pod| pod.index);
        if ready.len() == parallelism as usize
            && ready.iter().enumerate().all(|(i, pod)| pod.index == i as u32)
        {
            Next::Start(ready)
        } else {
            Next::Wait
        }
    }

    /// Each instance's end-of-test counts, from its pod's termination message; None for an
    /// instance whose pod is gone or whose k6 wrote none.
    pub fn reports(&self, parallelism: u32) -> InstanceReports {
        let mut reports: InstanceReports = vec![None; parallelism as usize];
        for pod in self.pods.values() {
            let (Some(index), Some(state)) = (instance_of(pod), terminated(pod)) else { continue };
            let Some(slot) = reports.get_mut(index as usize) else { continue };
            let Some(message) = state.message.as_deref().filter(|m| is_counts_document(m)) else { continue };
            match parse_report(message) {
                Ok(report) => *slot = Some(report),
                Err(err) => {
                    tracing::warn!(pod = pod_name(pod), %err, "k6's end-of-test counts are unreadable")
                }
            }
        }
        reports
    }

    /// Each pod's phase, for `schedulerJobs`.
    pub fn phases(&self) -> Vec<InstancePhase> {
        self.pods
            .values()
            .map(|pod| InstancePhase {
                name: pod_name(pod).to_owned(),
                phase: pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into()),
                reason: waiting_reason(pod)
                    .map(|(reason, _)| reason)
                    .or_else(|| terminated(pod).and_then(|t| t.reason.clone()))
                    .or_else(|| unschedulable_since(pod).map(|_| "Unschedulable".to_owned())),
            })
            .collect()
    }

    /// Pods that may still run k6, with the address of its REST API.
    pub fn live_pods(&self) -> Vec<(String, IpAddr)> {
        self.pods
            .values()
            .filter(|pod| terminated(pod).is_none())
            .filter_map(|pod| {
                Some((pod_name(pod).to_owned(), pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?))
            })
            .collect()
    }
}
