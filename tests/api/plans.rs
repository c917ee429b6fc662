//! Saved test plans and their schedules, with real k6 runs against a loopback target: versions,
//! launches and re-runs linked to the version they ran, secrets hidden below OPERATOR, deletes
//! refused while a run is active, refusals that write nothing, and two replicas that launch
//! exactly one run per due time.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use metric_vault::{
    db::entities::{schedule_firing, test_history, test_plan, test_plan_version, test_schedule},
    metrics::test_influxd::InfluxServer,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, client_with_token, spawn_app_with, spawn_with, test_settings_with},
    target_api::project_with_target,
};

const CREATE: &str = r#"mutation($input: LaunchLoadTestInput!) { createTestPlan(input: $input) {
    id title version definition { version title scenarios { name stages { duration target } } } } }"#;
const UPDATE: &str = r#"mutation($id: ID!, $input: LaunchLoadTestInput!, $v: Int) {
    updateTestPlan(id: $id, input: $input, expectedVersion: $v) { id version title } }"#;
const LAUNCH_PLAN: &str =
    r#"mutation($id: ID!) { launchTestPlan(id: $id) { id plan { id } planVersion { version } } }"#;
const RUN: &str = r#"query($id: ID!) { testHistory(id: $id) { id status isCompleted
    plan { id title } planVersion { version scenarios { stages { target } } } summary { totalRequests } } }"#;

fn plan_input(title: &str, endpoint: &str, vus: i32, seconds: u32) -> Value {
    json!({
        "title": title,
        "scenarios": [{
            "name": "browse", "endpointId": endpoint, "executor": "CONSTANT_VUS", "thinkTime": 0.1,
            "stages": [{ "duration": format!("{seconds}s"), "target": vus }],
            "request": { "headers": { "Authorization": "Bearer plan-secret-7", "X-Trace": "plain" } }
        }]
    })
}

