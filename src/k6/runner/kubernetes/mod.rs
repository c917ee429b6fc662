//! k6 as Kubernetes Jobs: one Job (one pod) per k6 instance, the script in a ConfigMap they
//! own, pods started `--paused` and un-paused together through k6's REST API once every one
//! of them answers; watchers on the run's Jobs and pods drive its status.

pub mod manifests;
pub mod status;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use futures_util::StreamExt;
use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    batch::v1::Job,
    core::v1::{ConfigMap, Pod},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::{RunOutcome, RunRequest, Runner, RunnerError, RunnerEvent};
use crate::domain::RunnerKind;
use manifests::{ManifestSettings, RunManifest, ScriptDelivery};
use status::{Next, PodPhase, RunState};

/// API calls tried before a transient error counts.
const API_ATTEMPTS: u32 = 4;
/// How long a ready pod's k6 gets to answer on its REST API.
const API_ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// How often the state is looked at again without news (the unschedulable grace period).
const RECHECK: Duration = Duration::from_secs(5);
/// Time allowed for image pulls and scheduling on top of the run's own time limit, in the
/// Jobs' `activeDeadlineSeconds`.
const START_ALLOWANCE: Duration = Duration::from_secs(600);

/// How the runner treats the cluster and the runs' objects.
#[derive(Clone, Debug)]
pub struct KubernetesSettings {
    pub manifests: ManifestSettings,
    /// `AUTO_DELETE_COMPLETED_JOBS`: delete a completed run's Jobs at once.
    pub delete_completed_jobs: bool,
    /// `K8S_KEEP_FAILED_JOBS`: a failed run's Jobs lose their TTL, so their logs stay readable.
    pub keep_failed_jobs: bool,
    /// A pod unschedulable this long fails the run.
    pub unschedulable_grace: Duration,
    /// How long stopped pods get to flush their samples before their Jobs are deleted.
    pub stop_grace: Duration,
}

/// The k6 REST API port in the pods.
pub const K6_API_PORT: u16 = 6565;
/// How long stopped pods get to flush their samples before their Jobs are deleted.
const STOP_GRACE: Duration = Duration::from_secs(15);

impl KubernetesSettings {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        let delivery = match (settings.k8s_script_delivery, &settings.k6_default_pvc) {
            (crate::config::ScriptDeliverySetting::Pvc, Some(claim)) => {
                ScriptDelivery::Pvc { claim: claim.clone() }
            }
            _ => ScriptDelivery::ConfigMap,
        };
        Self {
            manifests: ManifestSettings {
                namespace: settings.kubernetes_namespace.clone(),
                image: settings.k6_image.clone(),
                resources: manifests::K6Resources {
                    cpu_request: settings.k8s_k6_cpu_request.clone(),
                    cpu_limit: settings.k8s_k6_cpu_limit.clone(),
                    memory_request: settings.k8s_k6_memory_request.clone(),
                    memory_limit: settings.k8s_k6_memory_limit.clone(),
                },
                job_ttl_seconds: settings.k8s_job_ttl_seconds,
                delivery,
                api_port: K6_API_PORT,
            },
            delete_completed_jobs: settings.auto_delete_completed_jobs,
            keep_failed_jobs: settings.k8s_keep_failed_jobs,
            unschedulable_grace: settings.k8s_unschedulable_grace,
            stop_grace: STOP_GRACE,
        }
    }
}

/// A run a previous server process left pending or running.
#[derive(Clone, Debug)]
pub struct InterruptedRun {
    pub test_id: i64,
    pub parallelism: u32,
    /// k6 was un-paused already (the run is RUNNING).
    pub started: bool,
}

struct RunHandle {
    stop: watch::Sender<bool>,
    phases: Arc<Mutex<Vec<PodPhase>>>,
}

/// Runs k6 as Jobs in one namespace.
pub struct KubernetesRunner {
    client: Client,
    settings: Arc<KubernetesSettings>,
    http: reqwest::Client,
    events: mpsc::UnboundedSender<RunnerEvent>,
    running: Arc<Mutex<HashMap<i64, RunHandle>>>,
}

/// Builds a client from the in-cluster service account or, outside a cluster, the kubeconfig.
pub async fn cluster_client() -> Result<Client, String> {
    let config = kube::Config::infer().await.map_err(|err| format!("no Kubernetes configuration: {err}"))?;
    Client::try_from(config).map_err(|err| format!("could not build a Kubernetes client: {err}"))
}

impl KubernetesRunner {
    pub fn new(
        client: Client,
        settings: KubernetesSettings,
        events: mpsc::UnboundedSender<RunnerEvent>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds");
        Self { client, settings: Arc::new(settings), http, events, running: Arc::default() }
    }

