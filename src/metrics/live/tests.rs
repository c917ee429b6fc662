//! The pollers against a real influxd and a real (SQLite) database, with samples written in
//! k6's own measurements, so every figure of a snapshot is known in advance.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;

use super::*;
use crate::{
    db::{self, entities::test_history, repo::project::ProjectFields},
    domain::TestStatus,
    metrics::test_influxd::InfluxServer,
    seed::{self, Run, ScenarioSeed},
};

const DATABASE: &str = "k6_live";
/// Long enough for any snapshot to come, on a busy machine.
const PATIENCE: Duration = Duration::from_secs(30);

struct Rig {
    influx: InfluxServer,
    db: DatabaseConnection,
    project_id: i64,
    endpoint_id: i64,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let influx = InfluxServer::start().await;
    influx.client(DATABASE).create_database().await.expect("create the database");
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("sqlite://{}/live.db?mode=rwc", dir.path().display());
    let (db, _) = db::connect_and_migrate(&url).await.expect("a migrated database");
    let fields = ProjectFields { title: Some("Live".into()), ..Default::default() };
    let project_id = repo::project::create(&db, fields).await.expect("a project").id;
    let endpoint_id = seed::spec(&db, project_id, "http://127.0.0.1:9", 1, 1).await.endpoint_ids[0];
    Rig { influx, db, project_id, endpoint_id, _dir: dir }
}

impl Rig {
    fn live(&self) -> LiveMetrics {
        LiveMetrics::new(self.db.clone(), self.influx.client(DATABASE), Duration::from_secs(1))
    }

    /// A run with one scenario (k6 key `scenario_0`, named "scenario 0").
    async fn run(&self, status: TestStatus, minutes_ago: i64) -> i64 {
        let scenario = ScenarioSeed {
            endpoint_id: self.endpoint_id,
            response_time_target: None,
            error_rate_target: None,
            summary: None,
        };
        Run::new(self.project_id)
            .status(status)
            .started_minutes_ago(minutes_ago)
            .scenario(scenario)
            .insert(&self.db)
            .await
    }

    /// Ten requests a second (every tenth failed, each taking 5 ms) from `from` to `to`
    /// seconds around now, and 3 + 2 VUs on two instances.
    async fn write_load(&self, test_id: i64, from: i64, to: i64) {
        let now = Utc::now().timestamp_millis() / 100 * 100;
        let mut lines = Vec::new();
        for step in from * 10..to * 10 {
            let at = now + step * 100;
            let tags = format!("testid={test_id},scenario=scenario_0");
            let failed = i32::from(step.rem_euclid(10) == 0);
            lines.push(format!("http_reqs,{tags} value=1 {at}"));
            lines.push(format!("http_req_duration,{tags} value=5 {at}"));
            lines.push(format!("http_req_failed,{tags} value={failed} {at}"));
            if step.rem_euclid(10) == 0 {
                lines.push(format!("vus,testid={test_id},instance_id=0 value=3 {at}"));
                lines.push(format!("vus,testid={test_id},instance_id=1 value=2 {at}"));
            }
        }
        self.influx.write(DATABASE, &lines.join("\n")).await;
    }
}

async fn next_event(stream: &mut (impl Stream<Item = LiveEvent> + Unpin)) -> Option<LiveEvent> {
    tokio::time::timeout(PATIENCE, stream.next()).await.expect("an event in time")
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "still not {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_subscribers_share_one_poller_and_one_query_per_snapshot() {
    let rig = rig().await;
    let test_id = rig.run(TestStatus::Running, 0).await;
    rig.write_load(test_id, -30, 60).await;
    let live = rig.live();

    let mut first = live.watch(test_id).await.unwrap().into_stream().boxed();
    let mut second = live.watch(test_id).await.unwrap().into_stream().boxed();
    let mut seen_by_first = Vec::new();
    for _ in 0..3 {
        seen_by_first.push(next_event(&mut first).await.unwrap().unwrap());
    }
    let shared = next_event(&mut second).await.unwrap().unwrap();

    assert_eq!(live.active_pollers(), 1);
    assert!(
        seen_by_first.iter().any(|snapshot| Arc::ptr_eq(snapshot, &shared)),
        "the second subscriber got one of the very snapshots the first did"
    );
    let snapshots_made = seen_by_first.len() as u64 + 1;
    assert!(live.influx_queries() <= snapshots_made + 1, "{} queries", live.influx_queries());
    let snapshot = seen_by_first.last().unwrap();
    assert_eq!(snapshot.run.tps, 10.0, "{snapshot:?}");
    assert_eq!(snapshot.run.avg_response_time, 5.0);
    assert_eq!(snapshot.run.p95_response_time, 5.0);
    assert_eq!(snapshot.run.error_rate, 10.0);
    assert_eq!(snapshot.vus, 5.0, "both instances count");
    assert!(!snapshot.is_final);
    assert_eq!(snapshot.scenarios.len(), 1);
    assert_eq!(snapshot.scenarios[0].name, "scenario 0");
    assert_eq!(snapshot.scenarios[0].figures.tps, 10.0);
    assert_eq!(snapshot.scenarios[0].figures.total_requests, snapshot.run.total_requests);
    let totals: Vec<i64> = seen_by_first.iter().map(|s| s.run.total_requests).collect();
    assert!(totals.windows(2).all(|pair| pair[0] <= pair[1]), "totals only grow: {totals:?}");
    // Ten requests a second, counted once each as the windows move on.
    assert!(totals[2] - totals[0] >= 10, "{totals:?}");
}

