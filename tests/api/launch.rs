//! launchLoadTest with the real k6 against a local target, results read from a real InfluxDB.

use std::time::Duration;

use metric_vault::{
    db::entities::test_history, domain::TestStatus, metrics::test_influxd::InfluxServer, seed::Run,
};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, spawn_app_with},
    target_api::project_with_target,
};

const LAUNCH: &str = r#"mutation($input: LaunchLoadTestInput!) { launchLoadTest(input: $input) {
    id status runner parallelism jobName k6ScriptFileName k6Script scenarios { name scenarioTag } } }"#;

const RESULT: &str = r#"query($id: ID!) { testHistory(id: $id) {
    id status startedAt completedAt failureReason isCompleted verdict
    summary { totalRequests failedRequests testDuration avgTps maxTps minTps avgResponseTime p50ResponseTime
              p95ResponseTime p99ResponseTime maxResponseTime avgErrorRate maxVus avgVus }
    scenarios { name scenarioTag verdict summary { totalRequests avgResponseTime p95ResponseTime avgErrorRate } } } }"#;

/// A server with its own InfluxDB and a target API imported into a project.
struct LoadLab {
    app: TestApp,
    influx: InfluxServer,
    /// Endpoint ids by operationId.
    endpoints: std::collections::HashMap<String, String>,
}

async fn load_lab() -> LoadLab {
    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string())]).await;
    let (_, endpoints) = project_with_target(&app, "Target").await;
    LoadLab { app, influx, endpoints }
}

impl LoadLab {
    /// Every `http_req_duration` sample of run `id` in InfluxDB, sorted.
    async fn durations(&self, id: &str) -> Vec<f64> {
        let query = format!("SELECT \"value\" FROM \"http_req_duration\" WHERE \"testid\" = '{id}'");
        let series = self.influx.client("k6").query(&query).await.expect("InfluxDB answers");
        let mut values: Vec<f64> =
            series.iter().flat_map(|s| s.values.iter().filter_map(|row| row.get(1)?.as_f64())).collect();
        values.sort_by(f64::total_cmp);
        values
    }

    fn endpoint(&self, operation: &str) -> &str {
        &self.endpoints[operation]
    }

    async fn launch(&self, input: Value) -> crate::helpers::GraphQlResponse {
        self.app.graphql(LAUNCH, json!({ "input": input })).await
    }

