//! k6's own web dashboard, live through the server (`/runs/{id}/dashboard/`), and k6's HTML
//! report per instance once the run has ended (`/runs/{id}/k6-report/{instance}`): real k6
//! against a loopback target, its dashboards reached only through the server.

use std::time::Duration;

use metric_vault::metrics::test_influxd::InfluxServer;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, client_with_token, spawn_app, spawn_app_with},
    target_api::project_with_target,
};

const RUN: &str = r#"query($id: ID!) { testHistory(id: $id) {
    status isCompleted dashboardUrl k6ReportUrls summary { totalRequests } } }"#;

/// A run of `seconds` with 2 VUs on the target's `getItem`, split across `parallelism` k6 instances.
fn load(endpoint: &str, seconds: u32, parallelism: u32) -> Value {
    json!({ "title": "Watched", "parallelism": parallelism, "scenarios": [{ "name": "browse",
        "endpointId": endpoint, "executor": "CONSTANT_VUS", "thinkTime": 0.05,
        "stages": [{ "duration": format!("{seconds}s"), "target": 2 }] }] })
}

async fn run(app: &TestApp, id: &str) -> Value {
    app.graphql(RUN, json!({ "id": id })).await.data()["testHistory"].clone()
}

/// Polls run `id` until `done` holds; fails after a minute.
async fn wait_for(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let run = run(app, id).await;
        if done(&run) {
            return run;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "run {id} never got there: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

/// k6's page of one instance, reached through the server (redirects followed): the page's URL,
/// where its events are (as the page works it out: `<endpoint>events`), and its HTML.
async fn open_page(client: &reqwest::Client, url: &str) -> (reqwest::Url, String, String) {
    let response = client.get(url).send().await.expect("the server answers");
    assert_eq!(response.status(), 200, "{url}");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = response.url().clone();
    let endpoint = page
        .query_pairs()
        .find(|(name, _)| name == "endpoint")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("the page is told where its events are: {page}"));
    let events = page.join(&format!("{endpoint}events")).unwrap().to_string();
    (page, events, response.text().await.unwrap())
}

/// An open event stream through the server.
struct Events {
    response: reqwest::Response,
    received: String,
}

impl Events {
    async fn open(client: &reqwest::Client, url: &str) -> Self {
        let response =
            client.get(url).header("accept", "text/event-stream").send().await.expect("the server answers");
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self { response, received: String::new() }
    }

    /// Reads until an event named `name` has come in full; false if none did within `limit`.
    async fn until(&mut self, name: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let marker = format!("event: {name}\n");
        loop {
            if let Some(at) = self.received.find(&marker)
                && self.received[at..].contains("\n\n")
            {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.received.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return false,
            }
        }
    }

    /// Whether the stream ends (k6 closed it) within `limit`.
    async fn ends_within(&mut self, limit: Duration) -> bool {
        let drain = async { while let Ok(Some(_)) = self.response.chunk().await {} };
        tokio::time::timeout(limit, drain).await.is_ok()
    }
}

#[tokio::test]
async fn a_live_run_shows_k6s_dashboard_and_events_through_the_server_then_k6s_report() {
    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string())]).await;
    let (_, endpoints) = project_with_target(&app, "Watched").await;
    let viewer = client_with_token(&viewer_token(&app).await);
    let anonymous = metric_vault::tls::client();

    let id = app.launch(load(&endpoints["getItem"], 6, 1)).await;
    let live = wait_for(&app, &id, |run| run["status"] != "PENDING").await;

    assert_eq!(live["status"], "RUNNING", "{live}");
    let signed = live["dashboardUrl"].as_str().unwrap().to_owned();
    assert!(signed.starts_with(&format!("/runs/{id}/dashboard/?role=VIEWER&expires=")), "{signed}");
    // A browser (no Authorization header) follows the signed link once, then its cookie.
    let browser =
        metric_vault::tls::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let followed = browser.get(app.url(&signed)).send().await.unwrap();
    assert!(followed.status().is_redirection(), "{}", followed.status());
    assert_eq!(followed.headers()["location"], format!("/runs/{id}/dashboard/"));
    let cookie = followed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let with_cookie = browser
        .get(app.url(&format!("/runs/{id}/dashboard/")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(with_cookie.status().is_redirection(), "admitted by the cookie: {}", with_cookie.status());
    let other_run =
        browser.get(app.url("/runs/999/dashboard/")).header("cookie", &cookie).send().await.unwrap();
    assert_ne!(other_run.status(), 200);
    let mut tampered = signed.clone();
    tampered.push('0');
    assert_eq!(browser.get(app.url(&tampered)).send().await.unwrap().status(), 403);
    assert_eq!(live["k6ReportUrls"], json!([]), "k6 writes its report at the end");
    // The page, as a VIEWER, under the run's prefix.
    let (page, events, html) = open_page(&viewer, &app.url(&format!("/runs/{id}/dashboard/"))).await;
    assert_eq!(page.path(), format!("/runs/{id}/dashboard/0/ui/"));
    assert!(html.contains("<title>k6 dashboard</title>"), "{html}");
    // Its script, by the relative URL the page names.
    let script = html.split("src=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a script");
    let script = viewer.get(page.join(script).unwrap()).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().contains("javascript"));
    assert!(script.text().await.unwrap().contains("EventSource"));
    // Its events, as they happen: the first snapshot of the run's figures arrives while it runs.
    let mut stream = Events::open(&viewer, &events).await;
    assert!(stream.until("config", Duration::from_secs(5)).await, "{}", stream.received);
    assert!(stream.until("snapshot", Duration::from_secs(4)).await, "{}", stream.received);
    assert!(stream.received.contains("http_reqs"), "the stream names the run's metrics");
    assert_eq!(run(&app, &id).await["status"], "RUNNING", "the events were not held back until the end");
    // Without a token: nothing.
    for path in [format!("/runs/{id}/dashboard/"), format!("/runs/{id}/dashboard/0/events")] {
        let refused = anonymous.get(app.url(&path)).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{path}");
    }
    let unknown = viewer.get(app.url("/runs/999/dashboard/")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.text().await.unwrap(), "there is no run 999\n");

    let ended = wait_for(&app, &id, |run| run["isCompleted"] == true).await;

    assert_eq!(ended["status"], "COMPLETED", "{ended}");
    assert!(
        ended["summary"]["totalRequests"].as_i64().unwrap() > 0,
        "InfluxDB still has the samples: {ended}"
    );
    assert!(stream.ends_within(Duration::from_secs(5)).await, "the stream ended with the run");
    assert_eq!(ended["dashboardUrl"], Value::Null);
    let closed = viewer.get(app.url(&format!("/runs/{id}/dashboard/"))).send().await.unwrap();
    assert_eq!(closed.status(), 409);
    let said = closed.text().await.unwrap();
    assert!(said.starts_with(&format!("run {id} has ended (COMPLETED)")), "{said}");
    let report_urls: Vec<&str> =
        ended["k6ReportUrls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    assert_eq!(
        report_urls.iter().map(|u| u.split('?').next().unwrap()).collect::<Vec<_>>(),
        [format!("/runs/{id}/k6-report/0")]
    );
    let followed = browser.get(app.url(report_urls[0])).send().await.unwrap();
    assert!(followed.status().is_redirection(), "the signed report link admits a browser");
    let report = viewer.get(app.url(&format!("/runs/{id}/k6-report/0"))).send().await.unwrap();
    assert_eq!(report.status(), 200);
    assert_eq!(report.headers()["content-type"], "text/html; charset=utf-8");
    let report = report.text().await.unwrap();
    assert!(report.contains("<title>k6 report</title>"), "k6's own report");
    let written = std::fs::read_to_string(app.scripts_dir().join(format!("k6-report-{id}-0.html"))).unwrap();
    assert_eq!(report, written, "the file k6 exported, as written");
    let anonymous_report = anonymous.get(app.url(&format!("/runs/{id}/k6-report/0"))).send().await.unwrap();
    assert_eq!(anonymous_report.status(), 401);
    let no_instance = viewer.get(app.url(&format!("/runs/{id}/k6-report/1"))).send().await.unwrap();
    assert_eq!(no_instance.status(), 404);
}

