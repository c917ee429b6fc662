//! `TestHistory.timeseries`: real k6 runs read back from a real InfluxDB.

use std::time::Duration;

use chrono::Utc;
use metric_vault::{
    domain::TestStatus,
    seed::{self, Run},
};
use serde_json::json;

use super::{INFLUX_DATABASE, lab, points, requests_in, steps_between};

const SCENARIOS: &str = "scenarios { name scenarioTag summary { totalRequests failedRequests } }
                         startedAt completedAt resultsComplete missingSamples summary { totalRequests }";

#[tokio::test]
async fn the_series_of_a_two_scenario_run_adds_up_to_its_stored_totals() {
    let lab = lab().await;
    let input = json!({
        "title": "Series",
        "scenarios": [
            { "name": "Browse items", "endpointId": lab.endpoint("getItem"), "executor": "CONSTANT_VUS",
              "thinkTime": 0.05, "stages": [{"duration": "3s", "target": 2}] },
            { "name": "Broken", "endpointId": lab.endpoint("broken"), "executor": "CONSTANT_ARRIVAL_RATE",
              "thinkTime": 0, "stages": [{"duration": "3s", "target": 10}] }
        ]
    });
    let id = lab.launch(input).await;
    let run = lab.wait_until_finished(&id, SCENARIOS).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    // The series counts the samples InfluxDB holds; the summary is k6's count, less what
    // InfluxDB lacks (the run says so).
    let missing =
        if run["resultsComplete"] == true { 0.0 } else { run["missingSamples"].as_f64().unwrap_or(0.0) };
    let total = run["summary"]["totalRequests"].as_f64().unwrap() - missing;
    let browse_total = run["scenarios"][0]["summary"]["totalRequests"].as_f64().unwrap();
    let broken_total = run["scenarios"][1]["summary"]["totalRequests"].as_f64().unwrap();
    let seconds = |field: &str| chrono::DateTime::parse_from_rfc3339(run[field].as_str().unwrap()).unwrap();
    let ran_for = (seconds("completedAt") - seconds("startedAt")).num_milliseconds() as f64 / 1000.0;

    let per_second = points(&lab.series(&id, None, None).await);

    assert!(steps_between(&per_second).iter().all(|&step| step == 1), "default step: 1 s");
    // From k6's first VU reading to its last flush: about the run, never past its window.
    let buckets = per_second.len() as f64;
    assert!(buckets >= 3.0 && buckets <= ran_for + 5.0, "{buckets} points for {ran_for} s");
    // Each bucket counts its own requests, partial first and last ones included.
    assert_eq!(requests_in(&per_second, 1.0), total, "Σ tps × 1 s = totalRequests");
    assert!(per_second.iter().any(|p| p["vus"].as_f64().unwrap() >= 2.0), "VUs are read");
    let busy: Vec<_> = per_second.iter().filter(|p| p["tps"].as_f64().unwrap() > 0.0).collect();
    assert!(busy.len() >= 2);
    for point in &busy {
        let (avg, p95) =
            (point["avgResponseTime"].as_f64().unwrap(), point["p95ResponseTime"].as_f64().unwrap());
        assert!(avg > 0.0 && p95 > 0.0, "{point}");
        let errors = point["errorRate"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&errors), "{point}");
    }

    // Coarser steps: the buckets are wider, the total the same, whether or not the step
    // divides the run.
    for step in [2, 3] {
        let coarse = points(&lab.series(&id, Some(step), None).await);
        assert!(steps_between(&coarse).iter().all(|&s| s == step), "step {step}");
        assert!(coarse.len() <= per_second.len().div_ceil(step as usize) + 1, "step {step}");
        let counted = requests_in(&coarse, step as f64);
        assert!((counted - total).abs() < 1e-6, "step {step}: {counted} vs {total}");
    }

    // One scenario, by its name or by its k6 tag.
    let browse = points(&lab.series(&id, None, Some("Browse items")).await);
    // Per scenario, exact when InfluxDB holds every sample; the shortfall is run-wide only.
    let browse_series = requests_in(&browse, 1.0);
    assert!(browse_series <= browse_total && browse_series >= browse_total - missing);
    assert!(browse.iter().all(|p| p["errorRate"] == 0.0), "getItem never fails");
    let broken = points(&lab.series(&id, None, Some("broken_1")).await);
    let broken_series = requests_in(&broken, 1.0);
    assert!(broken_series <= broken_total && broken_series >= broken_total - missing);
    assert!(
        broken.iter().filter(|p| p["tps"].as_f64().unwrap() > 0.0).all(|p| p["errorRate"] == 100.0),
        "every request of /broken fails: {broken:?}"
    );
    // VUs are run-wide (k6's gauge has no scenario tag): the same in every series.
    for point in &browse {
        let run_wide = per_second.iter().find(|p| p["time"] == point["time"]).expect("same buckets");
        assert_eq!(point["vus"], run_wide["vus"], "at {}", point["time"]);
    }

    let unknown = lab.series(&id, None, Some("Checkout")).await;
    assert_eq!(unknown.error_code(), "BAD_USER_INPUT");
    assert_eq!(unknown.body["errors"][0]["extensions"]["field"], "scenarioName");
    assert!(unknown.error_message().contains("Browse items"), "{}", unknown.error_message());
    let negative = lab.series(&id, Some(-1), None).await;
    assert_eq!(negative.body["errors"][0]["extensions"]["field"], "stepSeconds");
}

