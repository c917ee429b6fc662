//! `testStatusChanged`: the lifecycle's transitions, filtered per subscription, fresh run
//! data on every event, and (on PostgreSQL) events crossing replicas through LISTEN/NOTIFY.

use metric_vault::{domain::TestStatus, seed::Run};
use serde_json::{Value, json};

use super::support::{LiveLab, Protocol, connect};
use crate::helpers::{spawn_app, spawn_with, test_settings};

const STATUS: &str = "subscription($run: ID, $project: ID) {
    testStatusChanged(testHistoryId: $run, projectId: $project) {
        previousStatus status at message
        testHistory { id status isCompleted summary { totalRequests } project { id } } } }";

fn event(payload: &Value) -> &Value {
    assert!(payload.get("errors").is_none(), "unexpected errors: {payload}");
    &payload["data"]["testStatusChanged"]
}

/// Cancels a run that no runner has: the lifecycle ends it at once and publishes CANCELLED.
async fn seed_and_cancel(app: &crate::helpers::TestApp, project: &str) -> String {
    let id = Run::new(project.parse().unwrap()).status(TestStatus::Pending).insert(&app.db).await.to_string();
    let cancelled =
        app.graphql("mutation($id: ID!) { cancelLoadTest(id: $id) { status } }", json!({ "id": id })).await;
    assert_eq!(cancelled.data()["cancelLoadTest"]["status"], "CANCELLED");
    id
}

#[tokio::test]
async fn launch_start_and_end_are_published_in_order_filtered_by_project_and_run() {
    let lab = LiveLab::start().await;
    let elsewhere = lab.app.create_project("Elsewhere").await;
    let mut of_project = connect(&lab.app.address, Protocol::Modern).await;
    of_project.subscribe("project", STATUS, json!({ "project": lab.project })).await;
    let mut of_other_project = connect(&lab.app.address, Protocol::Legacy).await;
    of_other_project.subscribe("other", STATUS, json!({ "project": elsewhere })).await;
    // A round trip on each socket: their subscriptions are in place before anything happens.
    for socket in [&mut of_project, &mut of_other_project] {
        socket.subscribe("ping", "{ projects { id } }", json!({})).await;
        socket.payloads_until_complete("ping").await;
    }

    let first = lab.launch("First", 3).await;
    let mut of_first = connect(&lab.app.address, Protocol::Modern).await;
    of_first.subscribe("first", STATUS, json!({ "run": first })).await;
    of_first.subscribe("ping", "{ projects { id } }", json!({})).await;
    of_first.payloads_until_complete("ping").await;
    // Shorter and later: its changes happen while the first run goes on.
    let second = lab.launch("Second", 1).await;
    lab.wait_until_finished(&first).await;
    lab.wait_until_finished(&second).await;
    let in_other_project = seed_and_cancel(&lab.app, &elsewhere).await;

    let mut events = Vec::new();
    for _ in 0..6 {
        events.push(event(&of_project.next_payload("project").await).clone());
    }
    let transitions = |run: &str| -> Vec<(Value, Value)> {
        events
            .iter()
            .filter(|e| e["testHistory"]["id"] == run)
            .map(|e| (e["previousStatus"].clone(), e["status"].clone()))
            .collect()
    };
    let expected = vec![
        (Value::Null, json!("PENDING")),
        (json!("PENDING"), json!("RUNNING")),
        (json!("RUNNING"), json!("COMPLETED")),
    ];
    assert_eq!(transitions(&first), expected, "{events:#?}");
    assert_eq!(transitions(&second), expected, "{events:#?}");
    let completed =
        events.iter().find(|e| e["testHistory"]["id"] == first && e["status"] == "COMPLETED").unwrap();
    assert_eq!(completed["testHistory"]["status"], "COMPLETED", "the run as it is at that event");
    assert!(completed["testHistory"]["summary"]["totalRequests"].as_i64().unwrap() > 0, "{completed}");
    assert_eq!(completed["testHistory"]["project"]["id"], lab.project.as_str());

    let other = event(&of_other_project.next_payload("other").await).clone();
    assert_eq!(
        other["testHistory"]["id"],
        in_other_project.as_str(),
        "nothing of the lab's project came first"
    );
    assert_eq!((other["status"].as_str(), other["message"].as_str()), (Some("CANCELLED"), Some("cancelled")));

    let mut of_first_run = Vec::new();
    loop {
        let change = event(&of_first.next_payload("first").await).clone();
        of_first_run.push(change.clone());
        if change["status"] == "COMPLETED" {
            break;
        }
    }
    assert!(
        of_first_run.iter().all(|e| e["testHistory"]["id"] == first),
        "only the run asked for: {of_first_run:#?}"
    );
}

#[tokio::test]
async fn filters_on_runs_or_projects_that_do_not_exist_are_not_found() {
    let app = spawn_app().await;
    let mut socket = connect(&app.address, Protocol::Modern).await;

    socket.subscribe("run", STATUS, json!({ "run": "4242" })).await;
    let run = socket.payloads_until_complete("run").await;
    socket.subscribe("project", STATUS, json!({ "project": "4242" })).await;
    let project = socket.payloads_until_complete("project").await;
    socket.subscribe("bad", STATUS, json!({ "project": "x" })).await;
    let bad = socket.payloads_until_complete("bad").await;

    assert_eq!(run[0]["errors"][0]["extensions"]["code"], "NOT_FOUND", "{run:?}");
    assert_eq!(project[0]["errors"][0]["extensions"]["code"], "NOT_FOUND", "{project:?}");
    assert_eq!(bad[0]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{bad:?}");
}

/// On PostgreSQL, replicas share one database: a change made by one reaches the
/// subscribers of every one, through LISTEN/NOTIFY. (On SQLite there is one server.)
#[tokio::test]
async fn on_postgresql_status_changes_reach_the_subscribers_of_every_replica() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!(
            "SQLite: one server, no replicas to reach; run with TEST_DATABASE_URL for the PostgreSQL path"
        );
        return;
    }
    let data_dir = tempfile::tempdir().unwrap();
    let settings = test_settings(data_dir.path()).await;
    let shared_database = settings.database_url.clone();
    let first = spawn_with(settings, tempfile::tempdir().unwrap()).await;
    let mut settings = test_settings(data_dir.path()).await;
    settings.database_url = shared_database;
    let second = spawn_with(settings, data_dir).await;
    let project = first.create_project("Replicated").await;
    let mut on_first = connect(&first.address, Protocol::Modern).await;
    on_first.subscribe("s", STATUS, json!({ "project": project })).await;
    let mut on_second = connect(&second.address, Protocol::Legacy).await;
    on_second.subscribe("s", STATUS, json!({ "project": project })).await;
    for socket in [&mut on_first, &mut on_second] {
        socket.subscribe("ping", "{ projects { id } }", json!({})).await;
        socket.payloads_until_complete("ping").await;
    }

    let made_on_first = seed_and_cancel(&first, &project).await;
    let made_on_second = seed_and_cancel(&second, &project).await;

    for socket in [&mut on_first, &mut on_second] {
        let seen: Vec<Value> = [socket.next_payload("s").await, socket.next_payload("s").await]
            .iter()
            .map(|payload| event(payload)["testHistory"]["id"].clone())
            .collect();
        assert_eq!(seen, [json!(made_on_first), json!(made_on_second)], "each replica hears both, in order");
    }
}
