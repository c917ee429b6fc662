//! Exact totals from k6 itself, and the integrity check: real k6 (many VUs, no think time)
//! against a local target that counts what it served, samples written to a real InfluxDB.
//!
//! Whatever InfluxDB keeps, the run's counts must be exactly what the target served and what
//! k6's own summaries say; the integrity figures must be exactly what InfluxDB holds against
//! what k6 reported, and `resultsComplete` true only when they agree.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, routing::get};
use metric_vault::metrics::test_influxd::InfluxServer;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, spawn_app_with},
    subscriptions::support::{Protocol, connect},
};

const RESULT: &str = r#"query($id: ID!) { testHistory(id: $id) {
    id status isCompleted failureReason parallelism resultsComplete missingSamples
    summary { totalRequests failedRequests avgTps testDuration avgErrorRate }
    totals { requests failedRequests iterations dataSent dataReceived }
    integrity { reported stored missing complete shortfall instances { instance reported stored missing complete } }
    scenarios { scenarioTag summary { totalRequests } totals { requests failedRequests iterations } } } }"#;

const EVENTS: &str = "subscription($run: ID) { testStatusChanged(testHistoryId: $run) {
    status resultsComplete integrity { reported stored missing complete instances { instance reported stored } } } }";

/// Requests served, per path.
#[derive(Clone, Default)]
pub(crate) struct Served {
    pub a: Arc<AtomicI64>,
    pub b: Arc<AtomicI64>,
}

/// A target that answers at once and counts every request it served, on two paths.
pub(crate) async fn counting_target() -> (String, Served) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = Served::default();
    let document = json!({
        "openapi": "3.0.3",
        "info": {"title": "Counting target", "version": "1.0.0"},
        "servers": [{"url": base}],
        "paths": {
            "/a": {"get": {"operationId": "hitA", "responses": {"200": {"description": "counted"}}}},
            "/b": {"get": {"operationId": "hitB", "responses": {"200": {"description": "counted"}}}}
        }
    });
    let app = Router::new()
        .route("/openapi.json", get(move || async move { Json(document) }))
        .route(
            "/a",
            get(|State(s): State<Served>| async move {
                s.a.fetch_add(1, Ordering::SeqCst);
                "a"
            }),
        )
        .route(
            "/b",
            get(|State(s): State<Served>| async move {
                s.b.fetch_add(1, Ordering::SeqCst);
                "b"
            }),
        )
        .with_state(served.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, served)
}

struct Lab {
    app: TestApp,
    influx: InfluxServer,
    served: Served,
    a: String,
    b: String,
}

async fn lab() -> Lab {
    lab_with(&[]).await
}

async fn lab_with(extra: &[(&str, &str)]) -> Lab {
    let influx = InfluxServer::start().await;
    let port = influx.port().to_string();
    let settings: Vec<(&str, &str)> =
        std::iter::once(("INFLUXDB_PORT", port.as_str())).chain(extra.iter().copied()).collect();
    let app = spawn_app_with(&settings).await;
    let (target, served) = counting_target().await;
    let project = app.create_project("Counted").await;
    let imported = app
        .graphql(
            "mutation($p: ID!, $u: String!) { analyzeOpenApi(input: {projectId: $p, url: $u}) { spec { endpoints { id operationId } } } }",
            json!({ "p": project, "u": format!("{target}/openapi.json") }),
        )
        .await;
    let endpoints: BTreeMap<String, String> = imported.data()["analyzeOpenApi"]["spec"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["operationId"].as_str().unwrap().to_owned(), e["id"].as_str().unwrap().to_owned()))
        .collect();
    Lab { app, influx, served, a: endpoints["hitA"].clone(), b: endpoints["hitB"].clone() }
}

impl Lab {
    /// Two scenarios of `vus` VUs each, no think time, for `seconds`, split across `parallelism`.
    async fn launch(&self, parallelism: u32, vus: u32, seconds: u32) -> String {
        let scenario = |name: &str, endpoint: &str| {
            json!({ "name": name, "endpointId": endpoint, "executor": "CONSTANT_VUS", "thinkTime": 0,
                    "stages": [{"duration": format!("{seconds}s"), "target": vus}] })
        };
        let input = json!({ "title": "Flat out", "parallelism": parallelism,
                            "scenarios": [scenario("A", &self.a), scenario("B", &self.b)] });
        self.app.launch(input).await
    }

