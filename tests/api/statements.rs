//! DataLoaders keep a nested query's SQL statement count independent of the data size; the
//! read caches (catalogues, runs' scenarios and stages) take their statements away once warm.

use metric_vault::seed::{self, Figures, Run, ScenarioSeed};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

/// Read caches off: what the loaders alone cost.
const NO_CACHE: &[(&str, &str)] = &[("READ_CACHE_ROWS", "0")];
/// Read caches on, as by default.
const CACHE: &[(&str, &str)] = &[];

const CATALOGUE_TREE: &str = r#"query($id: ID!) { project(id: $id) {
    title endpointCount
    specs { title tags { name endpoints { method path tags { name } parameters { name example } requestBody { contentType } } } } } }"#;

const BOARD: &str = r#"query($id: ID!) {
    testHistories(filter: {projectId: $id}, first: 50) { totalCount nodes {
      title verdict summary { p95ResponseTime }
      scenarios { name verdict stages { duration target } endpoint { path spec { title } } } } } }"#;

/// The board as dashboards ask it: every relation is loaded with the page and answered from
/// memory (no `spec` under the endpoint, which is not).
const EAGER_BOARD: &str = r#"query($id: ID!) {
    testHistories(filter: {projectId: $id}, first: 50) { totalCount nodes {
      title verdict summary { p95ResponseTime }
      scenarios { name verdict stages { duration target } endpoint { method path } } } } }"#;

/// Statements the server sent for one query.
async fn statements_for(app: &TestApp, query: &str, project_id: &str) -> u64 {
    app.statements_for(query, json!({ "id": project_id })).await
}

async fn catalogue_statements(endpoints: usize, settings: &[(&str, &str)]) -> u64 {
    let app = spawn_app_with(settings).await;
    let id = app.create_project("Shop").await;
    seed::spec(&app.db, id.parse().unwrap(), "http://127.0.0.1:9000", 10, endpoints).await;
    statements_for(&app, CATALOGUE_TREE, &id).await
}

#[tokio::test]
async fn the_catalogue_tree_costs_the_same_statements_for_10_and_1000_endpoints() {
    let small = catalogue_statements(10, NO_CACHE).await;
    let large = catalogue_statements(1000, NO_CACHE).await;

    assert_eq!(small, large, "statements must not grow with the number of endpoints");
    assert!(small <= 10, "one statement per level, got {small}");
}

#[tokio::test]
async fn a_cached_catalogue_costs_only_the_rows_above_it_and_the_endpoints_tags() {
    let small = catalogue_statements(10, CACHE).await;
    let large = catalogue_statements(1000, CACHE).await;

    assert_eq!((small, large), (4, 4), "the project, its endpoint count, its specs, the endpoints' tags");
}

async fn board_statements(runs: usize, query: &str, settings: &[(&str, &str)]) -> u64 {
    let app = spawn_app_with(settings).await;
    let id = app.create_project("Shop").await;
    let spec = seed::spec(&app.db, id.parse().unwrap(), "http://127.0.0.1:9000", 2, 8).await;
    let figures = Figures { p95: 120.0, error_rate: 0.5, avg_tps: 80.0 };
    for i in 0..runs {
        let mut run = Run::new(id.parse().unwrap()).summary(figures);
        for s in 0..4 {
            run = run.scenario(ScenarioSeed {
                endpoint_id: spec.endpoint_ids[(i + s) % spec.endpoint_ids.len()],
                response_time_target: Some(200.0),
                error_rate_target: Some(1.0),
                summary: Some(figures),
            });
        }
        run.insert(&app.db).await;
    }
    statements_for(&app, query, &id).await
}

#[tokio::test]
async fn the_board_costs_the_same_statements_for_2_and_50_runs() {
    let small = board_statements(2, BOARD, NO_CACHE).await;
    let large = board_statements(50, BOARD, NO_CACHE).await;

    assert_eq!(small, large, "statements must not grow with the number of runs");
    assert!(small <= 10, "one statement per level, got {small}");
}

#[tokio::test]
async fn the_board_answered_from_memory_costs_four_statements_for_2_and_50_runs() {
    let small = board_statements(2, EAGER_BOARD, NO_CACHE).await;
    let large = board_statements(50, EAGER_BOARD, NO_CACHE).await;

    assert_eq!((small, large), (4, 4), "the page, its count, the scenarios with endpoints, the stages");
}

#[tokio::test]
async fn a_board_whose_runs_are_cached_costs_the_page_and_its_project_row() {
    let small = board_statements(2, EAGER_BOARD, CACHE).await;
    let large = board_statements(50, EAGER_BOARD, CACHE).await;

    assert_eq!((small, large), (2, 2), "the count, scenarios and stages come from the read cache");
}
