//! Run ownership under failure: how long a run is without an owner when its server goes, what a
//! live subscriber misses meanwhile, and what the leases cost the database.
//!
//! Run: `cargo bench --bench adoption [-- --rounds N --postgres]` (default 1 round of each kind,
//! SQLite; `--postgres` uses a fresh database `mv_bench_adoption` on 127.0.0.1:5432).
//!
//! Two release servers (A and B) share one database, one InfluxDB and one k6 script folder, with
//! the default lease (`RUN_LEASE_SECONDS`, 15 s) and poll interval (5 s). Each round launches a
//! 40 s local run on A, subscribes to its `testMetrics` on A, and then takes A away:
//! - **kill**: `kill -9` of A (the OOM killer). B sees A's process gone (same host) and takes the
//!   run over at its next poll, without waiting for the lease.
//! - **term**: SIGTERM to A (a rolling update): A releases its leases as it stops.
//! - **freeze**: SIGSTOP of A (a server cut off, or on a host that went away): its process is
//!   still there, so B takes over only once the lease has expired.
//!
//! Measured per round: from A's end to B owning the run (the database's `owner_instance`, polled
//! every 10 ms); the live gap a subscriber sees (its last snapshot from A to its first from B,
//! reconnecting the moment A's socket closes; a frozen server closes nothing, so not measured
//! there); and that the run then completes with k6's counts equal to what the target served.
//! Then, with 3 runs active on B for 60 s, B's lease renewals are counted from its statement
//! trace (`metric_vault::sql=trace`).

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use axum::{Json, Router, extract::State, routing::get};
use futures_util::{SinkExt, StreamExt};
use metric_vault::metrics::test_influxd::InfluxServer;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Kill,
    Term,
    Freeze,
}

struct Round {
    adopted_after: Duration,
    live_gap: Option<Duration>,
    completed: bool,
    counts_exact: bool,
}

