//! Launch benchmark: how fast a launch reaches the target, and how fast a large run's results
//! are stored after k6 exits.
//!
//! Run: `cargo bench --bench launch [-- --launches N --rate R --seconds S]`, or
//! `cargo bench --bench launch -- --webhooks N` for the webhook latency alone (3. below).
//!
//! 1. Launch latency: time from `launchLoadTest` returning to the target's first request,
//!    against k6's own start-up (the same script run directly with `k6 run`, from spawn to first
//!    request). Target: our overhead < 300 ms at parallelism 1.
//! 2. Results: a run of ≥ 1,000,000 samples; time from k6's exit (the stored `completedAt`) to
//!    the run showing COMPLETED with its summary (SCHEDULER_METRICS_DELAY=0), split into the
//!    InfluxDB queries' share (timed again on their own) and ours. Target: < 5 s.
//! 3. Webhook latency (`--webhooks N`): N short runs, each ending with a RUN_FINISHED delivery to
//!    a receiver on loopback; from the run's end (k6's exit, the stored `completedAt`) and from
//!    the delivery's enqueue (the payload's `occurredAt`, written with the end) to the request
//!    arriving at the receiver.
//!
//! Everything runs on 127.0.0.1: a target API in this process, the real server (library, in
//! this process), a real influxd and the real k6.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use axum::{Json, Router, extract::State, routing::get};
use chrono::{DateTime, Utc};
use metric_vault::metrics::{
    influx::{InfluxClient, TimeWindow},
    test_influxd::InfluxServer,
};
use serde_json::{Value, json};

/// When the target saw its first request since the last reset, in µs since `origin`.
struct FirstRequest {
    origin: Instant,
    seen: AtomicBool,
    at_micros: AtomicU64,
}

impl FirstRequest {
    fn reset(&self) {
        self.seen.store(false, Ordering::SeqCst);
    }

    fn record(&self) {
        if !self.seen.swap(true, Ordering::SeqCst) {
            self.at_micros.store(self.origin.elapsed().as_micros() as u64, Ordering::SeqCst);
        }
    }

    /// Waits for the first request and returns when it came.
    async fn wait(&self) -> Instant {
        while !self.seen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.origin + Duration::from_micros(self.at_micros.load(Ordering::SeqCst))
    }
}

struct Options {
    launches: usize,
    rate: u32,
    seconds: u32,
    webhooks: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: u32| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        launches: value("--launches", 7) as usize,
        rate: value("--rate", 3000),
        seconds: value("--seconds", 30),
        webhooks: value("--webhooks", 0) as usize,
    }
}

