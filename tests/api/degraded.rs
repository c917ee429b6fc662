//! When InfluxDB is down: runs still end and are kept, and their results arrive once it is back.

use std::time::Duration;

use chrono::Utc;
use metric_vault::{
    db::entities::test_history,
    domain::TestStatus,
    metrics::test_influxd::InfluxServer,
    seed::{Run, ScenarioSeed},
};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::json;

use crate::{
    helpers::{TestApp, spawn_app},
    target_api::project_with_target,
};

async fn wait_until(
    app: &TestApp,
    id: &str,
    query: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let run = app.graphql(query, json!({ "id": id })).await.data()["testHistory"].clone();
        if done(&run) {
            return run;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "run {id} never got there: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_run_without_influxdb_completes_and_says_its_results_are_missing() {
    // The test settings point InfluxDB at a closed port.
    let app = spawn_app().await;
    let (_, endpoints) = project_with_target(&app, "Target").await;
    let endpoint = endpoints["getItem"].clone();
    let id = app
        .launch(json!({ "title": "Blind", "scenarios": [{ "name": "s", "endpointId": endpoint,
            "executor": "CONSTANT_VUS", "thinkTime": 0.1, "stages": [{"duration": "2s", "target": 1}] }] }))
        .await;

    let run = wait_until(&app, &id, "query($id: ID!) { testHistory(id: $id) { status isCompleted failureReason resultsPending summary { totalRequests } } }", |r| r["isCompleted"] == true).await;

    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["summary"], serde_json::Value::Null);
    assert_eq!(run["resultsPending"], true, "{run}");
    assert!(
        run["failureReason"].as_str().unwrap().contains("metrics could not be read from InfluxDB"),
        "{run}"
    );
    let health = app.graphql("{ health { status influxdb } }", json!({})).await;
    assert_eq!(health.data()["health"], json!({"status": "degraded", "influxdb": false}));
}

/// k6-shaped samples of one request per second for `seconds`, all of scenario `key`.
pub(crate) fn k6_lines(test_id: i64, key: &str, start_ms: i64, seconds: i64) -> String {
    let mut lines = String::new();
    for s in 0..seconds {
        let t = start_ms + s * 1000 + 100;
        let tags = format!("testid={test_id},scenario={key},instance_id=0");
        lines.push_str(&format!("http_reqs,{tags} value=1 {t}\n"));
        lines.push_str(&format!("http_req_duration,{tags} value={} {t}\n", 10 + s));
        lines.push_str(&format!("http_req_failed,{tags} value=0 {t}\n"));
        lines.push_str(&format!("vus,testid={test_id},instance_id=0 value=1 {t}\n"));
    }
    lines
}

#[tokio::test]
async fn results_missing_at_the_end_are_filled_in_once_influxdb_answers_however_long_after() {
    let influx = InfluxServer::start().await;
    let port = influx.port().to_string();
    // First a server that cannot see InfluxDB records a finished run without results.
    let blind = spawn_app().await;
    let project = blind.create_project("Later").await;
    let spec =
        metric_vault::seed::spec(&blind.db, project.parse().unwrap(), "http://127.0.0.1:9", 1, 1).await;
    // Longer ago than any retry window: InfluxDB was down for three days.
    let started = Utc::now() - chrono::Duration::days(3);
    let id = Run::new(project.parse().unwrap())
        .scenario(ScenarioSeed {
            endpoint_id: spec.endpoint_ids[0],
            response_time_target: None,
            error_rate_target: None,
            summary: None,
        })
        .insert(&blind.db)
        .await;
    let mut run: test_history::ActiveModel =
        test_history::Entity::find_by_id(id).one(&blind.db).await.unwrap().unwrap().into();
    run.status = Set(TestStatus::Completed);
    run.started_at = Set(Some(started));
    run.completed_at = Set(Some(started + chrono::Duration::seconds(10)));
    run.failure_reason = Set(Some("metrics could not be read from InfluxDB: connection refused".into()));
    run.update(&blind.db).await.unwrap();
    // The samples k6 had written are in InfluxDB.
    metric_vault::tls::client()
        .post(format!("http://127.0.0.1:{port}/query?q=CREATE%20DATABASE%20k6"))
        .send()
        .await
        .unwrap();
    // A just-created database may refuse a write for a moment on a busy machine.
    let mut written = false;
    for _ in 0..50 {
        let write = metric_vault::tls::client()
            .post(format!("http://127.0.0.1:{port}/write?db=k6&precision=ms"))
            .body(k6_lines(id, "scenario_0", started.timestamp_millis(), 5));
        written = write.send().await.unwrap().status().is_success();
        if written {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(written, "InfluxDB takes the samples");

    // A server that sees InfluxDB, on the same database, fills the results in.
    let mut settings = crate::helpers::test_settings_with(
        tempfile::tempdir().unwrap().path(),
        &[("INFLUXDB_PORT", &port), ("SCHEDULER_POLL_INTERVAL", "0.3")],
    )
    .await;
    settings.database_url = blind.database_url.clone();
    let seeing = crate::helpers::spawn_with(settings, tempfile::tempdir().unwrap()).await;

    let run = wait_until(
        &seeing,
        &id.to_string(),
        "query($id: ID!) { testHistory(id: $id) { failureReason resultsPending summary { totalRequests maxResponseTime } scenarios { summary { totalRequests } } } }",
        |r| !r["summary"].is_null(),
    )
    .await;
    assert_eq!(run["summary"]["totalRequests"], 5);
    assert_eq!(run["summary"]["maxResponseTime"], 14.0);
    assert_eq!(run["scenarios"][0]["summary"]["totalRequests"], 5);
    assert_eq!(run["failureReason"], serde_json::Value::Null, "the note about the failed read is gone");
    assert_eq!(run["resultsPending"], false);
}
