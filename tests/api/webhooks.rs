//! Webhooks against real receivers on loopback: what a run's end sends, signed and retried; the
//! delivery log; refusals; what viewers see; claims across replicas and dead senders.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use chrono::Utc;
use metric_vault::{
    db::entities::{test_history, webhook, webhook_delivery},
    domain::{
        TestStatus,
        webhook::{DeliveryStatus, WebhookEvent},
    },
    metrics::test_influxd::InfluxServer,
    seed,
};
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
use seed::{Run, ScenarioSeed};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    degraded::k6_lines,
    helpers::{TestApp, client_with_token, serve, spawn_app_with, spawn_with, test_settings_with},
    target_api::project_with_target,
};

const CREATE: &str = "mutation($input: CreateWebhookInput!) {
  createWebhook(input: $input) { secret webhook { id url urlRedacted events description enabled project { id } } } }";

const DELIVERIES: &str = "query($webhook: ID, $run: ID) {
  webhookDeliveries(webhookId: $webhook, testHistoryId: $run) {
    id webhookId event testHistoryId status attempts nextAttemptAt lastStatusCode lastError deliveredAt payload } }";

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
    at: chrono::DateTime<Utc>,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// Checks `X-MetricVault-Signature` with the webhook's secret, HMAC computed here from SHA-256.
    fn signed_with(&self, secret: &str) -> bool {
        let timestamp = self.header("x-metricvault-timestamp");
        let expected = format!(
            "sha256={}",
            hex(&hmac_sha256(secret.as_bytes(), format!("{timestamp}.{}", self.body).as_bytes()))
        );
        self.header("x-metricvault-signature") == expected
    }
}

/// A receiver on loopback that answers with `statuses` in turn, then 200.
#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

#[derive(Default)]
struct ReceiverState {
    statuses: Mutex<VecDeque<u16>>,
    received: Mutex<Vec<Received>>,
}

impl Receiver {
    async fn start(statuses: &[u16]) -> Self {
        let state = Arc::new(ReceiverState {
            statuses: Mutex::new(statuses.iter().copied().collect()),
            ..Default::default()
        });
        let router = Router::new().route("/hooks/{name}", post(receive)).with_state(state.clone());
        Self { url: serve(router).await, state }
    }