async fn wait_finished(app: &TestApp, id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let run = app.graphql(RUN, json!({ "id": id })).await.data()["testHistory"].clone();
        if run["isCompleted"] == true && !run["summary"].is_null() {
            return run;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the run never finished: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn count<E: EntityTrait>(app: &TestApp) -> u64
where
    E::Model: Sync,
{
    E::find().count(&app.db).await.unwrap()
}

#[tokio::test]
async fn a_plan_keeps_its_versions_and_its_runs_show_the_version_they_ran() {
    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string())]).await;
    let (_, endpoints) = project_with_target(&app, "Shop").await;
    let item = &endpoints["getItem"];

    let created = app.graphql(CREATE, json!({ "input": plan_input("Checkout", item, 1, 1) })).await;
    let plan = &created.data()["createTestPlan"];
    let id = plan["id"].as_str().unwrap().to_owned();
    assert_eq!((plan["version"].as_i64(), plan["definition"]["version"].as_i64()), (Some(1), Some(1)));

    let edited =
        app.graphql(UPDATE, json!({ "id": id, "input": plan_input("Checkout", item, 2, 1), "v": 1 })).await;
    assert_eq!(edited.data()["updateTestPlan"]["version"], 2);
    // An editor still looking at version 1 is told, and nothing is written.
    let stale =
        app.graphql(UPDATE, json!({ "id": id, "input": plan_input("Checkout", item, 3, 1), "v": 1 })).await;
    assert_eq!(stale.error_code(), "CONFLICT", "{}", stale.body);
    assert_eq!(count::<test_plan_version::Entity>(&app).await, 2);

    // Secrets: the definition keeps them for launches; VIEWERs read `***`.
    let input_query =
        r#"query($id: ID!) { testPlan(id: $id) { definition { input scenarios { request } } } }"#;
    let admin = app.graphql(input_query, json!({ "id": id })).await;
    let admin_input = &admin.data()["testPlan"]["definition"]["input"];
    assert_eq!(admin_input["scenarios"][0]["request"]["headers"]["Authorization"], "Bearer plan-secret-7");
    let viewer_token = create_token(&app, "wall", "VIEWER").await;
    let viewer = app.graphql_with(&client_with_token(&viewer_token), input_query, json!({ "id": id })).await;
    let shown = viewer.data()["testPlan"]["definition"].to_string();
    assert!(!shown.contains("plan-secret-7"), "a VIEWER saw the secret: {shown}");
    assert!(shown.contains("***") && shown.contains("plain"), "{shown}");
    let refused = app.graphql_with(&client_with_token(&viewer_token), LAUNCH_PLAN, json!({ "id": id })).await;
    assert_eq!(refused.error_code(), "FORBIDDEN");

    // Launch: the run is version 2's.
    let launched = app.graphql(LAUNCH_PLAN, json!({ "id": id })).await;
    let launched = &launched.data()["launchTestPlan"];
    assert_eq!(
        (launched["plan"]["id"].as_str(), launched["planVersion"]["version"].as_i64()),
        (Some(id.as_str()), Some(2))
    );
    let first = launched["id"].as_str().unwrap().to_owned();
    // While it runs, the plan cannot be deleted.
    let busy = app.graphql("mutation($id: ID!) { deleteTestPlan(id: $id) }", json!({ "id": id })).await;
    assert_eq!(busy.error_code(), "CONFLICT", "{}", busy.body);
    let first_run = wait_finished(&app, &first).await;
    assert_eq!(first_run["status"], "COMPLETED", "{first_run}");
    assert_eq!(first_run["planVersion"]["scenarios"][0]["stages"][0]["target"], 2);

    // Version 3 does not change what the first run shows; "run again" runs what it ran.
    app.graphql(UPDATE, json!({ "id": id, "input": plan_input("Checkout", item, 1, 1) })).await.data();
    let again = app
        .graphql(
            "mutation($id: ID!) { rerunTestHistory(id: $id) { id planVersion { version } } }",
            json!({ "id": first }),
        )
        .await;
    let again = &again.data()["rerunTestHistory"];
    assert_eq!(again["planVersion"]["version"], 2, "a re-run runs the version its run ran");
    let second = again["id"].as_str().unwrap().to_owned();
    let second_run = wait_finished(&app, &second).await;
    assert_eq!(second_run["status"], "COMPLETED", "{second_run}");
    let script = |run_id: String| {
        let app = &app;
        async move {
            test_history::Entity::find_by_id(run_id.parse::<i64>().unwrap())
                .one(&app.db)
                .await
                .unwrap()
                .unwrap()
                .k6_script
        }
    };
    assert!(!script(second.clone()).await.contains("plan-secret-7"), "secret values stay out of scripts");

    // The plan's own history and trend.
    let board = app
        .graphql(
            r#"query($id: ID!) { testPlan(id: $id) { version lastRun { id } trend { testHistory { id } avgTps }
                testHistories { totalCount } }
                testHistories(filter: {planId: $id}) { totalCount } }"#,
            json!({ "id": id }),
        )
        .await;
    let board = board.data();
    assert_eq!(board["testPlan"]["version"], 3);
    assert_eq!(board["testPlan"]["lastRun"]["id"], second.as_str());
    let trend: Vec<&str> = board["testPlan"]["trend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["testHistory"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(trend, [first.as_str(), second.as_str()], "oldest first");
    assert_eq!(board["testPlan"]["testHistories"]["totalCount"], 2);
    assert_eq!(board["testHistories"]["totalCount"], 2);

    // Deleted: gone from the list, refused at launch, still shown by its runs.
    app.graphql("mutation($id: ID!) { deleteTestPlan(id: $id) }", json!({ "id": id })).await.data();
    let listed = app.graphql("{ testPlans { id } }", json!({})).await;
    assert_eq!(listed.data()["testPlans"], json!([]));
    let gone = app.graphql(LAUNCH_PLAN, json!({ "id": id })).await;
    assert_eq!(gone.error_code(), "NOT_FOUND");
    let kept = app.graphql(RUN, json!({ "id": first })).await;
    assert_eq!(kept.data()["testHistory"]["plan"]["title"], "Checkout");
    // A re-run of a deleted plan's run is a one-off run.
    let orphan = app
        .graphql(
            "mutation($id: ID!) { rerunTestHistory(id: $id) { id plan { id } } }",
            json!({ "id": first }),
        )
        .await;
    let orphan_id = orphan.data()["rerunTestHistory"]["id"].as_str().unwrap().to_owned();
    assert!(orphan.data()["rerunTestHistory"]["plan"].is_null());
    wait_finished(&app, &orphan_id).await;
}

