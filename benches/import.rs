//! Benchmark of OpenAPI import: the largest corpus documents (and a synthetic one of ~1,000
//! operations) from text to committed rows, on SQLite and (when one answers on 127.0.0.1:5432)
//! PostgreSQL, against the import issue's targets: under 1 s and under 150 MB for ~1,000
//! operations, and faster than `@apidevtools/swagger-parser`'s `validate()` alone on the same file.
//!
//! Run: `cargo bench --bench import [-- --iterations N --skip-postgres]`, or
//! `cargo bench --bench import -- --hostile` for the worst documents the import limits accept
//! and refuse (see `import/hostile.rs`).
//!
//! Per document and backend it times `parse_document` and `import_spec` in this process, a fresh
//! project per iteration so every import is a full create. Peak memory comes from a child process
//! per document (this executable again, in the hidden `--single` mode) that imports once and
//! reports its `VmHWM`, so one document's allocations never inflate another's figure.
//! swagger-parser runs under Node from `competitors/swagger-parser/` (installed with npm on first run).
//! All database traffic stays on 127.0.0.1.

mod common;
#[path = "import/hostile.rs"]
mod hostile;

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail, ensure};
use common::{machine, verdict};
use metric_vault::{
    db::{StatementCounter, connect_and_migrate, entities::project, repo::import::import_spec},
    openapi::{ParsedSpec, parse_document},
};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, DatabaseConnection, Set};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const DEFAULT_ITERATIONS: usize = 10;

/// The corpus documents measured: the two largest fixtures.
const FIXTURES: [&str; 2] = ["openai-openapi.yaml", "discord-openapi.json"];
/// The fixture the synthetic document is made of, and the operation count it grows to.
const SYNTHETIC_SOURCE: &str = "discord-openapi.json";
const SYNTHETIC_OPERATIONS: usize = 1_000;
/// The keys of an OpenAPI path item that are operations.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

const POSTGRES_ADDR: &str = "127.0.0.1:5432";
const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The targets for a document of ~1,000 operations.
const TIME_TARGET: Duration = Duration::from_secs(1);
const RSS_TARGET_MB: f64 = 150.0;

/// A database the import writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn from_name(name: &str) -> anyhow::Result<Self> {
        match name {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" => Ok(Backend::Postgres),
            other => bail!("unknown backend {other:?}; expected sqlite or postgres"),
        }
    }
}

/// The hidden child mode: import `file` once into `database_url` and print the memory figures.
struct SingleRun {
    file: PathBuf,
    backend: Backend,
    /// Required for PostgreSQL; SQLite defaults to a fresh file in a temp dir.
    database_url: Option<String>,
}

/// Command-line options, after cargo's `--`.
struct Options {
    iterations: usize,
    skip_postgres: bool,
    single: Option<SingleRun>,
    /// `--hostile`: the hostile-document mode instead of the corpus.
    hostile: bool,
    /// The hidden child of `--hostile`.
    hostile_single: Option<PathBuf>,
    /// The public arguments as given, to print the exact command back.
    given: Vec<String>,
}

impl Options {
    fn from_args() -> anyhow::Result<Self> {
        let mut options = Options {
            iterations: DEFAULT_ITERATIONS,
            skip_postgres: false,
            single: None,
            hostile: false,
            hostile_single: None,
            given: Vec::new(),
        };
        let mut single_file = None;
        let mut backend = Backend::Sqlite;
        let mut database_url = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                // cargo passes `--bench` to every benchmark binary.
                "--bench" => {}
                "--iterations" => {
                    let text = value()?;
                    options.iterations = text
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .with_context(|| format!("--iterations needs a positive number, not {text:?}"))?;
                    options.given.extend([arg, text]);
                }
                "--skip-postgres" => {
                    options.skip_postgres = true;
                    options.given.push(arg);
                }
                "--single" => single_file = Some(PathBuf::from(value()?)),
                "--hostile" => {
                    options.hostile = true;
                    options.given.push(arg);
                }
                "--hostile-single" => options.hostile_single = Some(PathBuf::from(value()?)),
                "--backend" => backend = Backend::from_name(&value()?)?,
                "--database-url" => database_url = Some(value()?),
                other => {
                    bail!("unknown argument {other:?}; expected --iterations N, --skip-postgres, --hostile")
                }
            }
        }
        options.single = single_file.map(|file| SingleRun { file, backend, database_url });
        Ok(options)
    }

    /// The command that reproduces this run.
    fn command(&self) -> String {
        let mut command = String::from("cargo bench --bench import");
        if !self.given.is_empty() {
            command.push_str(" -- ");
            command.push_str(&self.given.join(" "));
        }
        command
    }
}