    /// The URL of one of its hooks (each path is just a name; every request is kept).
    fn hook(&self, name: &str) -> String {
        format!("{}/hooks/{name}", self.url)
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until `count` requests have come, or fails after `limit`.
    async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let started = std::time::Instant::now();
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(started.elapsed() < limit, "{} of {count} deliveries after {limit:?}", received.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(state): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let body = String::from_utf8(body.to_vec()).expect("UTF-8");
    state.received.lock().unwrap().push(Received { headers, body, at: Utc::now() });
    let status = state.statuses.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

/// HMAC-SHA256 as RFC 2104 defines it, written here so the server's own code is not what
/// checks the server.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a webhook as the admin; (its id, its secret).
async fn create_webhook(app: &TestApp, project: &str, url: &str, events: &[&str]) -> (String, String) {
    let created =
        app.graphql(CREATE, json!({ "input": { "projectId": project, "url": url, "events": events } })).await;
    let created = &created.data()["createWebhook"];
    (created["webhook"]["id"].as_str().unwrap().to_owned(), created["secret"].as_str().unwrap().to_owned())
}

async fn deliveries(app: &TestApp, webhook: Option<&str>, run: Option<&str>) -> Vec<Value> {
    let answer = app.graphql(DELIVERIES, json!({ "webhook": webhook, "run": run })).await;
    answer.data()["webhookDeliveries"].as_array().unwrap().clone()
}

/// Waits until the webhook has deliveries and none is PENDING; returns the newest.
async fn settled(app: &TestApp, webhook: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let log = deliveries(app, Some(webhook), None).await;
        if !log.is_empty() && log.iter().all(|d| d["status"] != "PENDING") {
            return log[0].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the delivery never settled: {log:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn webhook_rows(app: &TestApp) -> u64 {
    webhook::Entity::find().count(&app.db).await.unwrap()
}

#[tokio::test]
async fn a_run_whose_server_died_is_reported_failed_and_a_refused_delivery_is_retried_until_delivered() {
    let app = spawn_app_with(&[("SCHEDULER_POLL_INTERVAL", "0.5"), ("WEBHOOK_RETRY_SECONDS", "0.2")]).await;
    let receiver = Receiver::start(&[500]).await;
    let project = app.create_project("Checkout").await;
    let (failures, secret) =
        create_webhook(&app, &project, &receiver.hook("failures"), &["RUN_FAILED"]).await;
    let (finishes, _) = create_webhook(&app, &project, &receiver.hook("finishes"), &["RUN_FINISHED"]).await;

    // A run left RUNNING by a server that is gone (no lease): this server ends it, FAILED.
    let run = seed::Run::new(project.parse().unwrap()).status(TestStatus::Running).insert(&app.db).await;
    let received = receiver.wait_for(2, Duration::from_secs(30)).await;

    let (first, second) = (&received[0], &received[1]);
    assert!(first.signed_with(&secret) && second.signed_with(&secret), "both attempts are signed");
    assert_eq!(first.body, second.body, "a retry sends the same body");
    assert_eq!(first.header("x-metricvault-delivery"), second.header("x-metricvault-delivery"));
    assert_eq!(second.header("x-metricvault-event"), "RUN_FAILED");
    let waited = second.at - first.at;
    assert!(
        waited >= chrono::Duration::milliseconds(200),
        "the retry waited WEBHOOK_RETRY_SECONDS: {waited}"
    );
    let sent_at: i64 = second.header("x-metricvault-timestamp").parse().unwrap();
    assert!((Utc::now().timestamp() - sent_at).abs() < 60);
    let body = second.json();
    assert_eq!(body["event"], "RUN_FAILED");
    assert_eq!(body["deliveryId"], second.header("x-metricvault-delivery"));
    assert_eq!(body["run"]["id"], run.to_string());
    assert_eq!(body["run"]["status"], "FAILED");
    assert_eq!(body["run"]["project"], json!({ "id": project, "title": "Checkout" }));
    let reason = body["run"]["failureReason"].as_str().unwrap();
    assert!(reason.starts_with("interrupted by server restart"), "{reason}");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("Run {run} \"Checkout under load\" of Checkout failed: interrupted")),
        "{text}"
    );

    let log = settled(&app, &failures).await;
    assert_eq!(log["status"], "DELIVERED", "{log}");
    assert_eq!(log["attempts"], 2, "{log}");
    assert_eq!(log["lastStatusCode"], 200);
    assert_eq!(log["event"], "RUN_FAILED");
    assert_eq!(log["testHistoryId"], run.to_string());
    assert_eq!(log["nextAttemptAt"], Value::Null);
    assert!(log["deliveredAt"].is_string());
    assert_eq!(log["payload"], second.body.as_str(), "the log keeps the body as sent");
    assert_eq!(log["id"], body["deliveryId"]);
    assert_eq!(deliveries(&app, None, Some(&run.to_string())).await.len(), 1, "one delivery about the run");
    assert!(deliveries(&app, Some(&finishes), None).await.is_empty(), "a failed run is not a finished one");
    assert!(receiver.received().iter().all(|r| !r.body.contains("RUN_FINISHED")));
}

#[tokio::test]
async fn a_k6_run_that_ends_sends_its_summary_to_finish_and_verdict_webhooks_in_slack_shape() {
    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string())]).await;
    let (project, endpoints) = project_with_target(&app, "Items").await;
    let receiver = Receiver::start(&[]).await;
    let (finished, secret) =
        create_webhook(&app, &project, &receiver.hook("finished"), &["RUN_FINISHED"]).await;
    let (verdicts, verdict_secret) =
        create_webhook(&app, &project, &receiver.hook("verdicts"), &["RUN_FAILED", "VERDICT_FAILED"]).await;

    // A target no real request can meet: k6's thresholds cross, the run COMPLETES with verdict FAILED.
    let id = app
        .launch(json!({ "title": "Items at night", "scenarios": [{ "name": "browse", "endpointId": endpoints["getItem"],
            "executor": "CONSTANT_VUS", "thinkTime": 0.05, "stages": [{"duration": "2s", "target": 2}],
            "responseTimeTarget": 0.001 }] }))
        .await;
    let received = receiver.wait_for(2, Duration::from_secs(90)).await;

    let run = app
        .graphql(
            "query($id: ID!) { testHistory(id: $id) { status verdict startedAt completedAt
               summary { totalRequests failedRequests avgTps p95ResponseTime p99ResponseTime avgErrorRate } } }",
            json!({ "id": id }),
        )
        .await
        .data()["testHistory"]
        .clone();
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["verdict"], "FAILED", "{run}");
    let on = |path: &str| received.iter().find(|r| r.header("x-metricvault-event") == path).unwrap().clone();
    let finish = on("RUN_FINISHED");
    assert!(finish.signed_with(&secret));
    let body = finish.json();
    assert_eq!(body["run"]["id"], id);
    assert_eq!(body["run"]["title"], "Items at night");
    assert_eq!(body["run"]["status"], "COMPLETED");
    assert_eq!(body["run"]["verdict"], "FAILED");
    assert_eq!(body["run"]["summary"], run["summary"], "the stored summary, figure for figure");
    assert!(body["run"]["summary"]["totalRequests"].as_i64().unwrap() > 10, "{body}");
    let started: chrono::DateTime<Utc> = body["run"]["startedAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(started, run["startedAt"].as_str().unwrap().parse::<chrono::DateTime<Utc>>().unwrap());
    let link = format!("http://{}/runs/{id}/report", app.address);
    assert_eq!(body["run"]["link"], link.as_str());

    // Slack reads `text` alone: one line that says what happened, with the figures and the link.
    let verdict = on("VERDICT_FAILED");
    assert!(verdict.signed_with(&verdict_secret));
    let slack = verdict.json();
    let text = slack["text"].as_str().unwrap();
    let total = run["summary"]["totalRequests"].as_i64().unwrap();
    assert!(
        text.starts_with(&format!(
            "Run {id} \"Items at night\" of Items missed its targets (verdict FAILED): "
        )),
        "{text}"
    );
    assert!(
        text.contains(" requests, ") && text.contains("% errors, p95 ") && text.contains(" req/s"),
        "{text}"
    );
    assert!(text.replace(',', "").contains(&format!("{total} requests")), "{text}");
    assert!(text.ends_with(&format!("Report: {link}")), "{text}");
    assert!(!text.contains('\n'));
    assert_eq!(settled(&app, &finished).await["status"], "DELIVERED");
    assert_eq!(settled(&app, &verdicts).await["attempts"], 1);
    assert_eq!(receiver.received().len(), 2, "RUN_FAILED is not sent for a completed run");
}

