//! `compareTestHistories` over seeded runs.

use metric_vault::{
    db::entities::endpoint,
    domain::TestStatus,
    seed::{self, Figures, Run, ScenarioSeed},
};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const COMPARE: &str = r#"query($base: ID!, $candidate: ID!) {
    compareTestHistories(baseId: $base, candidateId: $candidate) {
      base { id } candidate { id }
      scenarios { name endpoint { id path }
        base { p95ResponseTime avgTps avgErrorRate } candidate { p95ResponseTime avgTps avgErrorRate }
        p95ResponseTimeChange avgTpsChange errorRateChange } } }"#;

fn on(endpoint_id: i64, summary: Option<Figures>) -> ScenarioSeed {
    ScenarioSeed { endpoint_id, response_time_target: None, error_rate_target: None, summary }
}

fn figures(p95: f64, avg_tps: f64, error_rate: f64) -> Figures {
    Figures { p95, avg_tps, error_rate }
}

async fn compare(
    app: &TestApp,
    base: impl ToString,
    candidate: impl ToString,
) -> crate::helpers::GraphQlResponse {
    app.graphql(COMPARE, json!({ "base": base.to_string(), "candidate": candidate.to_string() })).await
}

async fn shop(app: &TestApp) -> (i64, Vec<i64>) {
    let project: i64 = app.create_project("Shop").await.parse().unwrap();
    let spec = seed::spec(&app.db, project, "http://127.0.0.1:9000", 1, 5).await;
    (project, spec.endpoint_ids)
}

#[track_caller]
fn assert_close(actual: &Value, expected: f64) {
    let actual = actual.as_f64().unwrap_or_else(|| panic!("{actual} is not a number"));
    assert!((actual - expected).abs() < 1e-9, "{actual} vs {expected}");
}

#[tokio::test]
async fn scenarios_pair_by_endpoint_then_by_name_and_show_relative_changes() {
    let app = spawn_app().await;
    let (project, ep) = shop(&app).await;
    let (a, b, c, d, e) = (ep[0], ep[1], ep[2], ep[3], ep[4]);
    // Seeded scenarios are named "scenario <position>".
    let base = Run::new(project)
        .summary(figures(150.0, 100.0, 1.0))
        .scenario(on(a, Some(figures(100.0, 50.0, 0.0)))) // "scenario 0"
        .scenario(on(b, Some(figures(200.0, 20.0, 1.0)))) // "scenario 1", dropped later
        .scenario(on(d, Some(figures(300.0, 30.0, 2.0)))) // "scenario 2"
        .insert(&app.db)
        .await;
    let candidate = Run::new(project)
        .status(TestStatus::Failed) // failed, but with results: comparable
        .summary(figures(160.0, 90.0, 2.0))
        .scenario(on(c, Some(figures(50.0, 10.0, 0.0)))) // "scenario 0", new
        .scenario(on(a, Some(figures(112.0, 40.0, 3.0)))) // "scenario 1": a renamed
        .scenario(on(e, None)) // "scenario 2": d's name on another endpoint, no summary
        .insert(&app.db)
        .await;
    // An endpoint a re-import removed still names what was tested.
    endpoint::ActiveModel { id: Set(a), removed_at: Set(Some(chrono::Utc::now())), ..Default::default() }
        .update(&app.db)
        .await
        .unwrap();

    let response = compare(&app, base, candidate).await;

    let comparison = &response.data()["compareTestHistories"];
    assert_eq!(comparison["base"]["id"], base.to_string());
    assert_eq!(comparison["candidate"]["id"], candidate.to_string());
    let scenarios = comparison["scenarios"].as_array().unwrap();
    let shape: Vec<(&str, Value, bool, bool)> = scenarios
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap();
            (name, s["endpoint"]["id"].clone(), s["base"].is_object(), s["candidate"].is_object())
        })
        .collect();
    let id = |endpoint: i64| json!(endpoint.to_string());
    assert_eq!(
        shape,
        [
            ("scenario 1", id(a), true, true), // same endpoint, renamed: the candidate's name
            ("scenario 1", id(b), true, false), // gone from the candidate
            ("scenario 2", id(e), true, false), // same name; the candidate side has no summary
            ("scenario 0", id(c), false, true), // new in the candidate
        ]
    );

    let renamed = &scenarios[0];
    assert_close(&renamed["p95ResponseTimeChange"], 0.12);
    assert_close(&renamed["avgTpsChange"], -0.2);
    assert_eq!(renamed["errorRateChange"], Value::Null, "no errors before: no ratio");
    assert_eq!(renamed["base"]["p95ResponseTime"], 100.0);
    assert_eq!(renamed["candidate"]["p95ResponseTime"], 112.0);
    assert!(renamed["endpoint"]["path"].is_string());
    for one_sided in &scenarios[1..] {
        for change in ["p95ResponseTimeChange", "avgTpsChange", "errorRateChange"] {
            assert_eq!(one_sided[change], Value::Null, "{one_sided}");
        }
    }
}

#[tokio::test]
async fn a_run_compared_with_itself_has_no_change() {
    let app = spawn_app().await;
    let (project, ep) = shop(&app).await;
    let run = Run::new(project)
        .summary(figures(150.0, 100.0, 1.0))
        .scenario(on(ep[0], Some(figures(150.0, 100.0, 1.0))))
        .insert(&app.db)
        .await;

    let response = compare(&app, run, run).await;

    let scenario = &response.data()["compareTestHistories"]["scenarios"][0];
    for change in ["p95ResponseTimeChange", "avgTpsChange", "errorRateChange"] {
        assert_eq!(scenario[change], 0.0);
    }
}

#[tokio::test]
async fn only_finished_runs_with_results_can_be_compared() {
    let app = spawn_app().await;
    let (project, ep) = shop(&app).await;
    let finished = Run::new(project)
        .summary(figures(150.0, 100.0, 1.0))
        .scenario(on(ep[0], Some(figures(150.0, 100.0, 1.0))))
        .insert(&app.db)
        .await;
    let running = Run::new(project).status(TestStatus::Running).insert(&app.db).await;
    let pending = Run::new(project).status(TestStatus::Pending).insert(&app.db).await;
    let no_results = Run::new(project).status(TestStatus::Cancelled).insert(&app.db).await;

    for (base, candidate, field, unfinished) in [
        (finished, running, "candidateId", running),
        (pending, finished, "baseId", pending),
        (finished, no_results, "candidateId", no_results),
    ] {
        let response = compare(&app, base, candidate).await;
        assert_eq!(response.error_code(), "BAD_USER_INPUT", "{}", response.body);
        assert_eq!(response.body["errors"][0]["extensions"]["field"], field);
        let message = response.error_message();
        assert!(message.contains(&format!("test run {unfinished} ")), "names the run: {message}");
    }

    let unknown = compare(&app, finished, 424_242).await;
    assert_eq!(unknown.error_code(), "NOT_FOUND");
    assert!(unknown.error_message().contains("424242"), "{}", unknown.error_message());
    let malformed = compare(&app, "first", finished).await;
    assert_eq!(malformed.error_code(), "BAD_USER_INPUT");
    assert_eq!(malformed.body["errors"][0]["extensions"]["field"], "baseId");
}
