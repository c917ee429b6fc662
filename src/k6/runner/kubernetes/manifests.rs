//! The objects a run is made of, built from plain values (no I/O): one Job per k6 instance,
//! one ConfigMap holding the script and, when its requests carry secret headers, one Secret
//! holding their values, which the pods read into their environment.
//!
//! Why N Jobs and not one Indexed Job: each pod's command line is exact (its own
//! `--execution-segment`), with no shell in the image to turn `JOB_COMPLETION_INDEX` into a
//! segment, so any k6 image works (xk6 builds included); and `backoffLimit: 0` applies per
//! instance, so one instance ending with 99 (thresholds crossed) does not make the Job
//! controller kill its siblings before they flush their last samples, which it would do to
//! the other pods of a single Job.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        batch::v1::{Job, JobSpec},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
            PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret,
            SecretKeySelector, SecurityContext, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};

use crate::k6::{
    counts::{COUNTS_FILE_VARIABLE, TERMINATION_LOG},
    runner::execution_segment,
};

/// Label every object of every run carries; restart recovery lists Jobs by it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "metric-vault");
/// Label naming the run an object belongs to.
pub const TEST_ID_LABEL: &str = "metric-vault/test-id";
/// Label naming the k6 instance (execution segment) a Job and its pod run.
pub const INSTANCE_LABEL: &str = "metric-vault/instance";
/// The k6 container's name.
pub const CONTAINER: &str = "k6";
/// Where the script is mounted in the k6 pods.
pub const SCRIPT_MOUNT: &str = "/scripts";
/// The object limit is 1 MiB (etcd's request limit) for the whole ConfigMap; keep room for
/// its metadata (names, labels, owner references of up to 64 Jobs).
pub const MAX_CONFIGMAP_SCRIPT_BYTES: usize = 1024 * 1024 - 32 * 1024;

/// Where the k6 pods find the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptDelivery {
    /// A ConfigMap per run, owned by the run's Jobs.
    ConfigMap,
    /// The seed's way: the server writes the script into its `K6_SCRIPT_FILE_FOLDER`, which is
    /// this PVC; the pods mount it read-only.
    Pvc { claim: String },
}

/// Requests and limits of the k6 container; None leaves one out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct K6Resources {
    pub cpu_request: Option<String>,
    pub cpu_limit: Option<String>,
    pub memory_request: Option<String>,
    pub memory_limit: Option<String>,
}

/// What every run's objects share: the cluster side of the settings.
#[derive(Clone, Debug)]
pub struct ManifestSettings {
    pub namespace: String,
    pub image: String,
    pub resources: K6Resources,
    /// `ttlSecondsAfterFinished` of the Jobs; None keeps them until someone deletes them.
    pub job_ttl_seconds: Option<i32>,
    pub delivery: ScriptDelivery,
    /// The port k6's REST API listens on in the pods.
    pub api_port: u16,
}

/// One run as the cluster sees it.
#[derive(Clone, Debug)]
pub struct RunManifest<'a> {
    pub test_id: i64,
    pub parallelism: u32,
    /// The script's file name (the ConfigMap key, the file on the PVC).
    pub script_name: &'a str,
    /// `--out influxdb=` target as the pods reach it.
    pub influxdb_out: &'a str,
    /// `activeDeadlineSeconds` of each Job.
    pub deadline_seconds: i64,
    /// The environment variables the script reads secret values from, each a key of the run's
    /// Secret ([`secret_name`]); empty: the run has no Secret.
    pub secret_variables: &'a [String],
}

pub fn job_name(test_id: i64, index: u32) -> String {
    format!("k6-{test_id}-{index}")
}

pub fn config_map_name(test_id: i64) -> String {
    format!("k6-{test_id}-script")
}

pub fn secret_name(test_id: i64) -> String {
    format!("k6-{test_id}-secrets")
}

/// `metric-vault/test-id=<id>`: selects every object of one run.
pub fn run_selector(test_id: i64) -> String {
    format!("{TEST_ID_LABEL}={test_id}")
}

/// `app.kubernetes.io/managed-by=metric-vault`: selects every object of every run.
pub fn managed_selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

fn labels(test_id: i64) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", "k6".to_owned()),
        ("app.kubernetes.io/instance", format!("k6-{test_id}")),
        ("app.kubernetes.io/component", "load-generator".to_owned()),
        ("app.kubernetes.io/part-of", "metric-vault".to_owned()),
        (MANAGED_BY.0, MANAGED_BY.1.to_owned()),
        (TEST_ID_LABEL, test_id.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn instance_labels(test_id: i64, index: u32) -> BTreeMap<String, String> {
    let mut labels = labels(test_id);
    labels.insert(INSTANCE_LABEL.to_owned(), index.to_string());
    labels
}

/// The k6 command line of instance `index`.
pub fn k6_args(run: &RunManifest<'_>, api_port: u16, index: u32) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--paused".into(),
        "--address".into(),
        format!("0.0.0.0:{api_port}"),
        "--out".into(),
        format!("influxdb={}", run.influxdb_out),
    ];
    args.extend(crate::k6::influx_output::tag_arguments(run.test_id, index));
    args.push("--no-color".into());
    if let Some((segment, sequence)) = execution_segment(index, run.parallelism) {
        args.extend(["--execution-segment".into(), segment, "--execution-segment-sequence".into(), sequence]);
    }
    args.push(format!("{SCRIPT_MOUNT}/{}", run.script_name));
    args
}

