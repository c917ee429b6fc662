//! End-to-end benchmark of the release server against the foundation issue's targets:
//! cold start to ready, idle memory, and the latency of a depth-4 catalogue query over a
//! project with 2,000 endpoints, on SQLite and (when one answers on 127.0.0.1:5432) PostgreSQL.
//!
//! Run: `cargo bench --bench server [-- --iterations N --starts N --skip-postgres]`.
//!
//! It measures the `metric-vault` binary cargo builds for the bench (release profile) as a child process,
//! so the figures include everything a deployment pays (process start, migrations, HTTP, JSON)
//! and nothing of the benchmark's own state. All traffic stays on 127.0.0.1.

mod common;

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use common::{
    Memory, Server, http_client, load_average, machine, millis, percentile, rss_kib, server_binary, sorted,
    start_server, verdict,
};
use metric_vault::{
    db::{connect_and_migrate, entities::project},
    seed,
};
use reqwest::{StatusCode, header::CONTENT_TYPE};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, Set};
use serde_json::{Value, json};

/// The query of the issue: project → specs → tags → endpoints → parameters / request body.
const QUERY: &str = "query($id: ID!) { project(id: $id) { title endpointCount
  specs { title baseUrl tags { name endpoints { method path operationId summary
    parameters { name location required schemaType example } requestBody { contentType example } } } } } }";

/// Shape of the seeded catalogue; `seed::spec` gives every endpoint two parameters and
/// every POST (one endpoint in four) a body.
const TAGS: usize = 20;
const ENDPOINTS: usize = 2_000;
const PARAMETERS: usize = 2 * ENDPOINTS;
const BODIES: usize = ENDPOINTS / 4;

const WARMUP_REQUESTS: usize = 20;
/// Requests of the statement-logging pass; few, since logging every statement slows the server.
const PROFILED_REQUESTS: usize = 5;
/// How long the server idles after ready before its memory is read.
const IDLE_WAIT: Duration = Duration::from_secs(1);

const POSTGRES_ADDR: &str = "127.0.0.1:5432";
const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const COLD_START_TARGET: Duration = Duration::from_secs(1);
const IDLE_RSS_TARGET_MB: f64 = 40.0;
const P50_TARGET_MS: f64 = 20.0;

/// Command-line options, after cargo's `--`.
struct Options {
    iterations: usize,
    starts: usize,
    skip_postgres: bool,
    /// The arguments as given, to print the exact command back.
    given: Vec<String>,
}

impl Options {
    fn from_args() -> anyhow::Result<Self> {
        let mut options = Options { iterations: 200, starts: 10, skip_postgres: false, given: Vec::new() };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                // cargo passes `--bench` to every benchmark binary.
                "--bench" => continue,
                "--iterations" | "--starts" => {
                    let value = args.next().with_context(|| format!("{arg} needs a number"))?;
                    let n: usize = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .with_context(|| format!("{arg} needs a positive number, not {value:?}"))?;
                    if arg == "--iterations" {
                        options.iterations = n;
                    } else {
                        options.starts = n;
                    }
                    options.given.extend([arg, value]);
                }
                "--skip-postgres" => {
                    options.skip_postgres = true;
                    options.given.push(arg);
                }
                other => {
                    bail!("unknown argument {other:?}; expected --iterations N, --starts N, --skip-postgres")
                }
            }
        }
        Ok(options)
    }

    /// The command that reproduces this run.
    fn command(&self) -> String {
        let mut command = String::from("cargo bench --bench server");
        if !self.given.is_empty() {
            command.push_str(" -- ");
            command.push_str(&self.given.join(" "));
        }
        command
    }
}

/// Cold starts and idle memory, one fresh SQLite database per start.
struct ColdStarts {
    ready: Vec<f64>,
    idle: Vec<Memory>,
}

/// Starts the server `starts` times on an empty database, timing spawn → `/ready` 200 and
/// reading its memory after it idled for a second.
async fn cold_starts(binary: &Path, starts: usize) -> anyhow::Result<ColdStarts> {
    let client = http_client()?;
    let mut result = ColdStarts { ready: Vec::new(), idle: Vec::new() };
    for i in 1..=starts {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}/mv.db?mode=rwc", dir.path().display());
        let mut server = start_server(binary, &url, dir.path(), &[])?;
        let ready = server.wait_ready(&client).await?;
        tokio::time::sleep(IDLE_WAIT).await;
        let memory = rss_kib(server.pid())?;
        server.stop();
        eprintln!(
            "cold start {i}/{starts}: ready in {:.1} ms, idle RSS {:.1} MB",
            millis(ready),
            memory.rss_mb()
        );
        result.ready.push(millis(ready));
        result.idle.push(memory);
    }
    Ok(result)
}

