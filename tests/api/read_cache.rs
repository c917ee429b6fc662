//! The read caches (catalogues by spec revision, runs' scenarios and stages by the run's
//! `updated_at`): a write made through any replica shows at once on every other one, and a
//! warm answer is the same as one read without any cache.

use metric_vault::{
    db::{
        entities::openapi_spec,
        repo::{import, runs},
    },
    openapi::parse_document,
    seed::{self, Figures, Run, ScenarioSeed},
};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::helpers::{TestApp, fixture, spawn_app, spawn_with, test_settings_with};

const CATALOGUE: &str = r#"query($id: ID!) { project(id: $id) { endpointCount specs { title tags { name endpoints {
    id method path operationId summary deprecated
    parameters { name location required schemaType example } requestBody { contentType required example } } }
    endpoints { path summary } } } }"#;

const BOARD: &str = r#"query($id: ID!) { testHistories(filter: {projectId: $id}, first: 50) { totalCount nodes {
    id title status verdict summary { totalRequests p95ResponseTime }
    scenarios { name verdict summary { totalRequests p95ResponseTime } stages { duration target } endpoint { method path } } } } }"#;

/// A second server on `app`'s database: a replica, with its read caches on or off.
async fn replica(app: &TestApp, cache_rows: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings_with(dir.path(), &[("READ_CACHE_ROWS", cache_rows)]).await;
    settings.database_url = app.database_url.clone();
    spawn_with(settings, dir).await
}

async fn answer(app: &TestApp, query: &str, id: &str) -> Value {
    app.graphql(query, json!({ "id": id })).await.data().clone()
}

async fn import(app: &TestApp, project: &str, document: String) {
    let response = app
        .graphql(
            "mutation($input: AnalyzeOpenApiInput!) { analyzeOpenApi(input: $input) { spec { id } } }",
            json!({ "input": { "projectId": project, "document": document } }),
        )
        .await;
    response.data();
}

/// The petstore with one path gone, one added, a summary and a parameter changed.
fn petstore_revised() -> String {
    let mut document: Value = serde_json::from_str(&fixture("oai-v2.0-petstore.json")).unwrap();
    let paths = document["paths"].as_object_mut().unwrap();
    let moved = paths.remove("/pets/{petId}").unwrap();
    paths.insert("/pets/{petId}/toys".to_owned(), moved);
    let list = &mut paths["/pets"]["get"];
    list["summary"] = json!("List every pet, revised");
    list["parameters"][0]["name"] = json!("max");
    document.to_string()
}

#[tokio::test]
async fn a_reimport_through_one_replica_shows_at_once_on_the_others() {
    let app = spawn_app().await;
    let other = replica(&app, "200000").await;
    let uncached = replica(&app, "0").await;
    let project = app.create_project("Petstore").await;
    import(&app, &project, fixture("oai-v2.0-petstore.json")).await;
    // Both caching servers now hold the first version.
    let first = answer(&uncached, CATALOGUE, &project).await;
    assert_eq!(answer(&app, CATALOGUE, &project).await, first);
    assert_eq!(answer(&other, CATALOGUE, &project).await, first);
    assert_eq!(answer(&app, CATALOGUE, &project).await, first, "a warm answer is the same");

    import(&other, &project, petstore_revised()).await;

    let revised = answer(&uncached, CATALOGUE, &project).await;
    assert_ne!(revised, first);
    assert_eq!(answer(&app, CATALOGUE, &project).await, revised, "the replica that did not import");
    assert_eq!(answer(&other, CATALOGUE, &project).await, revised, "the replica that imported");
    let text = revised.to_string();
    assert!(text.contains("/pets/{petId}/toys") && !text.contains("\"/pets/{petId}\""), "{text}");
    assert!(text.contains("List every pet, revised") && text.contains("\"max\""), "{text}");
}

#[tokio::test]
async fn a_body_schema_is_read_even_when_the_catalogue_is_cached() {
    let app = spawn_app().await;
    let project = app.create_project("Petstore").await;
    import(&app, &project, fixture("swagger-petstore-v3-openapi.yaml")).await;
    answer(&app, CATALOGUE, &project).await;

    let with_schema = r#"query($id: ID!) { project(id: $id) { specs { tags { endpoints {
        path requestBody { contentType schema } } } } } }"#;
    let answer = answer(&app, with_schema, &project).await;
    let bodies: Vec<&Value> = answer["project"]["specs"][0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|tag| tag["endpoints"].as_array().unwrap())
        .filter_map(|endpoint| endpoint["requestBody"].as_object().map(|_| &endpoint["requestBody"]))
        .collect();
    assert!(!bodies.is_empty(), "{answer}");
    assert!(bodies.iter().all(|body| body["schema"].is_object()), "{answer}");
}

