//! What the benchmarks that run the release `metric-vault` binary share: starting it as a
//! child process on 127.0.0.1, reading its memory, percentiles, and describing the machine.
//!
//! Each bench binary includes this module with `mod common;` and uses part of it.
#![allow(dead_code)]

use std::{
    fs::File,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

const READY_POLL: Duration = Duration::from_millis(2);
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Clone, Copy)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn rss_mb(self) -> f64 {
        kib_to_mb(self.rss_kib)
    }
    pub fn hwm_mb(self) -> f64 {
        kib_to_mb(self.hwm_kib)
    }
}

/// Decimal megabytes, the unit of the issue's target.
pub fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// Reads `VmRSS` (resident now) and `VmHWM` (resident peak) of `pid`.
pub fn rss_kib(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(Memory { rss_kib: field("VmRSS")?, hwm_kib: field("VmHWM")? })
}

/// The value at percentile `p` (0–100) of an ascending slice, by nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A port that was free a moment ago; the server binds it itself, so there is a small race
/// with other processes, which is acceptable on a benchmark machine.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `metric-vault` child. Dropping it stops the process, so neither an error nor a
/// panic leaves a server behind.
pub struct Server {
    pub child: Child,
    pub address: SocketAddr,
    pub log: PathBuf,
    pub spawned_at: Instant,
}

/// Spawns the release binary on `database_url` with a clean environment (nothing inherited
/// from the shell, such as `RUST_LOG` or a `.env` in the repository, can change what is
/// measured); stdout and stderr go to `<workdir>/server.log`.
pub fn start_server(
    binary: &Path,
    database_url: &str,
    workdir: &Path,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<Server> {
    start_named_server(binary, "server", database_url, workdir, extra_env)
}

/// [`start_server`] for benches that run several servers in one `workdir`: this one logs to
/// `<workdir>/<name>.log`.
pub fn start_named_server(
    binary: &Path,
    name: &str,
    database_url: &str,
    workdir: &Path,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<Server> {
    let address: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let scripts = workdir.join("scripts");
    let mut command = Command::new(binary);
    command
        // The working directory is the temp dir, so `./data` defaults and `.env` lookups
        // never touch the repository.
        .current_dir(workdir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("BIND_ADDR", address.to_string())
        .env("LOG_LEVEL", "warn")
        .env("METRIC_VAULT_ADMIN_TOKEN", BENCH_TOKEN)
        // A closed port unless `extra_env` names a live one: nothing may depend on an
        // InfluxDB the bench did not start.
        .env("INFLUXDB_PORT", "9")
        .env("K6_SCRIPT_FILE_FOLDER", &scripts)
        .envs(extra_env.iter().copied());
    spawn_logged(command, workdir.join(format!("{name}.log")), address)
}

/// Spawns any server process (ours, PostGraphile) listening on `address`, with stdout and
/// stderr in `log`; the returned [`Server`] stops it when dropped.
pub fn spawn_logged(mut command: Command, log: PathBuf, address: SocketAddr) -> anyhow::Result<Server> {
    let stdout = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    command.stdin(Stdio::null()).stdout(stdout.try_clone()?).stderr(stdout);
    let spawned_at = Instant::now();
    let child = command.spawn().with_context(|| format!("spawning {command:?}"))?;
    Ok(Server { child, address, log, spawned_at })
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Polls `GET /ready` every ~2 ms until it answers 200; returns the time since spawn.
    pub async fn wait_ready(&mut self, client: &reqwest::Client) -> anyhow::Result<Duration> {
        let url = self.url("/ready");
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited ({status}) before it was ready:\n{}", self.log_tail());
            }
            // Connection refused until the listener is bound; 503 until the database answers.
            if let Ok(response) = client.get(&url).send().await
                && response.status() == StatusCode::OK
            {
                return Ok(self.spawned_at.elapsed());
            }
            if self.spawned_at.elapsed() > READY_TIMEOUT {
                bail!("the server was not ready after {READY_TIMEOUT:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM (the server's graceful shutdown), then SIGKILL if it is still there after 5 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The bootstrap admin token every benchmarked server is started with (`METRIC_VAULT_ADMIN_TOKEN`):
/// the measured path includes authentication, as it does in production.
/// The main board of a project (issue 9's query (b)), in our schema: the benches that time it
/// ask exactly the same.
pub const BOARD_QUERY: &str = r#"query($p: ID) { testHistories(filter: {projectId: $p}, first: 50) { totalCount
  pageInfo { hasNextPage endCursor }
  nodes { id title status verdict testedAt
    summary { totalRequests avgTps p95ResponseTime avgErrorRate }
    scenarios { name verdict summary { p95ResponseTime avgTps avgErrorRate }
      stages { duration target } endpoint { method path } } } } }"#;

pub const BENCH_TOKEN: &str = "mv_benchmark-admin-token-on-loopback";

/// A client for 127.0.0.1 only (no proxy from the environment may sit in the measured path)
/// that sends [`BENCH_TOKEN`] with every request.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {BENCH_TOKEN}").parse()?);
    Ok(metric_vault::tls::client_builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()?)
}

/// The server binary cargo built for this bench run (the bench profile is the release
/// profile), so the measured binary is always current without a second build.
pub fn server_binary() -> anyhow::Result<PathBuf> {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_metric-vault"));
    ensure!(binary.is_file(), "no binary at {}", binary.display());
    Ok(binary)
}

/// CPU count, CPU model and total memory of this machine.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| Some(line.strip_prefix("model name")?.split_once(':')?.1.trim()))
        .unwrap_or("unknown CPU");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    format!("{cpus} CPUs (nproc), {model}, {:.1} GiB RAM", memory_kib as f64 / (1024.0 * 1024.0))
}

/// The 1-minute load average: anything else running on the machine inflates the figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// The 1-, 5- and 15-minute load averages, for a bench long enough to span several.
pub fn load_averages() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "NO" }
}

