//! analyzeOpenApi on real documents, by text and by URL; re-import; bad input writes nothing.

use axum::{Router, http::StatusCode, routing::get};
use metric_vault::db::entities::{endpoint, openapi_spec};
use metric_vault::seed::{self, Run};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::helpers::{TestApp, fixture, serve, spawn_app};

const ANALYZE: &str = r#"mutation($input: AnalyzeOpenApiInput!) { analyzeOpenApi(input: $input) {
    created addedEndpoints removedEndpoints unchangedEndpoints warnings
    spec { id title version baseUrl specFormat sourceUrl tags { name description endpoints { id } } } } }"#;

async fn analyze(app: &TestApp, input: Value) -> crate::helpers::GraphQlResponse {
    app.graphql(ANALYZE, json!({ "input": input })).await
}

async fn endpoint_count(app: &TestApp, spec_id: &str) -> i64 {
    let response = app
        .graphql("query($s: ID) { endpoints(filter: {specId: $s}) { totalCount } }", json!({ "s": spec_id }))
        .await;
    response.data()["endpoints"]["totalCount"].as_i64().unwrap()
}

#[tokio::test]
async fn every_corpus_document_imports_as_its_manifest_says() {
    let app = spawn_app().await;
    let manifest: Value = serde_json::from_str(&fixture("MANIFEST.json")).unwrap();
    for entry in manifest["documents"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let project = app.create_project(file).await;
        let absolute = entry["base_url_kind"] == "absolute";
        let mut input = json!({ "projectId": project, "document": fixture(file) });
        if !absolute {
            input["baseUrl"] = json!("http://127.0.0.1:9/api");
        }

        let response = analyze(&app, input).await;

        let result = &response.data()["analyzeOpenApi"];
        let spec = &result["spec"];
        let operations = entry["operations"].as_i64().unwrap();
        assert_eq!(result["created"], true, "{file}");
        assert_eq!(result["addedEndpoints"], operations, "{file}");
        assert_eq!(endpoint_count(&app, spec["id"].as_str().unwrap()).await, operations, "{file}");
        assert_eq!(spec["title"], entry["title"], "{file}");
        let family = if entry["spec_family"] == "swagger-2.0" { "swagger" } else { "openapi" };
        assert_eq!(
            spec["specFormat"],
            format!("{family} {}", entry["spec_version"].as_str().unwrap()),
            "{file}"
        );
        let expected_base =
            if absolute { entry["base_url"].as_str().unwrap() } else { "http://127.0.0.1:9/api" };
        assert_eq!(spec["baseUrl"], expected_base, "{file}");

        let tags = spec["tags"].as_array().unwrap();
        let mut names: Vec<&str> =
            entry["tags_used"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        names.extend(entry["declared_tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()));
        names.sort();
        names.dedup();
        let untagged = entry["untagged_operations"].as_i64().unwrap();
        assert_eq!(tags.len(), names.len() + usize::from(untagged > 0), "{file}: tags");
        for declared in entry["declared_tags"].as_array().unwrap() {
            assert!(tags.iter().any(|t| &t["name"] == declared), "{file}: declared tag {declared}");
        }
        let default_tag = tags.iter().find(|t| t["name"] == "default");
        assert_eq!(
            default_tag.map_or(0, |t| t["endpoints"].as_array().unwrap().len() as i64),
            untagged,
            "{file}: default"
        );
        if entry["webhook_operations"].as_i64().unwrap() > 0 {
            assert!(
                result["warnings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w.as_str().unwrap().contains("webhook")),
                "{file}"
            );
        }
    }
}

#[tokio::test]
async fn a_document_by_url_resolves_its_relative_server_against_its_own_address() {
    let app = spawn_app().await;
    let host = serve(Router::new().route(
        "/docs/openapi.json",
        get(|| async { fixture("swagger-petstore-v31-code-first-openapi.json") }),
    ))
    .await;
    let project = app.create_project("Petstore").await;

    let response =
        analyze(&app, json!({ "projectId": project, "url": format!("{host}/docs/openapi.json") })).await;

    let spec = &response.data()["analyzeOpenApi"]["spec"];
    assert_eq!(spec["baseUrl"], format!("{host}/api/v31"));
    assert_eq!(spec["sourceUrl"], format!("{host}/docs/openapi.json"));
}

#[tokio::test]
async fn imported_endpoints_carry_parameters_bodies_and_examples() {
    let app = spawn_app().await;
    let project = app.create_project("Petstore").await;
    let response = analyze(
        &app,
        json!({ "projectId": project, "document": fixture("swagger-petstore-v3-openapi.yaml") }),
    )
    .await;
    let spec_id = response.data()["analyzeOpenApi"]["spec"]["id"].as_str().unwrap().to_owned();

    let endpoints = app
        .graphql(
            r#"query($s: ID) { endpoints(filter: {specId: $s, search: "/pet/{petId}"}, first: 10) { nodes {
                method path operationId tags { name } parameters { name location required schemaType example }
                requestBody { contentType required example } } } }"#,
            json!({ "s": spec_id }),
        )
        .await;

    let nodes = endpoints.data()["endpoints"]["nodes"].as_array().unwrap().clone();
    let get_pet =
        nodes.iter().find(|n| n["method"] == "GET" && n["path"] == "/pet/{petId}").expect("GET /pet/{petId}");
    assert_eq!(get_pet["operationId"], "getPetById");
    assert_eq!(get_pet["tags"], json!([{"name": "pet"}]));
    let pet_id = &get_pet["parameters"][0];
    assert_eq!(
        (pet_id["name"].as_str(), pet_id["location"].as_str(), pet_id["required"].as_bool()),
        (Some("petId"), Some("PATH"), Some(true))
    );
    assert_eq!(pet_id["schemaType"], "integer");
    assert!(pet_id["example"].is_i64(), "an integer example for an integer id: {}", pet_id["example"]);

    let all = app
        .graphql(
            r#"query($s: ID) { endpoints(filter: {specId: $s, method: PUT, search: "/pet"}) { nodes { path requestBody { contentType required example } } } }"#,
            json!({ "s": spec_id }),
        )
        .await;
    let put_pet = &all.data()["endpoints"]["nodes"][0];
    assert_eq!(put_pet["requestBody"]["contentType"], "application/json");
    assert_eq!(put_pet["requestBody"]["required"], true);
    assert_eq!(put_pet["requestBody"]["example"]["name"], "doggie", "the schema's own example");
}

fn petstore_variant(drop_path: &str, add_path: &str) -> String {
    let mut document: Value = serde_json::from_str(&fixture("oai-v2.0-petstore.json")).unwrap();
    let paths = document["paths"].as_object_mut().unwrap();
    let template = paths[drop_path].clone();
    paths.remove(drop_path);
    paths.insert(add_path.to_owned(), template);
    document.to_string()
}

#[tokio::test]
async fn reimporting_updates_the_spec_in_place_and_keeps_ids() {
    let app = spawn_app().await;
    let project = app.create_project("Petstore").await;
    let first =
        analyze(&app, json!({ "projectId": project, "document": fixture("oai-v2.0-petstore.json") })).await;
    let spec_id = first.data()["analyzeOpenApi"]["spec"]["id"].as_str().unwrap().to_owned();
    let before = app
        .graphql(
            "query($s: ID) { endpoints(filter: {specId: $s}) { nodes { id method path } } }",
            json!({ "s": spec_id }),
        )
        .await
        .data()["endpoints"]["nodes"]
        .clone();
    let kept = before.as_array().unwrap().iter().find(|n| n["path"] == "/pets").unwrap()["id"].clone();
    let dropped_id: i64 =
        before.as_array().unwrap().iter().find(|n| n["path"] == "/pets/{petId}").unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    // A past run used the endpoint that is about to vanish: its result must stay readable.
    let run = Run::new(project.parse().unwrap())
        .scenario(seed::ScenarioSeed {
            endpoint_id: dropped_id,
            response_time_target: None,
            error_rate_target: None,
            summary: None,
        })
        .insert(&app.db)
        .await;

    let second = analyze(
        &app,
        json!({ "projectId": project, "document": petstore_variant("/pets/{petId}", "/pets/{petId}/toys") }),
    )
    .await;

    let result = &second.data()["analyzeOpenApi"];
    assert_eq!(result["created"], false);
    assert_eq!(result["spec"]["id"], spec_id.as_str());
    assert_eq!(
        (
            result["addedEndpoints"].as_i64(),
            result["removedEndpoints"].as_i64(),
            result["unchangedEndpoints"].as_i64()
        ),
        (Some(1), Some(1), Some(2))
    );
    let after = app
        .graphql(
            "query($s: ID) { endpoints(filter: {specId: $s}) { nodes { id path } } }",
            json!({ "s": spec_id }),
        )
        .await
        .data()["endpoints"]["nodes"]
        .clone();
    assert!(after.as_array().unwrap().iter().any(|n| n["id"] == kept), "unchanged endpoints keep their ids");
    assert!(!after.as_array().unwrap().iter().any(|n| n["path"] == "/pets/{petId}"));
    let history = app
        .graphql(
            "query($id: ID!) { testHistory(id: $id) { scenarios { endpoint { path } } } }",
            json!({ "id": run.to_string() }),
        )
        .await;
    assert_eq!(history.data()["testHistory"]["scenarios"][0]["endpoint"]["path"], "/pets/{petId}");
    assert_eq!(openapi_spec::Entity::find().count(&app.db).await.unwrap(), 1);
}

/// Each bad input is refused with BAD_USER_INPUT and a message naming the problem; nothing is written.
#[tokio::test]
async fn bad_documents_are_refused_with_a_message_and_write_nothing() {
    let app = spawn_app().await;
    let project = app.create_project("Target").await;
    let no_paths =
        json!({"swagger": "2.0", "info": {"title": "x", "version": "1"}, "host": "127.0.0.1"}).to_string();
    let broken_ref = json!({
        "openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "servers": [{"url": "http://127.0.0.1:9"}],
        "paths": {"/a": {"get": {"parameters": [{"$ref": "#/components/parameters/Nope"}], "responses": {"200": {"description": "ok"}}}}}
    })
    .to_string();
    let relative = json!({"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "servers": [{"url": "/v1"}], "paths": {}}).to_string();
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "document": "" }), "empty"),
        (json!({ "document": "<!doctype html><html><body>Login</body></html>" }), "HTML"),
        (json!({ "document": "{\"hello\": 1}" }), "not an OpenAPI"),
        (json!({ "document": "{ unbalanced" }), "neither JSON nor YAML"),
        (json!({ "document": no_paths }), "no `paths`"),
        (json!({ "document": broken_ref }), "#/components/parameters/Nope"),
        (json!({ "document": relative }), "baseUrl"),
        (json!({ "document": fixture("oai-v2.0-petstore.json"), "baseUrl": "ftp://x" }), "baseUrl"),
        (json!({}), "exactly one"),
        (json!({ "document": "{}", "url": "http://127.0.0.1:9/x" }), "exactly one"),
        (json!({ "url": "file:///etc/passwd" }), "only http and https"),
        (json!({ "url": "http://127.0.0.1:9/openapi.json" }), "could not fetch"),
    ];
    for (mut input, expected) in cases {
        input["projectId"] = json!(project);
        let response = analyze(&app, input.clone()).await;
        assert_eq!(response.error_code(), "BAD_USER_INPUT", "{input}");
        assert!(
            response.error_message().contains(expected),
            "{expected:?} not in {:?}",
            response.error_message()
        );
    }
    let unknown =
        analyze(&app, json!({ "projectId": "999", "document": fixture("oai-v2.0-petstore.json") })).await;
    assert_eq!(unknown.error_code(), "NOT_FOUND");
    assert_eq!(openapi_spec::Entity::find().count(&app.db).await.unwrap(), 0);
    assert_eq!(endpoint::Entity::find().count(&app.db).await.unwrap(), 0);
}