async fn create_token(app: &TestApp, name: &str, role: &str) -> String {
    let created = app
        .graphql(
            "mutation($n: String!, $r: Role!) { createApiToken(input: {name: $n, role: $r}) { token } }",
            json!({ "n": name, "r": role }),
        )
        .await;
    created.data()["createApiToken"]["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_one_off_launch_can_be_saved_as_a_plan_in_the_same_transaction() {
    let influx = InfluxServer::start().await;
    let app = spawn_app_with(&[("INFLUXDB_PORT", &influx.port().to_string())]).await;
    let (_, endpoints) = project_with_target(&app, "Shop").await;
    let save = r#"mutation($input: LaunchLoadTestInput!) { launchLoadTest(input: $input, saveAsPlan: true) {
        id plan { id title version } } }"#;
    let launched =
        app.graphql(save, json!({ "input": plan_input("Nightly", &endpoints["getItem"], 1, 1) })).await;
    let run = &launched.data()["launchLoadTest"];
    assert_eq!((run["plan"]["title"].as_str(), run["plan"]["version"].as_i64()), (Some("Nightly"), Some(1)));
    wait_finished(&app, run["id"].as_str().unwrap()).await;

    // The same title again: refused, and neither a plan nor a run is written.
    let runs = count::<test_history::Entity>(&app).await;
    let again =
        app.graphql(save, json!({ "input": plan_input("Nightly", &endpoints["getItem"], 1, 1) })).await;
    assert_eq!(again.error_code(), "BAD_USER_INPUT", "{}", again.body);
    assert!(again.error_message().contains("already exists"), "{}", again.body);
    assert_eq!(count::<test_history::Entity>(&app).await, runs);
    assert_eq!(count::<test_plan::Entity>(&app).await, 1);
}

#[tokio::test]
async fn bad_plans_and_schedules_are_refused_by_field_and_write_nothing() {
    let app = spawn_app_with(&[]).await;
    let (project, endpoints) = project_with_target(&app, "Shop").await;
    let item = endpoints["getItem"].clone();

    let mut bad_stage = plan_input("Broken", &item, 1, 1);
    bad_stage["scenarios"][0]["stages"][0]["duration"] = json!("soon");
    let refused = app.graphql(CREATE, json!({ "input": bad_stage })).await;
    assert_eq!(refused.error_code(), "BAD_USER_INPUT");
    assert_eq!(
        refused.body["errors"][0]["extensions"]["field"], "scenarios[0].stages[0].duration",
        "{}",
        refused.body
    );
    assert_eq!(count::<test_plan::Entity>(&app).await, 0);

    let plan = app.graphql(CREATE, json!({ "input": plan_input("Nightly", &item, 1, 1) })).await;
    let plan_id = plan.data()["createTestPlan"]["id"].as_str().unwrap().to_owned();
    let schedule = r#"mutation($input: CreateTestScheduleInput!) { createTestSchedule(input: $input) { id cron timeZone nextRunAt } }"#;
    for (cron, zone, field, says) in [
        ("61 * * * *", "UTC", "input.cron", "not a valid cron expression"),
        ("* * * *", "UTC", "input.cron", "five"),
        ("*/5 * * * * *", "UTC", "input.cron", "five"),
        ("0 0 30 2 *", "UTC", "input.cron", "never fires"),
        ("0 2 * * *", "Mars/Olympus_Mons", "input.timeZone", "not a known time zone"),
    ] {
        let answer = app
            .graphql(schedule, json!({ "input": { "planId": plan_id, "cron": cron, "timeZone": zone } }))
            .await;
        assert_eq!(answer.error_code(), "BAD_USER_INPUT", "{cron} {zone}: {}", answer.body);
        assert_eq!(answer.body["errors"][0]["extensions"]["field"], field, "{cron} {zone}: {}", answer.body);
        assert!(answer.error_message().contains(says), "{cron} {zone}: {}", answer.body);
    }
    assert_eq!(count::<test_schedule::Entity>(&app).await, 0);

    // A good one: 02:00 in Berlin is 00:00 or 01:00 UTC, depending on daylight saving.
    let made = app
        .graphql(
            schedule,
            json!({ "input": { "planId": plan_id, "cron": "0 2 * * *", "timeZone": "Europe/Berlin" } }),
        )
        .await;
    let next = made.data()["createTestSchedule"]["nextRunAt"].as_str().unwrap().to_owned();
    let next: chrono::DateTime<Utc> = next.parse().unwrap();
    assert!(next > Utc::now() && next < Utc::now() + chrono::Duration::hours(25), "{next}");
    assert!(matches!(next.format("%H:%M").to_string().as_str(), "00:00" | "01:00"), "{next}");

    // A re-import removed the plan's endpoint: the launch names the scenario, records nothing.
    let spec = app
        .graphql("query($p: ID) { openApiSpecs(projectId: $p) { baseUrl } }", json!({ "p": project }))
        .await;
    let base = spec.data()["openApiSpecs"][0]["baseUrl"].as_str().unwrap().to_owned();
    let mut document: Value = reqwest::get(format!("{}/openapi.json", base.trim_end_matches('/')))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    document["paths"].as_object_mut().unwrap().remove("/items/{id}");
    app.graphql(
        "mutation($p: ID!, $d: String!) { analyzeOpenApi(input: {projectId: $p, document: $d}) { removedEndpoints } }",
        json!({ "p": project, "d": document.to_string() }),
    )
    .await
    .data();
    let launch = app.graphql(LAUNCH_PLAN, json!({ "id": plan_id })).await;
    assert_eq!(launch.error_code(), "BAD_USER_INPUT", "{}", launch.body);
    assert!(
        launch.error_message().contains("scenario `browse`") && launch.error_message().contains("re-import"),
        "{}",
        launch.body
    );
    assert_eq!(count::<test_history::Entity>(&app).await, 0);
}

