//! Main-board benchmark: `testHistories(first: 50)` with scenarios, stages, endpoint and summary
//! over 10,000 stored runs (4 scenarios × 3 stages each), on SQLite and, when one answers on
//! 127.0.0.1:5432, PostgreSQL. Target: median < 30 ms.
//!
//! Run: `cargo bench --bench board [-- --iterations N]`. The server runs in this process (the
//! library's `Application`), queried over HTTP on 127.0.0.1.

mod common;

use std::time::Instant;

use anyhow::{Context, ensure};
use metric_vault::{config::Settings, db::entities::project, seed, startup::Application};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, Set};
use serde_json::{Value, json};

const RUNS: usize = 10_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Seeds the board, starts the server on `database_url`, and times the query.
async fn measure(database_url: &str, iterations: usize) -> anyhow::Result<(Vec<f64>, u64)> {
    let variables = [
        ("DATABASE_URL", database_url),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("LOG_LEVEL", "warn"),
        ("INFLUXDB_PORT", "9"),
        ("METRIC_VAULT_ADMIN_TOKEN", common::BENCH_TOKEN),
    ];
    let settings = Settings::from_lookup(|name| {
        variables.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    })?;
    let app = Application::build(settings).await?;
    let db = app.db().clone();
    let now = chrono::Utc::now();
    let project = project::ActiveModel {
        title: Set("Board".into()),
        created_at: Set(now),
        updated_at: Set(now),
        runs_revision: Set(0),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    let spec = seed::spec(&db, project.id, "http://127.0.0.1:9", 10, 200).await;
    seed::board_history(&db, project.id, &spec.endpoint_ids, RUNS).await;
    let statements = app.statements();
    let url = format!("http://{}/graphql", app.address());
    tokio::spawn(app.run_until_stopped());

    let client = common::http_client()?;
    let body = json!({ "query": common::BOARD_QUERY, "variables": { "p": project.id.to_string() } });
    let first: Value = client.post(&url).json(&body).send().await?.json().await?;
    ensure!(first.get("errors").is_none(), "errors: {first}");
    ensure!(
        first["data"]["testHistories"]["totalCount"] == RUNS,
        "wrong answer: {}",
        first["data"]["testHistories"]["totalCount"]
    );
    ensure!(first["data"]["testHistories"]["nodes"].as_array().map(Vec::len) == Some(50), "not 50 runs");
    for _ in 0..20 {
        client.post(&url).json(&body).send().await?.bytes().await?;
    }
    let before = statements.get();
    let mut latencies = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let response = client.post(&url).json(&body).send().await?;
        ensure!(response.status().is_success(), "HTTP {}", response.status());
        response.bytes().await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let per_request = (statements.get() - before) / iterations as u64;
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, per_request))
}

fn report(backend: &str, result: &anyhow::Result<(Vec<f64>, u64)>) {
    match result {
        Ok((l, statements)) => println!(
            "{backend:<9} min {:>6.2}  p50 {:>6.2}  p90 {:>6.2}  p99 {:>6.2}  max {:>6.2} ms   {statements} SQL statements/request   p50 < 30 ms: {}",
            l[0],
            percentile(l, 0.5),
            percentile(l, 0.9),
            percentile(l, 0.99),
            l[l.len() - 1],
            if percentile(l, 0.5) < 30.0 { "yes" } else { "NO" }
        ),
        Err(err) => println!("{backend:<9} failed: {err:#}"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let iterations = args
        .iter()
        .position(|a| a == "--iterations")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);

    let dir = tempfile::tempdir()?;
    let sqlite = measure(&format!("sqlite://{}/board.db?mode=rwc", dir.path().display()), iterations).await;

    let admin_url = "postgres://postgres@127.0.0.1:5432/postgres";
    let postgres = if std::net::TcpStream::connect("127.0.0.1:5432").is_ok() {
        let name = format!("mv_boardbench_{}", std::process::id());
        let admin = Database::connect(admin_url).await.context("connecting to PostgreSQL")?;
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
        let result = measure(&format!("postgres://postgres@127.0.0.1:5432/{name}"), iterations).await;
        // The server still holds connections; force them out before dropping.
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
        Some(result)
    } else {
        None
    };

    println!(
        "Metric Vault main-board benchmark: {RUNS} runs × 4 scenarios × 3 stages, testHistories(first: 50), {iterations} sequential requests after 20 warm-up"
    );
    println!("command: cargo bench --bench board -- --iterations {iterations}");
    println!("machine: {} CPUs", std::thread::available_parallelism().map_or(0, |n| n.get()));
    report("sqlite", &sqlite);
    match &postgres {
        Some(result) => report("postgres", result),
        None => println!("postgres  skipped: nothing answers on 127.0.0.1:5432"),
    }
    Ok(())
}
