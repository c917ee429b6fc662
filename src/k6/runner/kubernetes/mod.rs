//! k6 as Kubernetes Jobs: one Job (one pod) per k6 instance, the script in a ConfigMap they
//! own, pods started `--paused` and un-paused together through k6's REST API once every one
//! of them answers; watchers on the run's Jobs and pods drive its status.

mod absent;
pub mod manifests;
mod run;
pub mod status;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PostParams},
};
use tokio::sync::{mpsc, watch};

pub use super::InterruptedRun;
use super::{InstancePhase, PreflightError, RunRequest, Runner, RunnerError, RunnerEvent, RunnerHealth};
use crate::{
    domain::RunnerKind,
    k6::{TestPlan, script::render_script},
};
pub use absent::NoCluster;
use manifests::{ManifestSettings, RunManifest, ScriptDelivery, ScriptTooLarge};
use run::{ObjectsRefused, RunTask, api_message, retry};

/// How long a ready pod's k6 gets to answer on its REST API.
const API_ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// How often the state is looked at again without news (the unschedulable grace period).
const RECHECK: Duration = Duration::from_secs(5);
/// How long the cluster gets to answer a health check.
const HEALTH_LIMIT: Duration = Duration::from_secs(5);
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

struct RunHandle {
    stop: watch::Sender<bool>,
    phases: Arc<Mutex<Vec<InstancePhase>>>,
}

/// Runs k6 as Jobs in one namespace.
pub struct KubernetesRunner {
    client: Client,
    settings: Arc<KubernetesSettings>,
    http: reqwest::Client,
    events: mpsc::UnboundedSender<RunnerEvent>,
    running: Arc<Mutex<HashMap<i64, RunHandle>>>,
}

/// Why there is no Kubernetes client.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no Kubernetes configuration: {0}")]
    NoConfiguration(#[from] kube::config::InferConfigError),
    #[error("could not build a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// No cluster, for the reason whoever built the server gave (tests: never a real one).
    #[error("{0}")]
    Withheld(String),
}

impl From<String> for ClusterError {
    fn from(why: String) -> Self {
        Self::Withheld(why)
    }
}

/// Builds a client from the in-cluster service account or, outside a cluster, the kubeconfig.
pub async fn cluster_client() -> Result<Client, ClusterError> {
    Ok(Client::try_from(kube::Config::infer().await?)?)
}

/// The Kubernetes runner through `cluster`, or without one a runner that refuses runs with why.
pub fn runner(
    cluster: Result<Client, ClusterError>,
    settings: &crate::config::Settings,
    events: mpsc::UnboundedSender<RunnerEvent>,
) -> Arc<dyn Runner> {
    match cluster {
        Ok(client) => {
            Arc::new(KubernetesRunner::new(client, KubernetesSettings::from_settings(settings), events))
        }
        Err(why) => Arc::new(NoCluster::new(why)),
    }
}

/// Why a run could not be handed to the cluster.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("bad script path {}", .0.display())]
    ScriptPath(std::path::PathBuf),
    #[error("could not read the script {}: {source}", .path.display())]
    ScriptUnreadable { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    TooLarge(#[from] ScriptTooLarge),
    #[error(transparent)]
    Objects(#[from] ObjectsRefused),
}

impl From<StartError> for RunnerError {
    fn from(err: StartError) -> Self {
        Self::Refused(Box::new(err))
    }
}

impl KubernetesRunner {
    pub fn new(
        client: Client,
        settings: KubernetesSettings,
        events: mpsc::UnboundedSender<RunnerEvent>,
    ) -> Self {
        let http = crate::tls::client_builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds");
        Self { client, settings: Arc::new(settings), http, events, running: Arc::default() }
    }

    /// Whether scripts travel in ConfigMaps (and so must fit in one).
    fn uses_config_maps(&self) -> bool {
        self.settings.manifests.delivery == ScriptDelivery::ConfigMap
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
            let (outcome, reports) =
                task.follow(test_id, parallelism, started, timeout, stop_rx, phases).await;
            running.lock().expect("runner lock").remove(&test_id);
            let _ = task.events.send(RunnerEvent::Finished { test_id, at: Utc::now(), outcome, reports });
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
    async fn access_review(&self) -> (bool, String) {
        let namespace = &self.settings.manifests.namespace;
        let needed = [
            ("batch", "jobs", "create"),
            ("batch", "jobs", "delete"),
            ("batch", "jobs", "watch"),
            ("batch", "jobs", "patch"),
            ("", "pods", "watch"),
            ("", "configmaps", "create"),
            ("", "secrets", "create"),
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

    /// A script that travels in a ConfigMap must fit in one.
    fn check_plan(&self, plan: &TestPlan) -> Result<(), PreflightError> {
        if self.uses_config_maps() {
            manifests::check_script_size(&render_script(plan))
                .map_err(|err| PreflightError::Plan(Box::new(err)))?;
        }
        Ok(())
    }

    /// Nothing to ask the cluster before a run: [`Runner::start`] reports what it refuses, and
    /// `health` whether it answers.
    async fn preflight(&self) -> Result<(), PreflightError> {
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(test_id = request.test_id, parallelism = request.parallelism))]
    async fn start(&self, request: RunRequest) -> Result<(), RunnerError> {
        let script_name = request
            .script
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| StartError::ScriptPath(request.script.clone()))?
            .to_owned();
        let deadline = request.timeout + START_ALLOWANCE;
        let secret_variables = request.secrets.variables();
        let run = RunManifest {
            test_id: request.test_id,
            parallelism: request.parallelism,
            script_name: &script_name,
            influxdb_out: &request.influxdb_out,
            deadline_seconds: deadline.as_secs() as i64,
            secret_variables: &secret_variables,
        };
        let script = match self.settings.manifests.delivery {
            ScriptDelivery::ConfigMap => {
                let script = tokio::fs::read_to_string(&request.script).await.map_err(|source| {
                    StartError::ScriptUnreadable { path: request.script.clone(), source }
                })?;
                manifests::check_script_size(&script).map_err(StartError::from)?;
                Some(script)
            }
            ScriptDelivery::Pvc { .. } => None,
        };
        let task = self.task();
        task.create_objects(&run, script.as_deref(), &request.secrets).await.map_err(StartError::from)?;
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

    async fn reattach(&self, runs: &[InterruptedRun]) -> HashMap<i64, String> {
        self.reattach_runs(runs).await
    }

    /// Nothing to stop: a run's Jobs are the cluster's, and the instance that takes the run over
    /// re-attaches to them.
    async fn fence(&self, _test_id: i64) -> bool {
        false
    }

    /// Whether the cluster answers (within a few seconds) and RBAC allows what runs need.
    async fn health(&self) -> RunnerHealth {
        let (available, detail) =
            tokio::time::timeout(HEALTH_LIMIT, self.access_review()).await.unwrap_or_else(|_| {
                (false, format!("the Kubernetes API did not answer within {}s", HEALTH_LIMIT.as_secs()))
            });
        RunnerHealth { runner: RunnerKind::Kubernetes, available, detail }
    }

    /// The run's pods with their phases, as last seen.
    fn instances(&self, test_id: i64) -> Vec<InstancePhase> {
        let running = self.running.lock().expect("runner lock");
        running.get(&test_id).map(|run| run.phases.lock().expect("phases lock").clone()).unwrap_or_default()
    }
}