/// A target that counts what it served.
async fn start_target(served: Arc<AtomicI64>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let document = json!({
        "openapi": "3.0.3", "info": {"title": "Adoption target", "version": "1"}, "servers": [{"url": base}],
        "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "pong"}}}}}
    });
    let app = Router::new()
        .route("/openapi.json", get(move || async move { Json(document) }))
        .route(
            "/ping",
            get(|State(served): State<Arc<AtomicI64>>| async move {
                served.fetch_add(1, Ordering::SeqCst);
                "pong"
            }),
        )
        .with_state(served);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

fn argument(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

async fn database(postgres: bool, dir: &std::path::Path) -> anyhow::Result<String> {
    if !postgres {
        return Ok(format!("sqlite://{}/adoption.db?mode=rwc", dir.display()));
    }
    let admin = Database::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
    admin.execute_unprepared("DROP DATABASE IF EXISTS mv_bench_adoption WITH (FORCE)").await?;
    admin.execute_unprepared("CREATE DATABASE mv_bench_adoption").await?;
    Ok("postgres://postgres@127.0.0.1:5432/mv_bench_adoption".to_owned())
}

async fn owner_of(db: &DatabaseConnection, run: &str) -> anyhow::Result<Option<String>> {
    let id: i64 = run.parse()?;
    let statement = Statement::from_string(
        db.get_database_backend(),
        format!("SELECT owner_instance FROM test_history WHERE id = {id}"),
    );
    let row = db.query_one_raw(statement).await?.context("the run's row")?;
    Ok(row.try_get("", "owner_instance")?)
}

/// A subscriber to run `run`'s `testMetrics`: the instants of the snapshots it received from
/// the first server, and from the second after reconnecting there the moment the first closed.
struct Subscriber {
    last_from_first: Option<Instant>,
    first_from_second: Option<Instant>,
}

async fn subscribe(address: &str, run: &str) -> anyhow::Result<Socket> {
    let mut request = format!("ws://{address}/graphql").into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", common::BENCH_TOKEN) } });
    socket.send(Message::text(init.to_string())).await?;
    let subscribe = json!({ "id": "m", "type": "subscribe", "payload": {
        "query": "subscription($id: ID!) { testMetrics(testHistoryId: $id) { totalRequests final } }",
        "variables": { "id": run } } });
    socket.send(Message::text(subscribe.to_string())).await?;
    Ok(socket)
}

/// Waits for the next snapshot; None when the socket closed.
async fn next_snapshot(socket: &mut Socket) -> Option<Value> {
    while let Some(Ok(frame)) = socket.next().await {
        if let Message::Text(text) = frame {
            let message: Value = serde_json::from_str(&text).ok()?;
            if message["type"] == "next" {
                return Some(message["payload"]["data"]["testMetrics"].clone());
            }
            if message["type"] == "ping" {
                let _ = socket.send(Message::text(json!({ "type": "pong" }).to_string())).await;
            }
        }
    }
    None
}

async fn follow(first: String, second: String, run: String) -> anyhow::Result<Subscriber> {
    let mut seen = Subscriber { last_from_first: None, first_from_second: None };
    let mut socket = subscribe(&first, &run).await?;
    while next_snapshot(&mut socket).await.is_some() {
        seen.last_from_first = Some(Instant::now());
    }
    let mut socket = subscribe(&second, &run).await?;
    if next_snapshot(&mut socket).await.is_some() {
        seen.first_from_second = Some(Instant::now());
    }
    Ok(seen)
}

struct Lab {
    http: reqwest::Client,
    binary: std::path::PathBuf,
    database_url: String,
    workdir: std::path::PathBuf,
    influx_port: String,
    db: DatabaseConnection,
    served: Arc<AtomicI64>,
    endpoint: String,
}

impl Lab {
    async fn server(&self, name: &str, extra: &[(&str, &str)]) -> anyhow::Result<common::Server> {
        let mut env = vec![("INFLUXDB_PORT", self.influx_port.as_str())];
        env.extend_from_slice(extra);
        let mut server =
            common::start_named_server(&self.binary, name, &self.database_url, &self.workdir, &env)?;
        server.wait_ready(&self.http).await?;
        Ok(server)
    }

    async fn launch(&self, server: &common::Server, seconds: u32) -> anyhow::Result<String> {
        let input = json!({ "title": "adoption", "scenarios": [{ "name": "ping", "endpointId": self.endpoint,
            "executor": "CONSTANT_VUS", "thinkTime": 0.05, "stages": [{ "duration": format!("{seconds}s"), "target": 2 }] }] });
        let data = common::graphql(
            &self.http,
            &server.url("/graphql"),
            "mutation($i: LaunchLoadTestInput!) { launchLoadTest(input: $i) { id } }",
            json!({ "i": input }),
        )
        .await?;
        Ok(data["launchLoadTest"]["id"].as_str().context("a run id")?.to_owned())
    }

    async fn run_of(&self, server: &common::Server, run: &str) -> anyhow::Result<Value> {
        let data = common::graphql(
            &self.http,
            &server.url("/graphql"),
            "query($id: ID!) { testHistory(id: $id) { status failureReason totals { requests } } }",
            json!({ "id": run }),
        )
        .await?;
        Ok(data["testHistory"].clone())
    }

    async fn wait_status(
        &self,
        server: &common::Server,
        run: &str,
        done: fn(&str) -> bool,
    ) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let state = self.run_of(server, run).await?;
            if done(state["status"].as_str().unwrap_or_default()) {
                return Ok(state);
            }
            ensure!(started.elapsed() < Duration::from_secs(180), "run {run} stuck: {state}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One round: a run on `a`, `a` taken away as `kind` says, `b` adopting it.
    async fn round(&self, a: &mut common::Server, b: &common::Server, kind: Kind) -> anyhow::Result<Round> {
        let counted_from = self.served.load(Ordering::SeqCst);
        let run = self.launch(a, 40).await?;
        self.wait_status(b, &run, |status| status == "RUNNING").await?;
        let subscriber = tokio::spawn(follow(a.address.to_string(), b.address.to_string(), run.clone()));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let owner = owner_of(&self.db, &run).await?;
        let signal = match kind {
            Kind::Kill => "-KILL",
            Kind::Term => "-TERM",
            Kind::Freeze => "-STOP",
        };
        let gone = Instant::now();
        std::process::Command::new("kill").args([signal, &a.pid().to_string()]).status()?;
        loop {
            if owner_of(&self.db, &run).await? != owner {
                break;
            }
            ensure!(gone.elapsed() < Duration::from_secs(120), "run {run} was never taken over");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let adopted_after = gone.elapsed();
        if kind == Kind::Freeze {
            // Never let it thaw: it would find its runs gone.
            std::process::Command::new("kill").args(["-KILL", &a.pid().to_string()]).status()?;
        }
        let ended = self.wait_status(b, &run, |status| !matches!(status, "PENDING" | "RUNNING")).await?;
        let seen = if kind == Kind::Freeze {
            subscriber.abort();
            None
        } else {
            Some(tokio::time::timeout(Duration::from_secs(60), subscriber).await???)
        };
        let live_gap = seen.and_then(|seen| Some(seen.first_from_second? - seen.last_from_first?));
        let served = self.served.load(Ordering::SeqCst) - counted_from;
        let completed = ended["status"] == "COMPLETED";
        let counts_exact = ended["totals"]["requests"].as_i64() == Some(served);
        a.stop();
        Ok(Round { adopted_after, live_gap, completed, counts_exact })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = argument("--rounds").and_then(|v| v.parse().ok()).unwrap_or(1);
    let postgres = std::env::args().any(|a| a == "--postgres");
    let influx = InfluxServer::start().await;
    let served = Arc::new(AtomicI64::new(0));
    let target = start_target(served.clone()).await?;
    let workdir = tempfile::tempdir()?;
    let database_url = database(postgres, workdir.path()).await?;
    let http = common::http_client()?;
    let mut lab = Lab {
        http: http.clone(),
        binary: common::server_binary()?,
        database_url: database_url.clone(),
        workdir: workdir.path().to_owned(),
        influx_port: influx.port().to_string(),
        db: Database::connect(&database_url).await?,
        served,
        endpoint: String::new(),
    };
    let trace = [("RUST_LOG", "warn,metric_vault::sql=trace")];
    let mut a = lab.server("a-0", &[]).await?;
    let b = lab.server("b", &trace).await?;
    lab.endpoint = common::import_target(&http, &a.url("/graphql"), "adoption bench", &target).await?;

    println!("machine: {}; database: {}", common::machine(), if postgres { "PostgreSQL" } else { "SQLite" });
    println!("lease 15 s, poll 5 s (the defaults); load average before: {}", common::load_averages());
    let mut results = Vec::new();
    for round in 0..rounds {
        for kind in [Kind::Kill, Kind::Term, Kind::Freeze] {
            let result = lab.round(&mut a, &b, kind).await?;
            println!(
                "{kind:?}: taken over after {:.2} s; live gap {}; run {}{}",
                result.adopted_after.as_secs_f64(),
                result.live_gap.map_or("n/a".to_owned(), |gap| format!("{:.2} s", gap.as_secs_f64())),
                if result.completed { "COMPLETED" } else { "did NOT complete" },
                if result.counts_exact {
                    ", k6's counts = what the target served"
                } else {
                    ", counts NOT exact"
                },
            );
            results.push(result);
            a = lab.server(&format!("a-{round}-{kind:?}"), &[]).await?;
        }
    }
    if results.iter().any(|round| !round.completed) {
        bail!("a run did not complete after its server went");
    }

    // Lease writes: 3 runs active on B for 60 s; count B's renewals in its statement trace.
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(lab.launch(&b, 75).await?);
    }
    for run in &runs {
        lab.wait_status(&b, run, |status| status == "RUNNING").await?;
    }
    let log = workdir.path().join("b.log");
    let renewals = || -> anyhow::Result<usize> {
        let text = std::fs::read_to_string(&log)?;
        // Renewals set the lease alone; take-overs set the owner too, releases happen at shutdown.
        // (Quotes are escaped when the log is JSON.)
        let renewal = |line: &&str| {
            line.contains("SET \"lease_expires_at\"") || line.contains("SET \\\"lease_expires_at\\\"")
        };
        Ok(text.lines().filter(renewal).count())
    };
    let before = renewals()?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let per_minute = renewals()? - before;
    println!(
        "lease renewals by one instance with {} active runs: {per_minute} UPDATE statements a minute \
         ({:.1} per run; each updates every active run's row: {:.0} row writes per run a minute)",
        runs.len(),
        per_minute as f64 / runs.len() as f64,
        per_minute as f64,
    );
    Ok(())
}