#[tokio::test]
async fn results_filled_in_after_influxdb_came_back_send_a_failed_verdict_once() {
    let influx = InfluxServer::start().await;
    let port = influx.port().to_string();
    let app = spawn_app_with(&[("INFLUXDB_PORT", &port), ("SCHEDULER_POLL_INTERVAL", "0.3")]).await;
    let project = app.create_project("Late").await;
    let receiver = Receiver::start(&[]).await;
    let (hook, secret) = create_webhook(&app, &project, &receiver.hook("late"), &["VERDICT_FAILED"]).await;
    let spec = seed::spec(&app.db, project.parse().unwrap(), "http://127.0.0.1:9", 1, 1).await;
    // A run that ended while InfluxDB was down: no results, so no verdict yet. Its scenario's
    // target (p95 within 1 ms) is one its samples (10–14 ms) miss.
    let id = Run::new(project.parse().unwrap())
        .started_minutes_ago(10)
        .scenario(ScenarioSeed {
            endpoint_id: spec.endpoint_ids[0],
            response_time_target: Some(1.0),
            error_rate_target: None,
            summary: None,
        })
        .insert(&app.db)
        .await;
    let row = test_history::Entity::find_by_id(id).one(&app.db).await.unwrap().unwrap();
    let influx_api =
        |path: String| metric_vault::tls::client().post(format!("http://127.0.0.1:{port}{path}"));
    influx_api("/query?q=CREATE%20DATABASE%20k6".into()).send().await.unwrap();
    let samples = k6_lines(id, "scenario_0", row.started_at.unwrap().timestamp_millis(), 5);
    assert!(
        influx_api("/write?db=k6&precision=ms".into())
            .body(samples)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let mut pending: test_history::ActiveModel = row.into();
    pending.failure_reason = Set(Some("metrics could not be read from InfluxDB: connection refused".into()));
    pending.update(&app.db).await.unwrap();

    let received = receiver.wait_for(1, Duration::from_secs(30)).await;

    assert!(received[0].signed_with(&secret));
    let body = received[0].json();
    assert_eq!(body["event"], "VERDICT_FAILED");
    assert_eq!(body["run"]["verdict"], "FAILED");
    assert_eq!(body["run"]["summary"]["totalRequests"], 5, "{body}");
    assert_eq!(body["run"]["failureReason"], Value::Null, "the note about the failed read is gone");
    assert_eq!(settled(&app, &hook).await["status"], "DELIVERED");
    // Later passes find the results stored: the verdict is told once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn bad_webhooks_are_refused_with_a_code_naming_the_field_and_nothing_is_written() {
    // Only 127.0.0.1 may be sent to: 127.0.0.2 stands for a host the policy forbids.
    let app = spawn_app_with(&[("IMPORT_ALLOWED_HOSTS", "127.0.0.1")]).await;
    let project = app.create_project("Refusals").await;
    let good = "http://127.0.0.1:9/hooks/ok";
    let long = format!("http://127.0.0.1:9/{}", "a".repeat(2100));
    let cases: Vec<(Value, &str, &str, &str)> = vec![
        (json!({ "url": "ftp://127.0.0.1/hook" }), "BAD_USER_INPUT", "input.url", "http or https only"),
        (json!({ "url": "not a url" }), "BAD_USER_INPUT", "input.url", "not a valid URL"),
        (json!({ "url": "http://" }), "BAD_USER_INPUT", "input.url", "not a valid URL"),
        (json!({ "url": long }), "BAD_USER_INPUT", "input.url", "longer than 2048"),
        (
            json!({ "url": "http://127.0.0.2:9/hook" }),
            "BAD_USER_INPUT",
            "input.url",
            "not a host webhooks may be sent to",
        ),
        (
            json!({ "url": "http://[::ffff:127.0.0.2]:9/hook" }),
            "BAD_USER_INPUT",
            "input.url",
            "not a host webhooks",
        ),
        (json!({ "url": "http://169.254.169.254/latest" }), "BAD_USER_INPUT", "input.url", "blocked address"),
        (json!({ "events": [] }), "BAD_USER_INPUT", "input.events", "at least one event"),
        (json!({ "projectId": "x" }), "BAD_USER_INPUT", "input.projectId", "not a valid id"),
        (json!({ "projectId": "999" }), "NOT_FOUND", "", "Project 999 does not exist"),
        (json!({ "description": "d".repeat(501) }), "BAD_USER_INPUT", "input.description", "at most 500"),
    ];
    for (change, code, field, words) in cases {
        let mut input = json!({ "projectId": project, "url": good, "events": ["RUN_FINISHED"] });
        input.as_object_mut().unwrap().extend(change.as_object().unwrap().clone());
        let refused = app.graphql(CREATE, json!({ "input": input })).await;
        assert_eq!(refused.error_code(), code, "{change}: {}", refused.body);
        if !field.is_empty() {
            assert_eq!(refused.body["errors"][0]["extensions"]["field"], field, "{change}");
        }
        assert!(refused.error_message().contains(words), "{change}: {}", refused.error_message());
        assert!(!refused.error_message().contains("aaaa"), "the URL is not echoed");
    }
    assert_eq!(webhook_rows(&app).await, 0, "no refusal wrote anything");

    // At most 20 per project.
    for n in 0..20 {
        create_webhook(&app, &project, &format!("http://127.0.0.1:9/hooks/{n}"), &["RUN_FINISHED"]).await;
    }
    let refused = app
        .graphql(CREATE, json!({ "input": { "projectId": project, "url": good, "events": ["RUN_FAILED"] } }))
        .await;
    assert_eq!(refused.error_code(), "BAD_USER_INPUT");
    assert!(refused.error_message().contains("has 20 webhooks"), "{}", refused.body);
    assert_eq!(webhook_rows(&app).await, 20);

    // A change is checked as a creation is.
    let list = app.graphql("query($p: ID) { webhooks(projectId: $p) { id } }", json!({ "p": project })).await;
    let id = list.data()["webhooks"][0]["id"].as_str().unwrap().to_owned();
    let update = "mutation($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { url events enabled } }";
    let refused = app.graphql(update, json!({ "id": id, "input": { "url": "http://127.0.0.2/hook" } })).await;
    assert_eq!(refused.error_code(), "BAD_USER_INPUT");
    let refused = app.graphql(update, json!({ "id": id, "input": { "events": [] } })).await;
    assert_eq!(refused.error_code(), "BAD_USER_INPUT");
    let changed = app
        .graphql(update, json!({ "id": id, "input": { "events": ["VERDICT_FAILED", "RUN_FAILED", "RUN_FAILED"], "enabled": false } }))
        .await;
    assert_eq!(
        changed.data()["updateWebhook"],
        json!({ "url": "http://127.0.0.1:9/hooks/0", "events": ["RUN_FAILED", "VERDICT_FAILED"], "enabled": false })
    );
    let missing = app.graphql(update, json!({ "id": "9999", "input": { "enabled": true } })).await;
    assert_eq!(missing.error_code(), "NOT_FOUND");
}

#[tokio::test]
async fn viewers_see_only_the_origin_of_a_webhook_url_and_nobody_reads_a_secret_back() {
    let app = spawn_app_with(&[]).await;
    let project = app.create_project("Secrets").await;
    let token = |role: &'static str| {
        let app = &app;
        async move {
            let created = app
                .graphql(
                    "mutation($n: String!, $r: Role!) { createApiToken(input: {name: $n, role: $r}) { token } }",
                    json!({ "n": role, "r": role }),
                )
                .await;
            client_with_token(created.data()["createApiToken"]["token"].as_str().unwrap())
        }
    };
    let (viewer, operator) = (token("VIEWER").await, token("OPERATOR").await);
    let url = "http://127.0.0.1:9/services/T0001/B0001/not-for-viewers";
    let input = json!({ "input": { "projectId": project, "url": url, "events": ["RUN_FINISHED"], "description": "ops channel" } });

    let refused = app.graphql_with(&viewer, CREATE, input.clone()).await;
    assert_eq!(refused.error_code(), "FORBIDDEN");
    let created = app.graphql_with(&operator, CREATE, input).await;
    let created = &created.data()["createWebhook"];
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()), "{secret}");
    assert_eq!(created["webhook"]["url"], url);
    let id = created["webhook"]["id"].as_str().unwrap().to_owned();

    let list = "{ webhooks { id url urlRedacted events description } }";
    let seen = app.graphql_with(&viewer, list, json!({})).await;
    assert_eq!(
        seen.data()["webhooks"][0],
        json!({ "id": id, "url": "http://127.0.0.1:9", "urlRedacted": true, "events": ["RUN_FINISHED"], "description": "ops channel" })
    );
    assert!(!seen.body.to_string().contains("not-for-viewers"));
    let seen = app.graphql_with(&operator, list, json!({})).await;
    assert_eq!(seen.data()["webhooks"][0]["url"], url);
    assert_eq!(seen.data()["webhooks"][0]["urlRedacted"], false);
    assert!(!seen.body.to_string().contains(secret));
    // No type but the creation's answer has the secret: not even an admin can ask for it.
    let asked = app.graphql("{ webhooks { secret } }", json!({})).await;
    assert_eq!(asked.error_code(), "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(
        app.graphql(DELIVERIES, json!({ "webhook": id })).await.data()["webhookDeliveries"],
        json!([])
    );

    // A new secret replaces the old one, shown once too.
    let rotate = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { id } } }";
    assert_eq!(app.graphql_with(&viewer, rotate, json!({ "id": id })).await.error_code(), "FORBIDDEN");
    let rotated = app.graphql_with(&operator, rotate, json!({ "id": id })).await;
    let new_secret = rotated.data()["rotateWebhookSecret"]["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(new_secret.len(), 64);

    let delete = "mutation($id: ID!) { deleteWebhook(id: $id) }";
    assert_eq!(app.graphql_with(&viewer, delete, json!({ "id": id })).await.error_code(), "FORBIDDEN");
    assert_eq!(webhook_rows(&app).await, 1);
    assert_eq!(app.graphql_with(&operator, delete, json!({ "id": id })).await.data()["deleteWebhook"], id);
    assert_eq!(webhook_rows(&app).await, 0);
    assert_eq!(app.graphql_with(&operator, delete, json!({ "id": id })).await.error_code(), "NOT_FOUND");
}

