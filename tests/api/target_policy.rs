//! Where load may go and where documents may come from: ALLOWED_TARGETS and BLOCKED_TARGETS.
//!
//! Everything stays on loopback: the "forbidden" hosts are loopback addresses that the test's
//! configuration forbids (127.0.0.2), never a real outside or metadata address.

use axum::{Router, response::Redirect, routing::get};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, spawn_app_with},
    target_api::project_with_target,
};

const IMPORT_URL: &str =
    "mutation($p: ID!, $u: String!) { analyzeOpenApi(input: {projectId: $p, url: $u}) { spec { id } } }";
const IMPORT_TEXT: &str = "mutation($p: ID!, $d: String!) { analyzeOpenApi(input: {projectId: $p, document: $d}) { spec { endpoints { id } } } }";
const LAUNCH: &str = "mutation($input: LaunchLoadTestInput!) { launchLoadTest(input: $input) { id status } }";

fn document(base: &str) -> String {
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Elsewhere", "version": "1" },
        "servers": [{ "url": base }],
        "paths": { "/ping": { "get": { "responses": { "200": { "description": "pong" } } } } }
    })
    .to_string()
}

/// A project whose one spec has `base` as its base URL; returns (project, endpoint).
async fn project_aimed_at(app: &TestApp, base: &str) -> (String, String) {
    let project = app.create_project("Aimed").await;
    let imported = app.graphql(IMPORT_TEXT, json!({ "p": project, "d": document(base) })).await;
    let endpoint =
        imported.data()["analyzeOpenApi"]["spec"]["endpoints"][0]["id"].as_str().unwrap().to_owned();
    (project, endpoint)
}

fn one_second_of(endpoint: &str) -> Value {
    json!({ "title": "Aim", "scenarios": [{ "name": "ping", "endpointId": endpoint, "executor": "CONSTANT_VUS",
        "thinkTime": 0.1, "stages": [{ "duration": "1s", "target": 1 }] }] })
}

async fn run_count(app: &TestApp) -> usize {
    let runs = app.graphql("{ testHistories(first: 50) { totalCount } }", json!({})).await;
    runs.data()["testHistories"]["totalCount"].as_u64().unwrap() as usize
}