/// A run of four scenarios whose results are not in yet.
async fn run_without_results(app: &TestApp, project: &str) -> (i64, Vec<i64>) {
    let spec = seed::spec(&app.db, project.parse().unwrap(), "http://127.0.0.1:9000", 2, 8).await;
    let mut run = Run::new(project.parse().unwrap());
    for s in 0..4 {
        run = run.scenario(ScenarioSeed {
            endpoint_id: spec.endpoint_ids[s],
            response_time_target: Some(200.0),
            error_rate_target: Some(1.0),
            summary: None,
        });
    }
    (run.insert(&app.db).await, spec.endpoint_ids)
}

#[tokio::test]
async fn results_stored_later_show_at_once_on_every_replica_board() {
    let app = spawn_app().await;
    let other = replica(&app, "200000").await;
    let uncached = replica(&app, "0").await;
    let project = app.create_project("Shop").await;
    let (run, _) = run_without_results(&app, &project).await;
    let before = answer(&uncached, BOARD, &project).await;
    assert_eq!(answer(&app, BOARD, &project).await, before);
    assert_eq!(answer(&other, BOARD, &project).await, before);
    assert!(before["testHistories"]["nodes"][0]["scenarios"][0]["summary"].is_null());

    // What the lifecycle does when InfluxDB comes back: one transaction, the run's
    // `updated_at` written with its scenarios' results.
    let figures = Figures { p95: 150.0, error_rate: 0.2, avg_tps: 40.0 }.summary();
    let scenarios: Vec<(String, _)> = (0..4).map(|s| (format!("scenario_{s}"), figures.clone())).collect();
    runs::store_late_summary(&other.db, run, &figures, &scenarios).await.unwrap();

    let after = answer(&uncached, BOARD, &project).await;
    assert_ne!(after, before);
    assert_eq!(
        after["testHistories"]["nodes"][0]["scenarios"][3]["summary"]["p95ResponseTime"],
        json!(150.0)
    );
    assert_eq!(answer(&app, BOARD, &project).await, after);
    assert_eq!(answer(&other, BOARD, &project).await, after);
}

#[tokio::test]
async fn a_board_endpoint_shows_its_current_summary_after_a_reimport() {
    let app = spawn_app().await;
    let project = app.create_project("Petstore").await;
    import(&app, &project, fixture("oai-v2.0-petstore.json")).await;
    let list_pets = app
        .graphql(r#"query { endpoints(filter: {search: "/pets"}) { nodes { id method path } } }"#, json!({}))
        .await
        .data()["endpoints"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["method"] == "GET" && node["path"] == "/pets")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    let run = Run::new(project.parse().unwrap()).scenario(ScenarioSeed {
        endpoint_id: list_pets,
        response_time_target: None,
        error_rate_target: None,
        summary: None,
    });
    run.insert(&app.db).await;
    let with_summary = r#"query($id: ID!) { testHistories(filter: {projectId: $id}) { nodes {
        scenarios { endpoint { method path summary } } } } }"#;
    let endpoint = |answer: Value| answer["testHistories"]["nodes"][0]["scenarios"][0]["endpoint"].clone();
    // The identity-only board fills the run's cache entry first.
    answer(&app, BOARD, &project).await;
    assert_ne!(endpoint(answer(&app, with_summary, &project).await)["summary"], "List every pet, revised");

    import(&app, &project, petstore_revised()).await;

    let shown = endpoint(answer(&app, with_summary, &project).await);
    assert_eq!(shown, json!({"method": "GET", "path": "/pets", "summary": "List every pet, revised"}));
}