/// Migrates `database_url`, creates a project and seeds its catalogue straight through the
/// library (2,000 endpoints through the API would take minutes); returns the project id and
/// the time it took.
async fn seed_database(database_url: &str) -> anyhow::Result<(i64, Duration)> {
    let started = Instant::now();
    let (db, _statements) = connect_and_migrate(database_url).await?;
    let now = chrono::Utc::now();
    let project = project::ActiveModel {
        title: Set("Benchmark".into()),
        summary: Set(Some("A large catalogue".into())),
        description: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        runs_revision: Set(0),
        ..Default::default()
    }
    .insert(&db)
    .await
    .context("inserting the project")?;
    seed::spec(&db, project.id, "http://127.0.0.1:9/api", TAGS, ENDPOINTS).await;
    // Closing lets SQLite checkpoint its WAL, so the server starts from a settled file.
    db.close().await?;
    Ok((project.id, started.elapsed()))
}

/// Figures of the nested query on one backend.
struct QueryRun {
    backend: &'static str,
    seed: Duration,
    /// Request sent → last body byte, ascending, in ms.
    total: Vec<f64>,
    /// Request sent → response headers, ascending, in ms. The server sends headers only
    /// once the whole answer is executed and serialized, so this is the server's share.
    ttfb: Vec<f64>,
    response_bytes: usize,
    rss_under_load: Memory,
    profile: SqlProfile,
}

/// What the server's own statement log says about one request.
struct SqlProfile {
    statements: f64,
    /// Sum of the statements' execution times (as sea-orm measures them) per request.
    sql_ms: f64,
}

/// Sends the query once, parses the answer and checks it is the whole catalogue; returns its
/// size, which every timed answer must match.
async fn check_answer(client: &reqwest::Client, server: &Server, body: &[u8]) -> anyhow::Result<usize> {
    let response = client
        .post(server.url("/graphql"))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await?;
    ensure!(response.status() == StatusCode::OK, "status {}", response.status());
    let bytes = response.bytes().await?;
    let answer: Value = serde_json::from_slice(&bytes).context("the answer is not JSON")?;
    ensure!(answer.get("errors").is_none(), "errors in the answer: {}", answer["errors"]);
    let project = &answer["data"]["project"];
    ensure!(project["endpointCount"] == ENDPOINTS, "endpointCount is {}", project["endpointCount"]);
    let specs = project["specs"].as_array().context("no specs")?;
    let tags: Vec<&Value> =
        specs.iter().flat_map(|spec| spec["tags"].as_array().into_iter().flatten()).collect();
    let endpoints: Vec<&Value> =
        tags.iter().flat_map(|tag| tag["endpoints"].as_array().into_iter().flatten()).collect();
    let parameters: usize = endpoints.iter().map(|e| e["parameters"].as_array().map_or(0, Vec::len)).sum();
    let bodies = endpoints.iter().filter(|e| !e["requestBody"].is_null()).count();
    ensure!(tags.len() == TAGS, "{} tags, expected {TAGS}", tags.len());
    ensure!(endpoints.len() == ENDPOINTS, "{} endpoints across tags, expected {ENDPOINTS}", endpoints.len());
    ensure!(parameters == PARAMETERS, "{parameters} parameters, expected {PARAMETERS}");
    ensure!(bodies == BODIES, "{bodies} request bodies, expected {BODIES}");
    Ok(bytes.len())
}

/// One timed request; returns (time to headers, time to the last byte). The answer is checked
/// (status, size) only after the clock stopped.
async fn timed_request(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    expected_bytes: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let request = client.post(url).header(CONTENT_TYPE, "application/json").body(body.to_vec());
    let started = Instant::now();
    let response = request.send().await?;
    let ttfb = started.elapsed();
    let status = response.status();
    let bytes = response.bytes().await?;
    let total = started.elapsed();
    ensure!(status == StatusCode::OK, "status {status}");
    ensure!(
        bytes.len() == expected_bytes,
        "answer of {} bytes, the checked one had {expected_bytes}",
        bytes.len()
    );
    Ok((ttfb, total))
}