/// A document to import: its file (the Node side reads the same bytes) and its text.
#[derive(Clone)]
struct Document {
    name: String,
    path: PathBuf,
    text: String,
}

impl Document {
    fn load(name: impl Into<String>, path: PathBuf) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Document { name: name.into(), path, text })
    }
}

/// `VmHWM` — the resident-set peak of this process so far — from `/proc/self/status`, in MiB.
fn peak_rss_mib() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")?;
    Ok(kib as f64 / 1024.0)
}

/// MiB to the decimal megabytes the target is written in.
fn mib_to_mb(mib: f64) -> f64 {
    mib * 1_048_576.0 / 1e6
}

/// Builds the ~1,000-operation document from `source` (an OpenAPI JSON document): its `paths`
/// repeated under the prefixes `/v1`, `/v2`, … until the copies hold at least `operations`
/// operations, the last copy partial. Operation ids get a `_v{k}` suffix so that they stay
/// unique and the document stays valid for swagger-parser. The result depends only on the
/// source, so every run measures the same bytes.
fn synthetic_document(source: &str, operations: usize) -> anyhow::Result<(String, usize)> {
    let mut root: Value = serde_json::from_str(source).context("the synthetic source is not JSON")?;
    let paths = root
        .get("paths")
        .and_then(Value::as_object)
        .context("the synthetic source has no `paths` object")?
        .clone();
    let per_copy: usize = paths.values().map(count_operations).sum();
    ensure!(per_copy > 0, "the synthetic source has no operations");

    let mut copied = Map::new();
    let mut total = 0;
    'copies: for k in 1.. {
        for (path, item) in &paths {
            if total >= operations {
                break 'copies;
            }
            let mut item = item.clone();
            for method in METHODS {
                if let Some(Value::String(id)) = item.get_mut(method).and_then(|op| op.get_mut("operationId"))
                {
                    id.push_str(&format!("_v{k}"));
                }
            }
            total += count_operations(&item);
            copied.insert(format!("/v{k}{path}"), item);
        }
    }
    root["paths"] = Value::Object(copied);
    Ok((serde_json::to_string(&root)?, total))
}

/// The operations of one path item.
fn count_operations(item: &Value) -> usize {
    METHODS.iter().filter(|method| item.get(**method).is_some()).count()
}

/// Inserts the project an iteration imports into; each iteration gets its own, because
/// `import_spec` updates in place when the project already has a spec with the same base URL.
async fn create_project(db: &DatabaseConnection, title: &str) -> anyhow::Result<i64> {
    let now = chrono::Utc::now();
    let project = project::ActiveModel {
        title: Set(title.to_owned()),
        summary: Set(None),
        description: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        runs_revision: Set(0),
        ..Default::default()
    }
    .insert(db)
    .await
    .context("inserting the project")?;
    Ok(project.id)
}

/// One import from text to committed rows, split into its two phases.
struct ImportSample {
    parse: Duration,
    store: Duration,
    operations: usize,
    statements: u64,
}

impl ImportSample {
    fn total(&self) -> Duration {
        self.parse + self.store
    }
}

/// Text to the domain model, the first phase of an import.
fn parse(text: &str) -> anyhow::Result<ParsedSpec> {
    parse_document(text, None, None).context("parsing the document")
}

/// The domain model to committed rows under `project_id`, the second phase; checks that it
/// was a full create, so no iteration is silently measured as a cheaper update.
async fn store(db: &DatabaseConnection, project_id: i64, parsed: &ParsedSpec) -> anyhow::Result<()> {
    // AppError has no Display on purpose (see src/error.rs), so it is carried over as Debug.
    let outcome = import_spec(db, project_id, parsed, None)
        .await
        .map_err(|err| anyhow!("import_spec failed: {err:?}"))?;
    ensure!(
        outcome.created && outcome.added == parsed.endpoints.len(),
        "expected a fresh spec with {} endpoints, got created={} added={}",
        parsed.endpoints.len(),
        outcome.created,
        outcome.added
    );
    Ok(())
}

