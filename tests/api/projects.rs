//! Projects: create, read, update, delete with cascade, and the errors around them.

use metric_vault::domain::TestStatus;
use metric_vault::seed::{self, Run};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::helpers::spawn_app;
use metric_vault::db::entities::{endpoint, project, test_history};

#[tokio::test]
async fn a_created_project_is_listed_newest_first() {
    let app = spawn_app().await;
    let first = app.create_project("Payments").await;
    let second = app.create_project("  Search  ").await;

    let response =
        app.graphql("{ projects { id title summary endpointCount createdAt updatedAt } }", json!({})).await;

    let projects = response.data()["projects"].as_array().unwrap().clone();
    assert_eq!(projects.len(), 2);
    assert_eq!(projects[0]["id"], second.as_str());
    assert_eq!(projects[0]["title"], "Search", "titles are trimmed");
    assert_eq!(projects[1]["id"], first.as_str());
    assert_eq!(projects[1]["endpointCount"], 0);
    assert!(projects[0]["createdAt"].as_str().unwrap().contains('T'), "RFC 3339 times");
}

#[tokio::test]
async fn update_changes_only_the_given_fields_and_null_clears() {
    let app = spawn_app().await;
    let created = app
        .graphql(
            r#"mutation { createProject(input: {title: "Shop", summary: "old", description: "keep"}) { id updatedAt } }"#,
            json!({}),
        )
        .await;
    let id = created.data()["createProject"]["id"].as_str().unwrap().to_owned();

    let updated = app
        .graphql(
            "mutation($id: ID!) { updateProject(id: $id, input: {title: \"Shop v2\", summary: null}) { title summary description } }",
            json!({ "id": id }),
        )
        .await;

    assert_eq!(
        updated.data()["updateProject"],
        json!({"title": "Shop v2", "summary": null, "description": "keep"})
    );
}

#[tokio::test]
async fn bad_titles_are_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let long = "x".repeat(201);
    for title in ["", "   ", long.as_str()] {
        let response = app
            .graphql(
                "mutation($t: String!) { createProject(input: {title: $t}) { id } }",
                json!({ "t": title }),
            )
            .await;
        assert_eq!(response.status, 200);
        assert_eq!(response.error_code(), "BAD_USER_INPUT", "title {title:?}");
        assert_eq!(response.body["errors"][0]["extensions"]["field"], "input.title");
        assert!(response.error_message().contains("title"), "{}", response.error_message());
    }
    assert_eq!(project::Entity::find().count(&app.db).await.unwrap(), 0);

    let id = app.create_project("Valid").await;
    let response = app
        .graphql(
            "mutation($id: ID!) { updateProject(id: $id, input: {title: \"\"}) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(response.error_code(), "BAD_USER_INPUT");
    let titles = app.graphql("{ projects { title } }", json!({})).await;
    assert_eq!(titles.data()["projects"][0]["title"], "Valid");
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_told_apart() {
    let app = spawn_app().await;

    let missing =
        app.graphql("mutation { updateProject(id: \"999\", input: {title: \"x\"}) { id } }", json!({})).await;
    assert_eq!(missing.error_code(), "NOT_FOUND");
    assert_eq!(missing.error_message(), "Project 999 does not exist");

    let malformed = app.graphql("mutation { deleteProject(id: \"abc\") }", json!({})).await;
    assert_eq!(malformed.error_code(), "BAD_USER_INPUT");

    let lookup = app.graphql("{ project(id: \"999\") { id } }", json!({})).await;
    assert_eq!(lookup.data()["project"], json!(null));
}

#[tokio::test]
async fn deleting_a_project_removes_its_catalogue_and_history() {
    let app = spawn_app().await;
    let id = app.create_project("Doomed").await;
    let project_id: i64 = id.parse().unwrap();
    let spec = seed::spec(&app.db, project_id, "http://127.0.0.1:9000", 2, 6).await;
    Run::new(project_id)
        .scenario(seed::ScenarioSeed {
            endpoint_id: spec.endpoint_ids[0],
            response_time_target: None,
            error_rate_target: None,
            summary: None,
        })
        .insert(&app.db)
        .await;
    let keeper = app.create_project("Keeper").await;
    seed::spec(&app.db, keeper.parse().unwrap(), "http://127.0.0.1:9001", 1, 3).await;

    let response = app.graphql("mutation($id: ID!) { deleteProject(id: $id) }", json!({ "id": id })).await;

    assert_eq!(response.data()["deleteProject"], id.as_str());
    assert_eq!(
        endpoint::Entity::find().count(&app.db).await.unwrap(),
        3,
        "only the other project's endpoints remain"
    );
    assert_eq!(test_history::Entity::find().count(&app.db).await.unwrap(), 0);
    let again = app.graphql("mutation($id: ID!) { deleteProject(id: $id) }", json!({ "id": id })).await;
    assert_eq!(again.error_code(), "NOT_FOUND");
}

#[tokio::test]
async fn a_project_with_an_active_run_cannot_be_deleted() {
    let app = spawn_app().await;
    let id = app.create_project("Busy").await;
    Run::new(id.parse().unwrap()).status(TestStatus::Running).insert(&app.db).await;

    let response = app.graphql("mutation($id: ID!) { deleteProject(id: $id) }", json!({ "id": id })).await;

    assert_eq!(response.error_code(), "CONFLICT");
    assert!(response.error_message().contains("active run"));
    assert_eq!(project::Entity::find().count(&app.db).await.unwrap(), 1);
}

#[tokio::test]
async fn answers_list_fields_in_the_order_the_query_selected_them() {
    let app = spawn_app().await;
    let id = app.create_project("Ordered").await;
    // `endpointCount` waits on the database and `specs` on a loader: async-graphql files fields
    // as they finish, which put them in either order (red team, issue 15).
    let query = format!(
        "{{ project(id: \"{id}\") {{ id endpointCount specs {{ id }} ...F title }} }}
         fragment F on Project {{ testHistories {{ totalCount }} summary }}"
    );
    for _ in 0..20 {
        let (_, body) = app.graphql_text(&app.client, &query, json!({})).await;
        let at = |key: &str| body.find(&format!("\"{key}\"")).unwrap_or_else(|| panic!("{key} in {body}"));
        let keys = ["id", "endpointCount", "specs", "testHistories", "summary", "title"];
        assert!(keys.windows(2).all(|pair| at(pair[0]) < at(pair[1])), "{body}");
    }
}
