//! Faults in the middle of a real run — k6 killed, InfluxDB stopped, the server restarted —
//! each must end with the run finalised and every sample that reached InfluxDB in its summary.

use std::{process::Stdio, time::Duration};

use metric_vault::metrics::test_influxd::InfluxServer;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::{
    helpers::{ADMIN_TOKEN, TestApp, client_with_token, spawn_app_with, spawn_with, test_settings_with},
    subscriptions::support::{METRICS, Protocol, connect},
    target_api::project_with_target,
};

const RUN: &str = "query($id: ID!) { testHistory(id: $id) { id status failureReason resultsComplete
    summary { totalRequests } totals { requests } } }";
const LAUNCH: &str = "mutation($input: LaunchLoadTestInput!) { launchLoadTest(input: $input) { id } }";

fn steady_load(endpoint: &str, duration: &str) -> Value {
    json!({ "title": "Under fault", "scenarios": [{ "name": "steady", "endpointId": endpoint,
        "executor": "CONSTANT_VUS", "thinkTime": 0.05, "stages": [{ "duration": duration, "target": 2 }] }] })
}

async fn run_of(app: &TestApp, id: &str) -> Value {
    app.graphql(RUN, json!({ "id": id })).await.data()["testHistory"].clone()
}

async fn wait_for(app: &TestApp, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let run = run_of(app, id).await;
        if done(&run) {
            return run;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "run {id} never got {what}: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn finished(run: &Value) -> bool {
    !matches!(run["status"].as_str(), Some("PENDING" | "RUNNING"))
}

/// How many requests of run `id` InfluxDB holds: what was recorded.
async fn recorded_requests(influx: &InfluxServer, id: &str) -> i64 {
    let series = influx
        .client("k6")
        .query(&format!("SELECT count(\"value\") FROM \"http_reqs\" WHERE \"testid\" = '{id}'"))
        .await
        .expect("InfluxDB answers");
    series.first().and_then(|s| s.values.first()?.get(1)?.as_i64()).unwrap_or(0)
}

fn k6_processes_of(scripts: &std::path::Path, id: &str) -> bool {
    let script = scripts.join(format!("test-{id}.js"));
    std::process::Command::new("pgrep").arg("-f").arg(script.as_os_str()).status().is_ok_and(|s| s.success())
}

#[tokio::test]
async fn a_k6_killed_mid_run_fails_the_run_and_keeps_every_recorded_sample() {
    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string())]).await;
    let (_, endpoints) = project_with_target(&app, "Killed").await;
    let id = app.launch(steady_load(&endpoints["getItem"], "2m")).await;
    wait_for(&app, &id, "RUNNING", |run| run["status"] == "RUNNING").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let script = app.scripts_dir().join(format!("test-{id}.js"));
    let killed =
        std::process::Command::new("pkill").arg("-KILL").arg("-f").arg(script.as_os_str()).status().unwrap();
    assert!(killed.success(), "the run's k6 was found and killed");

    let run = wait_for(&app, &id, "an end", finished).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    assert!(run["failureReason"].as_str().unwrap().contains("k6 instance 0 exited"), "{run}");
    let recorded = recorded_requests(&influx, &id).await;
    assert!(recorded > 0, "k6 had recorded requests before it died");
    assert_eq!(run["summary"]["totalRequests"], recorded, "the summary holds every recorded request");
}

#[tokio::test]
async fn influxdb_stopped_mid_run_and_back_later_loses_no_recorded_sample() {
    let mut influx = InfluxServer::start().await;
    let app =
        spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string()), ("SCHEDULER_POLL_INTERVAL", "0.5")])
            .await;
    let (_, endpoints) = project_with_target(&app, "Outage").await;
    let id = app.launch(steady_load(&endpoints["getItem"], "6s")).await;
    wait_for(&app, &id, "RUNNING", |run| run["status"] == "RUNNING").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    influx.stop();
    // The run still ends, and says its results are missing for now.
    let ended = wait_for(&app, &id, "an end", finished).await;
    assert_eq!(ended["status"], "COMPLETED", "{ended}");
    assert!(ended["summary"].is_null(), "{ended}");
    assert!(ended["failureReason"].as_str().unwrap().contains("InfluxDB"), "{ended}");

    // InfluxDB comes back: the results are filled in from everything it recorded.
    influx.restart().await;
    let filled = wait_for(&app, &id, "its results", |run| !run["summary"].is_null()).await;
    let recorded = recorded_requests(&influx, &id).await;
    assert!(recorded > 0, "samples from before the outage survived the restart of InfluxDB");
    assert!(filled["failureReason"].is_null(), "{filled}");
    // The count is k6's own; what InfluxDB missed while it was down is said, never hidden.
    let integrity = app
        .graphql(
            "query($id: ID!) { testHistory(id: $id) { resultsComplete missingSamples totals { requests } } }",
            json!({ "id": id }),
        )
        .await;
    let run = &integrity.data()["testHistory"];
    let total = filled["summary"]["totalRequests"].as_i64().unwrap();
    assert_eq!(run["totals"]["requests"].as_i64(), Some(total), "{run}");
    assert!(total >= recorded, "k6 counted {total}, InfluxDB kept {recorded}");
    if total > recorded {
        assert_eq!(run["resultsComplete"], false, "{run}");
        assert_eq!(run["missingSamples"].as_i64(), Some(total - recorded), "{run}");
    } else {
        assert_eq!(run["resultsComplete"], true, "{run}");
    }
}