/// Parses `text` and stores it under `project_id`; the clock covers exactly that, not the
/// project insert before it nor freeing the parsed document after it.
async fn import_once(
    db: &DatabaseConnection,
    statements: &StatementCounter,
    project_id: i64,
    text: &str,
) -> anyhow::Result<ImportSample> {
    let statements_before = statements.get();
    let started = Instant::now();
    let parsed = parse(text)?;
    let parsed_at = Instant::now();
    store(db, project_id, &parsed).await?;
    let stored_at = Instant::now();
    Ok(ImportSample {
        parse: parsed_at - started,
        store: stored_at - parsed_at,
        operations: parsed.endpoints.len(),
        statements: statements.get() - statements_before,
    })
}

/// Ascending milliseconds of one phase over the iterations.
struct Series(Vec<f64>);

impl Series {
    fn new(durations: impl Iterator<Item = Duration>) -> Self {
        let mut millis: Vec<f64> = durations.map(|d| d.as_secs_f64() * 1000.0).collect();
        millis.sort_by(f64::total_cmp);
        Series(millis)
    }

    fn min(&self) -> f64 {
        self.0[0]
    }

    /// The mean of the two middle values for an even count, as validate.mjs computes it.
    fn median(&self) -> f64 {
        let n = self.0.len();
        if n % 2 == 1 { self.0[n / 2] } else { (self.0[n / 2 - 1] + self.0[n / 2]) / 2.0 }
    }
}

/// The in-process timings of one document on one backend.
struct Timings {
    operations: usize,
    statements: u64,
    parse: Series,
    store: Series,
    total: Series,
}

/// Imports `document` `iterations` times into fresh projects of `db` and collects the phases.
async fn time_import(
    db: &DatabaseConnection,
    statements: &StatementCounter,
    document: &Document,
    iterations: usize,
) -> anyhow::Result<Timings> {
    let mut samples = Vec::with_capacity(iterations);
    for i in 1..=iterations {
        let project_id = create_project(db, &format!("{} #{i}", document.name)).await?;
        samples.push(import_once(db, statements, project_id, &document.text).await?);
    }
    let first = &samples[0];
    Ok(Timings {
        operations: first.operations,
        statements: first.statements,
        parse: Series::new(samples.iter().map(|s| s.parse)),
        store: Series::new(samples.iter().map(|s| s.store)),
        total: Series::new(samples.iter().map(ImportSample::total)),
    })
}

/// What a `--single` child prints on its last stdout line.
#[derive(Serialize, Deserialize)]
struct MemoryReport {
    /// `VmHWM` after start-up, connecting and migrating, before the file is read.
    baseline_mib: f64,
    /// `VmHWM` once the text is read and parsed, before anything is stored.
    parsed_mib: f64,
    /// `VmHWM` after the import committed.
    peak_mib: f64,
    /// Size of the parsed document serialized as JSON, mostly the inlined request-body schemas;
    /// a yardstick for how much the parse phase holds, not a measure of its heap.
    parsed_json_mb: f64,
    operations: usize,
}

