//! `testMetrics` over websocket with a real k6 run: snapshots, the final one, a finished
//! run, an unknown run, one poller for many subscribers, slow subscribers, InfluxDB down.

use chrono::{DateTime, Utc};
use metric_vault::{domain::TestStatus, seed::Run};
use serde_json::{Value, json};

use super::support::{GraphQlSocket, LiveLab, METRICS, Protocol, TcpGraphQlSocket, connect, connect_over};
use crate::helpers::spawn_app;

fn time_of(snapshot: &Value) -> DateTime<Utc> {
    snapshot["time"].as_str().unwrap().parse().unwrap()
}

fn snapshots_of(payloads: &[Value]) -> Vec<Value> {
    payloads
        .iter()
        .map(|payload| {
            assert!(payload.get("errors").is_none(), "unexpected errors: {payload}");
            payload["data"]["testMetrics"].clone()
        })
        .collect()
}

/// Subscribes to the run's metrics on a new connection.
async fn watch(lab: &LiveLab, id: &str, protocol: Protocol) -> TcpGraphQlSocket {
    let mut socket = connect(&lab.app.address, protocol).await;
    socket.subscribe("metrics", METRICS, json!({ "id": id })).await;
    socket
}

#[tokio::test]
async fn snapshots_arrive_each_interval_with_sane_values_and_end_with_a_final_one() {
    let lab = LiveLab::start().await;
    let id = lab.launch("Live", 5).await;
    let mut modern = watch(&lab, &id, Protocol::Modern).await;
    let mut legacy = watch(&lab, &id, Protocol::Legacy).await;

    let snapshots = snapshots_of(&modern.payloads_until_complete("metrics").await);
    let legacy_snapshots = snapshots_of(&legacy.payloads_until_complete("metrics").await);

    let (last, live) = snapshots.split_last().expect("snapshots");
    assert_eq!(last["final"], true, "the last snapshot is marked: {last}");
    assert!(live.iter().all(|s| s["final"] == false), "only the last one");
    let times: Vec<_> = snapshots.iter().map(time_of).collect();
    assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "one snapshot per interval, in order: {times:?}");
    let loaded: Vec<&Value> = live.iter().filter(|s| s["tps"].as_f64().unwrap() > 0.0).collect();
    assert!(loaded.len() >= 3, "a 5 s run shows load in several 1 s snapshots: {snapshots:#?}");
    for snapshot in &loaded {
        assert_eq!(snapshot["testHistoryId"], id.as_str());
        assert!(snapshot["avgResponseTime"].as_f64().unwrap() >= 1.0, "the target takes 2-3 ms: {snapshot}");
        assert!(snapshot["p95ResponseTime"].as_f64().unwrap() >= 1.0, "{snapshot}");
        assert_eq!(snapshot["errorRate"], 0.0, "{snapshot}");
        assert!(snapshot["elapsedSeconds"].as_f64().unwrap() >= 0.0);
        let names: Vec<&str> =
            snapshot["scenarios"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Browse", "Create"]);
        let create_tps = snapshot["scenarios"][1]["tps"].as_f64().unwrap();
        assert!(create_tps <= 15.0, "10 iterations a second, give or take a boundary: {snapshot}");
    }
    // k6 samples its VUs once a second, from the end of the first second on.
    assert!(loaded.iter().any(|s| s["vus"].as_f64().unwrap() >= 1.0), "VUs show: {loaded:#?}");
    let totals: Vec<i64> = snapshots.iter().map(|s| s["totalRequests"].as_i64().unwrap()).collect();
    assert!(totals.windows(2).all(|pair| pair[0] <= pair[1]), "totals only grow: {totals:?}");

    let run = lab.wait_until_finished(&id).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    // Snapshots count the samples InfluxDB holds, the summary is k6's own count: equal, or the
    // run says how many samples InfluxDB lacks.
    let missing =
        if run["resultsComplete"] == true { 0 } else { run["missingSamples"].as_i64().unwrap_or(0) };
    assert_eq!(
        last["totalRequests"].as_i64().unwrap() + missing,
        run["summary"]["totalRequests"].as_i64().unwrap(),
        "the final count is the run's count, less what InfluxDB lacks: {run}"
    );
    let scenario_total: i64 =
        last["scenarios"].as_array().unwrap().iter().map(|s| s["totalRequests"].as_i64().unwrap()).sum();
    assert_eq!(Some(scenario_total), last["totalRequests"].as_i64());
    assert_eq!(legacy_snapshots.last(), Some(last), "the legacy protocol gets the same final snapshot");

    let mut late = watch(&lab, &id, Protocol::Modern).await;
    let after_the_end = snapshots_of(&late.payloads_until_complete("metrics").await);
    assert_eq!(after_the_end.len(), 1, "a finished run: its final snapshot at once, then complete");
    // The same figures; only `time` may differ, when the last live snapshot reached past the end.
    let without_time = |snapshot: &Value| {
        let mut snapshot = snapshot.clone();
        snapshot.as_object_mut().unwrap().remove("time");
        snapshot
    };
    assert_eq!(without_time(&after_the_end[0]), without_time(last));
}

