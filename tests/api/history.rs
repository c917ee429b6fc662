//! The run history read side: the board, summaries and verdicts, trends, active runs, deletes.

use metric_vault::domain::TestStatus;
use metric_vault::seed::{self, Figures, Run, ScenarioSeed};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

fn scenario(endpoint_id: i64, p95_target: Option<f64>, summary: Option<Figures>) -> ScenarioSeed {
    ScenarioSeed { endpoint_id, response_time_target: p95_target, error_rate_target: Some(5.0), summary }
}

fn figures(p95: f64) -> Figures {
    Figures { p95, error_rate: 1.0, avg_tps: 100.0 }
}

async fn project_with_endpoints(app: &TestApp, title: &str) -> (String, Vec<i64>) {
    let id = app.create_project(title).await;
    let spec =
        seed::spec(&app.db, id.parse().unwrap(), &format!("http://127.0.0.1:9000/{title}"), 1, 3).await;
    (id, spec.endpoint_ids)
}

#[tokio::test]
async fn the_board_filters_by_project_status_and_endpoint_newest_first() {
    let app = spawn_app().await;
    let (shop, shop_endpoints) = project_with_endpoints(&app, "shop").await;
    let (other, other_endpoints) = project_with_endpoints(&app, "other").await;
    let shop_id: i64 = shop.parse().unwrap();
    let a = Run::new(shop_id).scenario(scenario(shop_endpoints[0], None, None)).insert(&app.db).await;
    let b = Run::new(shop_id)
        .status(TestStatus::Failed)
        .scenario(scenario(shop_endpoints[1], None, None))
        .insert(&app.db)
        .await;
    let c = Run::new(shop_id)
        .status(TestStatus::Running)
        .scenario(scenario(shop_endpoints[0], None, None))
        .insert(&app.db)
        .await;
    Run::new(other.parse().unwrap()).scenario(scenario(other_endpoints[0], None, None)).insert(&app.db).await;

    let board = |filter: serde_json::Value| {
        let app = &app;
        async move {
            let response = app
                .graphql(
                    "query($f: TestHistoryFilter) { testHistories(filter: $f, first: 10) { totalCount nodes { id } } }",
                    json!({ "f": filter }),
                )
                .await;
            let page = response.data()["testHistories"].clone();
            let ids: Vec<i64> = page["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().parse().unwrap())
                .collect();
            (page["totalCount"].as_i64().unwrap(), ids)
        }
    };

    assert_eq!(board(json!({"projectId": shop})).await, (3, vec![c, b, a]));
    assert_eq!(board(json!({"projectId": shop, "status": ["COMPLETED", "FAILED"]})).await, (2, vec![b, a]));
    assert_eq!(board(json!({"endpointId": shop_endpoints[0].to_string()})).await, (2, vec![c, a]));
    assert_eq!(board(json!({})).await.0, 4);
}

#[tokio::test]
async fn runs_page_newest_first_per_project() {
    let app = spawn_app().await;
    let (shop, endpoints) = project_with_endpoints(&app, "shop").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            Run::new(shop.parse().unwrap())
                .scenario(scenario(endpoints[0], None, None))
                .insert(&app.db)
                .await,
        );
    }
    ids.reverse();

    let query = r#"query($id: ID!, $after: String) { project(id: $id) {
        testHistories(first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { id } } } }"#;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let response = app.graphql(query, json!({ "id": shop, "after": after })).await;
        let page = response.data()["project"]["testHistories"].clone();
        assert_eq!(page["totalCount"], 5);
        seen.extend(
            page["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().parse::<i64>().unwrap()),
        );
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn summaries_and_verdicts_come_from_the_stored_results() {
    let app = spawn_app().await;
    let (shop, endpoints) = project_with_endpoints(&app, "shop").await;
    let passed = Run::new(shop.parse().unwrap())
        .summary(figures(150.0))
        .scenario(scenario(endpoints[0], Some(200.0), Some(figures(150.0))))
        .scenario(scenario(endpoints[1], None, Some(figures(900.0))))
        .insert(&app.db)
        .await;
    let failed = Run::new(shop.parse().unwrap())
        .summary(figures(250.0))
        .scenario(scenario(endpoints[0], Some(200.0), Some(figures(250.0))))
        .insert(&app.db)
        .await;
    let too_slow = Run::new(shop.parse().unwrap())
        .target_tps(500.0)
        .summary(figures(100.0))
        .scenario(scenario(endpoints[0], Some(200.0), Some(figures(100.0))))
        .insert(&app.db)
        .await;
    let running = Run::new(shop.parse().unwrap())
        .status(TestStatus::Running)
        .scenario(scenario(endpoints[0], Some(200.0), None))
        .insert(&app.db)
        .await;

    let query = r#"query($id: ID!) { testHistory(id: $id) {
        status isCompleted verdict summary { totalRequests p95ResponseTime avgTps avgErrorRate }
        project { title }
        scenarios { name scenarioTag executor thinkTime verdict responseTimeTarget
          summary { p95ResponseTime } stages { duration target } endpoint { path } testHistory { id } } } }"#;
    let run = |id: i64| {
        let app = &app;
        async move { app.graphql(query, json!({ "id": id.to_string() })).await.data()["testHistory"].clone() }
    };

    let ok = run(passed).await;
    assert_eq!(ok["verdict"], "PASSED");
    assert_eq!(ok["isCompleted"], true);
    assert_eq!(ok["summary"]["p95ResponseTime"], 150.0);
    assert_eq!(ok["summary"]["totalRequests"], 6000);
    assert_eq!(ok["project"]["title"], "shop");
    assert_eq!(ok["scenarios"][0]["verdict"], "PASSED");
    assert_eq!(
        ok["scenarios"][1]["verdict"], "PASSED",
        "a slow p95 without a p95 target; only the 5 % error target applies"
    );
    assert_eq!(
        ok["scenarios"][0]["stages"],
        json!([
            {"duration": "10s", "target": 5}, {"duration": "30s", "target": 20}, {"duration": "10s", "target": 0}
        ])
    );
    assert_eq!(ok["scenarios"][0]["executor"], "RAMPING_VUS");
    assert_eq!(ok["scenarios"][0]["testHistory"]["id"], passed.to_string());

    assert_eq!(run(failed).await["verdict"], "FAILED");
    assert_eq!(run(too_slow).await["verdict"], "FAILED", "avg TPS 100 < target 500");
    let live = run(running).await;
    assert_eq!(live["verdict"], "UNKNOWN");
    assert_eq!(live["summary"], serde_json::Value::Null);
    assert_eq!(live["isCompleted"], false);
}

