//! Live-metrics benchmark: one k6 run in progress and 1,000 concurrent `graphql-transport-ws`
//! subscribers to its `testMetrics`, against the live issue's targets:
//!
//! - InfluxDB queries per interval stay what they are with one subscriber (counted by
//!   InfluxDB itself: `SHOW STATS` → httpd `queryReq`);
//! - p99 delay from the poller publishing a snapshot (`publishedAt`) to a subscriber
//!   receiving it < 50 ms;
//! - server RSS growth < 100 KB per subscriber, and back to the baseline after they leave;
//! - no subscriber misses the `final` snapshot.
//!
//! Run: `cargo bench --bench live [-- --subscribers N --seconds S --window S --settle S]`.
//!
//! Everything runs on 127.0.0.1: influxd (temp dir, free port), the release `metric-vault`
//! binary as a child process (so its RSS is its own), a target API and the subscribers in
//! this process, and the real k6 started by the server.
//!
//! The subscribers are tokio-tungstenite clients on ONE thread of this process, not k6's
//! websocket module: 1,000 k6 VUs are 1,000 JavaScript runtimes (megabytes and a share of
//! the CPU each) on the same two cores as the server they measure, and the delay figure
//! would be the client's. Each subscriber only stamps a frame with the wall clock when it
//! arrives and keeps its text; parsing waits until the run is over. The server's clock and
//! ours are the same clock (one machine), so receipt minus `publishedAt` is the delay.

mod common;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use axum::{Json, Router, routing::get};
use chrono::{DateTime, Utc};
use common::{
    Server, graphql, http_client, load_average, machine, millis, percentile, rss_kib, server_binary, sorted,
    start_server, verdict,
};
use futures_util::{SinkExt, StreamExt, stream};
use metric_vault::metrics::{live::DEFAULT_INTERVAL, test_influxd::InfluxServer};
use serde_json::{Value, json};
use tokio::{
    net::TcpStream,
    sync::{mpsc::UnboundedSender, watch},
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig},
};

/// What every subscriber asks for: what a dashboard shows, plus the publish instant.
const METRICS: &str = "subscription($id: ID!) { testMetrics(testHistoryId: $id) {
    time publishedAt elapsedSeconds tps avgResponseTime p95ResponseTime errorRate vus totalRequests final
    scenarios { name tps p95ResponseTime errorRate totalRequests } } }";

const DELAY_P99_TARGET_MS: f64 = 50.0;
const GROWTH_TARGET_KB: f64 = 100.0;
/// Connections opened at once: a burst of 1,000 handshakes would measure the listen backlog.
const CONNECT_CONCURRENCY: usize = 50;
/// A subscriber that waits this long for anything has failed.
const PATIENCE: Duration = Duration::from_secs(60);
/// Each subscriber's read and write buffers by default, as the server's own websocket
/// buffers. tungstenite zero-fills its whole read buffer before every read: with its
/// 128 KiB default, 1,000 subscribers spent more of the one client thread on that memset
/// (57 % of its samples) than on anything else, and frames the server had sent waited in
/// the socket for the client to get round to them.
const CLIENT_BUFFER_BYTES: usize = 8 * 1024;
/// glibc's malloc settings, passed on to the server when the bench is run with them.
const MALLOC_ENV: [&str; 2] = ["MALLOC_ARENA_MAX", "GLIBC_TUNABLES"];

/// Command-line options, after cargo's `--`.
struct Options {
    subscribers: usize,
    /// Length of the k6 run, in seconds.
    seconds: u64,
    /// Length of each query-counting window, in seconds.
    window: u64,
    /// How long after the subscribers left the server's memory is read for the last time.
    settle: u64,
    /// Another build of the server to measure (e.g. one saved before a change), instead of
    /// the one cargo built for this bench.
    binary: Option<PathBuf>,
    /// Each subscriber's websocket read and write buffer, in bytes.
    client_buffer: usize,
    given: Vec<String>,
}