    /// Polls the run until `done` holds, or fails after `limit`.
    async fn wait_for(&self, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let started = std::time::Instant::now();
        loop {
            let run = self.app.graphql(RESULT, json!({ "id": id })).await.data()["testHistory"].clone();
            if done(&run) {
                return run;
            }
            assert!(started.elapsed() < limit, "run {id} still not done after {limit:?}: {run}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_until_finished(&self, id: &str) -> Value {
        self.wait_for(id, Duration::from_secs(90), |run| run["isCompleted"] == true).await
    }

    /// k6's own end-of-test summary for instance `index` of run `id`.
    fn k6_summary(&self, id: &str, index: u32) -> Value {
        let path = self.app.scripts_dir().join(format!("summary-{id}-{index}.json"));
        serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap()
    }
}

fn close(ours: f64, theirs: f64, tolerance: f64) -> bool {
    (ours - theirs).abs() <= theirs.abs() * tolerance + 0.01
}

#[tokio::test]
async fn a_two_scenario_run_completes_and_its_summary_agrees_with_k6() {
    let lab = load_lab().await;
    let input = json!({
        "title": "Items under load",
        "scenarios": [
            // Little think time: many samples, so InfluxDB's nearest-rank p95 and k6's
            // interpolated one sit close together.
            { "name": "Browse items", "endpointId": lab.endpoint("getItem"), "executor": "CONSTANT_VUS",
              "thinkTime": 0.01, "stages": [{"duration": "3s", "target": 2}],
              "responseTimeTarget": 1000, "errorRateTarget": 5 },
            { "name": "Create items", "endpointId": lab.endpoint("createItem"), "executor": "RAMPING_ARRIVAL_RATE",
              "thinkTime": 0, "stages": [{"duration": "1s", "target": 10}, {"duration": "2s", "target": 20}] }
        ]
    });

    let launched = lab.launch(input).await;

    let run = &launched.data()["launchLoadTest"];
    let id = run["id"].as_str().unwrap().to_owned();
    assert!(matches!(run["status"].as_str(), Some("PENDING" | "RUNNING")));
    assert_eq!(run["jobName"], format!("k6-{id}"));
    assert!(run["k6Script"].as_str().unwrap().contains("ramping-arrival-rate"));
    let tags: Vec<&str> =
        run["scenarios"].as_array().unwrap().iter().map(|s| s["scenarioTag"].as_str().unwrap()).collect();
    assert_eq!(tags, ["browse_items_0", "create_items_1"]);

    let finished = lab.wait_until_finished(&id).await;
    assert_eq!(finished["status"], "COMPLETED", "{finished}");
    assert_eq!(finished["verdict"], "PASSED");
    assert!(finished["startedAt"].is_string() && finished["completedAt"].is_string());

    let k6 = lab.k6_summary(&id, 0);
    let summary = &finished["summary"];
    let k6_requests = k6["metrics"]["http_reqs"]["count"].as_i64().unwrap();
    // The count is k6's own. InfluxDB keeps one point per series and timestamp, so two
    // requests k6 stamps with the same instant are stored once: what it holds may fall short
    // of k6's count by such collisions, and by nothing more.
    let samples = lab.durations(&id).await;
    let stored = samples.len() as i64;
    assert_eq!(summary["totalRequests"].as_i64().unwrap(), k6_requests, "the count is k6's exactly");
    assert!((0..=k6_requests / 100).contains(&(k6_requests - stored)), "k6 {k6_requests}, stored {stored}");
    assert_eq!(summary["failedRequests"], 0);
    let duration = &k6["metrics"]["http_req_duration"];
    let (avg, k6_avg) = (summary["avgResponseTime"].as_f64().unwrap(), duration["avg"].as_f64().unwrap());
    assert!(close(avg, k6_avg, 0.01), "{avg} vs k6's {k6_avg}");
    // p95: ours interpolates between the two neighbouring samples as k6 does; on the run's own
    // samples, both must be exactly what they claim.
    let n = samples.len();
    let p95 = summary["p95ResponseTime"].as_f64().unwrap();
    let position = 0.95 * (n - 1) as f64;
    let (below, above) = (samples[position.floor() as usize], samples[position.ceil() as usize]);
    let interpolated = below + (above - below) * (position - position.floor());
    assert!(close(p95, interpolated, 1e-9), "{p95} vs the interpolated p95 {interpolated}");
    let k6_p95 = duration["p(95)"].as_f64().unwrap();
    assert!(
        k6_p95 >= below * (1.0 - 1e-6) && k6_p95 <= above * (1.0 + 1e-6),
        "k6's p95 {k6_p95} lies between its neighbouring samples {below} and {above}"
    );
    let scenario_total: i64 = finished["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["summary"]["totalRequests"].as_i64().unwrap())
        .sum();
    assert_eq!(scenario_total, stored, "the scenarios split the run's requests");
    let arrival = &finished["scenarios"][1]["summary"];
    // Ramping from 0 to 10/s over 1 s, then 10 to 20/s over 2 s: 5 + 30 = 35 iterations.
    assert!((33..=37).contains(&arrival["totalRequests"].as_i64().unwrap()), "{arrival}");
}

#[tokio::test]
async fn two_instances_share_the_load_and_one_summary_covers_both() {
    let lab = load_lab().await;
    let input = json!({
        "title": "Split", "parallelism": 2,
        "scenarios": [{ "name": "steady", "endpointId": lab.endpoint("getItem"), "executor": "CONSTANT_ARRIVAL_RATE",
                        "thinkTime": 0, "stages": [{"duration": "4s", "target": 50}] }]
    });

    let id = lab.launch(input).await.data()["launchLoadTest"]["id"].as_str().unwrap().to_owned();
    let finished = lab.wait_until_finished(&id).await;

    assert_eq!(finished["status"], "COMPLETED", "{finished}");
    let total = finished["summary"]["totalRequests"].as_i64().unwrap();
    let per_instance: Vec<i64> =
        (0..2).map(|i| lab.k6_summary(&id, i)["metrics"]["http_reqs"]["count"].as_i64().unwrap()).collect();
    assert!(per_instance.iter().all(|&n| n > 0), "both segments sent load: {per_instance:?}");
    // Both instances' samples, less at most the odd same-instant collision InfluxDB merges.
    let k6_total = per_instance.iter().sum::<i64>();
    assert!(
        (0..=k6_total / 100).contains(&(k6_total - total)),
        "the summary covers both instances: {total} of {k6_total}"
    );
    let requested = 50 * 4;
    assert!(
        (total - requested).abs() as f64 <= requested as f64 * 0.02,
        "{total} requests for {requested} requested"
    );
}

#[tokio::test]
async fn crossing_a_threshold_completes_with_a_failed_verdict() {
    let lab = load_lab().await;
    let input = json!({
        "title": "Too strict",
        "scenarios": [{ "name": "strict", "endpointId": lab.endpoint("getItem"), "executor": "CONSTANT_VUS",
                        "thinkTime": 0.1, "stages": [{"duration": "2s", "target": 1}], "responseTimeTarget": 0.001 }]
    });

    let id = lab.launch(input).await.data()["launchLoadTest"]["id"].as_str().unwrap().to_owned();
    let finished = lab.wait_until_finished(&id).await;

    assert_eq!(finished["status"], "COMPLETED", "k6 exits 99, the run itself went fine: {finished}");
    assert_eq!(finished["verdict"], "FAILED");
    assert_eq!(finished["scenarios"][0]["verdict"], "FAILED");
}

#[tokio::test]
async fn a_cancelled_run_keeps_what_it_measured() {
    let lab = load_lab().await;
    let input = json!({
        "title": "Long",
        "scenarios": [{ "name": "long", "endpointId": lab.endpoint("getItem"), "executor": "CONSTANT_VUS",
                        "thinkTime": 0.05, "stages": [{"duration": "2m", "target": 1}] }]
    });
    let id = lab.launch(input).await.data()["launchLoadTest"]["id"].as_str().unwrap().to_owned();
    lab.wait_for(&id, Duration::from_secs(30), |run| run["status"] == "RUNNING").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let jobs = lab.app.graphql("{ schedulerJobs { testHistory { id } status } }", json!({})).await;
    assert_eq!(jobs.data()["schedulerJobs"][0]["testHistory"]["id"], id.as_str());

    let cancelled = lab
        .app
        .graphql("mutation($id: ID!) { cancelLoadTest(id: $id) { status } }", json!({ "id": id }))
        .await;

    assert_eq!(cancelled.data()["cancelLoadTest"]["status"], "CANCELLED");
    let run = lab.wait_until_finished(&id).await;
    assert!(run["summary"]["totalRequests"].as_i64().unwrap() > 5, "{run}");
    let again = lab
        .app
        .graphql("mutation($id: ID!) { cancelLoadTest(id: $id) { status } }", json!({ "id": id }))
        .await;
    assert_eq!(again.error_code(), "CONFLICT");
}

#[tokio::test]
async fn a_k6_that_dies_mid_run_fails_the_run_with_its_reason() {
    let lab = load_lab().await;
    let input = json!({
        "title": "Doomed",
        "scenarios": [{ "name": "doomed", "endpointId": lab.endpoint("getItem"), "executor": "CONSTANT_VUS",
                        "thinkTime": 0.05, "stages": [{"duration": "2m", "target": 1}] }]
    });
    let id = lab.launch(input).await.data()["launchLoadTest"]["id"].as_str().unwrap().to_owned();
    lab.wait_for(&id, Duration::from_secs(30), |run| run["status"] == "RUNNING").await;

    let script = lab.app.scripts_dir().join(format!("test-{id}.js"));
    let killed =
        std::process::Command::new("pkill").arg("-KILL").arg("-f").arg(script.as_os_str()).status().unwrap();
    assert!(killed.success(), "the k6 process of the run was found and killed");

    let run = lab.wait_until_finished(&id).await;
    assert_eq!(run["status"], "FAILED");
    assert!(run["failureReason"].as_str().unwrap().contains("k6 instance 0 exited"), "{run}");
}

#[tokio::test]
async fn bad_launches_are_refused_by_field_and_leave_nothing_behind() {
    let lab = load_lab().await;
    let get_item = lab.endpoint("getItem").to_owned();
    let scenario = |overrides: Value| {
        let mut s = json!({ "name": "s", "endpointId": get_item, "executor": "RAMPING_VUS",
                            "stages": [{"duration": "1s", "target": 1}] });
        for (k, v) in overrides.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "title": "t", "scenarios": [] }), "input.scenarios"),
        (json!({ "title": " ", "scenarios": [scenario(json!({}))] }), "input.title"),
        (
            json!({ "title": "t", "scenarios": [scenario(json!({ "endpointId": "9999" }))] }),
            "scenarios[0].endpointId",
        ),
        (
            json!({ "title": "t", "scenarios": [scenario(json!({})), scenario(json!({}))] }),
            "scenarios[1].name",
        ),
        (
            json!({ "title": "t", "scenarios": [scenario(json!({ "executor": "CONSTANT_VUS",
            "stages": [{"duration": "1s", "target": 1}, {"duration": "1s", "target": 1}] }))] }),
            "scenarios[0].stages",
        ),
        (json!({ "title": "t", "scenarios": [scenario(json!({ "stages": [] }))] }), "scenarios[0].stages"),
        (
            json!({ "title": "t", "scenarios": [scenario(json!({ "stages": [{"duration": "30", "target": 1}] }))] }),
            "scenarios[0].stages[0].duration",
        ),
        (
            json!({ "title": "t", "scenarios": [scenario(json!({ "stages": [{"duration": "1s", "target": -1}] }))] }),
            "scenarios[0].stages[0].target",
        ),
        (
            json!({ "title": "t", "scenarios": [scenario(json!({ "stages": [{"duration": "3h", "target": 1}] }))] }),
            "scenarios[0].stages",
        ),
        (json!({ "title": "t", "parallelism": 65, "scenarios": [scenario(json!({}))] }), "input.parallelism"),
        (json!({ "title": "t", "parallelism": 0, "scenarios": [scenario(json!({}))] }), "input.parallelism"),
        (json!({ "title": "t", "scenarios": [scenario(json!({ "maxVus": 5 }))] }), "scenarios[0].maxVus"),
        (
            json!({ "title": "t", "scenarios": [scenario(json!({ "errorRateTarget": 150 }))] }),
            "scenarios[0].errorRateTarget",
        ),
        (
            json!({ "title": "t", "scenarios": [scenario(json!({ "thinkTime": -1 }))] }),
            "scenarios[0].thinkTime",
        ),
        (
            json!({ "title": "t", "scenarios": [scenario(json!({ "request": {"headers": ["x"]} }))] }),
            "scenarios[0].request.headers",
        ),
        (
            json!({ "title": "t", "projectId": "424242", "scenarios": [scenario(json!({}))] }),
            "scenarios[0].endpointId",
        ),
        (json!({ "title": "t", "runner": "KUBERNETES", "scenarios": [scenario(json!({}))] }), "input.runner"),
    ];
    for (input, field) in cases {
        let response = lab.launch(input.clone()).await;
        assert_eq!(response.error_code(), "BAD_USER_INPUT", "{input}");
        assert_eq!(
            response.body["errors"][0]["extensions"]["field"],
            field,
            "{input}: {}",
            response.error_message()
        );
    }
    assert_eq!(test_history::Entity::find().count(&lab.app.db).await.unwrap(), 0, "no row");
    let scripts = std::fs::read_dir(lab.app.scripts_dir()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(scripts, 0, "no script, so no k6 process");
}

#[tokio::test]
async fn a_restart_finalises_runs_left_running() {
    let data_dir = tempfile::tempdir().unwrap();
    let settings = crate::helpers::test_settings(data_dir.path()).await;
    let database_url = settings.database_url.clone();
    let first = crate::helpers::spawn_with(settings, tempfile::tempdir().unwrap()).await;
    let project = first.create_project("Interrupted").await;
    let run = Run::new(project.parse().unwrap()).status(TestStatus::Running).insert(&first.db).await;

    // A second server on the same database stands for the restarted one.
    let mut settings = crate::helpers::test_settings(data_dir.path()).await;
    settings.database_url = database_url;
    let second = crate::helpers::spawn_with(settings, data_dir).await;

    let started = std::time::Instant::now();
    loop {
        let response = second
            .graphql(
                "query($id: ID!) { testHistory(id: $id) { status failureReason } }",
                json!({ "id": run.to_string() }),
            )
            .await;
        let run = response.data()["testHistory"].clone();
        if run["status"] == "FAILED" {
            assert!(
                run["failureReason"].as_str().unwrap().starts_with("interrupted by server restart"),
                "{run}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