#[tokio::test]
async fn a_run_that_ended_before_anyone_watched_gets_its_final_snapshot_and_completes() {
    let lab = LiveLab::start().await;
    let id = Run::new(lab.project.parse().unwrap()).status(TestStatus::Failed).insert(&lab.app.db).await;

    let mut socket = watch(&lab, &id.to_string(), Protocol::Modern).await;
    let snapshots = snapshots_of(&socket.payloads_until_complete("metrics").await);

    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(snapshots[0]["final"], true);
    assert_eq!(snapshots[0]["totalRequests"], 0, "InfluxDB holds nothing of a seeded run");
}

#[tokio::test]
async fn an_unknown_run_is_not_found() {
    let app = spawn_app().await;

    let mut socket = connect(&app.address, Protocol::Modern).await;
    socket.subscribe("metrics", METRICS, json!({ "id": "4242" })).await;
    let payloads = socket.payloads_until_complete("metrics").await;

    assert_eq!(payloads.len(), 1, "{payloads:?}");
    assert_eq!(payloads[0]["errors"][0]["extensions"]["code"], "NOT_FOUND", "{}", payloads[0]);
    assert_eq!(payloads[0]["errors"][0]["message"], "TestHistory 4242 does not exist");
}

#[tokio::test]
async fn many_subscribers_share_one_poller_and_one_influxdb_query_per_snapshot() {
    let lab = LiveLab::start().await;
    let id = lab.launch("Shared", 6).await;
    let mut first = watch(&lab, &id, Protocol::Modern).await;
    // Wait for the poller to produce, so the count below covers only live polling.
    let first_snapshot = first.next_payload("metrics").await["data"]["testMetrics"].clone();
    let mut others = Vec::new();
    for protocol in [Protocol::Modern, Protocol::Legacy, Protocol::Modern] {
        others.push(watch(&lab, &id, protocol).await);
    }
    let queries_before = lab.influx_query_requests().await;

    let mut seen_first: Vec<Value> = vec![first_snapshot];
    for _ in 0..4 {
        seen_first.push(first.next_payload("metrics").await["data"]["testMetrics"].clone());
    }
    let queries_after = lab.influx_query_requests().await;
    let mut seen_others = Vec::new();
    for other in &mut others {
        seen_others.push(other.next_payload("metrics").await["data"]["testMetrics"].clone());
    }

    // Four snapshots while four subscribers listened: one poller asks about four times
    // (plus this test's own SHOW STATS); one poller per subscriber would ask sixteen.
    let queries = queries_after - queries_before;
    assert!((3..=7).contains(&queries), "{queries} InfluxDB queries for 4 snapshots and 4 subscribers");
    let times_first: Vec<_> = seen_first.iter().map(time_of).collect();
    for snapshot in &seen_others {
        assert!(
            times_first.contains(&time_of(snapshot)),
            "every subscriber gets the same snapshots: {snapshot}"
        );
    }
    lab.wait_until_finished(&id).await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_holds_back_nobody_and_still_gets_the_final_snapshot() {
    let lab = LiveLab::start().await;
    let id = lab.launch("Slow reader", 4).await;
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    // A tiny receive window, so that the server soon has to wait for this client.
    tcp.set_recv_buffer_size(1024).unwrap();
    let stream = tcp.connect(lab.app.address.parse().unwrap()).await.unwrap();
    let mut slow: GraphQlSocket<_> = connect_over(&lab.app.address, stream, Protocol::Modern).await;
    slow.subscribe("metrics", METRICS, json!({ "id": id })).await;
    let mut fast = watch(&lab, &id, Protocol::Modern).await;

    // The slow subscriber reads nothing until the fast one has seen the whole run.
    let fast_snapshots = snapshots_of(&fast.payloads_until_complete("metrics").await);
    let slow_snapshots = snapshots_of(&slow.payloads_until_complete("metrics").await);

    assert_eq!(fast_snapshots.last().unwrap()["final"], true);
    assert!(fast_snapshots.len() >= 4, "{}", fast_snapshots.len());
    assert_eq!(
        slow_snapshots.last(),
        fast_snapshots.last(),
        "the slow one still ends with the final snapshot"
    );
}

#[tokio::test]
async fn influxdb_going_down_mid_run_is_an_error_on_those_events_and_the_stream_recovers() {
    let lab = LiveLab::with_cuttable_influxdb().await;
    let id = lab.launch("Outage", 15).await;
    let mut socket = watch(&lab, &id, Protocol::Modern).await;
    loop {
        let payload = socket.next_payload("metrics").await;
        if payload["data"]["testMetrics"]["tps"].as_f64().unwrap_or(0.0) > 0.0 {
            break;
        }
    }

    lab.cut_influxdb(true);
    let outage = loop {
        let payload = socket.next_payload("metrics").await;
        if payload.get("errors").is_some() {
            break payload;
        }
    };
    lab.cut_influxdb(false);
    let recovered = loop {
        let payload = socket.next_payload("metrics").await;
        if payload.get("errors").is_none() && payload["data"]["testMetrics"]["tps"].as_f64().unwrap() > 0.0 {
            break payload;
        }
    };
    let rest = socket.payloads_until_complete("metrics").await;

    assert_eq!(outage["errors"][0]["extensions"]["code"], "UPSTREAM_UNAVAILABLE", "{outage}");
    assert!(outage["errors"][0]["message"].as_str().unwrap().contains("InfluxDB"), "{outage}");
    assert_eq!(outage["errors"][0]["path"], json!(["testMetrics"]));
    assert!(outage["data"].is_null(), "{outage}");
    assert!(time_of(&recovered["data"]["testMetrics"]) > Utc::now() - chrono::Duration::seconds(30));
    assert_eq!(rest.last().unwrap()["data"]["testMetrics"]["final"], true, "{:?}", rest.last());
}

/// The keys of every `testMetrics` object in `payloads`, sorted, and the objects by `time`.
fn shapes_of(payloads: &[Value]) -> (Vec<Vec<String>>, Vec<Value>) {
    let snapshots = snapshots_of(payloads);
    let shapes = snapshots
        .iter()
        .map(|snapshot| {
            let mut keys: Vec<String> = snapshot.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        })
        .collect();
    (shapes, snapshots)
}

#[tokio::test]
async fn subscribers_asking_differently_each_get_their_own_shape_of_the_same_snapshots() {
    let lab = LiveLab::start().await;
    let id = lab.launch("Shapes", 4).await;
    let narrow = "subscription($id: ID!) { testMetrics(testHistoryId: $id) { time tps } }";
    let aliased = "subscription($id: ID!) { testMetrics(testHistoryId: $id) { at: time requests: totalRequests ...Rates } }
        fragment Rates on MetricSnapshot { tps final }";
    let skipping = "subscription($id: ID!, $skip: Boolean!) { testMetrics(testHistoryId: $id) { time tps @skip(if: $skip) } }";
    let twice = "subscription($id: ID!) { testMetrics(testHistoryId: $id) { time } testMetrics(testHistoryId: $id) { tps } }";
    let asks: [(&str, Value, Protocol); 7] = [
        (METRICS, json!({ "id": id }), Protocol::Modern),
        (METRICS, json!({ "id": id }), Protocol::Legacy),
        (narrow, json!({ "id": id }), Protocol::Modern),
        (aliased, json!({ "id": id }), Protocol::Modern),
        (skipping, json!({ "id": id, "skip": true }), Protocol::Modern),
        (skipping, json!({ "id": id, "skip": false }), Protocol::Legacy),
        (twice, json!({ "id": id }), Protocol::Modern),
    ];
    let mut sockets = Vec::new();
    for (query, variables, protocol) in asks {
        let mut socket = connect(&lab.app.address, protocol).await;
        socket.subscribe("metrics", query, variables).await;
        sockets.push(socket);
    }

    let mut seen = Vec::new();
    for socket in &mut sockets {
        seen.push(shapes_of(&socket.payloads_until_complete("metrics").await));
    }

    let keys = |names: &[&str]| names.iter().map(|name| name.to_string()).collect::<Vec<_>>();
    let full = keys(&[
        "avgResponseTime",
        "elapsedSeconds",
        "errorRate",
        "final",
        "p95ResponseTime",
        "scenarios",
        "testHistoryId",
        "time",
        "totalRequests",
        "tps",
        "vus",
    ]);
    let expected = [
        vec![full.clone()],
        vec![full],
        vec![keys(&["time", "tps"])],
        vec![keys(&["at", "final", "requests", "tps"])],
        vec![keys(&["time"])],
        vec![keys(&["time", "tps"])],
        // Two root fields: one event each per snapshot.
        vec![keys(&["time"]), keys(&["tps"])],
    ];
    for (index, ((shapes, _), wanted)) in seen.iter().zip(&expected).enumerate() {
        assert!(shapes.len() >= 2, "subscriber {index} got snapshots: {shapes:?}");
        assert!(
            shapes.iter().all(|shape| wanted.contains(shape)),
            "subscriber {index}: {shapes:?}, not {wanted:?}"
        );
        assert!(
            wanted.iter().all(|shape| shapes.contains(shape)),
            "subscriber {index}: {shapes:?}, not {wanted:?}"
        );
    }
    // The same snapshot, whatever the shape: the figures agree where the shapes overlap.
    let (_, full_snapshots) = &seen[0];
    let (_, aliased_snapshots) = &seen[3];
    for snapshot in aliased_snapshots {
        if let Some(same) = full_snapshots.iter().find(|full| full["time"] == snapshot["at"]) {
            assert_eq!((&same["tps"], &same["totalRequests"]), (&snapshot["tps"], &snapshot["requests"]));
        }
    }
    assert_eq!(seen[0].1.last(), seen[1].1.last(), "both protocols end with the same final snapshot");
    assert_eq!(aliased_snapshots.last().unwrap()["final"], true);
}