    async fn wait_until_finished(&self, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let run = self.app.graphql(RESULT, json!({ "id": id })).await.data()["testHistory"].clone();
            if run["isCompleted"] == true {
                return run;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "run {id} not done: {run}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// k6's own `--summary-export` of instance `index`: `metric`'s `figure`.
    fn k6_figure(&self, id: &str, index: u32, metric: &str, figure: &str) -> i64 {
        let path = self.app.scripts_dir().join(format!("summary-{id}-{index}.json"));
        let summary: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let value = &summary["metrics"][metric][figure];
        value.as_f64().unwrap_or_else(|| panic!("{metric}.{figure} in {}", path.display())) as i64
    }

    /// `http_reqs` points InfluxDB holds for run `id`, by instance.
    async fn stored(&self, id: &str) -> BTreeMap<String, i64> {
        let query = format!(
            r#"SELECT count("value") FROM "http_reqs" WHERE "testid" = '{id}' GROUP BY "instance_id""#
        );
        let series = self.influx.client("k6").query(&query).await.expect("InfluxDB answers");
        series
            .iter()
            .map(|s| (s.tags["instance_id"].clone(), s.values[0][1].as_f64().unwrap() as i64))
            .collect()
    }

    fn served(&self) -> (i64, i64) {
        (self.served.a.load(Ordering::SeqCst), self.served.b.load(Ordering::SeqCst))
    }
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or_else(|| panic!("not an integer: {value}"))
}

/// Everything a finished run says about its counts and integrity, checked against the target,
/// k6's own summaries and InfluxDB. Returns the missing samples.
async fn check_run(lab: &Lab, id: &str, parallelism: u32, run: &Value, served: (i64, i64)) -> i64 {
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let (a, b) = served;
    let totals = &run["totals"];
    // Exact: what the target served, and the sum of k6's own summaries.
    assert_eq!(int(&totals["requests"]), a + b, "{run}");
    assert_eq!(int(&run["summary"]["totalRequests"]), a + b, "the summary counts are k6's");
    let k6_sum = |metric: &str, figure: &str| {
        (0..parallelism).map(|i| lab.k6_figure(id, i, metric, figure)).sum::<i64>()
    };
    assert_eq!(int(&totals["requests"]), k6_sum("http_reqs", "count"));
    assert_eq!(int(&totals["iterations"]), k6_sum("iterations", "count"));
    assert_eq!(int(&totals["dataSent"]), k6_sum("data_sent", "count"));
    assert_eq!(int(&totals["dataReceived"]), k6_sum("data_received", "count"));
    assert_eq!(int(&totals["failedRequests"]), 0);
    let scenarios = run["scenarios"].as_array().unwrap();
    assert_eq!(int(&scenarios[0]["totals"]["requests"]), a, "scenario A: what /a served");
    assert_eq!(int(&scenarios[1]["totals"]["requests"]), b, "scenario B: what /b served");
    assert_eq!(int(&scenarios[0]["summary"]["totalRequests"]), a);
    assert_eq!(int(&scenarios[1]["summary"]["totalRequests"]), b);
    let duration = run["summary"]["testDuration"].as_f64().unwrap();
    let avg_tps = run["summary"]["avgTps"].as_f64().unwrap();
    assert!((avg_tps - (a + b) as f64 / duration.max(1.0)).abs() < 1e-6, "avgTps from the exact count");

    // Integrity: exactly what InfluxDB holds against what each k6 instance reported.
    let stored = lab.stored(id).await;
    let integrity = &run["integrity"];
    let instances = integrity["instances"].as_array().unwrap();
    assert_eq!(instances.len(), parallelism as usize);
    let mut missing = 0;
    for (index, instance) in instances.iter().enumerate() {
        let reported = lab.k6_figure(id, index as u32, "http_reqs", "count");
        let held = stored.get(&index.to_string()).copied().unwrap_or(0);
        assert_eq!(int(&instance["instance"]), index as i64);
        assert_eq!(int(&instance["reported"]), reported, "{instance}");
        assert_eq!(int(&instance["stored"]), held, "{instance}");
        assert_eq!(int(&instance["missing"]), (reported - held).max(0));
        assert_eq!(instance["complete"], reported == held);
        missing += (reported - held).max(0);
    }
    assert_eq!(int(&integrity["reported"]), a + b);
    assert_eq!(int(&integrity["stored"]), stored.values().sum::<i64>());
    assert_eq!(int(&integrity["missing"]), missing);
    assert_eq!(int(&run["missingSamples"]), missing);
    let exact = instances.iter().all(|i| i["complete"] == true);
    assert_eq!(run["resultsComplete"], exact, "{run}");
    assert_eq!(integrity["complete"], exact);
    assert_eq!(integrity["shortfall"].is_null(), exact, "a shortfall is said in words: {integrity}");
    missing
}

#[tokio::test]
async fn totals_are_what_the_target_served_for_one_and_three_instances() {
    let lab = lab().await;
    for parallelism in [1, 3] {
        let before = lab.served();
        let mut socket = connect(&lab.app.address, Protocol::Modern).await;
        let id = lab.launch(parallelism, 30, 3).await;
        socket.subscribe("status", EVENTS, json!({ "run": id })).await;
        let run = lab.wait_until_finished(&id).await;
        let after = lab.served();
        let served = (after.0 - before.0, after.1 - before.1);
        let missing = check_run(&lab, &id, parallelism, &run, served).await;
        let rate = (served.0 + served.1) as f64 / run["summary"]["testDuration"].as_f64().unwrap();
        eprintln!(
            "parallelism {parallelism}: {served:?} requests at {rate:.0}/s, {missing} samples missing in InfluxDB"
        );

        // The status event of the end carries the same verdict.
        let ended = loop {
            let payload = socket.next_payload("status").await;
            let event = payload["data"]["testStatusChanged"].clone();
            if event["status"] == "COMPLETED" {
                break event;
            }
        };
        assert_eq!(ended["resultsComplete"], run["resultsComplete"]);
        assert_eq!(ended["integrity"]["reported"], run["integrity"]["reported"]);
        assert_eq!(ended["integrity"]["stored"], run["integrity"]["stored"]);
        assert_eq!(ended["integrity"]["instances"].as_array().unwrap().len(), parallelism as usize);
    }
}

#[tokio::test]
/// k6 writes its samples to a file the server ships: a stalled InfluxDB delays them, loses none.
async fn an_influxdb_frozen_mid_run_loses_no_sample() {
    let lab = lab().await;
    let before = lab.served();
    let id = lab.launch(2, 30, 7).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let pid = lab.influx.pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill").args([name, &pid]).status().expect("kill runs");
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    signal("-CONT");
    let run = lab.wait_until_finished(&id).await;
    let after = lab.served();
    let served = (after.0 - before.0, after.1 - before.1);

    let missing = check_run(&lab, &id, 2, &run, served).await;
    eprintln!(
        "frozen InfluxDB: {served:?} served, {missing} samples missing, complete: {}",
        run["resultsComplete"]
    );
    assert_eq!(missing, 0, "{run}");
    assert_eq!(run["resultsComplete"], true, "{run}");
}

#[tokio::test]
async fn samples_lost_in_influxdb_are_admitted_and_never_change_the_totals() {
    // Time to lose samples between k6's end and the server reading the results.
    let lab = lab_with(&[("SCHEDULER_METRICS_DELAY", "4")]).await;
    let before = lab.served();
    let id = lab.launch(2, 20, 2).await;
    // Once instance 1 has written its counts it has flushed its samples: lose all of them,
    // as a refused batch loses its samples, before the server reads the results.
    let counts = lab.app.scripts_dir().join(format!("counts-{id}-1.json"));
    let started = Instant::now();
    while !counts.exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "k6 instance 1 never wrote its counts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let drop = format!(r#"DROP SERIES FROM "http_reqs" WHERE "testid" = '{id}' AND "instance_id" = '1'"#);
    lab.influx.client("k6").query(&drop).await.expect("InfluxDB drops the series");

    let run = lab.wait_until_finished(&id).await;
    let after = lab.served();
    let served = (after.0 - before.0, after.1 - before.1);
    let missing = check_run(&lab, &id, 2, &run, served).await;

    let lost = lab.k6_figure(&id, 1, "http_reqs", "count");
    assert!(lost > 0, "instance 1 made requests");
    assert_eq!(missing, lost, "every sample of instance 1 is missing: {run}");
    assert_eq!(run["resultsComplete"], false);
    assert_eq!(run["integrity"]["instances"][1]["stored"], 0);
    assert_eq!(run["integrity"]["instances"][0]["complete"], true);
    let shortfall = run["integrity"]["shortfall"].as_str().unwrap();
    assert!(
        shortfall.contains(&format!("instance 1: k6 reported {lost} requests, InfluxDB holds 0")),
        "{shortfall}"
    );
    // What InfluxDB alone would have said is short by exactly the lost samples; the run's
    // totals are not.
    let stored: i64 = lab.stored(&id).await.values().sum();
    assert_eq!(stored, served.0 + served.1 - lost);
    assert_eq!(int(&run["summary"]["totalRequests"]), served.0 + served.1);
}