#[tokio::test]
async fn bad_urls_are_refused_with_a_message() {
    let app = spawn_app().await;
    let project = app.create_project("Target").await;
    let huge = "x".repeat(26 * 1024 * 1024);
    let host = serve(
        Router::new()
            .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no such document") }))
            .route("/huge.json", get(move || async move { format!("{{\"padding\": \"{huge}{huge}\"}}") }))
            .route("/hangs", get(|| async { std::future::pending::<String>().await }))
            .route("/html", get(|| async { axum::response::Html("<html><body>Docs</body></html>") })),
    )
    .await;
    let cases = [
        ("/missing", "HTTP 404"),
        ("/huge.json", "larger than 25 MB"),
        ("/html", "HTML page"),
        // A timeout reads like any other network failure (tests/api/hostile/imports.rs).
        ("/hangs", "no answer from that host"),
    ];
    let checks = cases.map(|(path, expected)| {
        let url = format!("{host}{path}");
        let app = &app;
        let project = project.clone();
        async move {
            let response = analyze(app, json!({ "projectId": project, "url": url })).await;
            assert_eq!(response.error_code(), "BAD_USER_INPUT", "{path}");
            assert!(
                response.error_message().contains(expected),
                "{expected:?} not in {:?}",
                response.error_message()
            );
        }
    });
    futures_util::future::join_all(checks).await;
    assert_eq!(openapi_spec::Entity::find().count(&app.db).await.unwrap(), 0);
}

