//! Report page benchmark: `GET /runs/{id}/report` for a 2-hour run of 3 scenarios — how long
//! the server takes to make the page, how large it is, and (when Chromium and tests/interop's
//! puppeteer-core are installed) how long a browser takes to draw it.
//!
//! k6 cannot run for two hours here, so the run's samples are written straight into a real
//! influxd, shaped as k6 writes them (`http_reqs`, `http_req_duration`, `http_req_failed` per
//! request with `testid`, `instance_id`, `scenario` and `status` tags; `vus` once a second):
//! `--rps` requests per second in all (default 100, so 720,000 requests and 2.2 million points),
//! varying over the run. The run's row is stored first (the server drops samples of runs it does
//! not know).
//!
//! Run: `cargo bench --bench report [-- --rps N --iterations N]`. The server runs in this
//! process (the library's `Application`), asked over HTTP on 127.0.0.1.

mod common;

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, ensure};
use chrono::{Duration, Utc};
use metric_vault::{
    config::Settings,
    db::entities::{project, test_history},
    metrics::test_influxd::InfluxServer,
    seed,
    startup::Application,
};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
use serde_json::{Value, json};
use tokio::process::Command;

const HOURS: i64 = 2;
const SCENARIOS: usize = 3;
/// Lines per write: k6 itself pushes its samples about this way, in batches.
const BATCH_LINES: usize = 30_000;

struct Options {
    rps: usize,
    iterations: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options { rps: 100, iterations: 5 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rps" => options.rps = args.next().context("--rps N")?.parse()?,
            "--iterations" => options.iterations = args.next().context("--iterations N")?.parse()?,
            // cargo bench passes `--bench`.
            _ => {}
        }
    }
    ensure!(options.rps >= SCENARIOS && options.iterations > 0, "--rps at least 3, --iterations at least 1");
    Ok(options)
}

/// A small deterministic generator (xorshift64*), so every run of the bench writes the same samples.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes the run's samples: each scenario's share of `rps`, rising and falling over the run,
/// response times around a per-scenario median with a long tail, 1 % failures in scenario 2.
async fn write_samples(influx: &InfluxServer, id: i64, started_ms: i64, rps: usize) -> anyhow::Result<u64> {
    let seconds = HOURS * 3600;
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut lines = String::with_capacity(BATCH_LINES * 100);
    let (mut in_batch, mut points) = (0usize, 0u64);
    for second in 0..seconds {
        let at = started_ms + second * 1000;
        let wave = 1.0 + 0.3 * (second as f64 / 600.0).sin();
        let vus = (30.0 * wave).round();
        lines.push_str(&format!("vus,testid={id},instance_id=0 value={vus} {at}\n"));
        in_batch += 1;
        for scenario in 0..SCENARIOS {
            let requests = ((rps / SCENARIOS) as f64 * wave).round() as i64;
            let median = 8.0 * (scenario + 1) as f64;
            for request in 0..requests {
                let stamp = at + request * 1000 / requests.max(1);
                let duration = median * (0.5 + noise.next()) * if noise.next() < 0.02 { 8.0 } else { 1.0 };
                let failed = u8::from(scenario == 2 && noise.next() < 0.01);
                let status = if failed == 1 { 500 } else { 200 };
                let tags = format!("testid={id},instance_id=0,scenario=scenario_{scenario},status={status}");
                lines.push_str(&format!(
                    "http_reqs,{tags} value=1 {stamp}\nhttp_req_duration,{tags} value={duration:.3} {stamp}\n\
                     http_req_failed,{tags} value={failed} {stamp}\n"
                ));
                in_batch += 3;
            }
        }
        if in_batch >= BATCH_LINES || second == seconds - 1 {
            influx.write("k6", &lines).await;
            points += in_batch as u64;
            lines.clear();
            in_batch = 0;
        }
    }
    Ok(points)
}

