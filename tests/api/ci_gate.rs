//! `metric-vault run`: the built binary run as a CI job would run it, against a real server
//! with real k6 and InfluxDB — exit codes 0, 1 and 2, what it prints on a log and on a
//! terminal, and what it does to the run when the wait is cut short.

use std::{collections::HashMap, process::Output, time::Duration};

use metric_vault::metrics::test_influxd::InfluxServer;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{
    helpers::{ADMIN_TOKEN, TestApp, spawn_app, spawn_app_with},
    target_api::project_with_target,
};

/// Long enough for any of these runs (a few seconds of load) on a busy machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// A server with InfluxDB and a target API imported into a project.
struct Lab {
    app: TestApp,
    _influx: InfluxServer,
    project: String,
    endpoints: HashMap<String, String>,
}

async fn lab() -> Lab {
    lab_with(&[]).await
}

async fn lab_with(extra: &[(&str, &str)]) -> Lab {
    let influx = InfluxServer::start().await;
    let port = influx.port().to_string();
    let mut settings = vec![("INFLUXDB_PORT", port.as_str())];
    settings.extend_from_slice(extra);
    let app = spawn_app_with(&settings).await;
    let (project, endpoints) = project_with_target(&app, "Shop").await;
    Lab { app, _influx: influx, project, endpoints }
}

/// Saves a plan of one `getItem` scenario in `project`: `seconds` of 2 VUs, with `targets`
/// (e.g. `{"responseTimeTarget": 1000}`); returns its id.
async fn save_plan(
    app: &TestApp,
    project: &str,
    endpoint: &str,
    title: &str,
    seconds: u32,
    targets: Value,
) -> String {
    let mut scenario = json!({ "name": "browse", "endpointId": endpoint, "executor": "CONSTANT_VUS",
        "thinkTime": 0.05, "stages": [{"duration": format!("{seconds}s"), "target": 2}] });
    scenario.as_object_mut().unwrap().extend(targets.as_object().unwrap().clone());
    let saved = app
        .graphql(
            "mutation($input: LaunchLoadTestInput!) { createTestPlan(input: $input) { id } }",
            json!({ "input": { "projectId": project, "title": title, "scenarios": [scenario] } }),
        )
        .await;
    saved.data()["createTestPlan"]["id"].as_str().unwrap().to_owned()
}

impl Lab {
    async fn plan(&self, title: &str, seconds: u32, targets: Value) -> String {
        save_plan(&self.app, &self.project, &self.endpoints["getItem"], title, seconds, targets).await
    }
}