/// A target whose only operation answers at once; it notes its first request.
async fn start_target(first: Arc<FirstRequest>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let document = json!({
        "openapi": "3.0.3", "info": {"title": "Bench target", "version": "1"}, "servers": [{"url": base}],
        "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "pong"}}}}}
    });
    let app = Router::new()
        .route("/openapi.json", get(move || async move { Json(document) }))
        .route(
            "/ping",
            get(|State(first): State<Arc<FirstRequest>>| async move {
                first.record();
                "pong"
            }),
        )
        .with_state(first);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

struct Server {
    url: String,
    http: reqwest::Client,
}

impl Server {
    async fn graphql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        common::graphql(&self.http, &self.url, query, variables).await
    }

    async fn launch(&self, endpoint: &str, scenario: Value) -> anyhow::Result<String> {
        let mut scenario = scenario;
        scenario["endpointId"] = json!(endpoint);
        let data = self
            .graphql(
                "mutation($i: LaunchLoadTestInput!) { launchLoadTest(input: $i) { id } }",
                json!({ "i": { "title": "bench", "scenarios": [scenario] } }),
            )
            .await?;
        Ok(data["launchLoadTest"]["id"].as_str().context("an id")?.to_owned())
    }

    /// Polls until the run is completed; returns when that was seen, and the run.
    async fn wait_completed(&self, id: &str) -> anyhow::Result<(DateTime<Utc>, Value)> {
        loop {
            let data = self
                .graphql(
                    "query($id: ID!) { testHistory(id: $id) { status isCompleted startedAt completedAt k6Script
                       summary { totalRequests } scenarios { scenarioTag } } }",
                    json!({ "id": id }),
                )
                .await?;
            let run = data["testHistory"].clone();
            if run["isCompleted"] == true {
                return Ok((Utc::now(), run));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// k6's own start-up: spawn → first request, for the same script, with the same InfluxDB output.
async fn k6_own_startup(script: &str, influx_out: &str, first: &FirstRequest) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("direct.js");
    std::fs::write(&path, script)?;
    first.reset();
    let spawned = Instant::now();
    let mut child = tokio::process::Command::new(common::k6_binary())
        .args(["run", "--quiet", "--no-color", "--out", &format!("influxdb={influx_out}")])
        .args(["--tag", "testid=direct", "--address", "127.0.0.1:0"])
        .arg(&path)
        .env("K6_NO_USAGE_REPORT", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let at = first.wait().await;
    child.wait().await?;
    Ok(at - spawned)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options();
    let influx = InfluxServer::start().await;
    let first = Arc::new(FirstRequest {
        origin: Instant::now(),
        seen: AtomicBool::new(true),
        at_micros: AtomicU64::new(0),
    });
    let target = start_target(first.clone()).await?;

    let data_dir = tempfile::tempdir()?;
    let server = Server {
        url: common::serve_in_process(data_dir.path(), influx.port()).await?,
        http: common::http_client()?,
    };

    let endpoint = common::import_target(&server.http, &server.url, "bench", &target).await?;
    if options.webhooks > 0 {
        return webhook_latency(&server, &endpoint, options.webhooks).await;
    }

    // 1. Launch latency against k6's own start-up, alternating so machine noise hits both.
    let short = json!({ "name": "probe", "executor": "CONSTANT_VUS", "thinkTime": 0.2, "stages": [{"duration": "1s", "target": 1}] });
    let influx_out = format!("{}/k6", influx.base_url());
    let (mut ours, mut theirs, mut launch_calls) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.launches {
        first.reset();
        let called = Instant::now();
        let id = server.launch(&endpoint, short.clone()).await?;
        let returned = Instant::now();
        let at = first.wait().await;
        ours.push((at - returned).as_secs_f64() * 1000.0);
        launch_calls.push((returned - called).as_secs_f64() * 1000.0);
        let (_, run) = server.wait_completed(&id).await?;
        let script = run["k6Script"].as_str().context("script")?.to_owned();
        theirs.push(k6_own_startup(&script, &influx_out, &first).await?.as_secs_f64() * 1000.0);
    }
    let (ours_ms, theirs_ms) = (median(ours.clone()), median(theirs.clone()));

    // 2. A large run: k6 emits about 13 samples per HTTP iteration.
    let heavy = json!({ "name": "flood", "executor": "CONSTANT_ARRIVAL_RATE", "thinkTime": 0, "maxVus": 200,
                        "stages": [{"duration": format!("{}s", options.seconds), "target": options.rate}] });
    let id = server.launch(&endpoint, heavy).await?;
    let (seen, run) = server.wait_completed(&id).await?;
    ensure!(run["status"] == "COMPLETED", "the large run did not complete: {run}");
    let completed: DateTime<Utc> = run["completedAt"].as_str().context("completedAt")?.parse()?;
    let started: DateTime<Utc> = run["startedAt"].as_str().context("startedAt")?.parse()?;
    let exit_to_stored = (seen - completed).to_std().unwrap_or_default();
    let client = InfluxClient::new(metric_vault::tls::client(), influx.base_url(), "k6");
    let samples = client
        .query(&format!("SELECT count(\"value\") FROM /.*/ WHERE \"testid\" = '{id}'"))
        .await?
        .iter()
        .filter_map(|series| series.first_f64("count"))
        .sum::<f64>();
    let window = TimeWindow {
        start: started - chrono::Duration::seconds(2),
        end: completed + chrono::Duration::seconds(2),
    };
    let tag = run["scenarios"][0]["scenarioTag"].as_str().context("tag")?.to_owned();
    let mut influx_times = Vec::new();
    for _ in 0..3 {
        let timer = Instant::now();
        let id_number: i64 = id.parse()?;
        let (a, b) = tokio::join!(
            client.summary(id_number, window, None),
            client.summary(id_number, window, Some(&tag))
        );
        a?;
        b?;
        influx_times.push(timer.elapsed().as_secs_f64() * 1000.0);
    }
    let influx_ms = median(influx_times);
    let total_ms = exit_to_stored.as_secs_f64() * 1000.0;

    println!("Metric Vault launch benchmark — {}", common::machine());
    println!(
        "command: cargo bench --bench launch -- --launches {} --rate {} --seconds {}",
        options.launches, options.rate, options.seconds
    );
    println!();
    println!("1. launch → first request (median of {} launches, parallelism 1)", options.launches);
    println!("   launchLoadTest call itself:                {:>8.1} ms", median(launch_calls));
    println!("   launch returned → target's first request:  {:>8.1} ms   (all: {ours:.0?})", ours_ms);
    println!("   k6's own start-up (spawn → first request): {:>8.1} ms   (all: {theirs:.0?})", theirs_ms);
    println!(
        "   our overhead over k6's own start-up:       {:>8.1} ms   target < 300 ms",
        ours_ms - theirs_ms
    );
    println!();
    println!(
        "2. k6 exit → summary stored ({} requests, {samples:.0} samples in InfluxDB)",
        run["summary"]["totalRequests"]
    );
    println!("   total (stored completedAt → seen COMPLETED): {:>8.1} ms   target < 5000 ms", total_ms);
    println!("   InfluxDB's share (the summary queries):      {:>8.1} ms", influx_ms);
    println!("   ours (the rest: polling at 10 ms, storing):  {:>8.1} ms", (total_ms - influx_ms).max(0.0));
    Ok(())
}

/// Deliveries a receiver got: when each arrived, and its body.
type Arrivals = Arc<std::sync::Mutex<Vec<(DateTime<Utc>, Value)>>>;

/// 3. Run end → webhook delivery received, over `runs` short runs.
async fn webhook_latency(server: &Server, endpoint: &str, runs: usize) -> anyhow::Result<()> {
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    let keep = arrivals.clone();
    let receiver = Router::new().route(
        "/hook",
        axum::routing::post(move |Json(body): Json<Value>| async move {
            keep.lock().expect("arrivals").push((Utc::now(), body));
            "ok"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let projects = server.graphql("{ projects { id } }", json!({})).await?;
    let project = projects["projects"][0]["id"].as_str().context("the bench project")?.to_owned();
    server
        .graphql(
            "mutation($p: ID!, $u: String!) {
               createWebhook(input: {projectId: $p, url: $u, events: [RUN_FINISHED]}) { secret } }",
            json!({ "p": project, "u": hook }),
        )
        .await?;

    let short = json!({ "name": "probe", "executor": "CONSTANT_VUS", "thinkTime": 0.2,
                        "stages": [{"duration": "1s", "target": 1}] });
    let (mut from_end, mut from_enqueue) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let id = server.launch(endpoint, short.clone()).await?;
        let started = Instant::now();
        let (arrived, body) = loop {
            let found =
                arrivals.lock().expect("arrivals").iter().find(|(_, body)| body["run"]["id"] == id).cloned();
            if let Some(found) = found {
                break found;
            }
            ensure!(started.elapsed() < Duration::from_secs(60), "no delivery for run {id}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let completed: DateTime<Utc> = body["run"]["completedAt"].as_str().context("completedAt")?.parse()?;
        let occurred: DateTime<Utc> = body["occurredAt"].as_str().context("occurredAt")?.parse()?;
        let millis =
            |since: DateTime<Utc>| (arrived - since).num_microseconds().unwrap_or_default() as f64 / 1000.0;
        from_end.push(millis(completed));
        from_enqueue.push(millis(occurred));
    }

    println!("Metric Vault launch benchmark — {}", common::machine());
    println!("command: cargo bench --bench launch -- --webhooks {runs}");
    println!();
    println!(
        "3. run end → webhook received (RUN_FINISHED to a receiver on 127.0.0.1, median of {runs} runs)"
    );
    println!(
        "   k6 exit (completedAt) → received:     {:>8.1} ms   (all: {from_end:.0?})",
        median(from_end.clone())
    );
    println!(
        "   enqueued with the end (occurredAt) → received: {:>6.1} ms   (all: {from_enqueue:.1?})",
        median(from_enqueue.clone())
    );
    Ok(())
}
