//! One run's task: creating its objects (and undoing them when the cluster refuses), then
//! following its Jobs and pods until it ends, un-pausing, stopping and cleaning up on the way.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use futures_util::StreamExt;
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ConfigMap, Pod, Secret},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::{
    API_ANSWER_LIMIT, KubernetesSettings, RECHECK,
    manifests::{self, RunManifest},
    status::{self, Next, RunState},
};
use crate::k6::{
    ScriptSecrets,
    counts::InstanceReports,
    runner::{InstancePhase, K6ApiError, RunOutcome, RunnerEvent},
};

/// API calls tried before a transient error counts.
const API_ATTEMPTS: u32 = 4;

/// Retries `call` on errors that may pass (throttling, server errors, the connection).
pub(super) async fn retry<T, F, Fut>(what: &str, mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(err) if attempt < API_ATTEMPTS && is_transient(&err) => {
                tracing::debug!(attempt, %err, "{what} failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The API's own words for a refusal.
pub(super) fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

/// The cluster refused one of a run's objects (what it had created of them is deleted).
#[derive(Debug, thiserror::Error)]
#[error("the Kubernetes API refused {object}: {}", api_message(.source))]
pub(super) struct ObjectsRefused {
    /// Its kind and name, e.g. `Job k6-7-0`.
    object: String,
    source: kube::Error,
}

/// What one run's task needs.
pub(super) struct RunTask {
    pub(super) client: Client,
    pub(super) settings: Arc<KubernetesSettings>,
    pub(super) http: reqwest::Client,
    pub(super) events: mpsc::UnboundedSender<RunnerEvent>,
}

enum Ending {
    Decided(RunOutcome),
    Stop,
    Deadline,
}

impl RunTask {
    pub(super) fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.settings.manifests.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.settings.manifests.namespace)
    }

    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.settings.manifests.namespace)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.settings.manifests.namespace)
    }

    /// Creates the Jobs, then the Secret (when there are secret values) and the ConfigMap they
    /// own; on a refusal deletes the Jobs, and with them what they own.
    pub(super) async fn create_objects(
        &self,
        run: &RunManifest<'_>,
        script: Option<&str>,
        secrets: &ScriptSecrets,
    ) -> Result<(), ObjectsRefused> {
        let settings = &self.settings.manifests;
        let mut created: Vec<Job> = Vec::new();
        for index in 0..run.parallelism {
            let job = manifests::job(settings, run, index);
            let name = job.name_any();
            // A create retried after a lost answer may find its own first attempt: take it.
            let mut retrying = false;
            let create = || {
                let again = std::mem::replace(&mut retrying, true);
                let (job, name) = (&job, &name);
                async move {
                    match self.jobs().create(&PostParams::default(), job).await {
                        Err(kube::Error::Api(status)) if again && status.code == 409 => {
                            self.jobs().get(name).await
                        }
                        result => result,
                    }
                }
            };
            match retry("create Job", create).await {
                Ok(job) => created.push(job),
                Err(err) => {
                    self.delete_jobs(created.iter().map(|job| job.name_any()).collect::<Vec<_>>()).await;
                    return Err(ObjectsRefused { object: format!("Job {name}"), source: err });
                }
            }
        }
        // Before the ConfigMap: a pod whose Secret is missing waits in CreateContainerConfigError
        // (see `status`), so the sooner it exists the better.
        if !secrets.is_empty() {
            let secret = manifests::secret(settings, run, &secrets.0, &created);
            let name = secret.name_any();
            if let Err(err) = retry("create Secret", || async {
                self.secrets().create(&PostParams::default(), &secret).await
            })
            .await
            {
                self.delete_jobs(created.iter().map(|job| job.name_any()).collect::<Vec<_>>()).await;
                return Err(ObjectsRefused { object: format!("Secret {name}"), source: err });
            }
        }
        if let Some(script) = script {
            let config_map = manifests::config_map(settings, run, script, &created);
            let name = config_map.name_any();
            if let Err(err) = retry("create ConfigMap", || async {
                self.config_maps().create(&PostParams::default(), &config_map).await
            })
            .await
            {
                self.delete_jobs(created.iter().map(|job| job.name_any()).collect::<Vec<_>>()).await;
                return Err(ObjectsRefused { object: format!("ConfigMap {name}"), source: err });
            }
        }
        Ok(())
    }

    /// Deletes Jobs with foreground propagation: their pods (and the ConfigMap they own) go first.
    async fn delete_jobs(&self, names: Vec<String>) {
        for name in names {
            let deleted = retry("delete Job", || async {
                self.jobs().delete(&name, &DeleteParams::foreground()).await
            })
            .await;
            match deleted {
                Ok(_) => tracing::debug!(job = name, "deleted"),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => tracing::warn!(job = name, %err, "could not delete a Job"),
            }
        }
    }

    /// Follows the run from its Jobs and pods until it ends.
    #[tracing::instrument(skip(self, stop, phases))]
    pub(super) async fn follow(
        &self,
        test_id: i64,
        parallelism: u32,
        mut started: bool,
        timeout: Option<Duration>,
        mut stop: watch::Receiver<bool>,
        phases: Arc<Mutex<Vec<InstancePhase>>>,
    ) -> (RunOutcome, InstanceReports) {
        let selector = manifests::run_selector(test_id);
        let config = watcher::Config::default().labels(&selector);
        let pods = watcher(self.pods(), config.clone()).default_backoff().map(Change::Pod);
        let jobs = watcher(self.jobs(), config).default_backoff().map(Change::Job);
        let mut changes = Box::pin(futures_util::stream::select(pods, jobs));
        let mut state = RunState::default();
        let mut recheck = tokio::time::interval(RECHECK);
        let deadline = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(deadline);
        if started && let Some(limit) = timeout {
            deadline.as_mut().reset(tokio::time::Instant::now() + limit);
        }
        let ending = loop {
            tokio::select! {
                change = changes.next() => match change {
                    Some(change) => state.apply(change),
                    None => break Ending::Decided(RunOutcome::Failed { reason: "the watch on the run's pods ended".into() }),
                },
                _ = stop.wait_for(|stop| *stop) => break Ending::Stop,
                () = &mut deadline => break Ending::Deadline,
                _ = recheck.tick() => {}
            }
            *phases.lock().expect("phases lock") = state.phases();
            match state.next(parallelism, started, Utc::now(), self.settings.unschedulable_grace) {
                Next::Wait => {}
                Next::Ended(outcome) => break Ending::Decided(outcome),
                Next::Start(pods) => {
                    if let Err(err) = self.unpause(&pods).await {
                        self.stop_pods(&state).await;
                        break Ending::Decided(RunOutcome::Failed { reason: err.to_string() });
                    }
                    started = true;
                    let _ = self.events.send(RunnerEvent::Started { test_id, at: Utc::now() });
                    tracing::info!("k6 pods started");
                    if let Some(limit) = timeout {
                        deadline.as_mut().reset(tokio::time::Instant::now() + limit);
                    }
                }
            }
        };
        let job_names: Vec<String> =
            (0..parallelism).map(|index| manifests::job_name(test_id, index)).collect();
        let outcome = match ending {
            Ending::Stop => {
                self.stop_and_drain(&mut state, &mut changes).await;
                self.delete_jobs(job_names).await;
                RunOutcome::Cancelled
            }
            Ending::Deadline => {
                self.stop_and_drain(&mut state, &mut changes).await;
                self.keep_if_configured(&job_names).await;
                RunOutcome::TimedOut
            }
            Ending::Decided(outcome) => {
                match &outcome {
                    RunOutcome::Completed { .. } if self.settings.delete_completed_jobs => {
                        self.delete_jobs(job_names).await
                    }
                    RunOutcome::Completed { .. } => {}
                    _ => {
                        // The instances still running would go on loading the target for nothing.
                        self.stop_pods(&state).await;
                        self.keep_if_configured(&job_names).await;
                    }
                }
                outcome
            }
        };
        // The pods' termination messages, as last seen (a stopped run's after the drain).
        (outcome, state.reports(parallelism))
    }

    /// Asks k6 in every live pod to stop, then waits (bounded) for the pods to end so their
    /// last samples are flushed.
    async fn stop_and_drain(
        &self,
        state: &mut RunState,
        changes: &mut (impl futures_util::Stream<Item = Change> + Unpin),
    ) {
        self.stop_pods(state).await;
        let drained = tokio::time::timeout(self.settings.stop_grace, async {
            while !state.live_pods().is_empty() {
                match changes.next().await {
                    Some(change) => state.apply(change),
                    None => break,
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("k6 pods did not end within {:?} of the stop request", self.settings.stop_grace);
        }
    }

    async fn stop_pods(&self, state: &RunState) {
        for (name, ip) in state.live_pods() {
            if let Err(err) = self.set_status(ip, json!({ "stopped": true })).await {
                tracing::debug!(pod = name, %err, "k6 did not take the stop request");
            }
        }
    }

    /// Failed runs' Jobs lose their TTL when configured so, so that their logs stay.
    async fn keep_if_configured(&self, job_names: &[String]) {
        if !self.settings.keep_failed_jobs || self.settings.manifests.job_ttl_seconds.is_none() {
            return;
        }
        let patch = Patch::Merge(json!({ "spec": { "ttlSecondsAfterFinished": null } }));
        for name in job_names {
            let patched = retry("patch Job", || async {
                self.jobs().patch(name, &PatchParams::default(), &patch).await
            })
            .await;
            if let Err(err) = patched {
                tracing::warn!(job = name, %err, "could not keep a failed run's Job");
            }
        }
    }

    /// Un-pauses every pod once its k6 answers; the first failure names the pod.
    async fn unpause(&self, pods: &[status::ReadyPod]) -> Result<(), UnpauseError> {
        for pod in pods {
            let url = self.api_url(pod.ip);
            let answering = async {
                while !self.http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            };
            if tokio::time::timeout(API_ANSWER_LIMIT, answering).await.is_err() {
                return Err(UnpauseError::Silent { pod: pod.name.clone(), url, limit: API_ANSWER_LIMIT });
            }
        }
        for pod in pods {
            self.set_status(pod.ip, json!({ "paused": false }))
                .await
                .map_err(|source| UnpauseError::Refused { pod: pod.name.clone(), source })?;
        }
        Ok(())
    }

    fn api_url(&self, ip: IpAddr) -> String {
        format!("http://{}/v1/status", SocketAddr::new(ip, self.settings.manifests.api_port))
    }

    /// PATCHes k6's status resource (JSON:API), e.g. `{"paused": false}` or `{"stopped": true}`.
    async fn set_status(&self, ip: IpAddr, attributes: serde_json::Value) -> Result<(), K6ApiError> {
        crate::k6::runner::set_k6_status(&self.http, &self.api_url(ip), attributes).await
    }
}

/// Why a run's pods could not be started.
#[derive(Debug, thiserror::Error)]
enum UnpauseError {
    #[error("k6 in pod {pod} did not answer on {url} within {limit:?}")]
    Silent { pod: String, url: String, limit: Duration },
    #[error("could not start k6 in pod {pod}: {source}")]
    Refused { pod: String, source: K6ApiError },
}

/// One event of either watcher (short-lived: the size difference does not matter).
#[allow(clippy::large_enum_variant)]
enum Change {
    Pod(Result<watcher::Event<Pod>, watcher::Error>),
    Job(Result<watcher::Event<Job>, watcher::Error>),
}

impl RunState {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Pod(Ok(event)) => match event {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                    self.pods.insert(pod.name_any(), pod);
                }
                // A pod that ended keeps its verdict even once removed.
                watcher::Event::Delete(pod) => {
                    let name = pod.name_any();
                    if !is_live(&pod) {
                        self.pods.insert(name, pod);
                    } else if self.pods.get(&name).is_none_or(is_live) {
                        self.pods.remove(&name);
                    }
                }
                watcher::Event::Init | watcher::Event::InitDone => {}
            },
            Change::Job(Ok(event)) => match event {
                watcher::Event::Apply(job) | watcher::Event::InitApply(job) => {
                    self.jobs.insert(job.name_any(), job);
                }
                watcher::Event::Delete(job) => {
                    self.jobs.remove(&job.name_any());
                }
                watcher::Event::Init => {
                    self.jobs.clear();
                    self.jobs_listed = false;
                }
                watcher::Event::InitDone => self.jobs_listed = true,
            },
            Change::Pod(Err(err)) | Change::Job(Err(err)) => {
                tracing::warn!(%err, "watching the run's objects failed; retrying");
            }
        }
    }
}

fn is_live(pod: &Pod) -> bool {
    !matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}