    /// Whether scripts travel in ConfigMaps (and so must fit in one).
    pub fn uses_config_maps(&self) -> bool {
        self.settings.manifests.delivery == ScriptDelivery::ConfigMap
    }

    /// The phases of a run's pods, as last seen.
    pub fn pod_phases(&self, test_id: i64) -> Vec<PodPhase> {
        let running = self.running.lock().expect("runner lock");
        running.get(&test_id).map(|run| run.phases.lock().expect("phases lock").clone()).unwrap_or_default()
    }

    fn task(&self) -> RunTask {
        RunTask {
            client: self.client.clone(),
            settings: self.settings.clone(),
            http: self.http.clone(),
            events: self.events.clone(),
        }
    }

    fn follow(&self, test_id: i64, parallelism: u32, started: bool, timeout: Option<Duration>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let phases = Arc::new(Mutex::new(Vec::new()));
        self.running
            .lock()
            .expect("runner lock")
            .insert(test_id, RunHandle { stop: stop_tx, phases: phases.clone() });
        let task = self.task();
        let running = self.running.clone();
        tokio::spawn(async move {
            let outcome = task.follow(test_id, parallelism, started, timeout, stop_rx, phases).await;
            running.lock().expect("runner lock").remove(&test_id);
            let _ = task.events.send(RunnerEvent::Finished { test_id, at: Utc::now(), outcome });
        });
    }

    /// Takes back the runs whose Jobs are still there; says for each other one why not.
    #[tracing::instrument(skip_all, fields(runs = runs.len()))]
    pub async fn reattach_runs(&self, runs: &[InterruptedRun]) -> HashMap<i64, String> {
        let task = self.task();
        let listed = retry("list Jobs", || async {
            let params = ListParams::default().labels(&manifests::managed_selector());
            task.jobs().list(&params).await
        })
        .await;
        let jobs = match listed {
            Ok(list) => list.items,
            Err(err) => {
                let reason = format!("interrupted by server restart; its Jobs could not be listed: {err}");
                return runs.iter().map(|run| (run.test_id, reason.clone())).collect();
            }
        };
        let with_jobs: BTreeSet<i64> =
            jobs.iter().filter_map(|job| job.labels().get(manifests::TEST_ID_LABEL)?.parse().ok()).collect();
        let mut lost = HashMap::new();
        for run in runs {
            if with_jobs.contains(&run.test_id) {
                tracing::info!(test_id = run.test_id, "re-attached to a Kubernetes run after a restart");
                self.follow(run.test_id, run.parallelism, run.started, None);
            } else {
                lost.insert(
                    run.test_id,
                    "its Kubernetes Jobs were gone when the server restarted (deleted, or removed by their TTL)"
                        .to_owned(),
                );
            }
        }
        lost
    }

    /// Whether the cluster answers and this server's account may do what runs need.
    pub async fn health(&self) -> (bool, String) {
        let namespace = &self.settings.manifests.namespace;
        let needed = [
            ("batch", "jobs", "create"),
            ("batch", "jobs", "delete"),
            ("batch", "jobs", "watch"),
            ("batch", "jobs", "patch"),
            ("", "pods", "watch"),
            ("", "configmaps", "create"),
        ];
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let mut denied = Vec::new();
        // One after another: a handful of small calls, and the first error says it all.
        for (group, resource, verb) in needed {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(group.to_owned()),
                        resource: Some(resource.to_owned()),
                        verb: Some(verb.to_owned()),
                        namespace: Some(namespace.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&PostParams::default(), &review).await {
                Ok(review) if review.status.as_ref().is_some_and(|s| s.allowed) => {}
                Ok(_) => denied.push(format!("{verb} {resource}")),
                Err(err) => {
                    return (false, format!("the Kubernetes API did not answer: {}", api_message(&err)));
                }
            }
        }
        if denied.is_empty() {
            (true, format!("cluster reachable; allowed to run Jobs in namespace {namespace}"))
        } else {
            (
                false,
                format!(
                    "cluster reachable, but not allowed to: {} (namespace {namespace})",
                    denied.join(", ")
                ),
            )
        }
    }
}

