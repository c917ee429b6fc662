//! Regression verdicts on real k6 runs: a plan's baseline, then runs against a target whose
//! latency the test sets — slower is REGRESSED (p95 and, at a constant number of VUs,
//! throughput), the same latency is not.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::get};
use metric_vault::metrics::test_influxd::InfluxServer;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, serve, spawn_app_with},
    subscriptions::support::{Protocol, connect},
};

/// A target whose one operation answers after the delay the test sets.
async fn slow_target(delay_ms: Arc<AtomicU64>) -> String {
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let document_base = base.clone();
    let router = Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let base = document_base.clone();
                async move {
                    Json(json!({
                        "openapi": "3.0.3", "info": {"title": "Slow target", "version": "1"},
                        "servers": [{"url": base.get().unwrap()}],
                        "paths": {"/work": {"get": {"operationId": "work", "responses": {"200": {"description": "done"}}}}}
                    }))
                }
            }),
        )
        .route(
            "/work",
            get(|State(delay): State<Arc<AtomicU64>>| async move {
                tokio::time::sleep(Duration::from_millis(delay.load(Ordering::Relaxed))).await;
                "done"
            }),
        )
        .with_state(delay_ms);
    let url = serve(router).await;
    base.set(url.clone()).unwrap();
    url
}

const RESULT: &str = r#"query($id: ID!) { testHistory(id: $id) { status isCompleted summary { p95ResponseTime avgTps }
    regression { verdict method baseline { id } stepSeconds
      metrics { metric verdict reason effect scale intervalLow intervalHigh pValue baselineSamples candidateSamples }
      scenarios { name verdict metrics { metric verdict } } } } }"#;

async fn run_plan(app: &TestApp, plan: &str) -> Value {
    let id = launch_plan(app, plan).await;
    wait_judged(app, &id).await
}

async fn launch_plan(app: &TestApp, plan: &str) -> String {
    let launched =
        app.graphql("mutation($id: ID!) { launchTestPlan(id: $id) { id } }", json!({ "id": plan })).await;
    launched.data()["launchTestPlan"]["id"].as_str().unwrap().to_owned()
}

async fn wait_judged(app: &TestApp, id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let run = app.graphql(RESULT, json!({ "id": id })).await.data()["testHistory"].clone();
        if run["isCompleted"] == true && !run["summary"].is_null() {
            assert_eq!(run["status"], "COMPLETED", "{run}");
            return json!({ "id": id, "run": run });
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the run never finished: {run}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn verdict_of<'a>(run: &'a Value, metric: &str) -> &'a Value {
    let metrics =
        run["run"]["regression"]["metrics"].as_array().unwrap_or_else(|| panic!("no verdicts: {run}"));
    &metrics.iter().find(|m| m["metric"] == metric).unwrap()["verdict"]
}