/// Sends a GraphQL request to `url` and returns its `data`; an answer with errors is an error.
pub async fn graphql(
    http: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let body: Value =
        http.post(url).json(&json!({ "query": query, "variables": variables })).send().await?.json().await?;
    ensure!(body.get("errors").is_none(), "GraphQL errors: {body}");
    Ok(body["data"].clone())
}

/// Creates a project titled `title`, imports the OpenAPI document the target API at `target`
/// publishes, and returns the id of its first endpoint.
pub async fn import_target(
    http: &reqwest::Client,
    url: &str,
    title: &str,
    target: &str,
) -> anyhow::Result<String> {
    let project = graphql(
        http,
        url,
        "mutation($t: String!) { createProject(input: {title: $t}) { id } }",
        json!({ "t": title }),
    )
    .await?;
    let project = project["createProject"]["id"].as_str().context("project id")?.to_owned();
    let imported = graphql(
        http,
        url,
        "mutation($p: ID!, $u: String!) { analyzeOpenApi(input: {projectId: $p, url: $u}) { spec { endpoints { id } } } }",
        json!({ "p": project, "u": format!("{target}/openapi.json") }),
    )
    .await?;
    Ok(imported["analyzeOpenApi"]["spec"]["endpoints"][0]["id"].as_str().context("an endpoint")?.to_owned())
}

/// The k6 executable: `K6_BINARY`, else `k6` on `PATH`.
pub fn k6_binary() -> String {
    std::env::var("K6_BINARY").unwrap_or_else(|_| "k6".to_owned())
}

/// Builds our server in this process on a fresh SQLite database in `dir` (its scripts and
/// k6's summaries under `dir/scripts`), with k6 writing to the InfluxDB on `influx_port`, and
/// serves it on a free loopback port; returns its GraphQL URL.
pub async fn serve_in_process(dir: &Path, influx_port: u16) -> anyhow::Result<String> {
    let database_url = format!("sqlite://{}/bench.db?mode=rwc", dir.display());
    let scripts = dir.join("scripts").display().to_string();
    let influx_port = influx_port.to_string();
    let variables = [
        ("DATABASE_URL", database_url.as_str()),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("INFLUXDB_PORT", influx_port.as_str()),
        ("K6_SCRIPT_FILE_FOLDER", scripts.as_str()),
        ("SCHEDULER_METRICS_DELAY", "0"),
        ("LOG_LEVEL", "warn"),
        ("METRIC_VAULT_ADMIN_TOKEN", BENCH_TOKEN),
    ];
    let settings = metric_vault::config::Settings::from_lookup(|name| {
        variables.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    })?;
    let app = metric_vault::startup::Application::build(settings).await?;
    let url = format!("http://{}/graphql", app.address());
    tokio::spawn(app.run_until_stopped());
    Ok(url)
}