/// The Job of k6 instance `index`: one pod, never retried, paused until the server starts it.
pub fn job(settings: &ManifestSettings, run: &RunManifest<'_>, index: u32) -> Job {
    let quantities = |pairs: [(&str, &Option<String>); 2]| {
        let map: BTreeMap<String, Quantity> = pairs
            .into_iter()
            .filter_map(|(name, value)| value.clone().map(|v| (name.to_owned(), Quantity(v))))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    let resources = &settings.resources;
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(settings.image.clone()),
        args: Some(k6_args(run, settings.api_port, index)),
        env: Some(env(run)),
        ports: Some(vec![ContainerPort {
            name: Some("k6-api".into()),
            container_port: i32::from(settings.api_port),
            ..Default::default()
        }]),
        // Ready = k6 answers on its REST API, which is what the un-pause needs.
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/v1/status".into()),
                port: IntOrString::Int(i32::from(settings.api_port)),
                ..Default::default()
            }),
            period_seconds: Some(2),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: quantities([("cpu", &resources.cpu_request), ("memory", &resources.memory_request)]),
            limits: quantities([("cpu", &resources.cpu_limit), ("memory", &resources.memory_limit)]),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "script".into(),
            mount_path: SCRIPT_MOUNT.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        // k6's `handleSummary` writes its end-of-test counts to the termination-message file
        // (`MV_COUNTS_FILE`), which the kubelet copies into the pod status: the server reads
        // them from the pod watch. When k6 fails before writing them, its last log lines
        // become the message instead: the failure reason.
        termination_message_path: Some(TERMINATION_LOG.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        // Not `runAsNonRoot`: the kubelet can only check it for images with a numeric USER,
        // and custom k6 images may name theirs.
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let volume = match &settings.delivery {
        ScriptDelivery::ConfigMap => Volume {
            name: "script".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(run.test_id),
                ..Default::default()
            }),
            ..Default::default()
        },
        ScriptDelivery::Pvc { claim } => Volume {
            name: "script".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(true),
            }),
            ..Default::default()
        },
    };
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(run.test_id, index)),
            namespace: Some(settings.namespace.clone()),
            labels: Some(instance_labels(run.test_id, index)),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(run.deadline_seconds),
            ttl_seconds_after_finished: settings.job_ttl_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(instance_labels(run.test_id, index)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    containers: vec![container],
                    volumes: Some(vec![volume]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The k6 container's environment: the output's settings, and the secret values come from the run's Secret, so the Job
/// (readable by anyone who may read Jobs) names them only.
fn env(run: &RunManifest<'_>) -> Vec<EnvVar> {
    let plain = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..Default::default()
    };
    let mut env = vec![plain("K6_NO_USAGE_REPORT", "true"), plain(COUNTS_FILE_VARIABLE, TERMINATION_LOG)];
    // The InfluxDB output's settings, the same as the local runner's (see k6::influx_output).
    env.extend(crate::k6::influx_output::environment().iter().map(|(name, value)| plain(name, value)));
    env.extend(run.secret_variables.iter().map(|variable| EnvVar {
        name: variable.clone(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret_name(run.test_id),
                key: variable.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }));
    env
}

/// Makes every Job of the run an owner: the garbage collector removes the object with the
/// last of them.
fn owned_by(owners: &[Job]) -> Vec<OwnerReference> {
    owners
        .iter()
        .map(|job| OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: job.metadata.name.clone().unwrap_or_default(),
            uid: job.metadata.uid.clone().unwrap_or_default(),
            block_owner_deletion: Some(true),
            controller: Some(false),
        })
        .collect()
}

/// The script's ConfigMap, owned by every Job of the run.
pub fn config_map(
    settings: &ManifestSettings,
    run: &RunManifest<'_>,
    script: &str,
    owners: &[Job],
) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(run.test_id)),
            namespace: Some(settings.namespace.clone()),
            labels: Some(labels(run.test_id)),
            owner_references: Some(owned_by(owners)),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(run.script_name.to_owned(), script.to_owned())])),
        immutable: Some(true),
        ..Default::default()
    }
}

/// The Secret holding the run's secret header values by variable, owned like the ConfigMap.
pub fn secret(
    settings: &ManifestSettings,
    run: &RunManifest<'_>,
    values: &[(String, String)],
    owners: &[Job],
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(run.test_id)),
            namespace: Some(settings.namespace.clone()),
            labels: Some(labels(run.test_id)),
            owner_references: Some(owned_by(owners)),
            ..Default::default()
        },
        string_data: Some(values.iter().cloned().collect()),
        type_: Some("Opaque".into()),
        immutable: Some(true),
        ..Default::default()
    }
}

/// A script too large for a ConfigMap; the message says what to do.
#[derive(Debug, thiserror::Error)]
#[error(
    "the generated k6 script is {bytes} bytes; a Kubernetes ConfigMap holds at most \
     {MAX_CONFIGMAP_SCRIPT_BYTES} (the API server's 1 MiB object limit): send smaller request \
     bodies or fewer scenarios, or deliver scripts through K6_DEFAULT_PVC (K8S_SCRIPT_DELIVERY=pvc)"
)]
pub struct ScriptTooLarge {
    pub bytes: usize,
}

/// Whether a script fits in a ConfigMap.
pub fn check_script_size(script: &str) -> Result<(), ScriptTooLarge> {
    if script.len() <= MAX_CONFIGMAP_SCRIPT_BYTES {
        Ok(())
    } else {
        Err(ScriptTooLarge { bytes: script.len() })
    }
}