/// Seeds `database_url`, starts the server on it and times `iterations` sequential queries
/// after a warm-up; then profiles a few requests with statement logging on.
async fn measure_query(
    binary: PathBuf,
    backend: &'static str,
    database_url: String,
    iterations: usize,
) -> anyhow::Result<QueryRun> {
    let (project_id, seed) = seed_database(&database_url).await?;
    eprintln!("{backend}: seeded in {:.1} s", seed.as_secs_f64());
    let workdir = tempfile::tempdir()?;
    let body = serde_json::to_vec(&json!({ "query": QUERY, "variables": { "id": project_id.to_string() } }))?;
    let client = http_client()?;

    let mut server = start_server(&binary, &database_url, workdir.path(), &[])?;
    server.wait_ready(&client).await?;
    let expected_bytes = check_answer(&client, &server, &body).await?;
    let url = server.url("/graphql");
    for _ in 0..WARMUP_REQUESTS {
        timed_request(&client, &url, &body, expected_bytes).await?;
    }
    let mut total = Vec::with_capacity(iterations);
    let mut ttfb = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let (headers, done) = timed_request(&client, &url, &body, expected_bytes).await?;
        ttfb.push(millis(headers));
        total.push(millis(done));
    }
    let rss_under_load = rss_kib(server.pid())?;
    server.stop();
    eprintln!("{backend}: {iterations} requests timed");

    let profile = sql_profile(&binary, &database_url, workdir.path(), &client, &body, expected_bytes).await?;
    Ok(QueryRun {
        backend,
        seed,
        total: sorted(total),
        ttfb: sorted(ttfb),
        response_bytes: expected_bytes,
        rss_under_load,
        profile,
    })
}

/// Restarts the server with its per-statement trace (`metric_vault::sql`) on and reads back
/// how many statements a request sends and how long they take. A separate pass, because
/// writing a log line per statement would distort the timed run.
async fn sql_profile(
    binary: &Path,
    database_url: &str,
    workdir: &Path,
    client: &reqwest::Client,
    body: &[u8],
    expected_bytes: usize,
) -> anyhow::Result<SqlProfile> {
    let mut server =
        start_server(binary, database_url, workdir, &[("RUST_LOG", "warn,metric_vault::sql=trace")])?;
    server.wait_ready(client).await?;
    let url = server.url("/graphql");
    // Warm-up, and everything start-up logged (migrations), stay before `offset`.
    for _ in 0..2 {
        timed_request(client, &url, body, expected_bytes).await?;
    }
    let offset = std::fs::metadata(&server.log)?.len();
    for _ in 0..PROFILED_REQUESTS {
        timed_request(client, &url, body, expected_bytes).await?;
    }
    // The server writes each line before it answers, so the log is complete here.
    let mut log = File::open(&server.log)?;
    log.seek(SeekFrom::Start(offset))?;
    let mut text = String::new();
    log.read_to_string(&mut text)?;
    server.stop();

    let mut statements = 0usize;
    let mut sql = Duration::ZERO;
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event["target"] != "metric_vault::sql" {
            continue;
        }
        statements += 1;
        let elapsed = event["elapsed"].as_str().unwrap_or_default();
        sql += parse_debug_duration(elapsed).with_context(|| format!("elapsed {elapsed:?} in {line}"))?;
    }
    ensure!(statements > 0, "no statements logged by the profiling server");
    Ok(SqlProfile {
        statements: statements as f64 / PROFILED_REQUESTS as f64,
        sql_ms: millis(sql) / PROFILED_REQUESTS as f64,
    })
}

/// Parses a `Duration` printed with `{:?}` ("1.5ms", "830.2µs", "12ns", "1.02s").
fn parse_debug_duration(text: &str) -> Option<Duration> {
    // Longer suffixes first: "ms" also ends in "s".
    let units = [("ns", 1e-9), ("µs", 1e-6), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0)];
    let (number, scale) =
        units.iter().find_map(|(suffix, scale)| Some((text.strip_suffix(suffix)?, *scale)))?;
    Some(Duration::from_secs_f64(number.parse::<f64>().ok()? * scale))
}

/// The SQLite row: a fresh file in a temp dir.
async fn sqlite_run(binary: &Path, iterations: usize) -> anyhow::Result<QueryRun> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/mv.db?mode=rwc", dir.path().display());
    measure_query(binary.to_owned(), "sqlite", url, iterations).await
}

/// The PostgreSQL row: a throwaway database `mv_bench_<pid>`, dropped afterwards even when
/// the run fails.
async fn postgres_run(binary: &Path, iterations: usize) -> anyhow::Result<QueryRun> {
    let name = format!("mv_bench_{}", std::process::id());
    let admin =
        Database::connect(POSTGRES_ADMIN_URL).await.context("connecting to PostgreSQL as postgres")?;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    // As a task, so that a panic while seeding (the seed helpers unwrap) still reaches the DROP.
    let outcome = tokio::spawn(measure_query(binary.to_owned(), "postgres", url, iterations)).await;
    // FORCE: a server that did not stop cleanly may still hold a connection.
    let dropped = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    admin.close().await.ok();
    let run = match outcome {
        Ok(run) => run?,
        Err(join) => bail!("the PostgreSQL run panicked: {join}"),
    };
    dropped.with_context(|| format!("dropping database {name}"))?;
    Ok(run)
}

/// True when something accepts connections on PostgreSQL's port.
fn postgres_answers() -> bool {
    let address: SocketAddr = POSTGRES_ADDR.parse().expect("a valid address");
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}

