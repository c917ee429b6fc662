//! GET /runs/{id}/report: a run's report page. It opens with a token or a signed link
//! (`TestHistory.reportUrl`, on any server sharing the database) and is refused otherwise;
//! below OPERATOR secret header values read `***`; every user string is escaped; and in real
//! headless Chromium (tests/interop/report-page.js) it draws its uPlot charts from the data it
//! carries, with no request beyond the page. The screenshot is kept at
//! `target/test-artifacts/report.png`.

use std::{path::PathBuf, time::Duration};

use metric_vault::{metrics::test_influxd::InfluxServer, seed};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::{
    helpers::{
        ADMIN_TOKEN, TestApp, client_with_token, spawn_app, spawn_app_with, spawn_with, test_settings_with,
    },
    target_api::project_with_target,
};

/// A title that would run a script if it reached the markup or the data block unescaped.
const HOSTILE_TITLE: &str = "</script><script>alert(1)</script> & \"quoted\" <b>bold</b>";
/// The credential the first scenario sends; never shown below OPERATOR.
const SECRET: &str = "Bearer report-s3cr3t";

const REPORT_URL: &str = "query($id: ID!) { testHistory(id: $id) { reportUrl } }";

/// A server with its own InfluxDB and a target API imported into a project.
struct Lab {
    app: TestApp,
    influx: InfluxServer,
    endpoints: std::collections::HashMap<String, String>,
}

async fn lab() -> Lab {
    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string())]).await;
    let (_, endpoints) = project_with_target(&app, "Report target").await;
    Lab { app, influx, endpoints }
}

impl Lab {
    /// Runs, for real, the two scenarios the tests read: `Browse items` (with a secret
    /// `Authorization` header and targets it meets) and `Broken page` (every request fails, past
    /// its error-rate target); returns the run's id and its API view once results are stored.
    async fn finished_run(&self, title: &str) -> (String, Value) {
        let id = self
            .app
            .launch(json!({
                "title": title, "description": title,
                "scenarios": [
                    { "name": "Browse items", "endpointId": self.endpoints["getItem"], "executor": "CONSTANT_VUS",
                      "thinkTime": 0.05, "stages": [{ "duration": "3s", "target": 2 }],
                      "responseTimeTarget": 1000, "errorRateTarget": 5,
                      "request": { "headers": { "Authorization": SECRET, "X-Plain": "visible" } } },
                    { "name": "Broken page", "endpointId": self.endpoints["broken"], "executor": "CONSTANT_ARRIVAL_RATE",
                      "thinkTime": 0, "stages": [{ "duration": "3s", "target": 10 }], "errorRateTarget": 50 }
                ]
            }))
            .await;
        let started = std::time::Instant::now();
        loop {
            let run = self
                .app
                .graphql(
                    "query($id: ID!) { testHistory(id: $id) { status verdict isCompleted k6Script
                        summary { totalRequests } scenarios { name verdict } } }",
                    json!({ "id": id }),
                )
                .await
                .data()["testHistory"]
                .clone();
            if run["isCompleted"] == true && !run["summary"].is_null() {
                assert_eq!(run["status"], "COMPLETED", "{run}");
                return (id, run);
            }
            assert!(started.elapsed() < Duration::from_secs(90), "run {id} never finished: {run}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What a GET answered.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |value| value.to_str().unwrap())
    }

    /// The page's embedded data.
    fn data(&self) -> Value {
        let start =
            self.body.find("id=\"report-data\">").expect("the data block") + "id=\"report-data\">".len();
        let end = start + self.body[start..].find("</script>").unwrap();
        serde_json::from_str(&self.body[start..end]).expect("the data block is JSON")
    }
}

/// GETs `path` (with its query) from `app`, with `token` in the header or none.
async fn get(app: &TestApp, path: &str, token: Option<&str>) -> Answer {
    let client = token.map_or_else(metric_vault::tls::client, client_with_token);
    let response = client.get(app.url(path)).send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Answer { status, headers, body: response.text().await.unwrap() }
}

/// The run's report link as the holder of `token` gets it.
async fn report_url(app: &TestApp, token: &str, id: &str) -> String {
    let answer = app.graphql_with(&client_with_token(token), REPORT_URL, json!({ "id": id })).await;
    answer.data()["testHistory"]["reportUrl"].as_str().expect("a link").to_owned()
}