/// The child side of the memory measurement: one import, with the high-water mark read
/// between the phases so the report can say which one sets the peak.
async fn single_run(run: SingleRun) -> anyhow::Result<()> {
    // Kept alive until the end: dropping it deletes the SQLite file.
    let scratch = tempfile::tempdir()?;
    let database_url = match (&run.database_url, run.backend) {
        (Some(url), _) => url.clone(),
        (None, Backend::Sqlite) => format!("sqlite://{}/mv.db?mode=rwc", scratch.path().display()),
        (None, Backend::Postgres) => bail!("--backend postgres needs --database-url"),
    };
    let (db, _statements) = connect_and_migrate(&database_url).await?;
    let project_id = create_project(&db, "memory").await?;
    let baseline_mib = peak_rss_mib()?;

    let text =
        std::fs::read_to_string(&run.file).with_context(|| format!("reading {}", run.file.display()))?;
    let parsed = parse(&text)?;
    let parsed_mib = peak_rss_mib()?;
    store(&db, project_id, &parsed).await?;
    let peak_mib = peak_rss_mib()?;
    // Measured after the peak was read: serializing allocates too.
    let parsed_json_mb = serde_json::to_vec(&parsed)?.len() as f64 / 1e6;
    db.close().await?;

    let report = MemoryReport {
        baseline_mib,
        parsed_mib,
        peak_mib,
        parsed_json_mb,
        operations: parsed.endpoints.len(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The parent side: runs this executable in `--single` mode on `document` and reads its report.
fn measure_memory(document: &Document, backend: Backend, database_url: &str) -> anyhow::Result<MemoryReport> {
    let exe = std::env::current_exe().context("locating the benchmark executable")?;
    let output = Command::new(exe)
        .arg("--single")
        .arg(&document.path)
        .args(["--backend", backend.name(), "--database-url", database_url])
        .output()
        .context("running the memory child")?;
    ensure!(
        output.status.success(),
        "the memory child failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().context("the memory child printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("reading the memory child's report {line:?}"))
}

/// Timings and memory of one document on one backend.
struct Row {
    document: String,
    backend: Backend,
    timings: Timings,
    memory: anyhow::Result<MemoryReport>,
}

/// Measures every document on the database at `database_url` (migrated here); memory children
/// get `child_url(document index)` so each of them can have a database of its own where that
/// is cheap.
async fn run_backend(
    backend: Backend,
    database_url: &str,
    child_url: impl Fn(usize) -> String,
    documents: &[Document],
    iterations: usize,
) -> anyhow::Result<Vec<Row>> {
    let (db, statements) = connect_and_migrate(database_url).await?;
    let mut rows = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        let timings = time_import(&db, &statements, document, iterations).await?;
        eprintln!(
            "{}: {} ({} operations): median {:.1} ms over {iterations} imports",
            backend.name(),
            document.name,
            timings.operations,
            timings.total.median()
        );
        let memory = measure_memory(document, backend, &child_url(index));
        rows.push(Row { document: document.name.clone(), backend, timings, memory });
    }
    db.close().await?;
    Ok(rows)
}

/// SQLite: files in a temp dir, one for the timings and a fresh one per memory child.
async fn sqlite_rows(documents: &[Document], iterations: usize) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let url = |name: &str| format!("sqlite://{}/{name}.db?mode=rwc", dir.path().display());
    run_backend(
        Backend::Sqlite,
        &url("timings"),
        |index| url(&format!("memory-{index}")),
        documents,
        iterations,
    )
    .await
}

/// PostgreSQL: a throwaway database `mv_importbench_<pid>`, dropped afterwards even when the
/// run fails or panics.
async fn postgres_rows(documents: &[Document], iterations: usize) -> anyhow::Result<Vec<Row>> {
    let name = format!("mv_importbench_{}", std::process::id());
    let admin =
        Database::connect(POSTGRES_ADMIN_URL).await.context("connecting to PostgreSQL as postgres")?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .with_context(|| format!("creating database {name}"))?;
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    // In a task, so that a panic still reaches the DROP below; a task cannot borrow, hence the copy.
    let copies = documents.to_vec();
    let task_url = url.clone();
    let outcome = tokio::spawn(async move {
        let child_url = task_url.clone();
        run_backend(Backend::Postgres, &task_url, |_| child_url.clone(), &copies, iterations).await
    })
    .await;
    // FORCE: a pool that was not closed after an error may still hold connections.
    let dropped = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    admin.close().await.ok();
    let rows = match outcome {
        Ok(rows) => rows?,
        Err(join) => bail!("the PostgreSQL run panicked: {join}"),
    };
    dropped.with_context(|| format!("dropping database {name}"))?;
    Ok(rows)
}

/// True when something accepts connections on PostgreSQL's port.
fn postgres_answers() -> bool {
    let address: SocketAddr = POSTGRES_ADDR.parse().expect("a valid address");
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}

/// What validate.mjs prints.
#[derive(Deserialize)]
struct ValidateReport {
    valid: bool,
    validate_median_ms: Option<f64>,
    load_median_ms: Option<f64>,
    error: Option<String>,
}

/// The Node project next to this benchmark that holds the pinned swagger-parser.
fn swagger_parser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("competitors").join("swagger-parser")
}