#[tokio::test]
async fn a_server_stopped_mid_run_hands_it_over_and_the_restarted_one_completes_it() {
    restart_mid_run("-TERM", Afterwards::Restart).await;
}

/// The server killed alone (`kill -9`, as the OOM killer does): its k6 goes on, and the
/// restarted server takes it back and completes the run with what the target served.
#[tokio::test]
async fn a_server_killed_mid_run_is_restarted_and_completes_the_run_its_k6_went_on_with() {
    restart_mid_run("-KILL", Afterwards::Restart).await;
}

/// The server and its k6 both killed: the restarted server finds k6 gone without its
/// end-of-test counts and ends the run FAILED with that reason, keeping what was recorded.
#[tokio::test]
async fn a_server_killed_with_its_k6_is_restarted_and_ends_the_run_with_the_reason() {
    restart_mid_run("-KILL", Afterwards::KillK6AndRestart).await;
}

/// k6 stopped by a signal while no server runs writes its counts, but ran only part of its
/// plan: the restarted server records it FAILED, not as a run that went to its end.
#[tokio::test]
async fn a_k6_signalled_while_no_server_runs_fails_the_run_when_a_server_returns() {
    restart_mid_run("-KILL", Afterwards::TermK6AndRestart).await;
}

/// A cancel the owner took, then the owner killed before it recorded the end: the run that
/// is taken over ends CANCELLED, whether or not the cancel reached k6 in time.
#[tokio::test]
async fn a_cancel_taken_by_a_server_killed_right_after_stands() {
    restart_mid_run("-KILL", Afterwards::CancelThenKill).await;
}

/// A run that ended while InfluxDB took no samples, its server killed before it wrote them:
/// the next server on the machine writes them, and the run's results are complete.
#[tokio::test]
async fn samples_a_killed_server_had_not_written_are_written_by_the_next_one() {
    restart_mid_run("-KILL", Afterwards::EndWithInfluxFrozenThenKill).await;
}

#[derive(Clone, Copy, PartialEq)]
enum Afterwards {
    Restart,
    KillK6AndRestart,
    /// k6 stopped with SIGTERM while no server runs: it writes its counts, having run part of its plan.
    TermK6AndRestart,
    /// A cancel asked of the server, which is killed right after it has taken it.
    CancelThenKill,
    /// InfluxDB frozen as the run ends (the server ends the run with its last samples still
    /// in k6's files), the server killed, InfluxDB back, a server started.
    EndWithInfluxFrozenThenKill,
}

/// The pids of the k6 processes running run `id`'s script.
fn k6_pids_of(scripts: &std::path::Path, id: &str) -> Vec<String> {
    let script = scripts.join(format!("test-{id}.js"));
    let found = std::process::Command::new("pgrep").arg("-f").arg(script.as_os_str()).output().unwrap();
    String::from_utf8_lossy(&found.stdout).split_whitespace().map(str::to_owned).collect()
}