#[tokio::test]
async fn a_running_run_has_its_series_so_far_and_a_pending_one_none() {
    let lab = lab().await;
    let input = json!({
        "title": "Long",
        "scenarios": [{ "name": "long", "endpointId": lab.endpoint("getItem"), "executor": "CONSTANT_VUS",
                        "thinkTime": 0.05, "stages": [{"duration": "2m", "target": 1}] }]
    });
    let id = lab.launch(input).await;
    lab.wait_for(&id, "", Duration::from_secs(30), |run| run["status"] == "RUNNING").await;
    // k6 flushes to InfluxDB every second.
    let started = std::time::Instant::now();
    let so_far = loop {
        let series = points(&lab.series(&id, None, None).await);
        if requests_in(&series, 1.0) > 0.0 {
            break series;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no samples yet: {series:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    let last =
        chrono::DateTime::parse_from_rfc3339(so_far.last().unwrap()["time"].as_str().unwrap()).unwrap();
    assert!(Utc::now().signed_duration_since(last).num_seconds() < 10, "up to now: {last}");
    lab.app
        .graphql("mutation($id: ID!) { cancelLoadTest(id: $id) { id } }", json!({ "id": id }))
        .await
        .data();

    let pending = Run::new(lab.project_id()).status(TestStatus::Pending).insert(&lab.app.db).await;
    let none = points(&lab.series(&pending.to_string(), None, None).await);
    assert_eq!(none, Vec::<serde_json::Value>::new());
}

#[tokio::test]
async fn a_long_run_is_read_in_at_most_2000_points() {
    let lab = lab().await;
    let spec = seed::spec(&lab.app.db, lab.project_id(), "http://127.0.0.1:9000", 1, 1).await;
    let run = Run::new(lab.project_id())
        .status(TestStatus::Running)
        .started_minutes_ago(90)
        .scenario(seed::ScenarioSeed {
            endpoint_id: spec.endpoint_ids[0],
            response_time_target: None,
            error_rate_target: None,
            summary: None,
        })
        .insert(&lab.app.db)
        .await;
    // One request a second for 90 minutes, as k6 would have written it.
    let started = Utc::now() - chrono::Duration::minutes(90);
    let lines: String = (0..90 * 60)
        .map(|second| {
            let at = started.timestamp_millis() + second * 1000 + 500;
            format!("http_reqs,testid={run},scenario=scenario_0 value=1 {at}\n")
        })
        .collect();
    lab.influx().client(INFLUX_DATABASE).create_database().await.unwrap();
    lab.influx().write(INFLUX_DATABASE, &lines).await;

    for asked in [None, Some(0), Some(1)] {
        let series = points(&lab.series(&run.to_string(), asked, None).await);

        // 90 minutes and 2 s of margin at 1 s would be 5,403 points; 3 s is the finest step
        // that fits, and every request is still accounted for.
        assert!(series.len() <= 2000 && series.len() >= 1790, "{asked:?}: {} points", series.len());
        assert!(steps_between(&series).iter().all(|&step| step == 3), "{asked:?}");
        let counted = requests_in(&series, 3.0);
        assert!((counted - 5400.0).abs() < 1e-6, "{asked:?}: {counted}");
    }
    let coarse = points(&lab.series(&run.to_string(), Some(60), None).await);
    assert_eq!(steps_between(&coarse)[0], 60, "a coarser step than needed is kept");
}

#[tokio::test]
async fn influxdb_down_fails_the_series_only() {
    let mut lab = lab().await;
    let run = Run::new(lab.project_id()).insert(&lab.app.db).await;
    let query = r#"query($id: ID!) { testHistory(id: $id) { title timeseries { tps } } projects { title } }"#;
    let up = lab.app.graphql(query, json!({ "id": run.to_string() })).await;
    assert_eq!(up.data()["testHistory"]["timeseries"], json!([]), "no samples: no points, no error");

    drop(lab.influx.take());
    let down = lab.app.graphql(query, json!({ "id": run.to_string() })).await;

    assert_eq!(down.status, 200);
    assert_eq!(down.error_code(), "UPSTREAM_UNAVAILABLE");
    assert!(down.error_message().contains("InfluxDB"), "{}", down.error_message());
    assert_eq!(down.body["errors"][0]["path"], json!(["testHistory", "timeseries"]));
    assert_eq!(down.body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(down.body["data"]["testHistory"]["title"], "Checkout under load", "{}", down.body);
    assert_eq!(down.body["data"]["testHistory"]["timeseries"], json!([]));
    assert_eq!(down.body["data"]["projects"][0]["title"], "Target");
}
