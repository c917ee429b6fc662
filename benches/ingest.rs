//! Ingest benchmark: the highest request rate k6 sustains with its samples going to InfluxDB,
//! and whether InfluxDB kept every one of them, next to k6's own rate with no output at all.
//!
//! Run: `cargo bench --bench ingest [-- --seconds S --vus 10,50,100 --explore]`.
//!
//! `--explore` then runs the same script with k6 directly (no server) writing to InfluxDB
//! itself — k6's InfluxDB output, as the Kubernetes runner's pods write — under variants of
//! its settings, to show what each costs: the rate k6 reached and the samples lost.
//!
//! For each VU count: a run launched through the server (the local runner: k6 writes its samples
//! to a file the server ships to the InfluxDB of `scripts/influxdb.conf.template`,
//! `k6::runner::local::samples`), CONSTANT_VUS without think time against a target that
//! answers at once; then the very same script run by `k6 run` with no output. Reported: k6's
//! own request count and rate (its `--summary-export`), the samples InfluxDB stored for the run
//! (`http_reqs` and `http_req_duration`), and the loss. Everything runs on 127.0.0.1: the
//! target and the server in this process, a real influxd, the real k6.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, ensure};
use axum::{Json, Router, extract::State, routing::get};
use metric_vault::metrics::{influx::InfluxClient, test_influxd::InfluxServer};
use serde_json::{Value, json};

struct Options {
    seconds: u32,
    vus: Vec<u32>,
    explore: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    Options {
        seconds: value("--seconds").and_then(|v| v.parse().ok()).unwrap_or(60),
        vus: value("--vus")
            .map(|list| list.split(',').filter_map(|v| v.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![50]),
        explore: args.iter().any(|a| a == "--explore"),
    }
}

/// A target whose only operation answers at once, counting what it served.
async fn start_target(served: Arc<AtomicU64>) -> anyhow::Result<String> {
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
            get(|State(served): State<Arc<AtomicU64>>| async move {
                served.fetch_add(1, Ordering::Relaxed);
                "pong"
            }),
        )
        .with_state(served);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// k6's `http_reqs` count and rate from a `--summary-export` file.
fn k6_requests(path: &std::path::Path) -> anyhow::Result<(f64, f64)> {
    let export: Value = serde_json::from_str(&std::fs::read_to_string(path).context("k6's summary export")?)?;
    let reqs = &export["metrics"]["http_reqs"];
    Ok((reqs["count"].as_f64().context("count")?, reqs["rate"].as_f64().context("rate")?))
}

/// k6's InfluxDB output for a run of k6 itself: the server, the run's `testid`, and the
/// variables that replace (or, empty, remove) the shipped settings.
struct Output<'a> {
    influx: &'a InfluxServer,
    testid: &'a str,
    variant: &'a [(&'a str, &'a str)],
}

