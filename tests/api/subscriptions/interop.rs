//! The JavaScript clients of tests/interop (graphql-ws, Apollo Client, urql,
//! subscriptions-transport-ws) against this server, with real k6 runs: clients nobody
//! here wrote are the judges of the protocol and the schema.

use std::{path::PathBuf, process::Output, time::Duration};

use tokio::process::Command;

use super::support::LiveLab;

/// node --test over four files, each a k6 run of a few seconds.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

async fn run(command: &mut Command, what: &str) -> Output {
    let output = tokio::time::timeout(SUITE_TIMEOUT, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {SUITE_TIMEOUT:?}"));
    match output {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("{what}: Node.js 20+ and npm must be on PATH (scripts/setup.sh)")
        }
        Err(error) => panic!("{what}: {error}"),
    }
}

/// The pinned clients, installed from package-lock.json when they are not yet.
async fn install_clients() {
    let dir = interop_dir();
    if dir.join("node_modules/.package-lock.json").exists() {
        return;
    }
    let output =
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir), "npm ci").await;
    assert!(output.status.success(), "npm ci failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_javascript_clients_see_live_snapshots_and_status_events() {
    let lab = LiveLab::start().await;
    install_clients().await;
    // A stored OPERATOR token, not the bootstrap admin one: the clients launch, so they need
    // exactly that role, and each must send it its own way (headers, connection_init).
    let created = lab
        .app
        .graphql(
            "mutation { createApiToken(input: {name: \"interop\", role: OPERATOR}) { token } }",
            serde_json::json!({}),
        )
        .await;
    let token = created.data()["createApiToken"]["token"].as_str().unwrap().to_owned();

    let output = run(
        Command::new("node")
            .args(["--test", "--test-concurrency=4"])
            .current_dir(interop_dir())
            .env("METRIC_VAULT_URL", lab.app.url("/graphql"))
            .env("METRIC_VAULT_PROJECT_ID", &lab.project)
            .env("METRIC_VAULT_ENDPOINT_ID", lab.endpoint("getItem"))
            .env("METRIC_VAULT_TOKEN", &token),
        "node --test",
    )
    .await;

    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    assert!(
        output.status.success(),
        "the interop suite failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("# pass 4"), "all four clients ran:\n{report}");
}
