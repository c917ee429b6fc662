//! The main board at scale: 10,000 runs filtered and paged correctly, and a dashboard with
//! trends whose statement count does not grow with the runs.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use metric_vault::{
    db::entities::{scenario_history, test_history},
    domain::{Executor, RunnerKind, TestStatus},
    seed::{self, Figures, Run, ScenarioSeed},
};
use sea_orm::{EntityTrait, QuerySelect, Set};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const RUNS: usize = 10_000;
const STATUSES: [TestStatus; 5] = [
    TestStatus::Completed,
    TestStatus::Failed,
    TestStatus::Cancelled,
    TestStatus::Running,
    TestStatus::Pending,
];

/// One seeded run as the test knows it.
struct Seeded {
    project: i64,
    status: TestStatus,
    endpoints: BTreeSet<i64>,
}

fn run_row(project_id: i64, status: TestStatus, index: usize) -> test_history::ActiveModel {
    let now = Utc::now();
    test_history::ActiveModel {
        project_id: Set(project_id),
        title: Set(format!("run {index}")),
        description: Set(None),
        target_tps: Set(None),
        status: Set(status),
        runner: Set(RunnerKind::Local),
        parallelism: Set(1),
        job_name: Set(format!("k6-{index}")),
        k6_script_file_name: Set(format!("test-{index}.js")),
        k6_script: Set("export default function () {}".into()),
        tested_at: Set(now),
        started_at: Set(Some(now)),
        completed_at: Set(None),
        failure_reason: Set(None),
        is_completed: Set(!status.is_active()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

fn scenario_row(run_id: i64, endpoint_id: i64, position: i32) -> scenario_history::ActiveModel {
    scenario_history::ActiveModel {
        test_history_id: Set(run_id),
        endpoint_id: Set(endpoint_id),
        position: Set(position),
        name: Set(format!("scenario {position}")),
        scenario_tag: Set(format!("scenario_{position}")),
        executor: Set(Executor::ConstantVus),
        think_time: Set(1.0),
        max_vus_limit: Set(None),
        response_time_target: Set(None),
        error_rate_target: Set(None),
        request: Set(None),
        ..Default::default()
    }
}

/// 10,000 runs over two projects and every status, one to three scenarios each (some
/// twice on one endpoint), inserted in bulk. Returns what was seeded, by run id.
async fn seed_board(app: &TestApp) -> (Vec<i64>, Vec<Vec<i64>>, HashMap<i64, Seeded>) {
    let mut projects = Vec::new();
    let mut endpoints = Vec::new();
    for title in ["Shop", "Search"] {
        let project: i64 = app.create_project(title).await.parse().unwrap();
        let base_url = format!("http://127.0.0.1:9000/{title}");
        endpoints.push(seed::spec(&app.db, project, &base_url, 1, 5).await.endpoint_ids);
        projects.push(project);
    }
    let plan: Vec<(usize, TestStatus)> =
        (0..RUNS).map(|i| ((i % 3 == 2) as usize, STATUSES[i % 5])).collect();
    let rows: Vec<_> =
        plan.iter().enumerate().map(|(i, &(p, status))| run_row(projects[p], status, i)).collect();
    for chunk in rows.chunks(500) {
        test_history::Entity::insert_many(chunk.to_vec()).exec(&app.db).await.unwrap();
    }
    let ids: HashMap<String, i64> = test_history::Entity::find()
        .select_only()
        .columns([test_history::Column::Title, test_history::Column::Id])
        .into_tuple::<(String, i64)>()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .collect();

    let mut seeded = HashMap::new();
    let mut scenarios = Vec::new();
    for (i, &(p, status)) in plan.iter().enumerate() {
        let id = ids[&format!("run {i}")];
        let own = &endpoints[p];
        let mut on = vec![own[i % 5]];
        if i % 4 == 0 {
            on.push(own[(i + 1) % 5]);
        }
        if i % 7 == 0 {
            on.push(own[i % 5]); // the same endpoint twice: still one run on the board
        }
        scenarios.extend(on.iter().enumerate().map(|(position, &e)| scenario_row(id, e, position as i32)));
        seeded.insert(id, Seeded { project: projects[p], status, endpoints: on.into_iter().collect() });
    }
    for chunk in scenarios.chunks(500) {
        scenario_history::Entity::insert_many(chunk.to_vec()).exec(&app.db).await.unwrap();
    }
    (projects, endpoints, seeded)
}

const PAGE: &str = r#"query($f: TestHistoryFilter, $first: Int, $after: String) {
    testHistories(filter: $f, first: $first, after: $after) {
      totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id } } } }"#;

/// Walks every page of the board under `filter`; returns the total count and the ids.
async fn walk(app: &TestApp, filter: &Value, first: usize) -> (i64, Vec<i64>) {
    let (mut ids, mut after, mut total) = (Vec::new(), None::<String>, None);
    loop {
        let response = app.graphql(PAGE, json!({ "f": filter, "first": first, "after": after })).await;
        let page = response.data()["testHistories"].clone();
        let count = page["totalCount"].as_i64().unwrap();
        assert_eq!(*total.get_or_insert(count), count, "totalCount is the filter's, on every page");
        let info = &page["pageInfo"];
        assert_eq!(info["hasPreviousPage"], after.is_some(), "{filter}");
        let edges = page["edges"].as_array().unwrap();
        assert!(edges.len() <= first);
        if let Some(last) = edges.last() {
            assert_eq!(info["endCursor"], last["cursor"]);
        }
        ids.extend(edges.iter().map(|e| e["node"]["id"].as_str().unwrap().parse::<i64>().unwrap()));
        if info["hasNextPage"] == false {
            return (count, ids);
        }
        assert_eq!(edges.len(), first, "only the last page is short");
        after = Some(info["endCursor"].as_str().unwrap().to_owned());
    }
}