fn print_cold_starts(cold: &ColdStarts) {
    let ready = sorted(cold.ready.clone());
    let rss = sorted(cold.idle.iter().map(|m| m.rss_mb()).collect());
    let hwm = sorted(cold.idle.iter().map(|m| m.hwm_mb()).collect());
    let n = ready.len();
    let target_ms = millis(COLD_START_TARGET);
    println!("{:<44} {:<52} {:<8} met", "measure", "result", "target");
    println!(
        "{:<44} {:<52} {:<8} {}",
        format!("cold start to /ready, empty SQLite (n={n})"),
        format!("min {:.1} / median {:.1} / max {:.1} ms", ready[0], percentile(&ready, 50.0), ready[n - 1]),
        "< 1 s",
        verdict(ready[n - 1] < target_ms)
    );
    let median_rss = percentile(&rss, 50.0);
    println!(
        "{:<44} {:<52} {:<8} {}",
        format!("idle RSS 1 s after ready (n={n})"),
        format!(
            "median {median_rss:.1} MB (min {:.1}, max {:.1}; VmHWM {:.1})",
            rss[0],
            rss[n - 1],
            percentile(&hwm, 50.0)
        ),
        "< 40 MB",
        verdict(median_rss < IDLE_RSS_TARGET_MB)
    );
}

fn print_query_runs(runs: &[(&str, anyhow::Result<QueryRun>)], iterations: usize) {
    println!(
        "depth-4 project query: 1 spec, {TAGS} tags, {ENDPOINTS} endpoints ({PARAMETERS} parameters, \
         {BODIES} bodies); {iterations} sequential POST /graphql after {WARMUP_REQUESTS} warm-up"
    );
    println!(
        "{:<9} {:>6} {:>6} {:>6} {:>6} {:>6}  {:>8}  {:>8}  {:>14}  {:>7}  {:>9}  {:>6}  {:>6}  p50 < {P50_TARGET_MS} ms",
        "backend",
        "min",
        "p50",
        "p90",
        "p99",
        "max",
        "TTFB p50",
        "response",
        "RSS under load",
        "VmHWM",
        "SQL stmts",
        "SQL ms",
        "seed"
    );
    for (backend, run) in runs {
        match run {
            Ok(run) => {
                let t = &run.total;
                let p50 = percentile(t, 50.0);
                println!(
                    "{:<9} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2}  {:>8.2}  {:>8}  {:>14}  {:>7}  {:>9.1}  {:>6.2}  {:>6}  {}",
                    run.backend,
                    t[0],
                    p50,
                    percentile(t, 90.0),
                    percentile(t, 99.0),
                    t[t.len() - 1],
                    percentile(&run.ttfb, 50.0),
                    format!("{:.0} KB", run.response_bytes as f64 / 1e3),
                    format!("{:.1} MB", run.rss_under_load.rss_mb()),
                    format!("{:.1} MB", run.rss_under_load.hwm_mb()),
                    run.profile.statements,
                    run.profile.sql_ms,
                    format!("{:.1} s", run.seed.as_secs_f64()),
                    verdict(p50 < P50_TARGET_MS)
                );
            }
            Err(err) => println!("{backend:<9} failed: {err:#}"),
        }
    }
    println!(
        "(latencies in ms, request sent → last byte; TTFB = → response headers, i.e. the server's \
         execution and serialization; SQL stmts / SQL ms = statements per request and the sum of \
         their execution times, from a separate pass with the statement trace on)"
    );
}

// One runtime thread for the client: on a small machine every extra thread of the benchmark
// takes CPU from the server it measures.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let options = Options::from_args()?;
    let binary = server_binary()?;
    let load_before = load_average();
    let binary_mb = std::fs::metadata(&binary)?.len() as f64 / 1e6;

    let cold = cold_starts(&binary, options.starts).await?;
    let mut runs = vec![("sqlite", sqlite_run(&binary, options.iterations).await)];
    if options.skip_postgres {
        eprintln!("postgres: skipped (--skip-postgres)");
    } else if postgres_answers() {
        runs.push(("postgres", postgres_run(&binary, options.iterations).await));
    } else {
        eprintln!("postgres: skipped (nothing answers on {POSTGRES_ADDR})");
    }

    println!();
    println!("Metric Vault server benchmark");
    println!("command: {}", options.command());
    println!("machine: {}", machine());
    println!("load:    1-min load average {load_before} before the runs, {} after them", load_average());
    println!("binary:  {} ({binary_mb:.1} MB)", binary.display());
    println!();
    print_cold_starts(&cold);
    println!();
    print_query_runs(&runs, options.iterations);

    let failures: Vec<_> = runs.iter().filter(|(_, run)| run.is_err()).map(|(b, _)| *b).collect();
    ensure!(failures.is_empty(), "failed: {}", failures.join(", "));
    Ok(())
}