/// The script run by k6 itself, not through the server, with `output` or none: k6's own request
/// count and rate.
async fn run_k6(script: &str, output: Option<Output<'_>>) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let (path, export) = (dir.path().join("script.js"), dir.path().join("summary.json"));
    std::fs::write(&path, script)?;
    let mut command = tokio::process::Command::new(common::k6_binary());
    command
        .args(["run", "--quiet", "--no-color", "--address", "127.0.0.1:0", "--summary-export"])
        .arg(&export)
        .env("K6_NO_USAGE_REPORT", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(Output { influx, testid, variant }) = output {
        command
            .args(["--out", &format!("influxdb={}/k6", influx.base_url())])
            .args(["--tag", &format!("testid={testid}"), "--tag", "instance_id=0"])
            .envs(metric_vault::k6::influx_output::environment());
        for (name, value) in variant {
            if value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
    }
    let status = command.arg(&path).status().await?;
    ensure!(status.success(), "k6 failed: {status}");
    k6_requests(&export)
}

/// k6's InfluxDB output settings to compare with the shipped ones (`k6::influx_output::environment`): each
/// variant replaces or adds the variables it names.
const VARIANTS: &[(&str, &[(&str, &str)])] = &[
    ("as shipped", &[]),
    ("k6's default system tags", &[("K6_SYSTEM_TAGS", "")]),
    ("k6's default GC (GOGC=100)", &[("GOGC", "100")]),
    ("GOGC=800", &[("GOGC", "800")]),
    ("push interval 3 s", &[("K6_INFLUXDB_PUSH_INTERVAL", "3s")]),
    ("2 concurrent writes", &[("K6_INFLUXDB_CONCURRENT_WRITES", "2")]),
    // Not a k6 variable: influxd runs at `nice 10` for this one, so k6 gets the CPU first and
    // InfluxDB catches up with what k6's writes queued.
    (NICE_INFLUXD, &[]),
    ("influxd at nice 10, 3 s push", &[("K6_INFLUXDB_PUSH_INTERVAL", "3s")]),
    (
        "influxd at nice 10, 3 s push, 2 writes",
        &[("K6_INFLUXDB_PUSH_INTERVAL", "3s"), ("K6_INFLUXDB_CONCURRENT_WRITES", "2")],
    ),
];

/// The variant that lowers influxd's CPU priority instead of changing k6's settings.
const NICE_INFLUXD: &str = "influxd at nice 10";

fn renice(pid: u32, niceness: i32) -> anyhow::Result<()> {
    let status = std::process::Command::new("renice")
        .args(["-n", &niceness.to_string(), "-p", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()?;
    ensure!(status.success(), "renice failed: {status}");
    Ok(())
}

/// The script run by k6 itself with the InfluxDB output under one variant of its settings:
/// k6's request rate and the `http_reqs` samples InfluxDB lost.
async fn k6_with_output(
    script: &str,
    influx: &InfluxServer,
    client: &InfluxClient,
    testid: &str,
    variant: &[(&str, &str)],
) -> anyhow::Result<(f64, f64)> {
    let (count, rate) = run_k6(script, Some(Output { influx, testid, variant })).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((rate, count - stored(client, "http_reqs", testid).await?))
}

/// Samples of `measurement` InfluxDB holds for run `id`.
async fn stored(client: &InfluxClient, measurement: &str, id: &str) -> anyhow::Result<f64> {
    let statement = format!(r#"SELECT count("value") FROM "{measurement}" WHERE "testid" = '{id}'"#);
    Ok(client.query(&statement).await?.first().and_then(|s| s.first_f64("count")).unwrap_or(0.0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options();
    let influx = InfluxServer::start().await;
    let served = Arc::new(AtomicU64::new(0));
    let target = start_target(served.clone()).await?;

    let data_dir = tempfile::tempdir()?;
    let scripts_dir = data_dir.path().join("scripts");
    let url = common::serve_in_process(data_dir.path(), influx.port()).await?;
    let http = common::http_client()?;
    let endpoint = common::import_target(&http, &url, "bench", &target).await?;
    let client = InfluxClient::new(metric_vault::tls::client(), influx.base_url(), "k6");

    println!("Metric Vault ingest benchmark — {}", common::machine());
    let vus: Vec<String> = options.vus.iter().map(u32::to_string).collect();
    println!("command: cargo bench --bench ingest -- --seconds {} --vus {}", options.seconds, vus.join(","));
    println!();
    println!(
        "{:>5} {:>12} {:>12} {:>12} {:>12} {:>8} {:>14} {:>8}",
        "VUs", "k6 requests", "served", "stored reqs", "stored durs", "lost", "rate (output)", "alone"
    );
    for vus in options.vus {
        let scenario = json!({ "name": "flood", "endpointId": endpoint, "executor": "CONSTANT_VUS", "thinkTime": 0,
                               "stages": [{"duration": format!("{}s", options.seconds), "target": vus}] });
        let served_before = served.load(Ordering::Relaxed);
        let data = common::graphql(
            &http,
            &url,
            "mutation($i: LaunchLoadTestInput!) { launchLoadTest(input: $i) { id } }",
            json!({ "i": { "title": "ingest", "scenarios": [scenario] } }),
        )
        .await?;
        let id = data["launchLoadTest"]["id"].as_str().context("an id")?.to_owned();
        let run = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let data = common::graphql(
                &http,
                &url,
                "query($id: ID!) { testHistory(id: $id) { status isCompleted k6Script } }",
                json!({ "id": id }),
            )
            .await?;
            if data["testHistory"]["isCompleted"] == true {
                break data["testHistory"].clone();
            }
        };
        ensure!(run["status"] == "COMPLETED", "run {id} did not complete: {run}");
        let served_count = served.load(Ordering::Relaxed) - served_before;
        let (k6_count, k6_rate) = k6_requests(&scripts_dir.join(format!("summary-{id}-0.json")))?;
        // k6 flushed before it exited; give InfluxDB a moment to make the last batch visible.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (reqs, durations) =
            (stored(&client, "http_reqs", &id).await?, stored(&client, "http_req_duration", &id).await?);
        let alone = run_k6(run["k6Script"].as_str().context("the script")?, None).await?.1;
        println!(
            "{vus:>5} {k6_count:>12.0} {served_count:>12} {reqs:>12.0} {durations:>12.0} {:>8.0} {k6_rate:>12.0}/s {alone:>6.0}/s",
            k6_count - reqs.min(durations)
        );
        if options.explore {
            let script = run["k6Script"].as_str().context("the script")?;
            println!(
                "      k6's own InfluxDB output (the Kubernetes pods' way), settings explored (k6 alone: {alone:.0}/s):"
            );
            for (index, (name, variant)) in VARIANTS.iter().enumerate() {
                let testid = format!("explore-{vus}-{index}");
                if name.starts_with(NICE_INFLUXD) {
                    renice(influx.pid(), 10)?;
                }
                let explored = k6_with_output(script, &influx, &client, &testid, variant).await;
                if name.starts_with(NICE_INFLUXD) {
                    // Back to where it was (renice needs no privilege to lower a priority only).
                    let _ = renice(influx.pid(), 0);
                }
                let (rate, lost) = explored?;
                println!(
                    "      {name:<32} {rate:>8.0}/s ({:>3.0} % of alone), {lost:.0} lost",
                    rate / alone * 100.0
                );
            }
        }
    }
    Ok(())
}
