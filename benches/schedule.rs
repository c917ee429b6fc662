//! Schedule precision: from a schedule's due time to the target's first request of the run it
//! launched (the scheduler's wake-up, the launch, k6's start-up), on real cron due times.
//!
//! Run: `cargo bench --bench schedule [-- --due-times N]` (default 3; one due time a minute, so
//! N minutes). A plan of one short scenario gets the schedule `* * * * *`; for each due time the
//! bench reads the firing's `dueAt` and the run's `startedAt` from the API and notes the wall
//! clock of the target's first request.
//!
//! Everything runs on 127.0.0.1: a target API in this process, the real server (library, in
//! this process), a real influxd and the real k6.

mod common;

use std::{sync::Arc, time::Duration};

use anyhow::{Context, ensure};
use axum::{Json, Router, extract::State, routing::get};
use chrono::{DateTime, Utc};
use metric_vault::metrics::test_influxd::InfluxServer;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// The wall clock of the target's first request since the last reset.
type FirstRequest = Arc<Mutex<Option<DateTime<Utc>>>>;

async fn start_target(first: FirstRequest) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let document = json!({
        "openapi": "3.0.3", "info": {"title": "Schedule target", "version": "1"}, "servers": [{"url": base}],
        "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "pong"}}}}}
    });
    let app = Router::new()
        .route("/openapi.json", get(move || async move { Json(document) }))
        .route(
            "/ping",
            get(|State(first): State<FirstRequest>| async move {
                first.lock().await.get_or_insert_with(Utc::now);
                "pong"
            }),
        )
        .with_state(first);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

fn due_times() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--due-times")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let wanted = due_times();
    let influx = InfluxServer::start().await;
    let first: FirstRequest = Arc::default();
    let target = start_target(first.clone()).await?;
    let data_dir = tempfile::tempdir()?;
    let url = common::serve_in_process(data_dir.path(), influx.port()).await?;
    let http = common::http_client()?;
    let endpoint = common::import_target(&http, &url, "schedule bench", &target).await?;
    let graphql = |query: &'static str, variables: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move { common::graphql(&http, &url, query, variables).await }
    };

    let plan = graphql(
        "mutation($i: LaunchLoadTestInput!) { createTestPlan(input: $i) { id } }",
        json!({ "i": { "title": "every minute", "scenarios": [{ "name": "ping", "endpointId": endpoint,
            "executor": "CONSTANT_VUS", "thinkTime": 0.2, "stages": [{ "duration": "2s", "target": 1 }] }] } }),
    )
    .await?;
    let plan = plan["createTestPlan"]["id"].as_str().context("a plan id")?.to_owned();
    let schedule = graphql(
        r#"mutation($p: ID!) { createTestSchedule(input: {planId: $p, cron: "* * * * *"}) { id nextRunAt } }"#,
        json!({ "p": plan }),
    )
    .await?;
    let schedule_id = schedule["createTestSchedule"]["id"].as_str().context("a schedule id")?.to_owned();
    eprintln!(
        "first due time: {}; {wanted} due times take about {wanted} minutes",
        schedule["createTestSchedule"]["nextRunAt"]
    );

    let (mut to_first_request, mut to_started) = (Vec::new(), Vec::new());
    let mut seen = 0;
    while seen < wanted {
        let firings = loop {
            let answer = graphql(
                "query($p: ID!) { testPlan(id: $p) { schedules { id firings(last: 100) { dueAt outcome testHistory { id startedAt } } } } }",
                json!({ "p": plan }),
            )
            .await?;
            let schedules = answer["testPlan"]["schedules"].as_array().cloned().unwrap_or_default();
            let firings = schedules
                .iter()
                .find(|s| s["id"] == schedule_id.as_str())
                .map(|s| s["firings"].as_array().cloned().unwrap_or_default())
                .unwrap_or_default();
            let started = firings.first().is_some_and(|f| !f["testHistory"]["startedAt"].is_null());
            if firings.len() > seen && started {
                break firings;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let newest = &firings[0];
        ensure!(newest["outcome"] == "LAUNCHED", "a due time did not launch: {newest}");
        let due: DateTime<Utc> = newest["dueAt"].as_str().context("dueAt")?.parse()?;
        let started: DateTime<Utc> =
            newest["testHistory"]["startedAt"].as_str().context("startedAt")?.parse()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let request = loop {
            if let Some(at) = *first.lock().await {
                break at;
            }
            ensure!(tokio::time::Instant::now() < deadline, "the target saw no request");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let ms = |d: chrono::Duration| d.num_microseconds().unwrap_or(0) as f64 / 1000.0;
        to_first_request.push(ms(request - due));
        to_started.push(ms(started - due));
        seen = firings.len();
        // The run's 2 s of load end before the next due time is watched for.
        tokio::time::sleep(Duration::from_secs(4)).await;
        *first.lock().await = None;
        eprintln!(
            "due {due}: k6 RUNNING +{:.0} ms, first request +{:.0} ms",
            ms(started - due),
            ms(request - due)
        );
    }

    let to_first_request = common::sorted(to_first_request);
    let to_started = common::sorted(to_started);
    println!("Metric Vault schedule benchmark — {}", common::machine());
    println!("command: cargo bench --bench schedule -- --due-times {wanted}");
    println!();
    println!(
        "due time → run RUNNING (k6 started):   median {:>7.1} ms   max {:>7.1} ms",
        common::percentile(&to_started, 50.0),
        to_started.last().copied().unwrap_or(0.0)
    );
    println!(
        "due time → target's first request:     median {:>7.1} ms   max {:>7.1} ms",
        common::percentile(&to_first_request, 50.0),
        to_first_request.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