#[tokio::test]
async fn an_oversized_inline_document_is_refused() {
    let app = spawn_app().await;
    let project = app.create_project("Target").await;
    let document = format!("{{\"padding\": \"{}\"}}", "x".repeat(26 * 1024 * 1024));

    let response = analyze(&app, json!({ "projectId": project, "document": document })).await;

    assert_eq!(response.error_code(), "BAD_USER_INPUT");
    assert!(response.error_message().contains("larger than 25 MB"), "{}", response.error_message());
}

#[tokio::test]
async fn a_spec_with_recorded_results_is_not_deleted_from_under_them() {
    let app = spawn_app().await;
    let project = app.create_project("Petstore").await;
    let imported =
        analyze(&app, json!({ "projectId": project, "document": fixture("oai-v2.0-petstore.json") })).await;
    let spec_id = imported.data()["analyzeOpenApi"]["spec"]["id"].as_str().unwrap().to_owned();
    let endpoint = imported.data()["analyzeOpenApi"]["spec"]["tags"][0]["endpoints"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let run = Run::new(project.parse().unwrap())
        .scenario(seed::ScenarioSeed {
            endpoint_id: endpoint,
            response_time_target: None,
            error_rate_target: None,
            summary: None,
        })
        .insert(&app.db)
        .await;

    let refused =
        app.graphql("mutation($id: ID!) { deleteOpenApiSpec(id: $id) }", json!({ "id": spec_id })).await;
    assert_eq!(refused.error_code(), "CONFLICT");
    assert!(refused.error_message().contains(&run.to_string()), "{}", refused.error_message());

    app.graphql("mutation($id: ID!) { deleteTestHistory(id: $id) }", json!({ "id": run.to_string() }))
        .await
        .data();
    let deleted =
        app.graphql("mutation($id: ID!) { deleteOpenApiSpec(id: $id) }", json!({ "id": spec_id })).await;
    assert_eq!(deleted.data()["deleteOpenApiSpec"], spec_id.as_str());
    assert_eq!(endpoint::Entity::find().count(&app.db).await.unwrap(), 0);
}