impl Options {
    fn from_args() -> anyhow::Result<Self> {
        let mut options = Options {
            subscribers: 1000,
            seconds: 60,
            window: 8,
            settle: 5,
            binary: None,
            client_buffer: CLIENT_BUFFER_BYTES,
            given: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--bench" {
                continue; // cargo passes it to every bench binary
            }
            let value = args.next().with_context(|| format!("{arg} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{arg} needs a positive number, not {value:?}"))
            };
            match arg.as_str() {
                "--subscribers" => options.subscribers = number()? as usize,
                "--seconds" => options.seconds = number()?,
                "--window" => options.window = number()?,
                "--settle" => options.settle = number()?,
                "--binary" => options.binary = Some(PathBuf::from(&value)),
                "--client-buffer" => options.client_buffer = number()? as usize,
                other => bail!(
                    "unknown argument {other:?}; expected --subscribers N, --seconds S, --window S, --settle S, --binary PATH, --client-buffer BYTES"
                ),
            }
            options.given.extend([arg, value]);
        }
        let needed = 3 * options.window + 25;
        ensure!(
            options.seconds >= needed,
            "--seconds {} is too short for three counting windows of {} s and connecting: use at least {needed}",
            options.seconds,
            options.window
        );
        Ok(options)
    }

    fn command(&self) -> String {
        let mut command = String::from("cargo bench --bench live");
        if !self.given.is_empty() {
            command.push_str(" -- ");
            command.push_str(&self.given.join(" "));
        }
        command
    }
}

/// A target whose two operations answer at once, on its own thread and runtime so that
/// serving k6 never delays the subscribers' reads (nor the other way round).
fn start_target() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let base = format!("http://{}", listener.local_addr()?);
    let document = json!({
        "openapi": "3.0.3", "info": {"title": "Live bench target", "version": "1"}, "servers": [{"url": base}],
        "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "pong"}}}}}
    });
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let app = Router::new()
                .route("/openapi.json", get(move || async move { Json(document) }))
                .route("/ping", get(|| async { "pong" }));
            let listener = tokio::net::TcpListener::from_std(listener).expect("the target's listener");
            axum::serve(listener, app).await.expect("the target API");
        });
    });
    Ok(base)
}