#[tokio::test]
async fn the_count_of_runs_follows_launches_and_deletes_on_every_replica() {
    let app = spawn_app().await;
    let other = replica(&app, "200000").await;
    let project = app.create_project("Shop").await;
    let (first, _) = run_without_results(&app, &project).await;
    let count = "query($id: ID!) { testHistories(filter: {projectId: $id}) { totalCount }
        project(id: $id) { testHistories { totalCount } } }";
    let totals = |answer: Value| {
        (
            answer["testHistories"]["totalCount"].as_i64(),
            answer["project"]["testHistories"]["totalCount"].as_i64(),
        )
    };
    assert_eq!(totals(answer(&app, count, &project).await), (Some(1), Some(1)));
    assert_eq!(totals(answer(&other, count, &project).await), (Some(1), Some(1)));

    // A run added (the seed writes it as a launch does: with the project's runs revision).
    Run::new(project.parse().unwrap()).insert(&other.db).await;
    assert_eq!(totals(answer(&app, count, &project).await), (Some(2), Some(2)));

    let deleted = other
        .graphql("mutation($id: ID!) { deleteTestHistory(id: $id) }", json!({ "id": first.to_string() }))
        .await;
    deleted.data();
    assert_eq!(totals(answer(&app, count, &project).await), (Some(1), Some(1)));
    assert_eq!(totals(answer(&other, count, &project).await), (Some(1), Some(1)));
}

/// One document under one base URL, every text of it marked with `mark`.
fn marked_document(mark: &str) -> String {
    json!({
        "openapi": "3.0.3", "info": { "title": format!("race {mark}"), "version": "1" },
        "servers": [{ "url": "http://127.0.0.1:9000" }],
        "tags": [{ "name": format!("tag-{mark}") }],
        "paths": { "/p0": { "get": {
            "tags": [format!("tag-{mark}")], "summary": mark,
            "parameters": [{ "name": format!("q{mark}"), "in": "query", "schema": { "type": "string" } }],
            "responses": { "200": { "description": "ok" } }
        } } }
    })
    .to_string()
}

const MARKED: &str = r#"query($id: ID!) { openApiSpec(id: $id) { title tags { name endpoints { summary } }
    endpoints { summary parameters { name } } } }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imports_racing_through_two_replicas_leave_every_cache_showing_what_the_database_holds() {
    let app = spawn_app().await;
    let other = replica(&app, "200000").await;
    let uncached = replica(&app, "0").await;
    let project = app.create_project("Race").await;
    let imported = app
        .graphql(
            "mutation($input: AnalyzeOpenApiInput!) { analyzeOpenApi(input: $input) { spec { id } } }",
            json!({ "input": { "projectId": project, "document": marked_document("first") } }),
        )
        .await;
    let spec = imported.data()["analyzeOpenApi"]["spec"]["id"].as_str().unwrap().to_owned();
    let revision = || async {
        let spec = openapi_spec::Entity::find_by_id(spec.parse::<i64>().unwrap()).one(&app.db).await.unwrap();
        spec.unwrap().revision
    };
    for round in 0..10 {
        let before = revision().await;
        // Readers on both caching servers for as long as the two imports take.
        let done = std::sync::atomic::AtomicBool::new(false);
        let reader = |server: &'static str| {
            let (done, spec) = (&done, &spec);
            let app = if server == "app" { &app } else { &other };
            async move {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    answer(app, MARKED, spec).await;
                }
            }
        };
        // Straight to the store, each through its own server's pool: a server lets one import
        // run at a time, and two servers are two processes in production.
        let store = |db: &'static str, mark: String| {
            let db = if db == "app" { &app.db } else { &other.db };
            let parsed = parse_document(&marked_document(&mark), None, None).unwrap();
            let project = project.parse().unwrap();
            async move { import::import_spec(db, project, &parsed, None).await.unwrap() }
        };
        let imports = async {
            tokio::join!(store("app", format!("a{round}")), store("other", format!("b{round}")));
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        };
        tokio::join!(imports, reader("app"), reader("app"), reader("other"), reader("other"));
        // Each import is a revision of its own, or a cache could file one under the other's.
        assert_eq!(revision().await, before + 2, "round {round}");
        let truth = answer(&uncached, MARKED, &spec).await;
        // One whole document won: nothing of the other is left in the database.
        let mark = truth["openApiSpec"]["title"].as_str().unwrap().trim_start_matches("race ").to_owned();
        assert_eq!(truth["openApiSpec"]["endpoints"][0]["summary"], json!(mark), "{truth}");
        assert_eq!(truth["openApiSpec"]["endpoints"][0]["parameters"][0]["name"], json!(format!("q{mark}")));
        assert_eq!(truth["openApiSpec"]["tags"][0]["name"], json!(format!("tag-{mark}")), "{truth}");
        assert_eq!(answer(&app, MARKED, &spec).await, truth, "round {round}");
        assert_eq!(answer(&other, MARKED, &spec).await, truth, "round {round}");
    }
}