async fn viewer_token(app: &TestApp) -> String {
    let created = app
        .graphql(
            "mutation { createApiToken(input: {name: \"wall screen\", role: VIEWER}) { token } }",
            json!({}),
        )
        .await;
    created.data()["createApiToken"]["token"].as_str().unwrap().to_owned()
}

/// `text` as the page must show it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A count as the page writes it: thousands separated by commas.
fn grouped(count: i64) -> String {
    let digits = count.to_string();
    let mut text = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// Replaces the value of `name` in a link's query.
fn with_query_value(link: &str, name: &str, value: &str) -> String {
    let (path, query) = link.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key == name => format!("{key}={value}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

fn query_value<'l>(link: &'l str, name: &str) -> &'l str {
    let query = link.split_once('?').unwrap().1;
    query.split('&').find_map(|pair| pair.strip_prefix(&format!("{name}="))).unwrap()
}

#[tokio::test]
async fn the_report_opens_with_a_token_or_its_signed_link_on_any_replica_and_is_refused_otherwise() {
    let app = spawn_app().await;
    let project = app.create_project("Reports").await.parse::<i64>().unwrap();
    let figures = seed::Figures { p95: 120.0, error_rate: 0.5, avg_tps: 50.0 };
    let id = seed::Run::new(project).summary(figures).insert(&app.db).await.to_string();
    let other = seed::Run::new(project).insert(&app.db).await.to_string();
    let page = format!("/runs/{id}/report");
    let viewer = viewer_token(&app).await;

    // With a token in the header, any role.
    for token in [ADMIN_TOKEN, viewer.as_str()] {
        let answer = get(&app, &page, Some(token)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.header("content-type"), "text/html; charset=utf-8");
        assert_eq!(answer.header("x-content-type-options"), "nosniff");
        let policy = answer.header("content-security-policy");
        assert!(policy.starts_with("default-src 'none'; script-src 'sha256-"), "{policy}");
        assert!(
            !policy.contains("connect-src") && !policy.contains("'self'"),
            "nothing may be fetched: {policy}"
        );
        assert_eq!(answer.data()["run"]["id"], id.parse::<i64>().unwrap());
        assert!(answer.body.contains("Checkout under load"));
    }
    // Without one, with a wrong one, or for a run that does not exist.
    let missing = get(&app, &page, None).await;
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(missing.header("www-authenticate"), "Bearer");
    assert_eq!(missing.header("content-type"), "text/plain; charset=utf-8");
    assert!(missing.body.contains("authentication required"), "{}", missing.body);
    assert_eq!(get(&app, &page, Some("mv_not-a-token")).await.status, 401);
    assert_eq!(get(&app, "/runs/987654/report", Some(ADMIN_TOKEN)).await.status, 404);
    assert_eq!(get(&app, "/runs/abc/report", Some(ADMIN_TOKEN)).await.status, 404);

    // A viewer's signed link: valid for 24 h, opens with no header.
    let link = report_url(&app, &viewer, &id).await;
    assert!(link.starts_with(&format!("/runs/{id}/report?role=VIEWER&expires=")), "{link}");
    let expires: i64 = query_value(&link, "expires").parse().unwrap();
    let in_a_day = chrono::Utc::now().timestamp() + 24 * 3600;
    assert!((in_a_day - 60..=in_a_day).contains(&expires), "{expires} vs {in_a_day}");
    let opened = get(&app, &link, None).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert_eq!(opened.header("content-type"), "text/html; charset=utf-8");

    // Changed in any way, it is refused with a short message.
    let flipped = {
        let sig = query_value(&link, "sig");
        let first = if sig.starts_with('0') { "1" } else { "0" };
        with_query_value(&link, "sig", &format!("{first}{}", &sig[1..]))
    };
    let later = with_query_value(&link, "expires", &(expires + 3600).to_string());
    let elsewhere = link.replacen(&format!("/runs/{id}/"), &format!("/runs/{other}/"), 1);
    for tampered in [with_query_value(&link, "role", "ADMIN"), flipped, later, elsewhere] {
        let refused = get(&app, &tampered, None).await;
        assert_eq!(refused.status, 403, "{tampered}: {}", refused.body);
        assert_eq!(refused.body, "this report link is not valid (it was changed, or is not for this run)\n");
    }
    let incomplete = get(&app, &format!("{page}?role=VIEWER&expires={expires}"), None).await;
    assert_eq!(
        (incomplete.status, incomplete.body.contains("incomplete")),
        (403, true),
        "{}",
        incomplete.body
    );

    // The key lives in the database: a second server on it (a replica, or this one restarted)
    // opens the first one's links, and its own open on the first. Its links live ~1 s.
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings_with(
        dir.path(),
        &[("DATABASE_URL", &app.database_url), ("REPORT_LINK_LIFETIME_HOURS", "0.0003")],
    )
    .await;
    let replica = spawn_with(settings, dir).await;
    assert_eq!(get(&replica, &link, None).await.status, 200, "the first server's link on the replica");
    let short = report_url(&replica, &viewer, &id).await;
    assert_eq!(get(&app, &short, None).await.status, 200, "the replica's link on the first server");
    let expires: i64 = query_value(&short, "expires").parse().unwrap();
    while chrono::Utc::now().timestamp() <= expires {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for server in [&app, &replica] {
        let expired = get(server, &short, None).await;
        assert_eq!(expired.status, 403, "{}", expired.body);
        assert_eq!(expired.body, "this report link has expired; ask for a new one (TestHistory.reportUrl)\n");
    }
}

#[tokio::test]
async fn a_viewer_s_report_masks_secret_header_values_and_every_user_string_is_escaped() {
    let lab = lab().await;
    let app = &lab.app;
    let (id, run) = lab.finished_run(HOSTILE_TITLE).await;
    let viewer = viewer_token(app).await;
    let viewer_link = report_url(app, &viewer, &id).await;

    let as_viewer =
        [get(app, &viewer_link, None).await, get(app, &format!("/runs/{id}/report"), Some(&viewer)).await];
    for page in &as_viewer {
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(!page.body.contains("report-s3cr3t"), "a viewer reads no secret:\n{}", page.body);
        assert!(
            page.body.contains("&quot;Authorization&quot;: &quot;***&quot;"),
            "the request values, masked"
        );
        assert!(page.body.contains("&quot;X-Plain&quot;: &quot;visible&quot;"));
        assert_eq!(page.data()["scenarios"][0]["request"]["headers"]["Authorization"], "***");
    }
    // A link outlives the token that asked for it, so even an admin's carries read access only;
    // the admin's token itself shows the secret.
    let admin_link = report_url(app, ADMIN_TOKEN, &id).await;
    assert!(admin_link.contains("role=VIEWER"), "{admin_link}");
    let linked = get(app, &admin_link, None).await;
    assert!(!linked.body.contains(&escaped(SECRET)), "a link never shows a secret");
    let as_admin = get(app, &format!("/runs/{id}/report"), Some(ADMIN_TOKEN)).await;
    assert!(as_admin.body.contains(&escaped(SECRET)), "an admin's token shows what an admin may read");
    assert_eq!(as_admin.data()["scenarios"][0]["request"]["headers"]["Authorization"], SECRET);

    // The hostile title is text wherever it appears, and the data carries it as typed.
    let page = &as_viewer[0];
    assert!(!page.body.contains("<script>alert(1)"), "{}", page.body);
    assert!(!page.body.contains("<b>bold</b>"));
    assert!(page.body.contains(&format!("<h1 id=\"run-title\">{}</h1>", escaped(HOSTILE_TITLE))));
    assert!(
        page.body
            .contains(&format!("<title>Run {id} · {} · Metric Vault report</title>", escaped(HOSTILE_TITLE)))
    );
    assert_eq!(page.data()["run"]["title"], HOSTILE_TITLE);
    assert_eq!(page.data()["run"]["description"], HOSTILE_TITLE);
    // The exact script, escaped.
    let script = run["k6Script"].as_str().unwrap();
    assert!(script.contains('"') && script.contains("=>"), "the script has characters to escape");
    assert!(page.body.contains(&format!("<pre><code>{}</code></pre>", escaped(script))));

    // The figures are the API's, and so are the verdicts.
    let requests = run["summary"]["totalRequests"].as_i64().unwrap();
    assert_eq!(page.data()["run"]["summary"]["totalRequests"], requests);
    assert!(page.body.contains(&format!("<tr class=\"run\"><th>Run</th><td>{}</td>", grouped(requests))));
    assert_eq!(run["verdict"], "FAILED", "{run}");
    assert_eq!(page.data()["run"]["verdict"], "FAILED");
    let verdicts: Vec<Value> =
        page.data()["scenarios"].as_array().unwrap().iter().map(|s| s["verdict"].clone()).collect();
    assert_eq!(verdicts, [json!("PASSED"), json!("FAILED")]);
    assert_eq!(run["scenarios"][0]["verdict"], "PASSED");
    assert_eq!(run["scenarios"][1]["verdict"], "FAILED");
}

#[tokio::test]
async fn a_real_run_s_report_draws_its_charts_in_headless_chromium_with_no_network() {
    let mut lab = lab().await;
    let (id, run) = lab.finished_run(HOSTILE_TITLE).await;
    let link = lab.app.url(&report_url(&lab.app, ADMIN_TOKEN, &id).await);
    install_puppeteer().await;
    let screenshot = artifacts_dir().join("report.png");
    let _ = std::fs::remove_file(&screenshot);

    let output = Command::new("node")
        .arg("report-page.js")
        .current_dir(interop_dir())
        .env("REPORT_URL", &link)
        .env("CHROMIUM", chromium())
        .env("EXPECTED_TITLE", HOSTILE_TITLE)
        .env("SCREENSHOT", &screenshot)
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(120), output).await.expect("the browser test ends").unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("REPORT "))
            .unwrap_or_else(|| panic!("no REPORT line:\n{stdout}")),
    )
    .unwrap();
    assert_eq!(seen["requests"], json!([link]), "the page and nothing else was fetched");
    assert_eq!(seen["problems"], json!([]));
    assert_eq!(seen["dialogs"], json!([]), "no script from the title ran");
    assert_eq!(seen["heading"], HOSTILE_TITLE);
    assert_eq!(seen["groups"], json!(["Run", "Scenario: Browse items", "Scenario: Broken page"]));
    // The run: TPS, response times, errors, VUs; each scenario the first three.
    let charts = seen["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 4 + 3 + 3, "{seen}");
    assert!(seen["canvases"].as_u64().unwrap() >= charts.len() as u64);
    for chart in charts {
        assert!(chart["points"].as_u64().unwrap() > 0, "{chart}");
        assert!(
            chart["values"].as_array().unwrap().iter().all(|drawn| drawn.as_u64().unwrap() > 0),
            "{chart}"
        );
        assert!(chart["inked"].as_u64().unwrap() > 1000, "something was drawn: {chart}");
    }
    assert_eq!(charts[1]["title"], "Response time (ms)");
    // The run's TPS line adds up to its requests (k6's count, less at most an odd sample
    // InfluxDB merged).
    let step = seen["stepSeconds"].as_f64().unwrap();
    let charted: f64 =
        seen["runTps"].as_array().unwrap().iter().map(|tps| tps.as_f64().unwrap() * step).sum();
    let requests = run["summary"]["totalRequests"].as_f64().unwrap();
    assert!(
        charted <= requests + 0.5 && charted >= requests * 0.99 - 0.5,
        "{charted} charted, {requests} made"
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 20_000, "{} was drawn", screenshot.display());
    println!("screenshot: {}; drawn in {} ms", screenshot.display(), seen["renderMs"]);

    // With InfluxDB gone, the page still comes, with the stored summary and a note for charts.
    lab.influx.stop();
    let degraded = get(&lab.app, &format!("/runs/{id}/report"), Some(ADMIN_TOKEN)).await;
    assert_eq!(degraded.status, 200, "{}", degraded.body);
    assert!(
        degraded.body.contains("InfluxDB could not be read when this page was made"),
        "{}",
        degraded.body
    );
    assert!(!degraded.body.contains("id=\"chart-groups\""));
    assert_eq!(degraded.data()["charts"]["state"], "unavailable");
    assert!(degraded.body.contains(&format!("<td>{}</td>", grouped(requests as i64))));
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// `target/test-artifacts`, where the screenshot is kept.
fn artifacts_dir() -> PathBuf {
    let target =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent").to_owned();
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Chromium: `CHROMIUM` if set, else Debian's `/usr/bin/chromium` or one on PATH.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    std::iter::once(PathBuf::from("/usr/bin"))
        .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()))
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file())
        .expect("Chromium is needed for the report page test: `apt-get install chromium` (scripts/test.sh does it)")
}

/// tests/interop's pinned packages, from its lockfile, when puppeteer-core is missing.
async fn install_puppeteer() {
    let dir = interop_dir();
    if dir.join("node_modules/puppeteer-core").exists() {
        return;
    }
    let output = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).output().await;
    let output = output.expect("npm must be on PATH (Node.js 20+; scripts/setup.sh)");
    assert!(output.status.success(), "npm ci failed:\n{}", String::from_utf8_lossy(&output.stderr));
}
