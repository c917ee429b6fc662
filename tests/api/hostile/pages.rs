//! Hostile input: pages. The browser pages work with no internet (headless Chromium may reach
//! nothing but the server), and the GraphQL endpoint passes graphql-http's GraphQL over HTTP
//! audit with no error and no warning. Both run Node.js scripts from tests/interop.

use std::{path::PathBuf, process::Output, time::Duration};

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{ADMIN_TOKEN, spawn_app};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

async fn run(command: &mut Command, what: &str) -> Output {
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {SCRIPT_TIMEOUT:?}"));
    match output {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("{what}: Node.js 20+ and npm must be on PATH (scripts/setup.sh)")
        }
        Err(error) => panic!("{what}: {error}"),
    }
}

/// The pinned packages of tests/interop, installed from its package-lock.json when one of
/// those this module needs is missing (an older install may predate them).
async fn install_packages() {
    let dir = interop_dir();
    if ["graphql-http", "puppeteer-core"].iter().all(|name| dir.join("node_modules").join(name).exists()) {
        return;
    }
    let output =
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir), "npm ci").await;
    assert!(output.status.success(), "npm ci failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// The JSON after `marker` on the script's last line that starts with it.
fn summary(stdout: &str, marker: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(marker))
        .unwrap_or_else(|| panic!("no `{marker}` line in:\n{stdout}"));
    serde_json::from_str(line.trim()).expect("a JSON summary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_over_http_audit_finds_no_error_and_no_warning() {
    let app = spawn_app().await;
    install_packages().await;

    let output = run(
        Command::new("node")
            .arg("http-audit.js")
            .current_dir(interop_dir())
            .env("METRIC_VAULT_URL", app.url("/graphql"))
            .env("METRIC_VAULT_TOKEN", ADMIN_TOKEN),
        "node http-audit.js",
    )
    .await;

    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    let counts = summary(&report, "AUDIT ");
    assert_eq!(counts["error"], 0, "MUSTs failed:\n{report}");
    assert_eq!(counts["warn"], 0, "SHOULDs failed:\n{report}");
    assert!(counts["ok"].as_u64().unwrap() > 30, "the audit ran its checks:\n{report}");
    assert!(output.status.success(), "{report}\n{}", String::from_utf8_lossy(&output.stderr));
    super::assert_healthy(&app).await;
}

/// Chromium for the browser test: `CHROMIUM` if set, else Debian's `chromium` on PATH.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file())
        .expect("Chromium is needed for the browser pages test: `apt-get install chromium` (scripts/setup.sh does it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_and_playground_work_in_a_browser_that_can_reach_nothing_but_the_server() {
    let app = spawn_app().await;
    install_packages().await;
    app.create_project("Air-gapped dashboard").await;
    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-pages");
    std::fs::create_dir_all(&screenshots).unwrap();

    let output = run(
        Command::new("node")
            .arg("browser-pages.js")
            .current_dir(interop_dir())
            .env("METRIC_VAULT_URL", app.url("/"))
            .env("METRIC_VAULT_TOKEN", ADMIN_TOKEN)
            .env("EXPECTED_TITLE", "Air-gapped dashboard")
            .env("CHROMIUM", chromium())
            .env("SCREENSHOT_DIR", &screenshots),
        "node browser-pages.js",
    )
    .await;

    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    assert!(
        output.status.success(),
        "the browser test failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pages: Vec<Value> = report
        .lines()
        .filter_map(|line| line.strip_prefix("PAGE "))
        .map(|json| serde_json::from_str(json).unwrap())
        .collect();
    assert_eq!(
        pages.iter().map(|page| page["page"].as_str().unwrap()).collect::<Vec<_>>(),
        ["graphiql", "playground"]
    );
    for page in &pages {
        let screenshot = PathBuf::from(page["screenshot"].as_str().unwrap());
        assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "{} was drawn", screenshot.display());
        println!("screenshot: {}", screenshot.display());
    }
    super::assert_healthy(&app).await;
}

/// POSTs `query` with `accept` (none when `None`) and returns status, content type and body.
async fn post_accepting(
    app: &crate::helpers::TestApp,
    accept: Option<&str>,
    query: &str,
) -> (u16, String, Value) {
    let mut request = metric_vault::tls::client()
        .post(app.url("/graphql"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "query": query }).to_string());
    // reqwest sends `accept: */*` unless told otherwise; an empty value stands for none below.
    request = request.header("accept", accept.unwrap_or(""));
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    (status, content_type, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_media_type_gets_the_statuses_the_spec_gives_it() {
    let app = spawn_app().await;
    let graphql_response_json = Some("application/graphql-response+json");

    // A document that never ran: 400 for a client that reads statuses, no `data` entry.
    let (status, content_type, body) = post_accepting(&app, graphql_response_json, "{ projects {").await;
    assert_eq!((status, content_type.as_str()), (400, "application/graphql-response+json; charset=utf-8"));
    assert_eq!(body["errors"][0]["extensions"]["code"], "GRAPHQL_PARSE_FAILED");
    assert!(body.get("data").is_none(), "{body}");
    // The same for a legacy client: 200, the errors in the body.
    let (status, content_type, body) = post_accepting(&app, Some("application/json"), "{ nope }").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json; charset=utf-8"));
    assert_eq!(body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    assert!(body.get("data").is_none(), "{body}");
    // curl's `*/*` gets application/json; no Accept at all gets the spec's default.
    let (status, content_type, _) = post_accepting(&app, Some("*/*"), "{ projects { id } }").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json; charset=utf-8"));
    let (status, content_type, _) = post_accepting(&app, None, "{ nope }").await;
    assert_eq!((status, content_type.as_str()), (400, "application/graphql-response+json; charset=utf-8"));
    // An answer that ran keeps its `data`, in either type.
    let (status, _, body) = post_accepting(&app, graphql_response_json, "{ projects { id } }").await;
    assert_eq!((status, &body["data"]["projects"]), (200, &serde_json::json!([])));

    let (status, _, body) =
        post_accepting(&app, Some("text/html, application/xml"), "{ projects { id } }").await;
    assert_eq!(status, 406);
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_ACCEPTABLE");
    super::assert_healthy(&app).await;
}
