//! Step choice and windows (pure), then series of k6-shaped samples in a real influxd,
//! with hand-computed figures.

use super::*;
use crate::metrics::test_influxd::InfluxServer;

/// A whole multiple of 2 s, so the fixture's buckets are InfluxDB's for steps 1 s and 2 s.
const T0: i64 = 1_700_000_000_000;

fn at(offset_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(T0 + offset_ms).unwrap()
}

fn window(start: i64, end: i64) -> TimeWindow {
    TimeWindow { start: at(start), end: at(end) }
}

#[test]
fn buckets_count_the_aligned_steps_a_window_touches() {
    assert_eq!(bucket_count(1, window(0, 0)), 1);
    assert_eq!(bucket_count(1, window(0, 999)), 1);
    assert_eq!(bucket_count(1, window(0, 1000)), 2, "the end is inclusive");
    assert_eq!(bucket_count(1, window(500, 2500)), 3, "partial buckets at both ends");
    assert_eq!(bucket_count(2, window(1500, 2500)), 2, "aligned to the epoch, not the start");
}

#[test]
fn the_step_is_the_requested_one_while_the_window_fits() {
    let ten_minutes = window(0, 600_000);
    assert_eq!(choose_step(None, ten_minutes), 1);
    assert_eq!(choose_step(Some(0), ten_minutes), 1, "0 means the default");
    assert_eq!(choose_step(Some(-5), ten_minutes), 1);
    assert_eq!(choose_step(Some(30), ten_minutes), 30, "coarser than needed is the caller's choice");
}

#[test]
fn the_step_grows_until_the_window_has_at_most_2000_buckets() {
    for (window, expected) in [
        // 2000 s plus partial ends: 2001 one-second buckets, so 2 s.
        (window(500, 2_000_500), 2),
        (window(500, 1_999_500), 1), // 1999 s plus partial ends: exactly 2000
        (window(0, 1_999_000), 1),   // exactly 2000 buckets
        (window(0, 1_999_999), 1),
        (window(0, 2_000_000), 2),
        (window(-2000, 90 * 60_000 + 2000), 3), // a 90-minute run with its margins
        (window(0, 24 * 3_600_000), 44),        // a day: 86400 / 44 = 1963.6
    ] {
        let step = choose_step(Some(1), window);
        assert_eq!(step, expected, "{window:?}");
        assert!(bucket_count(step, window) <= MAX_POINTS);
        assert!(step == 1 || bucket_count(step - 1, window) > MAX_POINTS, "the smallest step that fits");
    }
}

#[test]
fn a_finished_run_is_read_with_margins_and_a_running_one_up_to_now() {
    let (started, ended, now) = (at(0), at(60_000), at(90_000));
    let finished = run_window(started, Some(ended), now);
    assert_eq!((finished.start, finished.end), (at(-2000), at(62_000)));
    let running = run_window(started, None, now);
    assert_eq!((running.start, running.end), (at(-2000), at(90_000)));
    // A clock that went backwards still gives a valid (empty-ish) window.
    let odd = run_window(started, None, at(-10_000));
    assert_eq!(odd.end, odd.start);
}

/// One k6 request of run `test_id`: the three samples k6 writes, with its tags.
fn request(
    test_id: &str,
    at_ms: i64,
    scenario: &str,
    instance: &str,
    duration_ms: f64,
    failed: bool,
) -> String {
    let tags = format!("instance_id={instance},scenario={scenario},status=200,testid={test_id}");
    let time = T0 + at_ms;
    format!(
        "http_reqs,{tags} value=1 {time}\n\
         http_req_duration,{tags} value={duration_ms} {time}\n\
         http_req_failed,{tags} value={} {time}\n",
        u8::from(failed)
    )
}

fn vus(instance: &str, at_ms: i64, value: u32) -> String {
    format!("vus,testid=7,instance_id={instance} value={value} {}\n", T0 + at_ms)
}

/// Run 7: two k6 instances, requests in seconds 0, 1 and 3 (second 2 only has VUs).
/// VUs summed per second: 3, 5, 5, 6 (instance 1's max in second 3 is 5).
async fn write_fixture(server: &InfluxServer, database: &str) -> InfluxClient {
    let client = server.client(database);
    client.create_database().await.unwrap();
    let mut lines = [
        request("7", 100, "browse", "0", 10.0, false),
        request("7", 300, "checkout", "1", 30.0, true),
        request("7", 600, "browse", "0", 20.0, false),
        request("7", 1200, "browse", "0", 40.0, false),
        request("7", 3500, "checkout", "1", 50.0, true),
        request("7", 3700, "browse", "0", 60.0, false),
        // Another run in the same seconds.
        request("8", 500, "browse", "0", 999.0, true),
    ]
    .concat();
    for (at_ms, value) in [(0, 2), (1000, 3), (2000, 3), (3000, 1)] {
        lines += &vus("0", at_ms, value);
    }
    for (at_ms, value) in [(50, 1), (1050, 2), (2050, 2), (3050, 4), (3500, 5)] {
        lines += &vus("1", at_ms, value);
    }
    server.write(database, &lines).await;
    client
}