fn chromium() -> Option<PathBuf> {
    std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        let debian = PathBuf::from("/usr/bin/chromium");
        debian.is_file().then_some(debian)
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    println!(
        "report page of a {HOURS}-hour run, {SCENARIOS} scenarios, {} requests/s; {}",
        options.rps,
        common::machine()
    );
    let influx = InfluxServer::start().await;
    let dir = tempfile::tempdir()?;
    let database_url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let influx_port = influx.port().to_string();
    let variables = [
        ("DATABASE_URL", database_url.as_str()),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("INFLUXDB_PORT", influx_port.as_str()),
        ("LOG_LEVEL", "warn"),
        ("METRIC_VAULT_ADMIN_TOKEN", common::BENCH_TOKEN),
    ];
    let settings = Settings::from_lookup(|name| {
        variables.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    })?;
    let app = Application::build(settings).await?;
    let db = app.db().clone();
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped());

    // The run: stored first, then its samples.
    let now = Utc::now();
    let project = project::ActiveModel {
        title: Set("Report bench".into()),
        created_at: Set(now),
        updated_at: Set(now),
        runs_revision: Set(0),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    let spec = seed::spec(&db, project.id, "http://127.0.0.1:9", 1, SCENARIOS).await;
    let figures = seed::Figures { p95: 40.0, error_rate: 0.3, avg_tps: options.rps as f64 };
    let mut run = seed::Run::new(project.id).started_minutes_ago(HOURS * 60 + 5).summary(figures);
    for endpoint_id in &spec.endpoint_ids {
        run = run.scenario(seed::ScenarioSeed {
            endpoint_id: *endpoint_id,
            response_time_target: Some(100.0),
            error_rate_target: Some(1.0),
            summary: Some(figures),
        });
    }
    let id = run.insert(&db).await;
    let row = test_history::Entity::find_by_id(id).one(&db).await?.context("the seeded run")?;
    let started = row.started_at.context("a start")?;
    let mut longer = row.into_active_model();
    longer.completed_at = Set(Some(started + Duration::hours(HOURS)));
    longer.update(&db).await?;
    influx.client("k6").create_database().await?;
    let writing = Instant::now();
    let points = write_samples(&influx, id, started.timestamp_millis(), options.rps).await?;
    println!("wrote {points} points in {:.1} s", writing.elapsed().as_secs_f64());

    // The server: time to the whole page, and its size.
    let client = common::http_client()?;
    let page_url = format!("{base}/runs/{id}/report");
    let mut times = Vec::new();
    let mut page = String::new();
    for _ in 0..options.iterations {
        let started = Instant::now();
        let response = client.get(&page_url).send().await?;
        ensure!(response.status().is_success(), "HTTP {}", response.status());
        page = response.text().await?;
        times.push(common::millis(started.elapsed()));
    }
    let data_start =
        page.find("id=\"report-data\">").context("the data block")? + "id=\"report-data\">".len();
    let data_end = data_start + page[data_start..].find("</script>").context("the data block's end")?;
    let data: Value = serde_json::from_str(&page[data_start..data_end])?;
    ensure!(data["charts"]["state"] == "drawn", "no charts: {}", data["charts"]);
    let points_per_series: Vec<usize> = std::iter::once(&data["charts"]["run"])
        .chain(data["charts"]["scenarios"].as_array().context("scenarios")?)
        .map(|series| series["time"].as_array().map_or(0, Vec::len))
        .collect();
    let first = times[0];
    let times = common::sorted(times);
    println!(
        "server: page made and sent in {:.0} ms median (min {:.0}, max {:.0}; first {:.0}) over {} requests",
        common::percentile(&times, 50.0),
        times[0],
        times[times.len() - 1],
        first,
        options.iterations
    );
    println!(
        "size: {} bytes ({:.0} KB; data {:.0} KB, step {} s, points per series {:?}); gzip would be the HTTP layer's",
        page.len(),
        page.len() as f64 / 1024.0,
        (data_end - data_start) as f64 / 1024.0,
        data["charts"]["stepSeconds"],
        points_per_series
    );

    // For scale: the API's own series of the run (`TestHistory.timeseries`, the same step), which
    // the page reads once for the run and once per scenario, plus p50 and p99 for each.
    let mut api_times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let answer: Value = client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": "query($id: ID!) { testHistory(id: $id) { timeseries { time tps p95ResponseTime } } }",
                           "variables": { "id": id.to_string() } }))
            .send()
            .await?
            .json()
            .await?;
        ensure!(answer.get("errors").is_none(), "errors: {answer}");
        api_times.push(common::millis(started.elapsed()));
    }
    let api_times = common::sorted(api_times);
    println!("for scale: the API's run-wide timeseries (p95 only) takes {:.0} ms median", api_times[1]);

    // The browser, when there is one: the same page through its signed link.
    let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    match chromium() {
        Some(chromium) if interop.join("node_modules/puppeteer-core").exists() => {
            let link: Value = client
                .post(format!("{base}/graphql"))
                .json(&json!({ "query": "query($id: ID!) { testHistory(id: $id) { reportUrl } }", "variables": { "id": id.to_string() } }))
                .send()
                .await?
                .json()
                .await?;
            let link =
                format!("{base}{}", link["data"]["testHistory"]["reportUrl"].as_str().context("a link")?);
            let screenshot =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/report-2h.png");
            std::fs::create_dir_all(screenshot.parent().unwrap())?;
            let mut draws = Vec::new();
            for _ in 0..3 {
                let output = Command::new("node")
                    .arg("report-page.js")
                    .current_dir(&interop)
                    .env("REPORT_URL", &link)
                    .env("CHROMIUM", &chromium)
                    .env("EXPECTED_TITLE", "Checkout under load")
                    .env("SCREENSHOT", &screenshot)
                    .output()
                    .await?;
                let stdout = String::from_utf8_lossy(&output.stdout);
                ensure!(
                    output.status.success(),
                    "the browser failed:\n{stdout}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                let seen: Value = serde_json::from_str(
                    stdout.lines().find_map(|line| line.strip_prefix("REPORT ")).context("a REPORT line")?,
                )?;
                draws.push((
                    seen["drawMs"].as_f64().unwrap_or(f64::NAN),
                    seen["renderMs"].as_f64().unwrap_or(f64::NAN),
                ));
                ensure!(
                    seen["charts"].as_array().map_or(0, Vec::len) == 4 + 3 * SCENARIOS,
                    "charts: {}",
                    seen["charts"]
                );
            }
            let mut draw: Vec<f64> = draws.iter().map(|d| d.0).collect();
            let mut total: Vec<f64> = draws.iter().map(|d| d.1).collect();
            draw.sort_by(f64::total_cmp);
            total.sort_by(f64::total_cmp);
            println!(
                "browser (headless Chromium): {:.0} ms median from the page's last byte to {} charts drawn; \
                 {:.0} ms from navigation (request, page and charts); screenshot {}",
                draw[1],
                4 + 3 * SCENARIOS,
                total[1],
                screenshot.display()
            );
        }
        _ => println!(
            "browser: skipped (no Chromium, or no tests/interop/node_modules: `npm ci --prefix tests/interop`)"
        ),
    }
    Ok(())
}