#[tokio::test]
async fn a_finished_run_yields_its_final_snapshot_at_once_and_ends() {
    let rig = rig().await;
    // Started a minute ago, completed now (the seed's runs last 60 s).
    let test_id = rig.run(TestStatus::Completed, 1).await;
    rig.write_load(test_id, -50, -10).await;
    let live = rig.live();

    let mut stream = live.watch(test_id).await.unwrap().into_stream().boxed();
    let last = next_event(&mut stream).await.unwrap().unwrap();

    assert!(last.is_final);
    assert_eq!(last.run.total_requests, 400, "every request of the run");
    assert_eq!(last.scenarios[0].figures.total_requests, 400);
    assert!((59.0..=61.0).contains(&last.elapsed_seconds), "{}", last.elapsed_seconds);
    assert!(next_event(&mut stream).await.is_none(), "nothing after the final snapshot");
    wait_until("retired", || live.active_pollers() == 0).await;
}

#[tokio::test]
async fn a_run_that_never_started_ends_with_an_empty_final_snapshot() {
    let rig = rig().await;
    let test_id = rig.run(TestStatus::Cancelled, 0).await;
    test_history::Entity::update(test_history::ActiveModel {
        id: sea_orm::Set(test_id),
        started_at: sea_orm::Set(None),
        ..Default::default()
    })
    .exec(&rig.db)
    .await
    .unwrap();
    let live = rig.live();

    let mut stream = live.watch(test_id).await.unwrap().into_stream().boxed();
    let last = next_event(&mut stream).await.unwrap().unwrap();

    assert!(last.is_final);
    assert_eq!((last.run.total_requests, last.elapsed_seconds), (0, 0.0));
    assert_eq!(live.influx_queries(), 0, "nothing to ask InfluxDB");
}

#[tokio::test]
async fn the_poller_stops_when_nobody_listens() {
    let rig = rig().await;
    let test_id = rig.run(TestStatus::Running, 0).await;
    let live = rig.live();
    let mut stream = live.watch(test_id).await.unwrap().into_stream().boxed();
    next_event(&mut stream).await.unwrap().unwrap();
    assert_eq!(live.active_pollers(), 1);

    drop(stream);

    wait_until("retired", || live.active_pollers() == 0).await;
    let queries = live.influx_queries();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(live.influx_queries(), queries, "no query after the poller stopped");
}

#[tokio::test]
async fn an_unknown_run_is_not_found() {
    let rig = rig().await;
    let error = rig.live().watch(4242).await.err().expect("no such run");
    assert_eq!(error.code(), "NOT_FOUND");
}

#[tokio::test]
async fn an_unreachable_influxdb_is_an_error_event_and_the_poller_carries_on() {
    let rig = rig().await;
    let test_id = rig.run(TestStatus::Running, 0).await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere =
        InfluxClient::new(crate::tls::client(), format!("http://127.0.0.1:{closed_port}"), DATABASE);
    let live = LiveMetrics::new(rig.db.clone(), nowhere, Duration::from_millis(200));

    let mut stream = live.watch(test_id).await.unwrap().into_stream().boxed();
    for _ in 0..2 {
        let error = next_event(&mut stream).await.expect("the stream goes on").unwrap_err();
        assert!(matches!(&error, LiveError::Upstream(reason) if reason.contains("unreachable")), "{error:?}");
        assert_eq!(AppError::from(error).code(), "UPSTREAM_UNAVAILABLE");
    }
}

#[tokio::test]
async fn a_slow_subscriber_skips_to_the_latest_snapshot_and_still_gets_the_final_one() {
    let (sender, receiver) = watch::channel(None);
    let mut slow = LiveFeed { receiver }.into_stream().boxed();
    let snapshot = |seconds: f64, is_final: bool| LiveSnapshot {
        test_id: 1,
        time: Utc::now(),
        elapsed_seconds: seconds,
        run: IntervalFigures::default(),
        vus: 0.0,
        scenarios: Vec::new(),
        is_final,
        samples_lag_seconds: 0.0,
        samples_lagging: false,
        baseline: None,
        baseline_verdict: None,
        published_at: Utc::now(),
        renderings: Default::default(),
    };

    for second in 1..=5 {
        sender.send_replace(Some(Ok(Arc::new(snapshot(second as f64, false)))));
    }
    let first_read = slow.next().await.unwrap().unwrap();
    sender.send_replace(Some(Ok(Arc::new(snapshot(6.0, false)))));
    sender.send_replace(Some(Ok(Arc::new(snapshot(7.0, true)))));
    let second_read = slow.next().await.unwrap().unwrap();

    assert_eq!(first_read.elapsed_seconds, 5.0, "snapshots 1-4 were skipped, not queued");
    assert_eq!((second_read.elapsed_seconds, second_read.is_final), (7.0, true));
    assert!(slow.next().await.is_none());
}

#[tokio::test]
async fn a_snapshot_says_when_the_stored_samples_lag_behind() {
    let rig = rig().await;
    let live = rig.live();
    let on_time = rig.run(TestStatus::Running, 1).await;
    rig.write_load(on_time, -50, 60).await;
    // k6 stopped getting its samples in 15 s ago, though the run goes on.
    let behind = rig.run(TestStatus::Running, 1).await;
    rig.write_load(behind, -50, -15).await;

    let mut stream = live.watch(on_time).await.unwrap().into_stream().boxed();
    let snapshot = next_event(&mut stream).await.unwrap().unwrap();
    assert!(!snapshot.samples_lagging, "{snapshot:?}");
    assert!(snapshot.samples_lag_seconds <= LAG_LIMIT_SECONDS, "{snapshot:?}");

    let mut stream = live.watch(behind).await.unwrap().into_stream().boxed();
    let snapshot = next_event(&mut stream).await.unwrap().unwrap();
    assert!(snapshot.samples_lagging, "{snapshot:?}");
    assert!((15.0..20.0).contains(&snapshot.samples_lag_seconds), "{snapshot:?}");
}