#[async_trait::async_trait]
impl Runner for KubernetesRunner {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Kubernetes
    }

    #[tracing::instrument(skip_all, fields(test_id = request.test_id, parallelism = request.parallelism))]
    async fn start(&self, request: RunRequest) -> Result<(), RunnerError> {
        let script_name = request
            .script
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| RunnerError::Refused(format!("bad script path {}", request.script.display())))?
            .to_owned();
        let deadline = request.timeout + START_ALLOWANCE;
        let run = RunManifest {
            test_id: request.test_id,
            parallelism: request.parallelism,
            script_name: &script_name,
            influxdb_out: &request.influxdb_out,
            deadline_seconds: deadline.as_secs() as i64,
        };
        let script = match self.settings.manifests.delivery {
            ScriptDelivery::ConfigMap => {
                let script = tokio::fs::read_to_string(&request.script).await.map_err(|err| {
                    RunnerError::Refused(format!(
                        "could not read the script {}: {err}",
                        request.script.display()
                    ))
                })?;
                manifests::check_script_size(&script).map_err(RunnerError::Refused)?;
                Some(script)
            }
            ScriptDelivery::Pvc { .. } => None,
        };
        let task = self.task();
        task.create_objects(&run, script.as_deref()).await.map_err(RunnerError::Refused)?;
        self.follow(request.test_id, request.parallelism, false, Some(request.timeout));
        Ok(())
    }

    async fn cancel(&self, test_id: i64) -> bool {
        match self.running.lock().expect("runner lock").get(&test_id) {
            Some(run) => run.stop.send(true).is_ok(),
            None => false,
        }
    }

    fn is_running(&self, test_id: i64) -> bool {
        self.running.lock().expect("runner lock").contains_key(&test_id)
    }
}

/// Retries `call` on errors that may pass (throttling, server errors, the connection).
async fn retry<T, F, Fut>(what: &str, mut call: F) -> Result<T, kube::Error>
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
fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

/// What one run's task needs.
struct RunTask {
    client: Client,
    settings: Arc<KubernetesSettings>,
    http: reqwest::Client,
    events: mpsc::UnboundedSender<RunnerEvent>,
}

enum Ending {
    Decided(RunOutcome),
    Stop,
    Deadline,
}

impl RunTask {
    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.settings.manifests.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.settings.manifests.namespace)
    }

    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.settings.manifests.namespace)
    }

    /// Creates the Jobs, then the ConfigMap they own; on a refusal deletes what was created.
    async fn create_objects(&self, run: &RunManifest<'_>, script: Option<&str>) -> Result<(), String> {
        let settings = &self.settings.manifests;
        let mut created: Vec<Job> = Vec::new();
        for index in 0..run.parallelism {
            let job = manifests::job(settings, run, index);
            let name = job.name_any();
            match retry("create Job", || async { self.jobs().create(&PostParams::default(), &job).await })
                .await
            {
                Ok(job) => created.push(job),
                Err(err) => {
                    self.delete_jobs(created.iter().map(|job| job.name_any()).collect::<Vec<_>>()).await;
                    return Err(format!("the Kubernetes API refused Job {name}: {}", api_message(&err)));
                }
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
                return Err(format!("the Kubernetes API refused ConfigMap {name}: {}", api_message(&err)));
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
    async fn follow(
        &self,
        test_id: i64,
        parallelism: u32,
        mut started: bool,
        timeout: Option<Duration>,
        mut stop: watch::Receiver<bool>,
        phases: Arc<Mutex<Vec<PodPhase>>>,
    ) -> RunOutcome {
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
                    if let Err(reason) = self.unpause(&pods).await {
                        self.stop_pods(&state).await;
                        break Ending::Decided(RunOutcome::Failed { reason });
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
        match ending {
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
        }
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
    async fn unpause(&self, pods: &[status::ReadyPod]) -> Result<(), String> {
        for pod in pods {
            let url = self.api_url(pod.ip);
            let answering = async {
                while !self.http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            };
            if tokio::time::timeout(API_ANSWER_LIMIT, answering).await.is_err() {
                return Err(format!(
                    "k6 in pod {} did not answer on {url} within {API_ANSWER_LIMIT:?}",
                    pod.name
                ));
            }
        }
        for pod in pods {
            self.set_status(pod.ip, json!({ "paused": false }))
                .await
                .map_err(|err| format!("could not start k6 in pod {}: {err}", pod.name))?;
        }
        Ok(())
    }

    fn api_url(&self, ip: IpAddr) -> String {
        format!("http://{}/v1/status", SocketAddr::new(ip, self.settings.manifests.api_port))
    }

    /// PATCHes k6's status resource (JSON:API), e.g. `{"paused": false}` or `{"stopped": true}`.
    async fn set_status(&self, ip: IpAddr, attributes: serde_json::Value) -> Result<(), String> {
        let body = json!({ "data": { "type": "status", "id": "default", "attributes": attributes } });
        let response =
            self.http.patch(self.api_url(ip)).json(&body).send().await.map_err(|err| err.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "k6 answered HTTP {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ))
        }
    }
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
