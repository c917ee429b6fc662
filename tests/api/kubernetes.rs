//! The Kubernetes side seen from outside: the deployment files parse into their API types,
//! and a server without a cluster says so (health, launches) without writing anything.

use std::process::Command;

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount},
    rbac::v1::{Role, RoleBinding},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    helpers::{NO_CLUSTER, spawn_app, spawn_with_cluster, test_settings},
    target_api::project_with_target,
};

const RENDERED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/k8s-rendered.yaml");

/// Parses `object` into `T` and back: a field `T` does not know (a typo, a wrong level) is
/// dropped on the way and shows as a difference.
fn round_trip<T: DeserializeOwned + Serialize>(object: &Value) {
    let typed: T = serde_json::from_value(object.clone())
        .unwrap_or_else(|err| panic!("{} does not parse: {err}", object["metadata"]["name"]));
    let mut back = serde_json::to_value(&typed).unwrap();
    // k8s-openapi writes apiVersion/kind into nested objects with a type of their own
    // (a StatefulSet's volumeClaimTemplates); the API server takes either form.
    if let Some(templates) = back.pointer_mut("/spec/volumeClaimTemplates").and_then(Value::as_array_mut) {
        for template in templates {
            let template = template.as_object_mut().unwrap();
            template.remove("apiVersion");
            template.remove("kind");
        }
    }
    assert_eq!(&back, object, "{} {} lost fields in its type", object["kind"], object["metadata"]["name"]);
}

#[test]
fn kubernetes_deployment_files_parse_into_their_api_types() {
    let committed = std::fs::read_to_string(RENDERED).expect("tests/fixtures/k8s-rendered.yaml");
    // Keep the committed rendering in step with k8s/ wherever kubectl is installed.
    if let Ok(output) =
        Command::new("kubectl").args(["kustomize", concat!(env!("CARGO_MANIFEST_DIR"), "/k8s")]).output()
    {
        assert!(
            output.status.success(),
            "kubectl kustomize k8s: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            committed,
            "k8s/ changed: run `kubectl kustomize k8s > tests/fixtures/k8s-rendered.yaml` and review"
        );
    }
    let mut kinds = Vec::new();
    for document in committed.split("\n---\n") {
        let object: Value = yaml_serde::from_str(document).expect("YAML");
        let kind = object["kind"].as_str().expect("a kind").to_owned();
        match kind.as_str() {
            "Namespace" => round_trip::<Namespace>(&object),
            "ServiceAccount" => round_trip::<ServiceAccount>(&object),
            "Role" => round_trip::<Role>(&object),
            "RoleBinding" => round_trip::<RoleBinding>(&object),
            "ConfigMap" => round_trip::<ConfigMap>(&object),
            "Service" => round_trip::<Service>(&object),
            "PersistentVolumeClaim" => round_trip::<PersistentVolumeClaim>(&object),
            "Deployment" => round_trip::<Deployment>(&object),
            "StatefulSet" => round_trip::<StatefulSet>(&object),
            other => panic!("no type checked for kind {other}"),
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Namespace",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "Service",
            "Service",
            "ServiceAccount",
            "StatefulSet"
        ]
    );
}

#[test]
fn kubernetes_role_grants_only_what_the_runner_uses() {
    let committed = std::fs::read_to_string(RENDERED).unwrap();
    let role = committed.split("\n---\n").find(|doc| doc.contains("kind: Role\n")).expect("a Role");
    let role: Role = yaml_serde::from_str(role).unwrap();
    let rules: Vec<(String, Vec<String>)> =
        role.rules.unwrap().into_iter().map(|rule| (rule.resources.unwrap().join(","), rule.verbs)).collect();
    let expected = [
        ("jobs", vec!["create", "get", "list", "watch", "delete", "patch"]),
        ("pods", vec!["list", "watch"]),
        ("configmaps", vec!["create"]),
        ("secrets", vec!["create"]),
    ];
    let expected: Vec<(String, Vec<String>)> = expected
        .into_iter()
        .map(|(resource, verbs)| (resource.to_owned(), verbs.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(rules, expected);
}

#[tokio::test]
async fn kubernetes_runner_without_a_cluster_is_reported_unavailable_in_health() {
    let app = spawn_app().await;
    let response = app.graphql("{ health { runners { runner available detail } } }", json!({})).await;
    let runners = response.data()["health"]["runners"].as_array().unwrap().clone();
    let kubernetes = runners.iter().find(|r| r["runner"] == "KUBERNETES").expect("listed");
    assert_eq!(kubernetes["available"], false);
    assert_eq!(kubernetes["detail"], NO_CLUSTER);
}

#[tokio::test]
async fn kubernetes_launch_without_a_cluster_is_refused_on_the_runner_field() {
    let app = spawn_app().await;
    let (_, endpoints) = project_with_target(&app, "Target").await;
    let input = json!({ "title": "t", "runner": "KUBERNETES", "scenarios": [{
        "name": "s", "endpointId": endpoints["getItem"], "executor": "CONSTANT_VUS",
        "stages": [{ "duration": "1s", "target": 1 }] }] });
    let response = app.graphql(LAUNCH, json!({ "input": input })).await;
    assert_eq!(response.error_code(), "BAD_USER_INPUT");
    assert_eq!(response.body["errors"][0]["extensions"]["field"], "input.runner");
    assert!(response.error_message().contains(NO_CLUSTER), "{}", response.error_message());
}

const LAUNCH: &str = "mutation($input: LaunchLoadTestInput!) { launchLoadTest(input: $input) { id status } }";

#[tokio::test]
async fn kubernetes_launch_whose_script_cannot_fit_a_config_map_is_refused_before_anything_is_written() {
    use http::{Request, Response};
    use kube::client::Body;

    let (service, mut api_server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let data_dir = tempfile::tempdir().unwrap();
    let settings = test_settings(data_dir.path()).await;
    let scripts = settings.k6_script_file_folder.clone();
    let app = spawn_with_cluster(settings, data_dir, Ok(kube::Client::new(service, "default"))).await;
    let (_, endpoints) = project_with_target(&app, "Target").await;
    // A request body that alone is larger than a ConfigMap may be.
    let body = json!({ "name": "x".repeat(1024 * 1024) });
    let input = json!({ "title": "big", "runner": "KUBERNETES", "scenarios": [{
        "name": "s", "endpointId": endpoints["createItem"], "executor": "CONSTANT_VUS",
        "stages": [{ "duration": "1s", "target": 1 }], "request": { "body": body } }] });

    let response = app.graphql(LAUNCH, json!({ "input": input })).await;

    assert_eq!(response.error_code(), "BAD_USER_INPUT", "{}", response.error_message());
    assert_eq!(response.body["errors"][0]["extensions"]["field"], "input.scenarios");
    assert!(
        response.error_message().contains("a Kubernetes ConfigMap holds at most"),
        "{}",
        response.error_message()
    );
    let runs = app.graphql("{ schedulerJobs { jobName } }", json!({})).await;
    assert_eq!(runs.data()["schedulerJobs"], json!([]), "no run recorded");
    assert_eq!(std::fs::read_dir(&scripts).map(|d| d.count()).unwrap_or(0), 0, "no script written");
    let asked = tokio::time::timeout(std::time::Duration::from_millis(300), api_server.next_request()).await;
    assert!(asked.is_err(), "nothing was sent to the cluster");
}