#[tokio::test]
async fn load_goes_only_where_allowed_targets_say() {
    let app = spawn_app_with(&[("ALLOWED_TARGETS", "127.0.0.1, *.staging.internal")]).await;
    let (_, elsewhere) = project_aimed_at(&app, "http://127.0.0.2:9/").await;

    let refused = app.graphql(LAUNCH, json!({ "input": one_second_of(&elsewhere) })).await;
    assert_eq!(refused.error_code(), "FORBIDDEN", "{}", refused.body);
    assert!(
        refused.error_message().contains("127.0.0.2 is not an allowed load-test target"),
        "{}",
        refused.body
    );
    assert_eq!(run_count(&app).await, 0, "a refused launch records nothing");
    let scripts = std::fs::read_dir(app.scripts_dir()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(scripts, 0, "and writes no script");

    // An allowed host launches (then stops: this test is about the gate, not the run).
    let (_, endpoints) = project_with_target(&app, "Allowed").await;
    let launched = app.graphql(LAUNCH, json!({ "input": one_second_of(&endpoints["getItem"]) })).await;
    let id = launched.data()["launchLoadTest"]["id"].as_str().unwrap().to_owned();
    app.graphql("mutation($id: ID!) { cancelLoadTest(id: $id) { id } }", json!({ "id": id })).await;
}

#[tokio::test]
async fn blocked_targets_stay_blocked_unless_explicitly_allowed() {
    // 127.0.0.2 stands for a metadata address: blocked by configuration.
    let blocked = spawn_app_with(&[("BLOCKED_TARGETS", "127.0.0.2")]).await;
    let (_, endpoint) = project_aimed_at(&blocked, "http://127.0.0.2:9/").await;
    let refused = blocked.graphql(LAUNCH, json!({ "input": one_second_of(&endpoint) })).await;
    assert_eq!(refused.error_code(), "FORBIDDEN");
    assert!(refused.error_message().contains("blocked address"), "{}", refused.body);

    // `*` does not unblock it; naming it does.
    let star = spawn_app_with(&[("BLOCKED_TARGETS", "127.0.0.2"), ("ALLOWED_TARGETS", "*")]).await;
    let (_, endpoint) = project_aimed_at(&star, "http://127.0.0.2:9/").await;
    assert_eq!(
        star.graphql(LAUNCH, json!({ "input": one_second_of(&endpoint) })).await.error_code(),
        "FORBIDDEN"
    );

    let named = spawn_app_with(&[("BLOCKED_TARGETS", "127.0.0.2"), ("ALLOWED_TARGETS", "127.0.0.2")]).await;
    let (_, endpoint) = project_aimed_at(&named, "http://127.0.0.2:9/").await;
    let launched = named.graphql(LAUNCH, json!({ "input": one_second_of(&endpoint) })).await;
    let id = launched.data()["launchLoadTest"]["id"].as_str().unwrap().to_owned();
    named.graphql("mutation($id: ID!) { cancelLoadTest(id: $id) { id } }", json!({ "id": id })).await;
}

/// How an import from a host it may not reach (or that does not answer) is refused.
const NOT_IMPORTABLE: &str = "no answer from that host, or it is not one documents may be imported from";

/// Serves the document on `address` (port 0 = any), with `/redirect` pointing at `to`.
async fn document_host(address: &str, to: Option<String>) -> String {
    let listener = tokio::net::TcpListener::bind(address).await.expect("bind a loopback address");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let doc = document("http://127.0.0.1:9/");
    let mut router = Router::new().route("/doc.json", get(move || async move { doc }));
    if let Some(to) = to {
        router = router.route("/redirect", get(move || async move { Redirect::temporary(&to) }));
    }
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test]
async fn documents_are_never_fetched_from_a_blocked_address_however_it_is_reached() {
    let hidden = document_host("127.0.0.2:0", None).await;
    let port = hidden.rsplit(':').next().unwrap().to_owned();
    let front = document_host("127.0.0.1:0", Some(format!("{hidden}/doc.json"))).await;

    // Without a block the hidden host serves fine: the refusals below are the guard's doing.
    let open = spawn_app_with(&[]).await;
    let project = open.create_project("Open").await;
    let fetched = open.graphql(IMPORT_URL, json!({ "p": project, "u": format!("{hidden}/doc.json") })).await;
    assert!(fetched.data()["analyzeOpenApi"]["spec"]["id"].is_string());

    let app = spawn_app_with(&[("BLOCKED_TARGETS", "127.0.0.2"), ("IMPORT_FETCH_SECONDS", "1")]).await;
    let project = app.create_project("Guarded").await;
    for url in [
        format!("{hidden}/doc.json"), // the address itself
        format!("{front}/redirect"),  // a redirect to it
    ] {
        let refused = app.graphql(IMPORT_URL, json!({ "p": project, "u": url })).await;
        // The same answer as a closed port (issue 14): the refusal says no more than that.
        assert_eq!(refused.error_code(), "BAD_USER_INPUT", "{url}: {}", refused.body);
        assert!(refused.error_message().contains(NOT_IMPORTABLE), "{}", refused.body);
    }

    // A name that resolves to a blocked address: `localhost` with all of loopback blocked.
    let names =
        spawn_app_with(&[("BLOCKED_TARGETS", "127.0.0.0/8,::1"), ("IMPORT_FETCH_SECONDS", "1")]).await;
    let project = names.create_project("Names").await;
    let url = format!("http://localhost:{port}/doc.json");
    let refused = names.graphql(IMPORT_URL, json!({ "p": project, "u": url })).await;
    assert_eq!(refused.error_code(), "BAD_USER_INPUT", "{}", refused.body);
    assert!(refused.error_message().contains(NOT_IMPORTABLE), "{}", refused.body);
    let specs = names.graphql("{ openApiSpecs { id } }", json!({})).await;
    assert_eq!(specs.data()["openApiSpecs"].as_array().map(Vec::len), Some(0), "nothing imported");
}