fn point(offset_ms: i64, tps: f64, avg: f64, p95: f64, error_rate: f64, vus: f64) -> TimeseriesPoint {
    TimeseriesPoint {
        time: at(offset_ms),
        tps,
        avg_response_time: avg,
        p95_response_time: p95,
        error_rate,
        vus,
    }
}

#[track_caller]
fn assert_points(actual: &[TimeseriesPoint], expected: &[TimeseriesPoint]) {
    assert_eq!(actual.len(), expected.len(), "{actual:#?}");
    for (actual, expected) in actual.iter().zip(expected) {
        assert_eq!(actual.time, expected.time);
        let figures =
            |p: &TimeseriesPoint| [p.tps, p.avg_response_time, p.p95_response_time, p.error_rate, p.vus];
        for (a, e) in figures(actual).into_iter().zip(figures(expected)) {
            assert!((a - e).abs() < 1e-9, "at {}: {actual:?} vs {expected:?}", expected.time);
        }
    }
}

#[tokio::test]
async fn one_point_per_second_from_the_first_to_the_last_sample() {
    let server = InfluxServer::start().await;
    let client = write_fixture(&server, "per_second").await;

    // A window wider than the run: its silent margins are not part of the series.
    let series = client.timeseries(7, window(-5000, 10_000), None, None).await.unwrap();

    assert_eq!(series.step_seconds, 1);
    // Nearest-rank p95 of n values is value #floor(0.95 n + 0.5): #3 of 3, #2 of 2.
    assert_points(
        &series.points,
        &[
            point(0, 3.0, 20.0, 30.0, 100.0 / 3.0, 3.0),
            point(1000, 1.0, 40.0, 40.0, 0.0, 5.0),
            point(2000, 0.0, 0.0, 0.0, 0.0, 5.0), // no request, VUs still there
            point(3000, 2.0, 55.0, 60.0, 50.0, 6.0),
        ],
    );
}

#[tokio::test]
async fn a_wider_step_merges_buckets_and_still_adds_up_to_the_requests() {
    let server = InfluxServer::start().await;
    let client = write_fixture(&server, "two_seconds").await;

    let series = client.timeseries(7, window(-5000, 10_000), Some(2), None).await.unwrap();

    assert_eq!(series.step_seconds, 2);
    // VUs: per instance the bucket's highest reading, summed: 3 + 2, then 3 + 5.
    assert_points(
        &series.points,
        &[point(0, 2.0, 25.0, 40.0, 25.0, 5.0), point(2000, 1.0, 55.0, 60.0, 50.0, 8.0)],
    );
    let requests: f64 = series.points.iter().map(|p| p.tps * 2.0).sum();
    assert_eq!(requests, 6.0);
}

#[tokio::test]
async fn a_scenario_has_its_own_requests_over_the_runs_span_and_vus() {
    let server = InfluxServer::start().await;
    let client = write_fixture(&server, "scenario").await;

    let checkout = client.timeseries(7, window(-5000, 10_000), None, Some("checkout")).await.unwrap();

    assert_points(
        &checkout.points,
        &[
            point(0, 1.0, 30.0, 30.0, 100.0, 3.0),
            point(1000, 0.0, 0.0, 0.0, 0.0, 5.0),
            point(2000, 0.0, 0.0, 0.0, 0.0, 5.0),
            point(3000, 1.0, 50.0, 50.0, 100.0, 6.0),
        ],
    );
    let browse = client.timeseries(7, window(-5000, 10_000), None, Some("browse")).await.unwrap();
    let tps: Vec<f64> = browse.points.iter().map(|p| p.tps).collect();
    assert_eq!(tps, [2.0, 1.0, 0.0, 1.0]);
}

#[tokio::test]
async fn the_window_bounds_the_series_and_no_samples_is_empty() {
    let server = InfluxServer::start().await;
    let client = write_fixture(&server, "bounds").await;

    let seconds_1_to_2 = client.timeseries(7, window(1000, 2999), None, None).await.unwrap();
    let times: Vec<_> = seconds_1_to_2.points.iter().map(|p| p.time).collect();
    assert_eq!(times, [at(1000), at(2000)]);

    assert!(client.timeseries(9, window(-5000, 10_000), None, None).await.unwrap().points.is_empty());
    let nope = client.timeseries(7, window(-5000, 10_000), None, Some("x' OR '1'='1")).await.unwrap();
    assert_eq!(nope.points.len(), 4, "only VUs: a quote in a scenario name is data, not InfluxQL");
    assert!(nope.points.iter().all(|p| p.tps == 0.0));
    // Before k6 first wrote, the database may not exist: nothing to show, not an error.
    let never = server.client("never_created");
    assert!(never.timeseries(7, window(0, 1000), None, None).await.unwrap().points.is_empty());
}