/// Two servers on one database: a due time launches exactly one run; a due time while that
/// run is still going is skipped as an overlap; a due time every server missed is skipped.
#[tokio::test]
async fn two_replicas_launch_exactly_one_run_per_due_time() {
    let influx = InfluxServer::start().await;
    let port = influx.port().to_string();
    let quick = [("INFLUXDB_PORT", port.as_str()), ("SCHEDULE_MISSED_AFTER_SECONDS", "30")];
    let a = spawn_app_with(&quick).await;
    let dir_b = tempfile::tempdir().unwrap();
    let mut settings_b = test_settings_with(dir_b.path(), &quick).await;
    settings_b.database_url = a.database_url.clone();
    let _b = spawn_with(settings_b, dir_b).await;

    let (_, endpoints) = project_with_target(&a, "Shop").await;
    let plan =
        a.graphql(CREATE, json!({ "input": plan_input("Nightly", &endpoints["getItem"], 1, 15) })).await;
    let plan_id = plan.data()["createTestPlan"]["id"].as_str().unwrap().to_owned();
    let made = a
        .graphql(
            r#"mutation($p: ID!) { createTestSchedule(input: {planId: $p, cron: "0 3 * * *"}) { id } }"#,
            json!({ "p": plan_id }),
        )
        .await;
    let schedule_id: i64 = made.data()["createTestSchedule"]["id"].as_str().unwrap().parse().unwrap();

    // Stands for the clock reaching the due time: it is moved to the near future.
    let due_in = |offset: chrono::Duration| {
        let db = a.db.clone();
        async move {
            // Whole seconds, as a cron due time is: equal on both databases after a round trip.
            let due = (Utc::now() + offset).trunc_subsecs(0);
            test_schedule::Entity::update_many()
                .col_expr(test_schedule::Column::NextRunAt, Expr::value(due))
                .filter(test_schedule::Column::Id.eq(schedule_id))
                .exec(&db)
                .await
                .unwrap();
            due
        }
    };
    let firings = || async {
        schedule_firing::Entity::find()
            .filter(schedule_firing::Column::ScheduleId.eq(schedule_id))
            .all(&a.db)
            .await
            .unwrap()
    };
    let wait_firings = |n: usize| async move {
        let started = std::time::Instant::now();
        loop {
            let rows = firings().await;
            if rows.len() >= n {
                return rows;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{} firings, wanted {n}", rows.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let due = due_in(chrono::Duration::seconds(1)).await;
    let first = wait_firings(1).await;
    assert_eq!(first[0].outcome, metric_vault::domain::FiringOutcome::Launched, "{first:?}");
    assert_eq!(first[0].due_at, due);
    let run_id = first[0].test_history_id.unwrap();
    // The second replica saw the same due time and launched nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(firings().await.len(), 1);
    let runs =
        test_history::Entity::find().filter(test_history::Column::PlanId.eq(plan_id.parse::<i64>().unwrap()));
    assert_eq!(runs.clone().count(&a.db).await.unwrap(), 1);
    let schedule = test_schedule::Entity::find_by_id(schedule_id).one(&a.db).await.unwrap().unwrap();
    assert_eq!(
        schedule.next_run_at.unwrap().format("%H:%M:%S").to_string(),
        "03:00:00",
        "moved on to the next 03:00 UTC"
    );

    // The run (15 s) is still going at the next due time: skipped and recorded.
    due_in(chrono::Duration::seconds(1)).await;
    let second = wait_firings(2).await;
    let overlap = second
        .iter()
        .find(|f| f.test_history_id == Some(run_id) && f.due_at != due)
        .expect("an overlap record");
    assert_eq!(overlap.outcome, metric_vault::domain::FiringOutcome::SkippedOverlap, "{second:?}");
    assert_eq!(runs.clone().count(&a.db).await.unwrap(), 1);

    // A due time every server missed (SCHEDULE_MISSED_RUNS=skip, the default).
    due_in(chrono::Duration::minutes(-10)).await;
    let third = wait_firings(3).await;
    assert!(
        third.iter().any(|f| f.outcome == metric_vault::domain::FiringOutcome::SkippedMissed),
        "{third:?}"
    );
    assert_eq!(runs.count(&a.db).await.unwrap(), 1);
}
