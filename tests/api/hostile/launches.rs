//! Hostile input: launches. A launch may not ask for more load than the budgets allow
//! (`MAX_VUS_PER_TEST`, `MAX_RATE_PER_TEST`), and the credentials it sends to its target stay
//! out of the script every reader sees: k6 gets them through its environment, and readers below
//! OPERATOR see their values as `***`.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, extract::State, http::HeaderMap, routing::get};
use metric_vault::{db::entities::test_history, metrics::test_influxd::InfluxServer, seed::Run as SeededRun};
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
use serde_json::{Value, json};

use super::assert_healthy;
use crate::helpers::{GraphQlResponse, TestApp, client_with_token, serve, spawn_app_with};

const LAUNCH: &str =
    "mutation($input: LaunchLoadTestInput!) { launchLoadTest(input: $input) { id k6Script } }";

/// A run as the field-by-field resolvers answer it.
const RUN: &str = "query($id: ID!) { testHistory(id: $id) {
    id status isCompleted failureReason k6Script scenarios { name request } } }";

/// The same fields through the board's page-at-once path.
const BOARD: &str = "query($p: ID!) { testHistories(filter: {projectId: $p}, first: 10) { nodes {
    id k6Script scenarios { name request } } } }";

/// Headers the target received, one map per request.
type Received = Arc<Mutex<Vec<HeaderMap>>>;

/// A target that records the headers of every request, imported into a project of `app`:
/// the project's id and the endpoint's.
async fn recording_target(app: &TestApp) -> (String, String, Received) {
    let received: Received = Arc::default();
    let router = Router::new()
        .route(
            "/items",
            get(|State(received): State<Received>, headers: HeaderMap| async move {
                received.lock().unwrap().push(headers);
                "[]"
            }),
        )
        .with_state(received.clone());
    let base = serve(router).await;
    let document = json!({
        "openapi": "3.0.3",
        "info": { "title": "Recording target", "version": "1" },
        "servers": [{ "url": base }],
        "paths": { "/items": { "get": { "operationId": "listItems", "responses": { "200": { "description": "ok" } } } } }
    });
    let project = app.create_project("Budgets and secrets").await;
    let imported = app
        .graphql(
            "mutation($p: ID!, $d: String!) { analyzeOpenApi(input: {projectId: $p, document: $d}) { spec { endpoints { id } } } }",
            json!({ "p": project, "d": document.to_string() }),
        )
        .await;
    let endpoint =
        imported.data()["analyzeOpenApi"]["spec"]["endpoints"][0]["id"].as_str().unwrap().to_owned();
    (project, endpoint, received)
}

async fn token(app: &TestApp, role: &str) -> reqwest::Client {
    let created = app
        .graphql(
            "mutation($n: String!, $r: Role!) { createApiToken(input: {name: $n, role: $r}) { token } }",
            json!({ "n": format!("{role} token"), "r": role }),
        )
        .await;
    client_with_token(created.data()["createApiToken"]["token"].as_str().unwrap())
}

async fn runs_written(app: &TestApp) -> u64 {
    test_history::Entity::find().count(&app.db).await.unwrap()
}

/// Asserts a refusal: BAD_USER_INPUT at `field`, its message naming each of `named`.
fn assert_refused(response: &GraphQlResponse, field: &str, named: &[&str]) {
    assert_eq!(response.error_code(), "BAD_USER_INPUT", "{}", response.body);
    assert_eq!(response.body["errors"][0]["extensions"]["field"], field, "{}", response.body);
    for name in named {
        assert!(response.error_message().contains(name), "{name:?} not in {:?}", response.error_message());
    }
}

fn scenario(name: &str, endpoint: &str, executor: &str, target: i64) -> Value {
    json!({ "name": name, "endpointId": endpoint, "executor": executor, "thinkTime": 0.1,
            "stages": [{ "duration": "2s", "target": target }] })
}