/// `metric-vault run <args>` against `app`, with the server and admin token in the environment
/// as a CI job would set them, and its output captured (not a terminal).
fn command(app: &TestApp, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_metric-vault"));
    command
        .arg("run")
        .args(args)
        .env("METRIC_VAULT_SERVER", app.url(""))
        .env("METRIC_VAULT_TOKEN", ADMIN_TOKEN)
        .env_remove("TLS_EXTRA_CA_FILE")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

async fn output(mut command: tokio::process::Command) -> Output {
    tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("the command ends in time")
        .expect("it starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// The run `id` as the server has it.
async fn run_on_server(app: &TestApp, id: &str) -> Value {
    app.graphql(
        "query($id: ID!) { testHistory(id: $id) { status verdict plan { id } summary { totalRequests } } }",
        json!({ "id": id }),
    )
    .await
    .data()["testHistory"]
        .clone()
}

/// The id in `launched run N of test plan …`.
fn launched_run(output: &str) -> String {
    let at = output.find("launched run ").unwrap_or_else(|| panic!("no launch line in {output}"))
        + "launched run ".len();
    output[at..].split(' ').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_plan_that_meets_its_targets_exits_0_after_a_plain_log_and_the_summary_table() {
    let lab = lab().await;
    lab.plan("Items within targets", 3, json!({ "responseTimeTarget": 1000, "errorRateTarget": 5 })).await;

    let finished = output(command(&lab.app, &["--plan", "Items within targets", "--wait"])).await;

    let stdout = text(&finished.stdout);
    assert_eq!(finished.status.code(), Some(0), "{stdout}\n{}", text(&finished.stderr));
    assert!(!stdout.contains(['\r', '\x1b']), "no control characters in a log: {stdout:?}");
    let id = launched_run(&stdout);
    // Between the launch line and the table: the progress, a line each.
    let progress: Vec<&str> = stdout.lines().skip(1).take_while(|line| !line.is_empty()).collect();
    assert!(
        progress
            .iter()
            .all(|line| line.len() > 21 && line.as_bytes()[4] == b'-' && line.as_bytes()[19] == b'Z'),
        "each progress line starts with a UTC timestamp: {progress:?}"
    );
    assert!(progress.iter().any(|line| line.contains(&format!("run {id} RUNNING"))), "{stdout}");
    assert!(progress.iter().any(|line| line.contains(&format!("run {id} COMPLETED"))), "{stdout}");
    let table: Vec<&str> = stdout.lines().skip_while(|line| !line.starts_with("scenario ")).collect();
    assert!(table[0].split_whitespace().eq([
        "scenario", "requests", "failed", "TPS", "p95", "ms", "p99", "ms", "errors", "%", "targets",
        "verdict"
    ]));
    let browse: Vec<&str> = table[1].split_whitespace().collect();
    assert_eq!(browse[0], "browse");
    assert_eq!(browse[7..], ["p95", "<=", "1000", "ms,", "errors", "<=", "5%", "PASSED"], "{}", table[1]);
    assert!(table[2].starts_with("(run)") && table[2].ends_with("PASSED"), "{stdout}");
    assert!(stdout.contains("PASSED: every target was met"), "{stdout}");

    let run = run_on_server(&lab.app, &id).await;
    assert_eq!((run["status"].as_str(), run["verdict"].as_str()), (Some("COMPLETED"), Some("PASSED")));
    let requests = run["summary"]["totalRequests"].as_i64().unwrap();
    assert!(requests > 10, "{run}");
    assert_eq!(browse[1], requests.to_string(), "the table shows the server's count");
}

#[tokio::test]
async fn a_plan_whose_p95_target_cannot_be_met_exits_1_with_one_json_document_on_stdout() {
    let lab = lab().await;
    let plan = lab.plan("Impossibly fast", 2, json!({ "responseTimeTarget": 0.001 })).await;

    let finished = output(command(&lab.app, &["--plan", &plan, "--wait", "--json"])).await;

    let (stdout, stderr) = (text(&finished.stdout), text(&finished.stderr));
    assert_eq!(finished.status.code(), Some(1), "{stdout}\n{stderr}");
    let document: Value =
        serde_json::from_str(&stdout).expect("stdout is one JSON document and nothing else");
    assert_eq!(document["outcome"], "FAILED");
    assert_eq!(document["exitCode"], 1);
    assert!(document["message"].as_str().unwrap().starts_with("targets missed: browse: p95 "), "{document}");
    let run = &document["run"];
    assert_eq!((run["status"].as_str(), run["verdict"].as_str()), (Some("COMPLETED"), Some("FAILED")));
    assert_eq!(run["plan"]["id"], plan.as_str());
    assert_eq!(run["scenarios"][0]["responseTimeTarget"], 0.001);
    assert!(run["summary"]["totalRequests"].as_i64().unwrap() > 0, "{run}");
    // People's output went to stderr.
    assert!(stderr.contains(&format!("launched run {}", run["id"].as_str().unwrap())), "{stderr}");
    assert!(stderr.contains("FAILED: targets missed"), "{stderr}");
}

#[tokio::test]
async fn unknown_plans_refused_tokens_and_a_server_that_is_down_exit_2_saying_so() {
    let app = spawn_app().await;
    let project = app.create_project("Empty").await;
    let viewer = app
        .graphql(
            r#"mutation { createApiToken(input: {name: "dashboard", role: VIEWER}) { token } }"#,
            json!({}),
        )
        .await
        .data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let down = format!("http://127.0.0.1:{closed_port}");
    let refusals = [
        // (arguments, environment set otherwise, what stderr says)
        ("--plan 999", None, "there is no test plan 999".to_owned()),
        (
            &*format!("--plan Nightly --project {project}"),
            None,
            format!(
                "no live test plan is titled \"Nightly\" in project {project} \"Empty\"; there are no live plans"
            ),
        ),
        ("--plan 1 --project Elsewhere", None, "no project is titled \"Elsewhere\"".to_owned()),
        ("--plan 1", Some(("METRIC_VAULT_TOKEN", "mv_not-a-token")), "refused the token".to_owned()),
        (
            &*format!("--plan 1 --server {down}"),
            None,
            format!("cannot reach the server at {down}/graphql: could not connect"),
        ),
        (
            "--plan 1 --wait",
            Some(("METRIC_VAULT_SERVER", "")),
            "no server: pass --server or set METRIC_VAULT_SERVER".to_owned(),
        ),
        ("--plan 1 --timeout 5", None, "--timeout: `5` has no unit".to_owned()),
    ];
    for (args, env, expected) in refusals {
        let mut command = command(&app, &args.split(' ').collect::<Vec<_>>());
        command.envs(env);
        let finished = output(command).await;
        let stderr = text(&finished.stderr);
        assert_eq!(finished.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("metric-vault run: ") && stderr.contains(&expected), "{args:?}: {stderr}");
        assert!(finished.stdout.is_empty(), "{args:?}: nothing on stdout");
    }

    // A VIEWER may read the plan but not launch it; in JSON, the error is the document.
    let (shop, endpoints) = project_with_target(&app, "Shop").await;
    let plan = save_plan(&app, &shop, &endpoints["getItem"], "Nightly", 1, json!({})).await;
    let mut as_viewer = command(&app, &["--plan", &plan, "--json"]);
    as_viewer.env("METRIC_VAULT_TOKEN", &viewer);
    let finished = output(as_viewer).await;
    assert_eq!(finished.status.code(), Some(2));
    let document: Value = serde_json::from_slice(&finished.stdout).expect("one JSON document");
    assert_eq!(document["outcome"], "ERROR");
    let message = document["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("launching test plan {plan} \"Nightly\": "))
            && message.ends_with("(FORBIDDEN)"),
        "{message}"
    );
}

#[tokio::test]
async fn a_title_two_projects_share_is_refused_until_a_project_is_named() {
    let lab = lab().await;
    let (other, other_endpoints) = project_with_target(&lab.app, "Payments").await;
    let here = lab.plan("Smoke", 1, json!({ "responseTimeTarget": 1000 })).await;
    let there = save_plan(&lab.app, &other, &other_endpoints["getItem"], "Smoke", 1, json!({})).await;

    let ambiguous = output(command(&lab.app, &["--plan", "Smoke"])).await;
    let stderr = text(&ambiguous.stderr);
    assert_eq!(ambiguous.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("2 live test plans are titled \"Smoke\""), "{stderr}");
    assert!(stderr.contains(&format!("{here} \"Smoke\" (project {} \"Shop\")", lab.project)), "{stderr}");
    assert!(stderr.contains(&format!("{there} \"Smoke\" (project {other} \"Payments\")")), "{stderr}");

    // Without --wait: launched, and only the run's id on stdout.
    let launched = output(command(&lab.app, &["--plan", "Smoke", "--project", "Payments"])).await;
    assert_eq!(launched.status.code(), Some(0), "{}", text(&launched.stderr));
    let id = text(&launched.stdout).trim().to_owned();
    assert!(id.parse::<u64>().is_ok(), "stdout is the run's id: {id:?}");
    assert_eq!(run_on_server(&lab.app, &id).await["plan"]["id"], there.as_str());
}

#[tokio::test]
async fn on_a_terminal_the_progress_bar_is_redrawn_in_place() {
    let lab = lab().await;
    let plan = lab.plan("Watched", 3, json!({ "errorRateTarget": 5 })).await;
    let binary = env!("CARGO_BIN_EXE_metric-vault");

    // `script` gives the command a pseudo-terminal and copies what it writes.
    let mut under_terminal = tokio::process::Command::new("script");
    under_terminal
        .args(["-qfec", &format!("'{binary}' run --plan {plan} --wait"), "/dev/null"])
        .env("METRIC_VAULT_SERVER", lab.app.url(""))
        .env("METRIC_VAULT_TOKEN", ADMIN_TOKEN)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let finished = output(under_terminal).await;

    let shown = text(&finished.stdout);
    assert_eq!(finished.status.code(), Some(0), "{shown:?}");
    // The terminal turns each "\n" into "\r\n"; a redraw is a "\r" that starts a line again.
    let redraws: Vec<&str> = shown.split('\r').skip(1).filter(|part| !part.starts_with('\n')).collect();
    let bars: Vec<&&str> =
        redraws.iter().filter(|part| part.contains(" RUNNING [") && part.contains("] 0:0")).collect();
    assert!(bars.len() >= 2, "the bar is redrawn while the run goes on: {shown:?}");
    assert!(bars.iter().any(|bar| bar.contains("TPS ") && bar.contains(" ms  errors ")), "{bars:?}");
    assert!(shown.contains("PASSED: every target was met"), "{shown:?}");
}

#[tokio::test]
async fn ctrl_c_while_waiting_cancels_the_run_and_exits_2() {
    let lab = lab().await;
    let plan = lab.plan("Long", 60, json!({ "responseTimeTarget": 1000 })).await;
    let mut waiting = command(&lab.app, &["--plan", &plan, "--wait"]);
    waiting.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = waiting.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut id = None;
    let mut seen = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line.clone());
            if line.starts_with("launched run ") {
                id = Some(launched_run(&line));
            }
            if line.contains(" RUNNING") {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never RUNNING: {seen:?}"));
    let id = id.expect("the launch line");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(PATIENCE, child.wait()).await.expect("it exits").unwrap();
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).await.unwrap();

    assert_eq!(status.code(), Some(2), "{rest}\n{stderr}");
    assert!(stderr.contains(&format!("Ctrl-C: cancelling run {id}")), "{stderr}");
    assert!(stderr.contains("the run was cancelled"), "{stderr}");
    assert!(rest.contains("CANCELLED"), "what was measured is shown: {rest}");
    assert_eq!(run_on_server(&lab.app, &id).await["status"], "CANCELLED");
}

#[tokio::test]
async fn a_run_past_its_timeout_is_cancelled_and_exits_2() {
    let lab = lab().await;
    let plan = lab.plan("Too long for the job", 60, json!({ "responseTimeTarget": 1000 })).await;

    let finished = output(command(&lab.app, &["--plan", &plan, "--wait", "--timeout", "4s"])).await;

    let (stdout, stderr) = (text(&finished.stdout), text(&finished.stderr));
    assert_eq!(finished.status.code(), Some(2), "{stdout}\n{stderr}");
    let id = launched_run(&stdout);
    assert!(
        stderr.contains(&format!("run {id} has not ended within --timeout 4s: cancelling run {id}")),
        "{stderr}"
    );
    assert_eq!(run_on_server(&lab.app, &id).await["status"], "CANCELLED");
}

#[tokio::test]
async fn when_the_websocket_is_refused_the_figures_come_from_polling() {
    // One socket per token, taken by the test: the command's own is refused (4429).
    let lab = lab_with(&[("WS_MAX_SOCKETS_PER_TOKEN", "1")]).await;
    let _taken = crate::subscriptions::support::connect(
        &lab.app.address,
        crate::subscriptions::support::Protocol::Modern,
    )
    .await;
    let plan = lab.plan("Polled", 5, json!({ "responseTimeTarget": 1000 })).await;

    let finished = output(command(&lab.app, &["--plan", &plan, "--wait"])).await;

    let stdout = text(&finished.stdout);
    assert_eq!(finished.status.code(), Some(0), "{stdout}\n{}", text(&finished.stderr));
    assert!(stdout.contains("live figures: the websocket failed (closed by the server (4429"), "{stdout}");
    assert!(
        stdout.lines().any(|line| line.contains(&format!(" run {} ", launched_run(&stdout)))
            && line.contains("TPS ")
            && !line.contains("TPS 0.0")),
        "figures from the time series: {stdout}"
    );
    assert!(stdout.contains("PASSED: every target was met"), "{stdout}");
}

/// A TLS front for the server at `address` (what an ingress does), with a certificate for
/// 127.0.0.1 signed by a CA the test makes: the CA's PEM and the front's port.
async fn tls_front(address: &str) -> (String, u16) {
    let (ca_pem, acceptor) = crate::helpers::throwaway_tls();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let address = address.to_owned();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, address) = (acceptor.clone(), address.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let Ok(mut server) = tokio::net::TcpStream::connect(&address).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    (ca_pem, port)
}

#[tokio::test]
async fn over_https_the_run_is_followed_live_when_the_servers_ca_is_trusted() {
    let lab = lab().await;
    let (ca_pem, port) = tls_front(&lab.app.address).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ingress-ca.pem");
    std::fs::write(&bundle, ca_pem).unwrap();
    let plan = lab.plan("Over TLS", 3, json!({ "responseTimeTarget": 1000 })).await;
    let server = format!("https://127.0.0.1:{port}");

    let mut trusting = command(&lab.app, &["--plan", &plan, "--wait", "--server", &server]);
    trusting.env("TLS_EXTRA_CA_FILE", &bundle);
    let finished = output(trusting).await;

    let stdout = text(&finished.stdout);
    assert_eq!(finished.status.code(), Some(0), "{stdout}\n{}", text(&finished.stderr));
    assert!(!stdout.contains("websocket failed"), "{stdout}");
    // Only the websocket's snapshots count requests as they go.
    let id = launched_run(&stdout);
    assert!(
        stdout.lines().any(|line| line.contains(&format!(" run {id} ")) && line.contains("requests ")),
        "live over wss: {stdout}"
    );
    assert!(stdout.contains("PASSED: every target was met"), "{stdout}");

    let distrusting = output(command(&lab.app, &["--plan", &plan, "--wait", "--server", &server])).await;
    let stderr = text(&distrusting.stderr);
    assert_eq!(distrusting.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "its TLS certificate is not trusted (it is signed by a CA not trusted here); \
                         a private CA can be added with TLS_EXTRA_CA_FILE"
        ),
        "{stderr}"
    );
}