#[tokio::test]
async fn an_endpoint_shows_its_trend_oldest_first_and_recent_runs_newest_first() {
    let app = spawn_app().await;
    let (shop, endpoints) = project_with_endpoints(&app, "shop").await;
    let mut runs = Vec::new();
    for p95 in [100.0, 120.0, 140.0, 160.0] {
        runs.push(
            Run::new(shop.parse().unwrap())
                .summary(figures(p95))
                .scenario(scenario(endpoints[0], Some(200.0), Some(figures(p95))))
                .insert(&app.db)
                .await,
        );
    }
    Run::new(shop.parse().unwrap())
        .status(TestStatus::Running)
        .scenario(scenario(endpoints[0], None, None))
        .insert(&app.db)
        .await;

    let response = app
        .graphql(
            r#"query($id: ID!) { endpoint(id: $id) {
                trend(last: 3) { p95ResponseTime avgTps testedAt testHistory { id } }
                recentScenarios(last: 2) { summary { p95ResponseTime } testHistory { id } } } }"#,
            json!({ "id": endpoints[0].to_string() }),
        )
        .await;

    let endpoint = &response.data()["endpoint"];
    let trend: Vec<f64> = endpoint["trend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["p95ResponseTime"].as_f64().unwrap())
        .collect();
    assert_eq!(trend, [120.0, 140.0, 160.0], "the last three finished runs, oldest first");
    assert_eq!(endpoint["trend"][2]["testHistory"]["id"], runs[3].to_string());
    let recent: Vec<String> = endpoint["recentScenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["testHistory"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recent, [runs[3].to_string(), runs[2].to_string()]);
}

#[tokio::test]
async fn scheduler_jobs_list_active_runs_and_flag_overdue_ones() {
    let app = spawn_app().await;
    let (shop, endpoints) = project_with_endpoints(&app, "shop").await;
    let fresh = Run::new(shop.parse().unwrap())
        .status(TestStatus::Running)
        .started_minutes_ago(5)
        .scenario(scenario(endpoints[0], None, None))
        .insert(&app.db)
        .await;
    let stale = Run::new(shop.parse().unwrap())
        .status(TestStatus::Running)
        .started_minutes_ago(90)
        .scenario(scenario(endpoints[0], None, None))
        .insert(&app.db)
        .await;
    Run::new(shop.parse().unwrap()).scenario(scenario(endpoints[0], None, None)).insert(&app.db).await;

    let response = app
        .graphql(
            "{ schedulerJobs { testHistory { id } jobName runner status elapsedSeconds overdue } }",
            json!({}),
        )
        .await;

    let jobs = response.data()["schedulerJobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2, "the completed run is not a job");
    let job =
        |id: i64| jobs.iter().find(|j| j["testHistory"]["id"] == id.to_string().as_str()).unwrap().clone();
    assert_eq!(job(fresh)["overdue"], false);
    assert_eq!(job(stale)["overdue"], true, "past SCHEDULER_JOB_WARNING_HOURS (1 h)");
    assert!(job(stale)["elapsedSeconds"].as_f64().unwrap() >= 90.0 * 60.0);
    assert_eq!(job(fresh)["runner"], "LOCAL");
}

#[tokio::test]
async fn only_finished_runs_can_be_deleted() {
    let app = spawn_app().await;
    let (shop, endpoints) = project_with_endpoints(&app, "shop").await;
    let done =
        Run::new(shop.parse().unwrap()).scenario(scenario(endpoints[0], None, None)).insert(&app.db).await;
    let active = Run::new(shop.parse().unwrap()).status(TestStatus::Pending).insert(&app.db).await;

    let refused = app
        .graphql("mutation($id: ID!) { deleteTestHistory(id: $id) }", json!({ "id": active.to_string() }))
        .await;
    assert_eq!(refused.error_code(), "CONFLICT");

    let deleted = app
        .graphql("mutation($id: ID!) { deleteTestHistory(id: $id) }", json!({ "id": done.to_string() }))
        .await;
    assert_eq!(deleted.data()["deleteTestHistory"], done.to_string());
    let gone = app
        .graphql("query($id: ID!) { testHistory(id: $id) { id } }", json!({ "id": done.to_string() }))
        .await;
    assert_eq!(gone.data()["testHistory"], serde_json::Value::Null);
    let recent = app
        .graphql(
            "query($id: ID!) { endpoint(id: $id) { recentScenarios { id } } }",
            json!({ "id": endpoints[0].to_string() }),
        )
        .await;
    assert_eq!(recent.data()["endpoint"]["recentScenarios"], json!([]));
}

/// Runs, scenarios, stages and endpoints answered from memory must read exactly as when
/// async-graphql resolves every field: aliases, fragments, `__typename`, `@skip`/`@include`,
/// and response keys selected twice.
const EAGER_BOARD: &str = r#"
query($id: ID!, $yes: Boolean!) {
  testHistories(filter: {projectId: $id}, first: 10) { totalCount nodes {
    __typename
    id
    name: title
    ...RunBits
    ... on TestHistory { status runner parallelism targetTps }
    ... @include(if: $yes) { description jobName }
    summary { ...Summary }
    summary { totalRequests }
    k6ScriptFileName k6Script testedAt startedAt completedAt failureReason isCompleted
    scenarios {
      __typename name verdict
      summary { p95ResponseTime avgErrorRate }
      stages { __typename id duration t: target }
      endpoint { method path ...EndpointBits }
      executor @skip(if: $yes)
    }
    steps: scenarios { id scenarioTag executor thinkTime responseTimeTarget errorRateTarget stages { target } }
    FALLBACK
  } }
}
fragment RunBits on TestHistory { id verdict scenarios { name } }
fragment Summary on MetricSummary {
  totalRequests failedRequests testDuration maxTps minTps avgTps maxResponseTime minResponseTime
  avgResponseTime p50ResponseTime p95ResponseTime p99ResponseTime maxErrorRate minErrorRate avgErrorRate
  maxVus minVus avgVus
}
fragment EndpointBits on Endpoint { __typename id operationId summary }
"#;

#[tokio::test]
async fn board_runs_answered_from_memory_read_as_resolved_field_by_field() {
    let app = spawn_app().await;
    let (shop, endpoints) = project_with_endpoints(&app, "shop").await;
    let shop_id: i64 = shop.parse().unwrap();
    Run::new(shop_id)
        .summary(figures(150.0))
        .scenario(scenario(endpoints[0], Some(200.0), Some(figures(150.0))))
        .scenario(scenario(endpoints[1], None, Some(figures(900.0))))
        .insert(&app.db)
        .await;
    Run::new(shop_id)
        .target_tps(500.0)
        .summary(figures(100.0))
        .scenario(scenario(endpoints[2], Some(200.0), Some(figures(250.0))))
        .insert(&app.db)
        .await;
    Run::new(shop_id)
        .status(TestStatus::Running)
        .scenario(scenario(endpoints[0], Some(200.0), None))
        .insert(&app.db)
        .await;
    Run::new(shop_id).status(TestStatus::Pending).insert(&app.db).await;
    let variables = json!({ "id": shop, "yes": true });

    let eager_query = EAGER_BOARD.replace("FALLBACK", "");
    let eager = app.graphql(&eager_query, variables.clone()).await;
    // A relation that is not loaded with the page sends every run down async-graphql's own
    // field-by-field resolution.
    let fallback_query = EAGER_BOARD.replace("FALLBACK", "fallback: project { id }");
    let resolved = app.graphql(&fallback_query, variables.clone()).await;

    let mut resolved = resolved.data().clone();
    let runs = resolved["testHistories"]["nodes"].as_array_mut().unwrap();
    assert_eq!(runs.len(), 4);
    for run in runs {
        assert_eq!(run.as_object_mut().unwrap().remove("fallback"), Some(json!({ "id": shop })));
    }
    assert_eq!(eager.data(), &resolved);

    let runs = eager.data()["testHistories"]["nodes"].as_array().unwrap();
    let verdicts: Vec<&str> = runs.iter().map(|run| run["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["UNKNOWN", "UNKNOWN", "FAILED", "PASSED"], "newest first");
    let passed = &runs[3];
    assert_eq!(passed["__typename"], "TestHistory");
    assert_eq!(passed["name"], "Checkout under load");
    assert_eq!(passed["summary"]["p95ResponseTime"], 150.0);
    assert_eq!(passed["summary"]["totalRequests"], 6000);
    let first = &passed["scenarios"][0];
    assert_eq!(first["__typename"], "ScenarioHistory");
    assert_eq!(first["verdict"], "PASSED");
    assert_eq!(first["endpoint"]["__typename"], "Endpoint");
    assert_eq!(first["endpoint"]["id"], endpoints[0].to_string());
    assert_eq!(
        first["stages"].as_array().unwrap().iter().map(|s| s["t"].as_i64().unwrap()).collect::<Vec<_>>(),
        [5, 20, 0]
    );
    assert_eq!(first["stages"][0]["__typename"], "Stage");
    assert!(first.get("executor").is_none(), "skipped");
    assert_eq!(passed["steps"][1]["responseTimeTarget"], serde_json::Value::Null);
    assert_eq!(runs[0]["scenarios"], json!([]));
    assert_eq!(runs[0]["summary"], serde_json::Value::Null);

    // The page costs a fixed number of statements on the eager path (page, count, scenarios
    // with endpoints, stages); the fallback loads the relations again, level by level.
    let eager_statements = app.statements_for(&eager_query, variables.clone()).await;
    let fallback_statements = app.statements_for(&fallback_query, variables).await;
    assert_eq!(eager_statements, 4);
    assert!(fallback_statements > eager_statements, "{fallback_statements} statements");
}
