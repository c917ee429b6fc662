//! `metric-vault demo-target`: the README's first session against it, end to end — the binary
//! started as a user would, its document imported, a real k6 run launched and finished.

use std::{process::Stdio, time::Duration};

use metric_vault::metrics::test_influxd::InfluxServer;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn the_demo_target_is_imported_load_tested_and_summarised() {
    let mut demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_metric-vault"))
        .args(["demo-target", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the demo target");
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let first =
        tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().unwrap();
    let url = first.strip_prefix("demo target: ").expect("the document's URL first").to_owned();

    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string())]).await;
    let project = app.create_project("Demo shop").await;
    let imported = app
        .graphql(
            "mutation($p: ID!, $u: String!) { analyzeOpenApi(input: {projectId: $p, url: $u}) {
                spec { title endpoints { id operationId } } } }",
            json!({ "p": project, "u": url }),
        )
        .await;
    let spec = &imported.data()["analyzeOpenApi"]["spec"];
    assert_eq!(spec["title"], "Metric Vault demo shop");
    let endpoints = spec["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 3, "{spec}");
    let get_product = endpoints.iter().find(|e| e["operationId"] == "getProduct").unwrap()["id"].clone();

    let id = app
        .launch(json!({ "title": "First run", "scenarios": [{ "name": "browse", "endpointId": get_product,
            "executor": "CONSTANT_VUS", "thinkTime": 0.1, "stages": [{"duration": "2s", "target": 2}] }] }))
        .await;
    let started = std::time::Instant::now();
    let run = loop {
        let run = app
            .graphql(
                "query($id: ID!) { testHistory(id: $id) { status isCompleted summary { totalRequests failedRequests p95ResponseTime } } }",
                json!({ "id": id }),
            )
            .await
            .data()["testHistory"]
            .clone();
        if run["isCompleted"] == true && !run["summary"].is_null() {
            break run;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the run never finished: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert!(run["summary"]["totalRequests"].as_i64().unwrap() > 10, "{run}");
    assert_eq!(run["summary"]["failedRequests"], 0, "the example id exists: {run}");
    assert!(run["summary"]["p95ResponseTime"].as_f64().unwrap() >= 2.0, "the demo pauses 2–6 ms: {run}");
}