#[tokio::test]
async fn one_scenario_asking_for_more_vus_rate_or_vu_pool_than_the_budget_is_refused_and_nothing_is_written()
{
    let app = spawn_app_with(&[]).await;
    let (_, endpoint, received) = recording_target(&app).await;
    let mut pool = scenario("pool", &endpoint, "CONSTANT_ARRIVAL_RATE", 10);
    pool["maxVus"] = json!(i32::MAX);
    let cases = [
        (
            scenario("swarm", &endpoint, "RAMPING_VUS", i64::from(i32::MAX)),
            "scenarios[0].stages",
            "MAX_VUS_PER_TEST",
        ),
        (
            scenario("flood", &endpoint, "CONSTANT_ARRIVAL_RATE", i64::from(i32::MAX)),
            "scenarios[0].stages",
            "MAX_RATE_PER_TEST",
        ),
        (scenario("crowd", &endpoint, "CONSTANT_VUS", 1_001), "scenarios[0].stages", "MAX_VUS_PER_TEST"),
        (pool, "scenarios[0].maxVus", "MAX_VUS_PER_TEST"),
    ];

    for (scenario, field, variable) in cases {
        let name = scenario["name"].as_str().unwrap().to_owned();
        let response =
            app.graphql(LAUNCH, json!({ "input": { "title": "too much", "scenarios": [scenario] } })).await;
        let limit = if variable == "MAX_VUS_PER_TEST" { "1000" } else { "5000" };
        assert_refused(&response, field, &[&format!("`{name}`"), variable, limit]);
        assert_healthy(&app).await;
    }

    assert_eq!(runs_written(&app).await, 0, "no run recorded");
    let scripts = std::fs::read_dir(app.scripts_dir()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(scripts, 0, "no script written, so no k6 started");
    assert!(received.lock().unwrap().is_empty(), "the target got nothing");
}

#[tokio::test]
async fn scenarios_summing_over_the_budget_are_refused_at_the_one_that_tips_it_and_parallelism_splits_the_load()
 {
    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[
        ("INFLUXDB_PORT", &influx.port().to_string()),
        ("MAX_VUS_PER_TEST", "10"),
        ("MAX_RATE_PER_TEST", "20"),
    ])
    .await;
    let (_, endpoint, received) = recording_target(&app).await;
    let vus = |name: &str, executor: &str, target: i64| scenario(name, &endpoint, executor, target);
    let rate = |name: &str, target: i64| {
        let mut rate = scenario(name, &endpoint, "CONSTANT_ARRIVAL_RATE", target);
        rate["maxVus"] = json!(2);
        rate
    };

    // 4 + 4 + 4 VUs: the third scenario takes the test past 10.
    let three = json!({ "title": "three", "parallelism": 2, "scenarios": [
        vus("first", "CONSTANT_VUS", 4), vus("second", "RAMPING_VUS", 4), vus("third", "CONSTANT_VUS", 4)] });
    assert_refused(
        &app.graphql(LAUNCH, json!({ "input": three })).await,
        "scenarios[2].stages",
        &["`third`", "12 VUs", "10", "MAX_VUS_PER_TEST"],
    );
    // 15 + 10 iterations/s: the second takes it past 20.
    let rates = json!({ "title": "rates", "scenarios": [rate("steady", 15), rate("burst", 10)] });
    assert_refused(
        &app.graphql(LAUNCH, json!({ "input": rates })).await,
        "scenarios[1].stages",
        &["`burst`", "25 iterations/s", "MAX_RATE_PER_TEST"],
    );
    // 4 VUs + an arrival-rate pool of 2 + 6 VUs: the pools count too.
    let pools = json!({ "title": "pools", "scenarios": [
        vus("first", "CONSTANT_VUS", 4), rate("steady", 5), vus("third", "RAMPING_VUS", 6)] });
    assert_refused(
        &app.graphql(LAUNCH, json!({ "input": pools })).await,
        "scenarios[2].stages",
        &["`third`", "12 VUs"],
    );
    assert_healthy(&app).await;
    assert_eq!(runs_written(&app).await, 0, "no run recorded");
    assert!(received.lock().unwrap().is_empty(), "the target got nothing");

    // 4 + 4 VUs split over 4 k6 instances: 8 in all, not 32, so it runs.
    let fits = json!({ "title": "fits", "parallelism": 4, "scenarios": [
        vus("first", "CONSTANT_VUS", 4), vus("second", "CONSTANT_VUS", 4)] });
    let launched = app.graphql(LAUNCH, json!({ "input": fits })).await;
    let id = launched.data()["launchLoadTest"]["id"].as_str().unwrap().to_owned();
    let run = wait_until_finished(&app, &app.client, &id).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let vus_max: i64 = (0..4)
        .map(|instance| {
            let path = app.scripts_dir().join(format!("summary-{id}-{instance}.json"));
            let summary: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            summary["metrics"]["vus_max"]["value"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(vus_max, 8, "the instances together ran the 8 VUs the scenarios asked for");
}

async fn wait_until_finished(app: &TestApp, client: &reqwest::Client, id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let run = app.graphql_with(client, RUN, json!({ "id": id })).await.data()["testHistory"].clone();
        if run["isCompleted"] == true {
            return run;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "run {id} not finished: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const BEARER: &str = "Bearer s3cr3t";
const SIGNATURE: &str = "t3n4nt-51gn4tur3";

#[tokio::test]
async fn credentials_reach_the_target_through_k6s_environment_and_no_viewer_reads_them() {
    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string())]).await;
    let (project, endpoint, received) = recording_target(&app).await;
    let (viewer, operator) = (token(&app, "VIEWER").await, token(&app, "OPERATOR").await);
    let mut with_credentials = scenario("with credentials", &endpoint, "CONSTANT_VUS", 1);
    with_credentials["request"] = json!({
        "headers": { "Authorization": BEARER, "X-Tenant-Signature": SIGNATURE, "X-Plain": "visible" },
        "secretHeaders": ["x-tenant-signature"]
    });
    let input = json!({ "title": "secrets", "scenarios": [with_credentials] });

    let launched = app.graphql_with(&operator, LAUNCH, json!({ "input": input })).await;

    let id = launched.data()["launchLoadTest"]["id"].as_str().unwrap().to_owned();
    let script = launched.data()["launchLoadTest"]["k6Script"].as_str().unwrap().to_owned();
    assert!(script.contains("\"Authorization\": __ENV.MV_SECRET_0,"), "{script}");
    assert!(script.contains("\"X-Tenant-Signature\": __ENV.MV_SECRET_1,"), "{script}");
    assert!(script.contains("\"X-Plain\": \"visible\","), "{script}");
    let run = wait_until_finished(&app, &viewer, &id).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");

    // k6 sent the real values on every request.
    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "the target was called");
    for headers in &received {
        assert_eq!(headers["authorization"], BEARER);
        assert_eq!(headers["x-tenant-signature"], SIGNATURE);
        assert_eq!(headers["x-plain"], "visible");
    }
    // Neither the stored script nor the file k6 ran holds them.
    let row =
        test_history::Entity::find_by_id(id.parse::<i64>().unwrap()).one(&app.db).await.unwrap().unwrap();
    let file = std::fs::read_to_string(app.scripts_dir().join(&row.k6_script_file_name)).unwrap();
    for (what, text) in [("stored script", &row.k6_script), ("script file", &file)] {
        assert!(!text.contains("s3cr3t") && !text.contains(SIGNATURE), "{what}: {text}");
    }
    // A viewer reads neither, by either path; an operator reads the request values, and the
    // same script (which has none).
    for (path, query, variables) in
        [("field by field", RUN, json!({ "id": id })), ("board", BOARD, json!({ "p": project }))]
    {
        let as_viewer = app.graphql_with(&viewer, query, variables.clone()).await;
        let text = as_viewer.body.to_string();
        assert!(!text.contains("s3cr3t") && !text.contains(SIGNATURE), "{path}: {text}");
        let viewed = run_of(&as_viewer);
        assert_eq!(viewed["k6Script"], script.as_str(), "{path}");
        assert_eq!(
            viewed["scenarios"][0]["request"],
            json!({ "headers": { "Authorization": "***", "X-Tenant-Signature": "***", "X-Plain": "visible" },
                    "secretHeaders": ["x-tenant-signature"] }),
            "{path}"
        );

        let as_operator = app.graphql_with(&operator, query, variables).await;
        let seen = run_of(&as_operator);
        assert_eq!(seen["k6Script"], script.as_str(), "{path}");
        assert_eq!(
            seen["scenarios"][0]["request"]["headers"],
            json!({ "Authorization": BEARER, "X-Tenant-Signature": SIGNATURE, "X-Plain": "visible" }),
            "{path}"
        );
    }
    assert_healthy(&app).await;
}

fn run_of(response: &GraphQlResponse) -> &Value {
    let data = response.data();
    if data["testHistory"].is_object() { &data["testHistory"] } else { &data["testHistories"]["nodes"][0] }
}

#[tokio::test]
async fn a_secret_header_name_the_headers_do_not_have_is_refused_rather_than_left_in_the_script() {
    let app = spawn_app_with(&[]).await;
    let (_, endpoint, _) = recording_target(&app).await;
    let mut misspelt = scenario("misspelt", &endpoint, "CONSTANT_VUS", 1);
    misspelt["request"] =
        json!({ "headers": { "X-Tenant-Signature": SIGNATURE }, "secretHeaders": ["X-Tenant-Sig"] });

    let response =
        app.graphql(LAUNCH, json!({ "input": { "title": "typo", "scenarios": [misspelt] } })).await;

    assert_refused(&response, "scenarios[0].request.secretHeaders[0]", &["X-Tenant-Sig"]);
    assert_eq!(runs_written(&app).await, 0);
    assert_healthy(&app).await;
}

#[tokio::test]
async fn a_header_name_that_is_not_a_token_is_refused_rather_than_let_past_the_secret_names() {
    let app = spawn_app_with(&[]).await;
    let (_, endpoint, _) = recording_target(&app).await;
    let mut spaced = scenario("spaced", &endpoint, "CONSTANT_VUS", 1);
    // The red team's case: a trailing space made "X-Sig " miss `secretHeaders: ["X-SIG"]`.
    spaced["request"] = json!({ "headers": { "X-Sig ": SIGNATURE }, "secretHeaders": ["X-SIG"] });

    let response = app.graphql(LAUNCH, json!({ "input": { "title": "space", "scenarios": [spaced] } })).await;

    assert_refused(&response, "scenarios[0].request.headers", &["X-Sig "]);
    assert_eq!(runs_written(&app).await, 0);
    assert_healthy(&app).await;
}

#[tokio::test]
async fn scripts_stored_before_the_rule_show_viewers_their_credentials_masked() {
    let app = spawn_app_with(&[]).await;
    let project = app.create_project("Old runs").await;
    let id = SeededRun::new(project.parse().unwrap()).insert(&app.db).await;
    let old_script = "export function scenario_0() {\n  http.request(\n    \"GET\",\n    \"http://127.0.0.1:1/\",\n    null,\n    {\n      headers: {\n        \"Authorization\": \"Bearer 0ld-s3cr3t\",\n        \"X-Plain\": \"visible\",\n      },\n    },\n  );\n}\n";
    test_history::ActiveModel {
        id: sea_orm::Unchanged(id),
        k6_script: Set(old_script.to_owned()),
        ..Default::default()
    }
    .update(&app.db)
    .await
    .unwrap();
    let viewer = token(&app, "VIEWER").await;
    let operator = token(&app, "OPERATOR").await;

    for (path, query, variables) in
        [("field by field", RUN, json!({ "id": id.to_string() })), ("board", BOARD, json!({ "p": project }))]
    {
        let viewed = app.graphql_with(&viewer, query, variables.clone()).await;
        assert_eq!(
            run_of(&viewed)["k6Script"],
            old_script.replace("Bearer 0ld-s3cr3t", "***").as_str(),
            "{path}"
        );
        let seen = app.graphql_with(&operator, query, variables).await;
        assert_eq!(run_of(&seen)["k6Script"], old_script, "{path}");
    }
}