/// Installs swagger-parser when `node_modules` is missing: `npm ci` from the kept lock file,
/// or `npm install` (which writes the lock file) the very first time.
fn install_swagger_parser(dir: &Path) -> anyhow::Result<()> {
    if dir.join("node_modules").is_dir() {
        return Ok(());
    }
    let subcommand = if dir.join("package-lock.json").is_file() { "ci" } else { "install" };
    eprintln!("swagger-parser: npm {subcommand} in {}", dir.display());
    let output = Command::new("npm")
        .args([subcommand, "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .context("running npm (is Node installed?)")?;
    ensure!(
        output.status.success(),
        "npm {subcommand} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Times `SwaggerParser.validate()` on `document` under Node, `iterations` times.
fn time_swagger_parser(dir: &Path, document: &Document, iterations: usize) -> anyhow::Result<ValidateReport> {
    let output = Command::new("node")
        .arg("validate.mjs")
        .arg(&document.path)
        .arg(iterations.to_string())
        .current_dir(dir)
        .output()
        .context("running node")?;
    ensure!(
        output.status.success(),
        "node validate.mjs failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().context("validate.mjs printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("reading validate.mjs's report {line:?}"))
}

/// The first line of a command's `--version` output, or why there is none.
fn tool_version(program: &str) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "not found".into())
}

/// The table of the issue, one line per document and backend.
fn print_table(rows: &[Row], validations: &[(String, anyhow::Result<ValidateReport>)]) {
    println!(
        "{:<28} {:>5} {:<8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>23} {:>8} {:>11} {:>7}",
        "document",
        "ops",
        "backend",
        "parse ms",
        "store ms",
        "total ms",
        "(min)",
        "docs/s",
        "stmts",
        "RSS MiB base→parse→peak",
        "model MB",
        "validate ms",
        "ratio"
    );
    for row in rows {
        let t = &row.timings;
        let (memory, model) = match &row.memory {
            Ok(m) => (
                format!("{:.1}→{:.1}→{:.1}", m.baseline_mib, m.parsed_mib, m.peak_mib),
                format!("{:.1}", m.parsed_json_mb),
            ),
            Err(_) => ("failed".into(), "-".into()),
        };
        let validation = validations.iter().find(|(name, _)| *name == row.document).map(|(_, report)| report);
        let (validate, ratio) = match validation {
            Some(Ok(ValidateReport { valid: true, validate_median_ms: Some(ms), .. })) => {
                (format!("{ms:.1}"), format!("{:.1}×", ms / t.total.median()))
            }
            Some(Ok(_)) => ("rejected".into(), "-".into()),
            Some(Err(_)) | None => ("n/a".into(), "-".into()),
        };
        println!(
            "{:<28} {:>5} {:<8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7.2} {:>6} {:>23} {:>8} {:>11} {:>7}",
            row.document,
            t.operations,
            row.backend.name(),
            t.parse.median(),
            t.store.median(),
            t.total.median(),
            t.total.min(),
            1000.0 / t.total.median(),
            t.statements,
            memory,
            model,
            validate,
            ratio
        );
    }
    println!(
        "(parse / store / total: medians in ms, text → ParsedSpec → committed rows; (min) = fastest total; \
         docs/s = 1 / median total; stmts = SQL statements of one import; RSS = VmHWM of a child process \
         that imports once: after connect + migrate → after parse → after commit; model MB = the \
         ParsedSpec serialized as JSON; validate ms = median of \
         SwaggerParser.validate() on an already loaded object, JSON/YAML loading excluded; ratio = \
         validate / our total, > 1 means the import is faster)"
    );
    for row in rows {
        if let Err(err) = &row.memory {
            println!("memory of {} on {}: {err:#}", row.document, row.backend.name());
        }
    }
    for (name, report) in validations {
        match report {
            Ok(ValidateReport { valid: true, load_median_ms: Some(load), .. }) => {
                println!("swagger-parser {name}: loading the text (untimed above) takes {load:.1} ms")
            }
            Ok(ValidateReport { valid: false, error, .. }) => println!(
                "swagger-parser {name}: validate() rejects it: {}",
                error.as_deref().unwrap_or("no message")
            ),
            Ok(_) => {}
            Err(err) => println!("swagger-parser {name}: not measured: {err:#}"),
        }
    }
}

/// The verdicts on the ~1,000-operation document.
fn print_targets(rows: &[Row], validations: &[(String, anyhow::Result<ValidateReport>)], synthetic: &str) {
    let target_ms = TIME_TARGET.as_secs_f64() * 1000.0;
    let validate_ms = validations
        .iter()
        .find(|(name, _)| name == synthetic)
        .and_then(|(_, report)| report.as_ref().ok())
        .and_then(|report| report.validate_median_ms);
    for row in rows.iter().filter(|row| row.document == synthetic) {
        let total = row.timings.total.median();
        let backend = row.backend.name();
        println!(
            "{backend:<8} {} ops: median total {total:.1} ms ≤ {target_ms:.0} ms: {}",
            row.timings.operations,
            verdict(total <= target_ms)
        );
        match &row.memory {
            Ok(memory) => {
                let mb = mib_to_mb(memory.peak_mib);
                println!(
                    "{backend:<8} peak RSS {mb:.1} MB ({:.1} MiB) ≤ {RSS_TARGET_MB:.0} MB: {}",
                    memory.peak_mib,
                    verdict(mb <= RSS_TARGET_MB)
                );
            }
            Err(_) => println!("{backend:<8} peak RSS: not measured"),
        }
        match validate_ms {
            Some(validate) => println!(
                "{backend:<8} faster than validate() ({validate:.1} ms): {}",
                verdict(total < validate)
            ),
            None => println!("{backend:<8} faster than validate(): not measured"),
        }
    }
}

/// The three documents: the two largest fixtures and the synthetic one, written to `scratch`
/// so that the memory children and Node read it from a file like the others.
fn load_documents(scratch: &Path) -> anyhow::Result<Vec<Document>> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi");
    let mut documents = FIXTURES
        .iter()
        .map(|name| Document::load(*name, fixtures.join(name)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let source = std::fs::read_to_string(fixtures.join(SYNTHETIC_SOURCE))?;
    let (text, operations) = synthetic_document(&source, SYNTHETIC_OPERATIONS)?;
    let name = format!("synthetic-{operations}-ops.json");
    let path = scratch.join(&name);
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    documents.push(Document { name, path, text });
    Ok(documents)
}

// One runtime thread: the import is one sequential transaction, and on a small machine every
// extra thread takes CPU from the database it waits for.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut options = Options::from_args()?;
    if let Some(run) = options.single.take() {
        return single_run(run).await;
    }
    if let Some(file) = &options.hostile_single {
        return hostile::single(file).await;
    }
    if options.hostile {
        return hostile::run(&options.command());
    }
    let iterations = options.iterations;
    let scratch = tempfile::tempdir()?;
    let documents = load_documents(scratch.path())?;
    let synthetic = documents.last().expect("the synthetic document").name.clone();

    let mut rows = sqlite_rows(&documents, iterations).await?;
    if options.skip_postgres {
        eprintln!("postgres: skipped (--skip-postgres)");
    } else if postgres_answers() {
        rows.extend(postgres_rows(&documents, iterations).await?);
    } else {
        println!("postgres: skipped (nothing answers on {POSTGRES_ADDR})");
    }

    // After the imports, so Node never competes with them for the CPU.
    let node_dir = swagger_parser_dir();
    let installed = install_swagger_parser(&node_dir);
    let validations: Vec<(String, anyhow::Result<ValidateReport>)> = documents
        .iter()
        .map(|document| {
            let report = match &installed {
                Ok(()) => time_swagger_parser(&node_dir, document, iterations),
                Err(err) => Err(anyhow!("{err:#}")),
            };
            eprintln!("swagger-parser: {} done", document.name);
            (document.name.clone(), report)
        })
        .collect();

    println!();
    println!("Metric Vault import benchmark");
    println!("command: {}", options.command());
    println!("machine: {}", machine());
    println!(
        "node:    {} (@apidevtools/swagger-parser 10.1.1, pinned in {})",
        tool_version("node"),
        node_dir.join("package.json").display()
    );
    println!(
        "runs:    {iterations} imports per document and backend, each into a fresh project; \
         synthetic = {SYNTHETIC_SOURCE} paths repeated under /v1, /v2, … to ≥ {SYNTHETIC_OPERATIONS} operations"
    );
    println!();
    print_table(&rows, &validations);
    println!();
    print_targets(&rows, &validations, &synthetic);
    Ok(())
}