#[tokio::test]
async fn a_split_run_lists_its_instances_and_each_shows_its_own_dashboard_and_report() {
    let app = spawn_app().await;
    let (_, endpoints) = project_with_target(&app, "Split").await;

    let id = app.launch(load(&endpoints["getItem"], 6, 2)).await;
    wait_for(&app, &id, |run| run["status"] != "PENDING").await;

    let listing = app.client.get(app.url(&format!("/runs/{id}/dashboard/"))).send().await.unwrap();
    assert_eq!(listing.status(), 200);
    let listing = listing.text().await.unwrap();
    let mut streams = Vec::new();
    for instance in 0..2 {
        let link = format!("/runs/{id}/dashboard/{instance}/ui/?endpoint=/runs/{id}/dashboard/{instance}/");
        assert!(listing.contains(&format!("href=\"{link}\"")), "{listing}");
        let (_, events, html) = open_page(&app.client, &app.url(&link)).await;
        assert!(html.contains("<title>k6 dashboard</title>"));
        let mut stream = Events::open(&app.client, &events).await;
        assert!(
            stream.until("config", Duration::from_secs(5)).await,
            "instance {instance}: {}",
            stream.received
        );
        streams.push(stream);
    }
    for stream in &mut streams {
        assert!(stream.until("snapshot", Duration::from_secs(4)).await, "{}", stream.received);
    }
    let beyond = app.client.get(app.url(&format!("/runs/{id}/dashboard/2/"))).send().await.unwrap();
    assert_eq!(beyond.status(), 404);

    let ended = wait_for(&app, &id, |run| run["isCompleted"] == true).await;

    assert_eq!(ended["status"], "COMPLETED", "{ended}");
    let report_urls: Vec<&str> = ended["k6ReportUrls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().split('?').next().unwrap())
        .collect();
    assert_eq!(report_urls, [format!("/runs/{id}/k6-report/0"), format!("/runs/{id}/k6-report/1")]);
    for instance in 0..2 {
        let report =
            app.client.get(app.url(&format!("/runs/{id}/k6-report/{instance}"))).send().await.unwrap();
        assert_eq!(report.status(), 200, "instance {instance}");
    }
}

#[tokio::test]
async fn a_run_admits_ten_viewers_and_one_who_leaves_frees_a_place() {
    let app = spawn_app().await;
    let (_, endpoints) = project_with_target(&app, "Crowded").await;
    let id = app.launch(load(&endpoints["getItem"], 6, 1)).await;
    wait_for(&app, &id, |run| run["status"] != "PENDING").await;
    let events = app.url(&format!("/runs/{id}/dashboard/0/events"));

    let mut viewers = Vec::new();
    for _ in 0..10 {
        let mut stream = Events::open(&app.client, &events).await;
        assert!(stream.until("config", Duration::from_secs(5)).await);
        viewers.push(stream);
    }
    let eleventh = app.client.get(&events).send().await.unwrap();
    assert_eq!(eleventh.status(), 429);
    assert!(eleventh.text().await.unwrap().contains("already have 10 viewers"));

    drop(viewers.pop());

    let started = std::time::Instant::now();
    let admitted = loop {
        let answer = app.client.get(&events).send().await.unwrap();
        if answer.status() == 200 {
            break true;
        }
        assert_eq!(answer.status(), 429);
        // Well before the run ends (when every stream is closed anyway).
        if started.elapsed() > Duration::from_secs(2) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(admitted, "the place of a viewer who left (and its connection to k6) was freed");
    wait_for(&app, &id, |run| run["isCompleted"] == true).await;
}

#[tokio::test]
async fn with_the_dashboard_off_a_run_says_so_and_leaves_no_report() {
    let app = spawn_app_with(&[("K6_WEB_DASHBOARD", "false")]).await;
    let (_, endpoints) = project_with_target(&app, "Unwatched").await;

    let id = app.launch(load(&endpoints["getItem"], 3, 1)).await;
    let live = wait_for(&app, &id, |run| run["status"] != "PENDING").await;

    assert_eq!(live["dashboardUrl"], Value::Null, "{live}");
    let off = app.client.get(app.url(&format!("/runs/{id}/dashboard/"))).send().await.unwrap();
    assert_eq!(off.status(), 409);
    assert_eq!(
        off.text().await.unwrap(),
        "k6's web dashboard is off on this server (K6_WEB_DASHBOARD=false)\n"
    );
    let ended = wait_for(&app, &id, |run| run["isCompleted"] == true).await;
    assert_eq!(ended["status"], "COMPLETED", "{ended}");
    assert_eq!(ended["k6ReportUrls"], json!([]));
    let none = app.client.get(app.url(&format!("/runs/{id}/k6-report/0"))).send().await.unwrap();
    assert_eq!(none.status(), 404);
}