/// The server's GraphQL endpoint over HTTP.
struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    async fn graphql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        graphql(&self.http, &self.url, query, variables).await
    }

    async fn status(&self, id: &str) -> anyhow::Result<String> {
        let data =
            self.graphql("query($id: ID!) { testHistory(id: $id) { status } }", json!({ "id": id })).await?;
        Ok(data["testHistory"]["status"].as_str().context("a status")?.to_owned())
    }

    async fn wait_for_status(&self, id: &str, wanted: &[&str]) -> anyhow::Result<String> {
        let deadline = Instant::now() + PATIENCE + Duration::from_secs(120);
        loop {
            let status = self.status(id).await?;
            if wanted.contains(&status.as_str()) {
                return Ok(status);
            }
            ensure!(Instant::now() < deadline, "run {id} still {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// InfluxDB's own count of `/query` requests it has answered.
async fn influx_query_requests(influx: &InfluxServer) -> anyhow::Result<u64> {
    let series = influx.client("_internal").query("SHOW STATS FOR 'httpd'").await?;
    let count =
        series.first().and_then(|s| s.first_f64("queryReq")).context("no httpd queryReq in SHOW STATS")?;
    Ok(count as u64)
}

/// `/query` requests InfluxDB answered during `window`.
async fn count_queries(influx: &InfluxServer, window: Duration) -> anyhow::Result<u64> {
    let before = influx_query_requests(influx).await?;
    tokio::time::sleep(window).await;
    Ok(influx_query_requests(influx).await? - before)
}

/// CPU seconds (user + system) used so far by process `pid`.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')').context("a stat line")?.1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / per_second)
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one subscriber saw.
struct Received {
    /// (wall clock on arrival, the frame's text), in order; parsed after the run.
    frames: Vec<(DateTime<Utc>, String)>,
    /// The server completed the subscription.
    completed: bool,
}

/// Opens a `graphql-transport-ws` connection, completes `connection_init` and subscribes.
async fn subscribe(address: &str, id: &str, buffer: usize) -> anyhow::Result<Socket> {
    let mut request = format!("ws://{address}/graphql").into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    let config = WebSocketConfig::default().read_buffer_size(buffer).write_buffer_size(buffer);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), false)
        .await
        .context("websocket handshake")?;
    socket.send(Message::text(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", common::BENCH_TOKEN) } }).to_string())).await?;
    let ack = tokio::time::timeout(PATIENCE, socket.next()).await?.context("closed before the ack")??;
    ensure!(ack.to_text()?.contains("connection_ack"), "no connection_ack: {ack:?}");
    let subscribe =
        json!({ "id": "m", "type": "subscribe", "payload": { "query": METRICS, "variables": { "id": id } } });
    socket.send(Message::text(subscribe.to_string())).await?;
    Ok(socket)
}

/// How subscribers tell the bench where they are, and are told to leave.
#[derive(Clone)]
struct Signals {
    /// One message per subscriber, on its first snapshot.
    first: UnboundedSender<()>,
    /// One message per subscriber, when the server completed its subscription.
    done: UnboundedSender<()>,
    leave: watch::Receiver<bool>,
}

/// Reads the subscription until the server completes it, answering keep-alives; then waits
/// for `leave` and closes the connection.
async fn listen(mut socket: Socket, mut signals: Signals) -> anyhow::Result<Received> {
    let mut received = Received { frames: Vec::with_capacity(80), completed: false };
    while !received.completed {
        let frame = tokio::time::timeout(PATIENCE, socket.next()).await?;
        let Some(frame) = frame else { bail!("the server closed the connection before completing") };
        let Message::Text(text) = frame? else { continue };
        let at = Utc::now();
        if text.starts_with(r#"{"type":"ping""#) {
            socket.send(Message::text(r#"{"type":"pong"}"#)).await?;
            continue;
        }
        if text.contains(r#""type":"complete""#) {
            received.completed = true;
            let _ = signals.done.send(());
        } else if received.frames.is_empty() {
            let _ = signals.first.send(());
        }
        received.frames.push((at, text.to_string()));
    }
    signals.leave.wait_for(|leave| *leave).await?;
    socket.close(None).await.ok();
    // The server's close frame, then the end of the stream.
    let _ =
        tokio::time::timeout(Duration::from_secs(5), async { while socket.next().await.is_some() {} }).await;
    Ok(received)
}

/// One snapshot as a subscriber got it.
struct Delivery {
    published_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    is_final: bool,
}

/// The snapshots among `received`'s frames; an error frame or an error in a payload fails.
fn deliveries(received: &Received) -> anyhow::Result<Vec<Delivery>> {
    let mut out = Vec::new();
    for (received_at, text) in &received.frames {
        let message: Value = serde_json::from_str(text)?;
        match message["type"].as_str() {
            Some("next") => {
                let payload = &message["payload"];
                ensure!(payload.get("errors").is_none(), "an error event: {payload}");
                let snapshot = &payload["data"]["testMetrics"];
                out.push(Delivery {
                    published_at: snapshot["publishedAt"].as_str().context("publishedAt")?.parse()?,
                    received_at: *received_at,
                    is_final: snapshot["final"] == true,
                });
            }
            Some("complete") => {}
            _ => bail!("unexpected message: {message}"),
        }
    }
    Ok(out)
}

/// Resident memory of the server in KB (decimal, as the target is stated).
fn rss_kb(server: &Server) -> anyhow::Result<f64> {
    Ok(rss_kib(server.pid())?.rss_kib as f64 * 1.024)
}

struct Figures {
    queries_floor: u64,
    queries_one: u64,
    queries_many: u64,
    intervals_per_window: f64,
    delays_ms: Vec<f64>,
    delays_one_ms: Vec<f64>,
    snapshots_published: usize,
    /// Per snapshot: publish → its first receipt in the crowd, ascending.
    first_receipt_ms: Vec<f64>,
    /// Per snapshot: first → last receipt in the crowd (the fan-out), ascending.
    spread_ms: Vec<f64>,
    /// Snapshots the crowd received of those.
    delivered: usize,
    rss_baseline_kb: f64,
    rss_with_many_kb: f64,
    rss_peak_kb: f64,
    rss_at_end_kb: f64,
    rss_after_leave_kb: Vec<(f64, f64)>,
    finals: usize,
    server_cpu_percent: f64,
    bench_cpu_percent: f64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let options = Options::from_args()?;
    let load_before = load_average();
    let binary = match &options.binary {
        Some(path) => path.clone(),
        None => server_binary()?,
    };
    let influx = InfluxServer::start().await;
    let target = start_target()?;
    let workdir = tempfile::tempdir()?;
    let database_url = format!("sqlite://{}/live.db?mode=rwc", workdir.path().display());
    let influx_port = influx.port().to_string();
    let malloc_env: Vec<(&str, String)> =
        MALLOC_ENV.iter().filter_map(|name| Some((*name, std::env::var(name).ok()?))).collect();
    // All the subscribers come from 127.0.0.1 with the bootstrap token: room for them all.
    let socket_cap = (options.subscribers + 10).to_string();
    let mut server_env = vec![
        ("INFLUXDB_PORT", influx_port.as_str()),
        ("SCHEDULER_METRICS_DELAY", "0"),
        ("WS_MAX_SOCKETS_PER_ADDRESS", socket_cap.as_str()),
        ("WS_MAX_SOCKETS_PER_TOKEN", socket_cap.as_str()),
    ];
    server_env.extend(malloc_env.iter().map(|(name, value)| (*name, value.as_str())));
    let mut server = start_server(&binary, &database_url, workdir.path(), &server_env)?;
    let http = http_client()?;
    server.wait_ready(&http).await?;
    let address = server.address.to_string();
    let api = Api { url: server.url("/graphql"), http };

    let endpoint = common::import_target(&api.http, &api.url, "live bench", &target).await?;
    // A light, steady load: the subject is the subscribers, not k6.
    let scenario = json!({ "name": "steady", "endpointId": endpoint, "executor": "CONSTANT_VUS", "thinkTime": 0.05,
                           "stages": [{"duration": format!("{}s", options.seconds), "target": 4}] });
    let launched = api
        .graphql(
            "mutation($i: LaunchLoadTestInput!) { launchLoadTest(input: $i) { id } }",
            json!({ "i": { "title": "live bench", "scenarios": [scenario] } }),
        )
        .await?;
    let id = launched["launchLoadTest"]["id"].as_str().context("run id")?.to_owned();
    api.wait_for_status(&id, &["RUNNING"]).await?;
    eprintln!("run {id} is running ({} s)", options.seconds);
    let window = Duration::from_secs(options.window);

    // Nobody watching: what InfluxDB answers anyway (the bench's own SHOW STATS).
    let queries_floor = count_queries(&influx, window).await?;

    let (leave_tx, leave) = watch::channel(false);
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let signals = Signals { first: first_tx, done: done_tx, leave };
    let lone = tokio::spawn(listen(subscribe(&address, &id, options.client_buffer).await?, signals.clone()));
    first_rx.recv().await.context("the lone subscriber's first snapshot")?;
    let queries_one = count_queries(&influx, window).await?;
    let rss_baseline_kb = rss_kb(&server)?;
    eprintln!(
        "1 subscriber: {queries_one} InfluxDB queries in {} s; RSS {rss_baseline_kb:.0} KB",
        options.window
    );

    let connecting = Instant::now();
    let crowd_arriving = Utc::now();
    let sockets: Vec<Socket> = stream::iter(0..options.subscribers)
        .map(|_| subscribe(&address, &id, options.client_buffer))
        .buffered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let crowd: Vec<_> =
        sockets.into_iter().map(|socket| tokio::spawn(listen(socket, signals.clone()))).collect();
    for _ in 0..options.subscribers {
        tokio::time::timeout(PATIENCE, first_rx.recv()).await?.context("a first snapshot")?;
    }
    eprintln!(
        "{} subscribers connected and served in {:.1} s",
        options.subscribers,
        connecting.elapsed().as_secs_f64()
    );
    // Delays count from here: earlier snapshots reached some subscribers on subscribing.
    let crowd_settled = Utc::now();
    let (server_pid, bench_pid) = (server.pid().to_string(), std::process::id().to_string());
    let (server_cpu0, bench_cpu0, cpu_clock) =
        (cpu_seconds(&server_pid)?, cpu_seconds(&bench_pid)?, Instant::now());
    let queries_many = count_queries(&influx, window).await?;
    let rss_with_many_kb = rss_kb(&server)?;
    let status = api.status(&id).await?;
    ensure!(
        status == "RUNNING",
        "the run ended ({status}) before the counting windows did: use a larger --seconds"
    );
    eprintln!(
        "{} subscribers: {queries_many} InfluxDB queries in {} s; RSS {rss_with_many_kb:.0} KB",
        options.subscribers, options.window
    );

    // The run ends; every subscriber should get the final snapshot and a complete.
    let ended = api.wait_for_status(&id, &["COMPLETED", "FAILED", "CANCELLED"]).await?;
    ensure!(ended == "COMPLETED", "the run ended {ended}");
    let cpu_seconds_elapsed = cpu_clock.elapsed().as_secs_f64();
    let server_cpu_percent = (cpu_seconds(&server_pid)? - server_cpu0) / cpu_seconds_elapsed * 100.0;
    let bench_cpu_percent = (cpu_seconds(&bench_pid)? - bench_cpu0) / cpu_seconds_elapsed * 100.0;
    // A subscriber completes right after its final snapshot; they leave once all have (or
    // once waiting longer would only say that some never will).
    let mut completed = 0;
    while completed < options.subscribers + 1 {
        match tokio::time::timeout(PATIENCE, done_rx.recv()).await {
            Ok(Some(())) => completed += 1,
            _ => break,
        }
    }
    let rss_peak_kb = rss_kib(server.pid())?.hwm_kib as f64 * 1.024;
    let rss_at_end_kb = rss_kb(&server)?;
    leave_tx.send_replace(true);
    let mut crowd_received = Vec::with_capacity(crowd.len());
    for task in crowd {
        crowd_received.push(task.await??);
    }
    let lone_received = lone.await??;
    let mut rss_after_leave_kb = Vec::new();
    let left = Instant::now();
    // Half a second: before the server's arenas are trimmed (after 1 s without closes).
    for millis in [500, 3000, options.settle.max(4) * 1000] {
        tokio::time::sleep(Duration::from_millis(millis).saturating_sub(left.elapsed())).await;
        rss_after_leave_kb.push((millis as f64 / 1000.0, rss_kb(&server)?));
    }
    server.stop();

    let mut delays_ms = Vec::new();
    let mut finals = 0;
    let mut delivered = 0;
    // Per snapshot: its first and last receipt in the crowd.
    let mut published: BTreeMap<DateTime<Utc>, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for received in &crowd_received {
        let got = deliveries(received)?;
        finals += usize::from(received.completed && got.last().is_some_and(|d| d.is_final));
        for delivery in got.iter().filter(|d| d.published_at > crowd_settled) {
            delivered += 1;
            let receipts = published
                .entry(delivery.published_at)
                .or_insert((delivery.received_at, delivery.received_at));
            receipts.0 = receipts.0.min(delivery.received_at);
            receipts.1 = receipts.1.max(delivery.received_at);
            delays_ms
                .push(millis((delivery.received_at - delivery.published_at).to_std().unwrap_or_default()));
        }
    }
    let lone_deliveries = deliveries(&lone_received)?;
    ensure!(
        lone_deliveries.last().is_some_and(|d| d.is_final),
        "the lone subscriber missed the final snapshot"
    );
    // Alone: before the crowd arrived.
    let delays_one_ms: Vec<f64> = lone_deliveries
        .iter()
        .filter(|d| d.published_at < crowd_arriving)
        .map(|d| millis((d.received_at - d.published_at).to_std().unwrap_or_default()))
        .collect();
    let figures = Figures {
        queries_floor,
        queries_one,
        queries_many,
        intervals_per_window: window.as_secs_f64() / DEFAULT_INTERVAL.as_secs_f64(),
        delays_ms: sorted(delays_ms),
        delays_one_ms: sorted(delays_one_ms),
        snapshots_published: published.len(),
        first_receipt_ms: sorted(
            published
                .iter()
                .map(|(at, (first, _))| millis((*first - *at).to_std().unwrap_or_default()))
                .collect(),
        ),
        spread_ms: sorted(
            published
                .values()
                .map(|(first, last)| millis((*last - *first).to_std().unwrap_or_default()))
                .collect(),
        ),
        delivered,
        rss_baseline_kb,
        rss_with_many_kb,
        rss_peak_kb,
        rss_at_end_kb,
        rss_after_leave_kb,
        finals,
        server_cpu_percent,
        bench_cpu_percent,
    };
    print_report(&options, &binary, &load_before, &figures, &malloc_env);
    Ok(())
}

fn print_report(
    options: &Options,
    binary: &Path,
    load_before: &str,
    f: &Figures,
    malloc_env: &[(&str, String)],
) {
    let n = options.subscribers;
    let per_interval = |count: u64| count.saturating_sub(f.queries_floor) as f64 / f.intervals_per_window;
    let (one, many) = (per_interval(f.queries_one), per_interval(f.queries_many));
    // The windows are not aligned with the poller's ticks: one tick more or less is the same rate.
    let queries_met = many <= one + 1.0 / f.intervals_per_window + 1e-9;
    let delays = &f.delays_ms;
    let p99 = if delays.is_empty() { f64::INFINITY } else { percentile(delays, 99.0) };
    let growth_kb = f.rss_with_many_kb - f.rss_baseline_kb;
    let per_subscriber_kb = growth_kb / n as f64;
    let (settle, after_kb) = *f.rss_after_leave_kb.last().expect("RSS read after leaving");
    let residual_kb = after_kb - f.rss_baseline_kb;
    // Back to the baseline: at most a tenth of what the subscribers added is still held.
    let back_met = residual_kb <= 0.1 * growth_kb.max(0.0);
    let mb = |kb: f64| kb / 1000.0;

    println!();
    println!("Metric Vault live-metrics benchmark");
    println!("command: {}", options.command());
    println!("machine: {}", machine());
    println!("binary:  {}", binary.display());
    if !malloc_env.is_empty() {
        let settings: Vec<String> =
            malloc_env.iter().map(|(name, value)| format!("{name}={value}")).collect();
        println!("malloc:  the server ran with {}", settings.join(" "));
    }
    println!("load:    1-min load average {load_before} before the run, {} after it", load_average());
    println!(
        "run:     one k6 run of {} s (4 VUs), {n} graphql-transport-ws subscribers on one client thread \
         ({} B websocket buffers each); counting windows of {} s; server CPU {:.1} % of a core, bench (client + target) {:.1} % while the crowd watched",
        options.seconds, options.client_buffer, options.window, f.server_cpu_percent, f.bench_cpu_percent
    );
    println!();
    println!("{:<52} {:<62} {:<26} met", "measure", "result", "target");
    let row = |measure: String, result: String, target: &str, met: Option<bool>| {
        println!("{measure:<52} {result:<62} {target:<26} {}", met.map_or("", verdict));
    };
    row(
        "InfluxDB queries per interval, nobody watching".into(),
        format!("{} /query requests in {} s (the bench's own SHOW STATS)", f.queries_floor, options.window),
        "",
        None,
    );
    row(
        "InfluxDB queries per interval, 1 subscriber".into(),
        format!("{one:.2} ({} requests in {} s, less the floor)", f.queries_one, options.window),
        "",
        None,
    );
    row(
        format!("InfluxDB queries per interval, {n} subscribers"),
        format!("{many:.2} ({} requests in {} s, less the floor)", f.queries_many, options.window),
        "same as with 1",
        Some(queries_met),
    );
    if delays.is_empty() {
        row(
            "delivery delay publishedAt → received".into(),
            "no snapshot delivered".into(),
            "p99 < 50 ms",
            Some(false),
        );
    } else {
        row(
            format!("delivery delay publishedAt → received, {n} subs"),
            format!(
                "p50 {:.1} / p90 {:.1} / p99 {:.1} / max {:.1} ms (n={})",
                percentile(delays, 50.0),
                percentile(delays, 90.0),
                p99,
                delays[delays.len() - 1],
                delays.len()
            ),
            "p99 < 50 ms",
            Some(p99 < DELAY_P99_TARGET_MS),
        );
    }
    if !f.delays_one_ms.is_empty() {
        let d = &f.delays_one_ms;
        row(
            "delivery delay, the lone subscriber, before the crowd".into(),
            format!(
                "p50 {:.1} / p99 {:.1} / max {:.1} ms (n={})",
                percentile(d, 50.0),
                percentile(d, 99.0),
                d[d.len() - 1],
                d.len()
            ),
            "",
            None,
        );
    }
    if !f.spread_ms.is_empty() {
        let (first, spread) = (&f.first_receipt_ms, &f.spread_ms);
        row(
            "per snapshot: publish → first receipt; fan-out".into(),
            format!(
                "first p50 {:.1} / max {:.1} ms; first → last p50 {:.1} / max {:.1} ms",
                percentile(first, 50.0),
                first[first.len() - 1],
                percentile(spread, 50.0),
                spread[spread.len() - 1]
            ),
            "",
            None,
        );
    }
    row(
        "snapshots delivered to the crowd".into(),
        format!(
            "{} of {} ({} published × {n}); the rest skipped as lagging",
            f.delivered,
            f.snapshots_published * n,
            f.snapshots_published
        ),
        "",
        None,
    );
    row(
        "server RSS growth per subscriber".into(),
        format!(
            "{per_subscriber_kb:.1} KB ({:.1} MB with 1 → {:.1} MB with {})",
            mb(f.rss_baseline_kb),
            mb(f.rss_with_many_kb),
            n + 1
        ),
        "< 100 KB",
        Some(per_subscriber_kb < GROWTH_TARGET_KB),
    );
    row(
        "server RSS at the run's end / peak (VmHWM)".into(),
        format!("{:.1} MB / {:.1} MB", mb(f.rss_at_end_kb), mb(f.rss_peak_kb)),
        "",
        None,
    );
    let after: Vec<String> =
        f.rss_after_leave_kb.iter().map(|(s, kb)| format!("+{s} s {:.1}", mb(*kb))).collect();
    row(
        format!("server RSS after the {n} left (MB)"),
        format!(
            "{}; +{settle} s: {:+.1} MB vs baseline ({:.0} % of the growth)",
            after.join(", "),
            mb(residual_kb),
            if growth_kb > 0.0 { residual_kb / growth_kb * 100.0 } else { 0.0 }
        ),
        "back to baseline (≤10 %)",
        Some(back_met),
    );
    row(
        "subscribers that got the final snapshot".into(),
        format!("{} / {n}", f.finals),
        &format!("{n} / {n}"),
        Some(f.finals == n),
    );
}
