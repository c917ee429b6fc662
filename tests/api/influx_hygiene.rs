//! What InfluxDB holds for a run: percentiles that are k6's own, and samples that go with the
//! run when it is deleted — at once, or once InfluxDB is back.

use std::time::{Duration, Instant};

use metric_vault::{
    metrics::test_influxd::InfluxServer,
    seed::{self, Run},
};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, spawn_app_with},
    target_api::project_with_target,
};

const RESULT: &str = r#"query($id: ID!) { testHistory(id: $id) {
    id status isCompleted summary { totalRequests p50ResponseTime p95ResponseTime p99ResponseTime } } }"#;

async fn app_with(influx: &InfluxServer) -> TestApp {
    // A short poll, so the sweep after InfluxDB comes back runs within the test's patience.
    spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string()), ("SCHEDULER_POLL_INTERVAL", "0.2")]).await
}

/// How many series InfluxDB holds for run `id`, over every measurement.
async fn series_of(influx: &InfluxServer, id: i64) -> usize {
    let statement = format!(r#"SHOW SERIES WHERE "testid" = '{id}'"#);
    let answer = influx.client("k6").query(&statement).await.expect("InfluxDB answers");
    answer.iter().map(|series| series.values.len()).sum()
}

/// Writes k6-shaped samples for run `id`: requests of two endpoints from two instances, and VUs.
async fn write_samples(influx: &InfluxServer, id: i64) {
    influx.client("k6").create_database().await.expect("create the database");
    let now = chrono::Utc::now().timestamp_millis();
    let mut lines = String::new();
    for (offset, (instance, name)) in [("0", "items"), ("1", "items"), ("0", "orders")].iter().enumerate() {
        let tags = format!("instance_id={instance},name={name},scenario=s,status=200,testid={id}");
        let at = now + offset as i64;
        lines.push_str(&format!("http_reqs,{tags} url=\"http://t/{name}\",value=1 {at}\n"));
        lines.push_str(&format!("http_req_duration,{tags} url=\"http://t/{name}\",value=3.5 {at}\n"));
    }
    lines.push_str(&format!("vus,testid={id},instance_id=0 value=2 {now}\n"));
    influx.write("k6", &lines).await;
    assert_eq!(series_of(influx, id).await, 7, "3 http_reqs + 3 http_req_duration + 1 vus series");
}

async fn delete_run(app: &TestApp, id: i64) {
    let deleted = app
        .graphql("mutation($id: ID!) { deleteTestHistory(id: $id) }", json!({ "id": id.to_string() }))
        .await;
    assert_eq!(deleted.data()["deleteTestHistory"], id.to_string());
    let gone =
        app.graphql("query($id: ID!) { testHistory(id: $id) { id } }", json!({ "id": id.to_string() })).await;
    assert_eq!(gone.data()["testHistory"], Value::Null);
}

/// Polls until run `id` has no series left, or fails after `limit`.
async fn wait_until_no_series(influx: &InfluxServer, id: i64, limit: Duration) {
    let started = Instant::now();
    while series_of(influx, id).await > 0 {
        assert!(
            started.elapsed() < limit,
            "run {id} still has {} series after {limit:?}",
            series_of(influx, id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_single_instance_runs_percentiles_are_k6s_own() {
    let influx = InfluxServer::start().await;
    let app = app_with(&influx).await;
    let (_, endpoints) = project_with_target(&app, "Target").await;
    // A modest rate (3 VUs, each waiting ~3 ms for the target and 10 ms between requests), so
    // InfluxDB stores every sample k6 reports and both compute over the same set.
    let input = json!({ "title": "Percentiles", "scenarios": [{
        "name": "browse", "endpointId": endpoints["getItem"], "executor": "CONSTANT_VUS",
        "thinkTime": 0.01, "stages": [{"duration": "3s", "target": 3}] }] });
    let launched = app
        .graphql(
            "mutation($i: LaunchLoadTestInput!) { launchLoadTest(input: $i) { id } }",
            json!({ "i": input }),
        )
        .await;
    let id = launched.data()["launchLoadTest"]["id"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let run = loop {
        let run = app.graphql(RESULT, json!({ "id": id })).await.data()["testHistory"].clone();
        if run["isCompleted"] == true {
            break run;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "run {id} not finished: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["status"], "COMPLETED", "{run}");

    let path = app.scripts_dir().join(format!("summary-{id}-0.json"));
    let k6: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("k6's --summary-export")).unwrap();
    let k6_requests = k6["metrics"]["http_reqs"]["count"].as_i64().unwrap();
    let duration = &k6["metrics"]["http_req_duration"];
    let summary = &run["summary"];
    // First: the samples are the same set (nothing merged or lost), else the figures could differ.
    assert_eq!(summary["totalRequests"].as_i64().unwrap(), k6_requests, "stored = reported");
    assert!(k6_requests > 200, "enough samples for the percentiles to fall between ranks: {k6_requests}");
    for (ours, theirs) in
        [("p50ResponseTime", "med"), ("p95ResponseTime", "p(95)"), ("p99ResponseTime", "p(99)")]
    {
        let (ours_value, k6_value) = (summary[ours].as_f64().unwrap(), duration[theirs].as_f64().unwrap());
        // k6 prints these with 2 decimals (ms) in its summary; they agree far beyond that.
        assert!(
            (ours_value - k6_value).abs() <= k6_value.abs() * 1e-9,
            "{ours} {ours_value} vs k6's {theirs} {k6_value}"
        );
    }
}

#[tokio::test]
async fn deleting_a_run_drops_its_series_and_only_its_series() {
    let influx = InfluxServer::start().await;
    let app = app_with(&influx).await;
    let project: i64 = app.create_project("Runs").await.parse().unwrap();
    let (deleted, kept) = (Run::new(project).insert(&app.db).await, Run::new(project).insert(&app.db).await);
    write_samples(&influx, deleted).await;
    write_samples(&influx, kept).await;

    delete_run(&app, deleted).await;

    // At once: the mutation waited for InfluxDB.
    assert_eq!(series_of(&influx, deleted).await, 0);
    assert_eq!(series_of(&influx, kept).await, 7);
    let count =
        influx.client("k6").query(r#"SELECT count("value") FROM "http_reqs" WHERE time >= 0"#).await.unwrap();
    assert_eq!(count[0].first_f64("count"), Some(3.0), "the other run's requests remain");
}

#[tokio::test]
async fn a_run_deleted_while_influxdb_is_down_loses_its_series_once_it_is_back() {
    let mut influx = InfluxServer::start().await;
    let app = app_with(&influx).await;
    let project: i64 = app.create_project("Runs").await.parse().unwrap();
    let (deleted, kept) = (Run::new(project).insert(&app.db).await, Run::new(project).insert(&app.db).await);
    write_samples(&influx, deleted).await;
    write_samples(&influx, kept).await;
    influx.stop();

    let asked = Instant::now();
    delete_run(&app, deleted).await;
    assert!(asked.elapsed() < Duration::from_secs(10), "the deletion does not hang on InfluxDB");

    influx.restart().await;
    wait_until_no_series(&influx, deleted, Duration::from_secs(15)).await;
    assert_eq!(series_of(&influx, kept).await, 7, "the sweep drops only runs the database no longer has");
}

#[tokio::test]
async fn deleting_a_project_drops_the_series_of_its_runs() {
    let influx = InfluxServer::start().await;
    let app = app_with(&influx).await;
    let doomed: i64 = app.create_project("Doomed").await.parse().unwrap();
    let keeper: i64 = app.create_project("Keeper").await.parse().unwrap();
    seed::spec(&app.db, keeper, "http://127.0.0.1:9001", 1, 1).await;
    let runs = [Run::new(doomed).insert(&app.db).await, Run::new(doomed).insert(&app.db).await];
    let other = Run::new(keeper).insert(&app.db).await;
    for id in runs.into_iter().chain([other]) {
        write_samples(&influx, id).await;
    }

    let response = app
        .graphql("mutation($id: ID!) { deleteProject(id: $id) }", json!({ "id": doomed.to_string() }))
        .await;
    assert_eq!(response.data()["deleteProject"], doomed.to_string());

    for id in runs {
        wait_until_no_series(&influx, id, Duration::from_secs(5)).await;
    }
    assert_eq!(series_of(&influx, other).await, 7);
}