/// A delivery row as a sender left it.
fn pending(
    webhook_id: i64,
    attempts: i32,
    claimed_until: chrono::DateTime<Utc>,
) -> webhook_delivery::ActiveModel {
    let now = Utc::now();
    webhook_delivery::ActiveModel {
        webhook_id: Set(webhook_id),
        event: Set(WebhookEvent::RunFinished),
        test_history_id: Set(None),
        payload: Set(format!(r#"{{"event":"RUN_FINISHED","attempt":{attempts}}}"#)),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(attempts),
        next_attempt_at: Set(now),
        claimed_by: Set(Some("a-server-that-died".into())),
        claim_expires_at: Set(Some(claimed_until)),
        last_status_code: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_delivery_whose_sender_died_is_sent_once_its_claim_expires_and_given_up_after_the_last_attempt() {
    let app = spawn_app_with(&[("WEBHOOK_MAX_ATTEMPTS", "2")]).await;
    let project = app.create_project("Claims").await;
    let receiver = Receiver::start(&[]).await;
    let (hook, secret) = create_webhook(&app, &project, &receiver.hook("claims"), &["RUN_FINISHED"]).await;
    let hook_id: i64 = hook.parse().unwrap();

    // Attempt 1 was claimed by a server that died mid-send; its claim runs 2 s more.
    let expires = Utc::now() + chrono::Duration::seconds(2);
    let interrupted = pending(hook_id, 1, expires).insert(&app.db).await.unwrap();
    // Attempt 2, the last one allowed, died too: it is given up, never sent a third time.
    let exhausted =
        pending(hook_id, 2, Utc::now() - chrono::Duration::seconds(1)).insert(&app.db).await.unwrap();

    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert!(received[0].at >= expires, "not sent while another server held the claim");
    assert_eq!(received[0].header("x-metricvault-delivery"), interrupted.id.to_string());
    assert!(received[0].signed_with(&secret));
    settled(&app, &hook).await;
    let log = deliveries(&app, Some(&hook), None).await;
    let by_id = |id: i64| log.iter().find(|d| d["id"].as_str() == Some(id.to_string().as_str())).unwrap();
    let sent = by_id(interrupted.id);
    assert_eq!((sent["status"].as_str(), sent["attempts"].as_i64()), (Some("DELIVERED"), Some(2)), "{sent}");
    let given_up = by_id(exhausted.id);
    assert_eq!(given_up["status"], "FAILED", "{given_up}");
    assert!(given_up["lastError"].as_str().unwrap().contains("gave up after 2 attempts"), "{given_up}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 1, "the exhausted delivery was never sent");
}

#[tokio::test]
async fn two_replicas_on_one_database_send_each_delivery_exactly_once() {
    let first = spawn_app_with(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings_with(dir.path(), &[("DATABASE_URL", first.database_url.as_str())]).await;
    let second = spawn_with(settings, dir).await;
    let project = first.create_project("Replicas").await;
    let receiver = Receiver::start(&[]).await;
    let (hook, _) = create_webhook(&first, &project, &receiver.hook("replicas"), &["RUN_FINISHED"]).await;
    let hook_id: i64 = hook.parse().unwrap();

    let rows: Vec<_> =
        (0..40).map(|_| pending(hook_id, 0, Utc::now() - chrono::Duration::seconds(1))).collect();
    let rows = rows.into_iter().map(|mut row| {
        row.claimed_by = Set(None);
        row.claim_expires_at = Set(None);
        row
    });
    webhook_delivery::Entity::insert_many(rows).exec(&second.db).await.unwrap();

    receiver.wait_for(40, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ids: Vec<String> =
        receiver.received().iter().map(|r| r.header("x-metricvault-delivery")).collect();
    ids.sort();
    let sent = ids.len();
    ids.dedup();
    assert_eq!((sent, ids.len()), (40, 40), "each of 40 deliveries sent once");
    let log = deliveries(&first, Some(&hook), None).await;
    assert!(log.iter().all(|d| d["status"] == "DELIVERED" && d["attempts"] == 1), "{log:?}");
}