#[tokio::test]
async fn a_slower_run_is_regressed_against_the_baseline_and_an_equal_one_is_not() {
    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[
        ("INFLUXDB_PORT", &influx.port().to_string()),
        ("REGRESSION_MIN_INTERVALS", "6"),
        // Test machines are noisy (builds run beside the tests): only a large change counts here.
        ("REGRESSION_MIN_EFFECT_PERCENT", "50"),
    ])
    .await;
    let delay = Arc::new(AtomicU64::new(20));
    let target = slow_target(delay.clone()).await;
    let project = app.create_project("Slow").await;
    let imported = app
        .graphql(
            "mutation($p: ID!, $u: String!) { analyzeOpenApi(input: {projectId: $p, url: $u}) { spec { endpoints { id } } } }",
            json!({ "p": project, "u": format!("{target}/openapi.json") }),
        )
        .await;
    let endpoint = imported.data()["analyzeOpenApi"]["spec"]["endpoints"][0]["id"].clone();
    let plan = app
        .graphql(
            "mutation($i: LaunchLoadTestInput!) { createTestPlan(input: $i) { id } }",
            json!({ "i": { "title": "Work", "scenarios": [{ "name": "work", "endpointId": endpoint,
                "executor": "CONSTANT_VUS", "thinkTime": 0.02, "stages": [{ "duration": "10s", "target": 4 }],
                "responseTimeTarget": 5000 }] } }),
        )
        .await;
    let plan = plan.data()["createTestPlan"]["id"].as_str().unwrap().to_owned();

    let baseline = run_plan(&app, &plan).await;
    assert!(baseline["run"]["regression"].is_null(), "no baseline yet: {baseline}");
    let set =
        "mutation($p: ID!, $r: ID) { setPlanBaseline(planId: $p, testHistoryId: $r) { baseline { id } } }";
    let marked = app.graphql(set, json!({ "p": plan, "r": baseline["id"] })).await;
    assert_eq!(marked.data()["setPlanBaseline"]["baseline"]["id"], baseline["id"]);

    // A webhook told of regressions (a receiver that keeps what it gets).
    let received = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let kept = received.clone();
    let receiver = serve(Router::new().route(
        "/hook",
        axum::routing::post(move |Json(body): Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    ))
    .await;
    app.graphql(
        "mutation($p: ID!, $u: String!) { createWebhook(input: {projectId: $p, url: $u, events: [REGRESSION]}) { secret } }",
        json!({ "p": project, "u": format!("{receiver}/hook") }),
    )
    .await
    .data();

    // Five times as slow: at a constant number of VUs, p95 up and throughput down — seen live
    // against the baseline's line, and judged at the end.
    delay.store(100, Ordering::Relaxed);
    let slower_id = launch_plan(&app, &plan).await;
    let mut socket = connect(&app.address, Protocol::Modern).await;
    let live =
        "subscription($id: ID!) { testMetrics(testHistoryId: $id) { elapsedSeconds p95ResponseTime final
        baseline { testHistoryId elapsedSeconds p95ResponseTime tps } baselineVerdict } }";
    socket.subscribe("live", live, json!({ "id": slower_id })).await;
    let snapshots = socket.payloads_until_complete("live").await;
    let with_baseline: Vec<&Value> =
        snapshots.iter().map(|p| &p["data"]["testMetrics"]).filter(|s| !s["baseline"].is_null()).collect();
    assert!(with_baseline.len() >= 5, "snapshots carry the baseline's figures: {snapshots:?}");
    assert!(with_baseline.iter().all(|s| s["baseline"]["testHistoryId"] == baseline["id"]));
    let mid = with_baseline.iter().find(|s| s["elapsedSeconds"].as_f64().unwrap() > 5.0).unwrap();
    assert!(
        mid["baseline"]["p95ResponseTime"].as_f64().unwrap() < mid["p95ResponseTime"].as_f64().unwrap(),
        "the baseline's line is below the slower run's: {mid}"
    );
    assert!(
        with_baseline.iter().any(|s| s["baselineVerdict"] == "REGRESSED" && s["final"] == false),
        "flagged before the run ended: {with_baseline:?}"
    );
    let slower = wait_judged(&app, &slower_id).await;
    let regression = &slower["run"]["regression"];
    assert_eq!(regression["baseline"]["id"], baseline["id"]);
    assert_eq!(regression["method"], "mann-whitney-u");
    assert_eq!(regression["verdict"], "REGRESSED", "{slower}");
    for metric in ["P95_RESPONSE_TIME", "THROUGHPUT"] {
        assert_eq!(verdict_of(&slower, metric), "REGRESSED", "{metric}: {slower}");
    }
    assert_ne!(verdict_of(&slower, "P99_RESPONSE_TIME"), "IMPROVED", "{slower}");
    let p95 = regression["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "P95_RESPONSE_TIME")
        .unwrap();
    assert_eq!(p95["scale"], "RELATIVE");
    let (effect, low, high) = (
        p95["effect"].as_f64().unwrap(),
        p95["intervalLow"].as_f64().unwrap(),
        p95["intervalHigh"].as_f64().unwrap(),
    );
    assert!(low <= effect && effect <= high && effect > 1.0, "about +400 %: {p95}");
    assert!(
        p95["pValue"].as_f64().unwrap() < 0.05 && p95["candidateSamples"].as_i64().unwrap() >= 6,
        "{p95}"
    );
    assert_eq!(regression["scenarios"][0]["name"], "work");
    assert_eq!(regression["scenarios"][0]["verdict"], "REGRESSED");
    // The run's report page shows the comparison.
    let page = app.client.get(app.url(&format!("/runs/{slower_id}/report"))).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("Compared with the baseline") && page.contains("<td>REGRESSED</td>"),
        "the report shows the verdicts"
    );
    let waited = std::time::Instant::now();
    while received.lock().unwrap().is_empty() {
        assert!(waited.elapsed() < Duration::from_secs(20), "no REGRESSION delivery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = received.lock().unwrap()[0].clone();
    assert_eq!(delivered["event"], "REGRESSION", "{delivered}");
    assert_eq!(
        delivered["run"]["id"].to_string().trim_matches('"'),
        slower["id"].as_str().unwrap(),
        "{delivered}"
    );
    let text = delivered["text"].as_str().unwrap();
    assert!(
        text.contains("P95ResponseTime +")
            && text.contains(&format!("against run {}", baseline["id"].as_str().unwrap())),
        "{text}"
    );

    // The same latency as the baseline: nothing regressed.
    delay.store(20, Ordering::Relaxed);
    let same = run_plan(&app, &plan).await;
    for metric in ["P95_RESPONSE_TIME", "P99_RESPONSE_TIME", "THROUGHPUT", "ERROR_RATE"] {
        assert_ne!(verdict_of(&same, metric), "REGRESSED", "{metric}: {same}");
    }

    // The CI gate: the run meets its (lenient) target, so it passes — unless regressions count.
    delay.store(100, Ordering::Relaxed);
    let gate = tokio::process::Command::new(env!("CARGO_BIN_EXE_metric-vault"))
        .args(["run", "--plan", &plan, "--wait", "--fail-on-regression"])
        .env("METRIC_VAULT_SERVER", app.url(""))
        .env("METRIC_VAULT_TOKEN", crate::helpers::ADMIN_TOKEN)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let gate = tokio::time::timeout(Duration::from_secs(90), gate).await.unwrap().unwrap();
    let said = String::from_utf8_lossy(&gate.stdout).to_string() + &String::from_utf8_lossy(&gate.stderr);
    assert_eq!(gate.status.code(), Some(1), "{said}");
    assert!(
        said.contains("regressed against baseline run") && said.contains("p95 response time +"),
        "{said}"
    );
    delay.store(20, Ordering::Relaxed);

    // A baseline must be a completed run of the plan.
    let other = app
        .launch(json!({ "title": "one-off", "scenarios": [{ "name": "w", "endpointId": endpoint,
        "executor": "CONSTANT_VUS", "stages": [{ "duration": "1s", "target": 1 }] }] }))
        .await;
    let refused = app.graphql(set, json!({ "p": plan, "r": other })).await;
    assert_eq!(refused.error_code(), "BAD_USER_INPUT", "{}", refused.body);

    // Cleared while a run is live: the live view follows the plan (within seconds) and the
    // run's recorded end has no verdict, as the plan had no baseline then.
    let live_id = launch_plan(&app, &plan).await;
    let mut socket = connect(&app.address, Protocol::Modern).await;
    socket.subscribe("again", live, json!({ "id": live_id })).await;
    loop {
        let payload = socket.next_payload("again").await;
        if !payload["data"]["testMetrics"]["baseline"].is_null() {
            break;
        }
    }
    let cleared = app.graphql(set, json!({ "p": plan, "r": null })).await;
    assert!(cleared.data()["setPlanBaseline"]["baseline"].is_null());
    let rest = socket.payloads_until_complete("again").await;
    let last = &rest.last().unwrap()["data"]["testMetrics"];
    assert!(
        last["baseline"].is_null() && last["baselineVerdict"].is_null(),
        "the live view followed: {last}"
    );
    let ended = wait_judged(&app, &live_id).await;
    assert!(ended["run"]["regression"].is_null(), "{ended}");
}