#[tokio::test]
async fn ten_thousand_runs_page_and_filter_correctly() {
    let app = spawn_app().await;
    let (projects, endpoints, seeded) = seed_board(&app).await;
    let expected = |keep: &dyn Fn(&Seeded) -> bool| {
        let mut ids: Vec<i64> = seeded.iter().filter(|(_, run)| keep(run)).map(|(&id, _)| id).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids
    };
    let (shop, search) = (projects[0], projects[1]);
    let (shop_endpoint, search_endpoint) = (endpoints[0][1], endpoints[1][3]);
    let status = |run: &Seeded, statuses: &[TestStatus]| statuses.contains(&run.status);
    let cases: Vec<(Value, Vec<i64>)> = vec![
        (json!({}), expected(&|_| true)),
        (json!({"projectId": shop.to_string()}), expected(&|r| r.project == shop)),
        (json!({"status": ["RUNNING", "PENDING"]}), expected(&|r| r.status.is_active())),
        (
            json!({"projectId": search.to_string(), "status": ["COMPLETED", "FAILED"]}),
            expected(&|r| r.project == search && status(r, &[TestStatus::Completed, TestStatus::Failed])),
        ),
        (
            json!({"endpointId": shop_endpoint.to_string()}),
            expected(&|r| r.endpoints.contains(&shop_endpoint)),
        ),
        (
            json!({"projectId": search.to_string(), "status": ["CANCELLED"], "endpointId": search_endpoint.to_string()}),
            expected(&|r| {
                r.project == search
                    && r.status == TestStatus::Cancelled
                    && r.endpoints.contains(&search_endpoint)
            }),
        ),
        (json!({"projectId": shop.to_string(), "endpointId": search_endpoint.to_string()}), vec![]),
    ];

    for (filter, expected_ids) in cases {
        let (total, ids) = walk(&app, &filter, 500).await;

        assert_eq!(total, expected_ids.len() as i64, "totalCount of {filter}");
        assert_eq!(ids.len(), expected_ids.len(), "{filter}");
        assert!(ids == expected_ids, "{filter}: ids differ from the seeded ones, newest first");
    }
    assert_eq!(seeded.len(), RUNS);

    // A small page from the middle continues exactly after its cursor.
    let all = expected(&|_| true);
    let first = app.graphql(PAGE, json!({ "f": {}, "first": 5000 })).await;
    assert_eq!(first.error_code(), "BAD_USER_INPUT", "a page is at most 500 runs");
    let middle = app.graphql(PAGE, json!({ "f": {}, "first": 300 })).await;
    let cursor = middle.data()["testHistories"]["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let next = app.graphql(PAGE, json!({ "f": {}, "first": 20, "after": cursor })).await;
    let next_ids: Vec<i64> = next.data()["testHistories"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(next_ids, all[300..320]);
}

const DASHBOARD: &str = r#"query($id: ID!) {
    testHistories(filter: {projectId: $id}, first: 50) { totalCount nodes {
      title verdict summary { p95ResponseTime }
      scenarios { name verdict summary { avgTps } stages { duration target }
        endpoint { path trend(last: 10) { p95ResponseTime testedAt testHistory { id } }
                   recentScenarios(last: 3) { verdict } } } } } }"#;

/// Statements for the dashboard over `runs` runs of 5 scenarios each.
async fn dashboard_statements(runs: usize) -> u64 {
    let app = spawn_app().await;
    let project = app.create_project("Shop").await;
    let spec = seed::spec(&app.db, project.parse().unwrap(), "http://127.0.0.1:9000", 2, 8).await;
    let figures = Figures { p95: 120.0, error_rate: 0.5, avg_tps: 80.0 };
    for i in 0..runs {
        let mut run = Run::new(project.parse().unwrap()).summary(figures);
        for s in 0..5 {
            run = run.scenario(ScenarioSeed {
                endpoint_id: spec.endpoint_ids[(i + s) % spec.endpoint_ids.len()],
                response_time_target: Some(200.0),
                error_rate_target: Some(1.0),
                summary: Some(figures),
            });
        }
        run.insert(&app.db).await;
    }
    let response = app.graphql(DASHBOARD, json!({ "id": project })).await;
    let nodes = response.data()["testHistories"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), runs);
    assert!(
        nodes
            .iter()
            .all(|run| run["scenarios"][0]["endpoint"]["trend"].as_array().is_some_and(|t| !t.is_empty()))
    );
    app.statements_for(DASHBOARD, json!({ "id": project })).await
}

#[tokio::test]
async fn a_dashboard_with_trends_costs_the_same_statements_for_2_and_50_runs() {
    let small = dashboard_statements(2).await;
    let large = dashboard_statements(50).await;

    assert_eq!(small, large, "statements must not grow with the number of runs");
    assert!(small <= 12, "one statement per level, got {small}");
}