/// Stops the server process with `signal` during a run. k6 goes on — the record says RUNNING,
/// and so it is — and a server restarted on the same database takes the run back: it completes
/// with k6's counts equal to what the target served, and a live subscriber that reconnects to
/// the restarted server gets snapshots again. With `KillK6AndRestart`, k6 is killed too
/// while no server runs, and the run ends FAILED with the reason.
async fn restart_mid_run(signal: &str, afterwards: Afterwards) {
    let influx = InfluxServer::start().await;
    let influx_port = influx.port().to_string();
    let data_dir = tempfile::tempdir().unwrap();
    // A server stopped with SIGTERM hands its runs over as it goes, and one killed on this host
    // is seen to be gone: with a lease far longer than the test, only that lets the restarted
    // server take the run back in time.
    let lease = "600";
    let settings =
        test_settings_with(data_dir.path(), &[("INFLUXDB_PORT", &influx_port), ("RUN_LEASE_SECONDS", lease)])
            .await;
    let scripts = settings.k6_script_file_folder.clone();

    // The first server is a real process, stopped the way a deployment (or the OOM killer) does.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_metric-vault"))
        .env("DATABASE_URL", &settings.database_url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("INFLUXDB_PORT", &influx_port)
        .env("K6_SCRIPT_FILE_FOLDER", &scripts)
        .env("METRIC_VAULT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("LOG_LEVEL", "warn")
        .env("RUN_LEASE_SECONDS", lease)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server binary");
    let client = client_with_token(ADMIN_TOKEN);
    let url = format!("http://127.0.0.1:{port}/graphql");
    let call = |query: &'static str, variables: Value| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body: Value = client
                .post(url)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await?
                .json()
                .await?;
            Ok::<Value, reqwest::Error>(body)
        }
    };
    while call("{ health { status } }", json!({})).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (target, served) = crate::exact_totals::counting_target().await;
    let project =
        call("mutation { createProject(input: {title: \"Restarted\"}) { id } }", json!({})).await.unwrap();
    let project = project["data"]["createProject"]["id"].as_str().unwrap().to_owned();
    let imported = call(
        "mutation($p: ID!, $u: String!) { analyzeOpenApi(input: {projectId: $p, url: $u}) { spec { endpoints { id operationId } } } }",
        json!({ "p": project, "u": format!("{target}/openapi.json") }),
    )
    .await
    .unwrap();
    let endpoint = imported["data"]["analyzeOpenApi"]["spec"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["operationId"] == "hitA")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seconds = match afterwards {
        Afterwards::Restart => "14s",
        Afterwards::EndWithInfluxFrozenThenKill => "5s",
        _ => "2m",
    };
    let launched = call(LAUNCH, json!({ "input": steady_load(&endpoint, seconds) })).await.unwrap();
    let id = launched["data"]["launchLoadTest"]["id"].as_str().unwrap().to_owned();
    loop {
        let run = call(RUN, json!({ "id": id })).await.unwrap();
        if run["data"]["testHistory"]["status"] == "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let address = format!("127.0.0.1:{port}");
    let mut watcher = connect(&address, Protocol::Modern).await;
    watcher.subscribe("metrics", METRICS, json!({ "id": id })).await;
    let before = watcher.next_payload("metrics").await["data"]["testMetrics"].clone();
    tokio::time::sleep(Duration::from_secs(2)).await;

    if afterwards == Afterwards::CancelThenKill {
        // The server is killed as soon as the cancel is on record, before it records the end.
        let cancel = call("mutation($id: ID!) { cancelLoadTest(id: $id) { status } }", json!({ "id": id }));
        tokio::spawn(cancel);
        let db = sea_orm::Database::connect(&settings.database_url).await.unwrap();
        let asked = std::time::Instant::now();
        loop {
            let run =
                metric_vault::db::entities::test_history::Entity::find_by_id(id.parse::<i64>().unwrap())
                    .one(&db)
                    .await
                    .unwrap()
                    .unwrap();
            if run.cancel_requested_at.is_some() {
                break;
            }
            assert!(asked.elapsed() < Duration::from_secs(10), "the cancel is never recorded");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let influx_signal = |name: &str| {
        let pid = influx.pid().to_string();
        assert!(std::process::Command::new("kill").args([name, &pid]).status().unwrap().success());
    };
    if afterwards == Afterwards::EndWithInfluxFrozenThenKill {
        influx_signal("-STOP");
        let frozen = std::time::Instant::now();
        loop {
            let run = call(RUN, json!({ "id": id })).await.unwrap();
            if run["data"]["testHistory"]["status"] == "COMPLETED" {
                break;
            }
            assert!(frozen.elapsed() < Duration::from_secs(60), "the run never ended: {run}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let left: Vec<_> = std::fs::read_dir(&scripts)
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with(&format!("samples-{id}-")))
            .collect();
        assert!(!left.is_empty(), "the samples not yet written are in k6's file");
    }
    let pid = first.id().expect("the server runs");
    std::process::Command::new("kill").arg(signal).arg(pid.to_string()).status().unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(30), first.wait()).await;
    assert!(stopped.is_ok(), "the server stops on kill {signal}");
    let k6 = k6_pids_of(&scripts, &id);
    match afterwards {
        Afterwards::Restart => {
            assert!(!k6.is_empty(), "k6 goes on without its server (kill {signal})");
            let served_while_down = served.a.load(std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(
                served.a.load(std::sync::atomic::Ordering::SeqCst) > served_while_down,
                "the load goes on"
            );
        }
        Afterwards::KillK6AndRestart | Afterwards::TermK6AndRestart => {
            assert!(!k6.is_empty(), "k6 goes on without its server (kill {signal})");
            let k6_signal = if afterwards == Afterwards::KillK6AndRestart { "-KILL" } else { "-TERM" };
            std::process::Command::new("kill").arg(k6_signal).args(&k6).status().unwrap();
            let stopping = std::time::Instant::now();
            while !k6_pids_of(&scripts, &id).is_empty() {
                assert!(stopping.elapsed() < Duration::from_secs(20), "k6 stops on kill {k6_signal}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // The cancel may or may not have reached k6 before the server died.
        Afterwards::CancelThenKill => {}
        Afterwards::EndWithInfluxFrozenThenKill => influx_signal("-CONT"),
    }

    let restarted = std::time::Instant::now();
    let second = spawn_with(settings, data_dir).await;
    if afterwards == Afterwards::Restart {
        // A subscriber that reconnects, to the restarted server, follows the run on.
        let mut watcher = connect(&second.address, Protocol::Modern).await;
        watcher.subscribe("metrics", METRICS, json!({ "id": id })).await;
        let after = watcher.next_payload("metrics").await["data"]["testMetrics"].clone();
        assert_eq!(after["testHistoryId"], before["testHistoryId"]);
        assert!(after["totalRequests"].as_i64() > before["totalRequests"].as_i64(), "{before} then {after}");
        let last = watcher.payloads_until_complete("metrics").await;
        assert_eq!(last.last().unwrap()["data"]["testMetrics"]["final"], true, "{last:?}");
    }
    let run = wait_for(&second, &id, "an end", finished).await;
    assert!(restarted.elapsed() < Duration::from_secs(60), "taken back at once, not after its 600 s lease");
    assert!(k6_pids_of(&scripts, &id).is_empty(), "no k6 of the run is left");
    if afterwards == Afterwards::CancelThenKill {
        assert_eq!(run["status"], "CANCELLED", "the cancel the dead server took stands: {run}");
        return;
    }
    if afterwards == Afterwards::TermK6AndRestart {
        assert_eq!(run["status"], "FAILED", "{run}");
        let reason = run["failureReason"].as_str().unwrap();
        assert!(reason.contains("before the end of its plan"), "{run}");
        return;
    }
    if afterwards == Afterwards::KillK6AndRestart {
        assert_eq!(run["status"], "FAILED", "{run}");
        let reason = run["failureReason"].as_str().unwrap();
        assert!(reason.starts_with("interrupted by server restart"), "{run}");
        assert!(reason.contains("without writing its end-of-test counts"), "{run}");
        let run = wait_for(&second, &id, "its results", |run| !run["summary"].is_null()).await;
        let recorded = recorded_requests(&influx, &id).await;
        assert!(recorded > 0);
        assert_eq!(run["summary"]["totalRequests"], recorded, "{run}");
        return;
    }
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let run = wait_for(&second, &id, "its totals", |run| !run["totals"]["requests"].is_null()).await;
    let served = served.a.load(std::sync::atomic::Ordering::SeqCst);
    assert!(served > 0);
    assert_eq!(run["totals"]["requests"], served, "k6's counts are what the target served: {run}");
    if afterwards == Afterwards::EndWithInfluxFrozenThenKill {
        let run = wait_for(&second, &id, "its results", |run| !run["summary"].is_null()).await;
        assert_eq!(recorded_requests(&influx, &id).await, served, "every sample written");
        assert_eq!(run["resultsComplete"], true, "{run}");
        assert_eq!(run["summary"]["totalRequests"], served, "{run}");
        let left = std::fs::read_dir(&scripts)
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok());
        assert!(
            !left.into_iter().any(|name| name.starts_with(&format!("samples-{id}-"))),
            "the file is removed"
        );
    }
}

/// Two servers on one database, as two replicas: one a real process that can be frozen and
/// killed, one in this process. A cancel sent to the replica that does not own a run stops it;
/// an owner cut off leaves the other replica's run untouched, and the other one takes its run
/// over once the lease expires and completes it with the k6 that went on.
#[tokio::test]
async fn two_replicas_cancel_each_others_runs_and_one_adopts_the_run_of_one_cut_off() {
    let influx = InfluxServer::start().await;
    let influx_port = influx.port().to_string();
    let data_dir = tempfile::tempdir().unwrap();
    let quick = [
        ("INFLUXDB_PORT", influx_port.as_str()),
        ("RUN_LEASE_SECONDS", "3"),
        ("SCHEDULER_POLL_INTERVAL", "0.5"),
    ];
    let settings = test_settings_with(data_dir.path(), &quick).await;
    let scripts_a = data_dir.path().join("scripts-a");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut replica_a = tokio::process::Command::new(env!("CARGO_BIN_EXE_metric-vault"))
        .env("DATABASE_URL", &settings.database_url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("K6_SCRIPT_FILE_FOLDER", &scripts_a)
        .env("METRIC_VAULT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("LOG_LEVEL", "warn")
        .envs(quick)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server binary");
    let client = client_with_token(ADMIN_TOKEN);
    let url_a = format!("http://127.0.0.1:{port}/graphql");
    let on_a = |query: &'static str, variables: Value| {
        let (client, url) = (client.clone(), url_a.clone());
        async move {
            let answer =
                client.post(url).json(&json!({ "query": query, "variables": variables })).send().await?;
            answer.json::<Value>().await
        }
    };
    while on_a("{ health { status } }", json!({})).await.is_err() {
        assert!(replica_a.try_wait().unwrap().is_none(), "replica A exited at start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // B starts once A has migrated the database.
    let replica_b = spawn_with(settings, data_dir).await;
    let (_, endpoints) = project_with_target(&replica_b, "Replicas").await;
    let endpoint = endpoints["getItem"].clone();
    let launch_on_a = |duration: &'static str| {
        let on_a = &on_a;
        let endpoint = endpoint.clone();
        async move {
            let launched = on_a(LAUNCH, json!({ "input": steady_load(&endpoint, duration) })).await.unwrap();
            launched["data"]["launchLoadTest"]["id"].as_str().expect("launched on A").to_owned()
        }
    };
    let running = |id: String| {
        let replica_b = &replica_b;
        async move { wait_for(replica_b, &id, "RUNNING", |run| run["status"] == "RUNNING").await }
    };

    // A cancel sent to B for A's run stops A's k6.
    let on_a_run = launch_on_a("2m").await;
    running(on_a_run.clone()).await;
    let cancelled = replica_b
        .graphql("mutation($id: ID!) { cancelLoadTest(id: $id) { status } }", json!({ "id": on_a_run }))
        .await;
    assert_eq!(cancelled.data()["cancelLoadTest"]["status"], "CANCELLED", "{}", cancelled.body);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!k6_processes_of(&scripts_a, &on_a_run), "the owner stopped its k6");

    // A is cut off (frozen: its process is there, it renews nothing) with a run of its own
    // going; B's run goes on untouched, and B takes A's run over once its lease has expired,
    // re-attaches to its k6, and completes it.
    let cut_off = launch_on_a("14s").await;
    let on_b_run = replica_b.launch(steady_load(&endpoint, "6s")).await;
    running(cut_off.clone()).await;
    running(on_b_run.clone()).await;
    let owner = |id: String| {
        let db = replica_b.db.clone();
        async move {
            let run =
                metric_vault::db::entities::test_history::Entity::find_by_id(id.parse::<i64>().unwrap())
                    .one(&db)
                    .await
                    .unwrap()
                    .unwrap();
            run.owner_instance
        }
    };
    let owner_a = owner(cut_off.clone()).await;
    let frozen_at = std::time::Instant::now();
    let pid_a = replica_a.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-STOP", &pid_a]).status().unwrap();
    while owner(cut_off.clone()).await == owner_a {
        assert!(frozen_at.elapsed() < Duration::from_secs(30), "B never took the run over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let taken_after = frozen_at.elapsed();
    // The last renewal came at most a second (a third of the lease) before the freeze.
    assert!(taken_after >= Duration::from_millis(1500), "not before the lease expired: {taken_after:?}");
    std::process::Command::new("kill").args(["-KILL", &pid_a]).status().unwrap();
    replica_a.wait().await.unwrap();

    let ended = wait_for(&replica_b, &cut_off, "an end", finished).await;
    assert_eq!(ended["status"], "COMPLETED", "{ended}");
    assert!(!ended["totals"]["requests"].is_null(), "with k6's own counts: {ended}");
    assert!(!k6_processes_of(&scripts_a, &cut_off), "no k6 of it is left");
    let survivor = wait_for(&replica_b, &on_b_run, "an end", finished).await;
    assert_eq!(survivor["status"], "COMPLETED", "{survivor}");
}
