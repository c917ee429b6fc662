//! Summaries of k6-shaped samples written to a real influxd, with hand-computed figures.

use chrono::DateTime;

use super::*;
use crate::metrics::test_influxd::InfluxServer;

/// A whole second, so the fixture's seconds are InfluxDB's `GROUP BY time(1s)` buckets.
const T0: i64 = 1_700_000_000_000;

/// One k6 request: when (ms after T0), where from, how long it took, whether it failed.
struct Request {
    at: i64,
    scenario: &'static str,
    instance: &'static str,
    duration_ms: f64,
    failed: bool,
}

const fn request(at: i64, scenario: &'static str, duration_ms: f64, failed: bool) -> Request {
    // Two k6 instances, one per scenario, as a distributed run would have.
    let instance = if scenario.len() == 6 { "0" } else { "1" };
    Request { at, scenario, instance, duration_ms, failed }
}

/// Run 7. Per second (all / browse / checkout): 3/2/1, 4/3/1, 3/1/2, 2/1/1.
const RUN_7: [Request; 12] = [
    request(100, "browse", 10.0, false),
    request(200, "checkout", 100.0, false),
    request(400, "browse", 20.0, false),
    request(1100, "browse", 30.0, false),
    request(1200, "checkout", 200.0, true),
    request(1300, "browse", 40.0, true),
    request(1500, "browse", 50.0, false),
    request(2200, "browse", 60.0, false),
    request(2500, "checkout", 300.0, false),
    request(2600, "checkout", 400.0, true),
    request(3100, "checkout", 500.0, false),
    request(3900, "browse", 70.0, true),
];

/// The three samples k6 writes per request, with k6's tags (`url` is a field).
fn request_lines(test_id: &str, request: &Request) -> String {
    let Request { at, scenario, instance, duration_ms, failed } = request;
    let tags = format!(
        "expected_response={},instance_id={instance},method=GET,name=http://api/{scenario},\
         proto=HTTP/1.1,scenario={scenario},status={},testid={test_id}",
        !failed,
        if *failed { 500 } else { 200 },
    );
    let fields = format!("url=\"http://api/{scenario}\"");
    let time = T0 + at;
    format!(
        "http_reqs,{tags} {fields},value=1 {time}\n\
         http_req_duration,{tags} {fields},value={duration_ms} {time}\n\
         http_req_failed,{tags} {fields},value={} {time}\n",
        u8::from(*failed)
    )
}

/// A `vus` gauge sample: run-wide, so no scenario tag; a lone k6 has no instance_id.
fn vus_line(test_id: &str, instance: Option<&str>, at: i64, vus: u32) -> String {
    let instance = instance.map(|id| format!(",instance_id={id}")).unwrap_or_default();
    format!("vus,testid={test_id}{instance} value={vus} {}\n", T0 + at)
}

/// Run 7 (two instances) and run 8 (one k6, no instance_id) in `database`.
async fn write_fixture(server: &InfluxServer, database: &str) -> InfluxClient {
    let client = server.client(database);
    client.create_database().await.unwrap();
    let mut lines: String = RUN_7.iter().map(|request| request_lines("7", request)).collect();
    // Summed per second: 3, 5, 7, 5. Instance 0 reports twice in second 2; its max counts.
    for (at, vus) in [(0, 2), (1000, 3), (2000, 3), (2500, 2), (3000, 1)] {
        lines += &vus_line("7", Some("0"), at, vus);
    }
    for (at, vus) in [(50, 1), (1050, 2), (2050, 4), (3050, 4)] {
        lines += &vus_line("7", Some("1"), at, vus);
    }
    lines += &request_lines("8", &request(500, "browse", 5.0, false));
    lines += &request_lines("8", &request(700, "browse", 15.0, true));
    lines += &vus_line("8", None, 0, 5);
    lines += &vus_line("8", None, 1000, 5);
    server.write(database, &lines).await;
    client
}

fn window(start: i64, end: i64) -> TimeWindow {
    TimeWindow {
        start: DateTime::from_timestamp_millis(T0 + start).unwrap(),
        end: DateTime::from_timestamp_millis(T0 + end).unwrap(),
    }
}

/// Compares every figure, allowing for float rounding in InfluxDB's sums.
#[track_caller]
fn assert_summary(actual: &MetricSummary, expected: &MetricSummary) {
    assert_eq!(actual.total_requests, expected.total_requests, "total_requests");
    assert_eq!(actual.failed_requests, expected.failed_requests, "failed_requests");
    let figures = |summary: &MetricSummary| {
        [
            ("test_duration", summary.test_duration),
            ("max_tps", summary.max_tps),
            ("min_tps", summary.min_tps),
            ("avg_tps", summary.avg_tps),
            ("max_response_time", summary.max_response_time),
            ("min_response_time", summary.min_response_time),
            ("avg_response_time", summary.avg_response_time),
            ("p50_response_time", summary.p50_response_time),
            ("p95_response_time", summary.p95_response_time),
            ("p99_response_time", summary.p99_response_time),
            ("max_error_rate", summary.max_error_rate),
            ("min_error_rate", summary.min_error_rate),
            ("avg_error_rate", summary.avg_error_rate),
            ("max_vus", summary.max_vus),
            ("min_vus", summary.min_vus),
            ("avg_vus", summary.avg_vus),
        ]
    };
    for ((name, actual), (_, expected)) in figures(actual).into_iter().zip(figures(expected)) {
        assert!((actual - expected).abs() < 1e-9, "{name}: got {actual}, expected {expected}");
    }
}

#[tokio::test]
async fn run_wide_summary_of_two_instances_and_two_scenarios() {
    let server = InfluxServer::start().await;
    let client = write_fixture(&server, "run_wide").await;
    let summary = client.summary(7, window(0, 10_000), None).await.unwrap().expect("samples");
    // 12 durations sorted: 10 20 30 40 50 60 70 100 200 300 400 500. k6's way, 0-based:
    // p95 at 0.95 × 11 = 10.45 → 400 + 0.45 × 100; p99 at 10.89 → 400 + 0.89 × 100 (InfluxDB's
    // nearest rank would say 400 and 500); median (60 + 70) / 2.
    let expected = MetricSummary {
        total_requests: 12,
        failed_requests: 4,
        test_duration: 3.8, // 100 ms → 3900 ms
        max_tps: 4.0,
        min_tps: 3.0, // seconds 1 and 2; the partial first (3) and last (2) are not judged
        avg_tps: 12.0 / 3.8,
        max_response_time: 500.0,
        min_response_time: 10.0,
        avg_response_time: 1780.0 / 12.0,
        p50_response_time: 65.0,
        p95_response_time: 445.0,
        p99_response_time: 489.0,
        max_error_rate: 50.0, // second 1: 2 of 4, second 3: 1 of 2
        min_error_rate: 0.0,  // second 0
        avg_error_rate: 4.0 / 12.0 * 100.0,
        max_vus: 7.0,
        min_vus: 3.0,
        avg_vus: 5.0,
    };
    assert_summary(&summary, &expected);
}

#[tokio::test]
async fn scenario_summary_counts_only_its_requests_but_the_runs_vus() {
    let server = InfluxServer::start().await;
    let client = write_fixture(&server, "scenario").await;
    let summary = client.summary(7, window(0, 10_000), Some("browse")).await.unwrap().unwrap();
    // Durations 10 20 30 40 50 60 70: p95 at 0.95 × 6 = 5.7 → 60 + 0.7 × 10; p99 at 5.94.
    let expected = MetricSummary {
        total_requests: 7,
        failed_requests: 2,
        test_duration: 3.8,
        max_tps: 3.0,
        min_tps: 1.0,
        avg_tps: 7.0 / 3.8,
        max_response_time: 70.0,
        min_response_time: 10.0,
        avg_response_time: 40.0,
        p50_response_time: 40.0,
        p95_response_time: 67.0,
        p99_response_time: 69.4,
        max_error_rate: 100.0, // second 3: its only request failed
        min_error_rate: 0.0,
        avg_error_rate: 2.0 / 7.0 * 100.0,
        max_vus: 7.0,
        min_vus: 3.0,
        avg_vus: 5.0,
    };
    assert_summary(&summary, &expected);

    let checkout = client.summary(7, window(0, 10_000), Some("checkout")).await.unwrap().unwrap();
    assert_eq!((checkout.total_requests, checkout.failed_requests), (5, 2));
    assert_eq!(checkout.p50_response_time, 300.0);
}

#[tokio::test]
async fn the_window_bounds_every_figure_inclusively() {
    let server = InfluxServer::start().await;
    let client = write_fixture(&server, "window").await;
    // Seconds 1 and 2 only: durations 30 40 50 60 200 300 400; p95 at 5.7, p99 at 5.94.
    let summary = client.summary(7, window(1000, 2999), None).await.unwrap().unwrap();
    let expected = MetricSummary {
        total_requests: 7,
        failed_requests: 3,
        test_duration: 1.5, // 1100 ms → 2600 ms
        max_tps: 4.0,
        min_tps: 3.0, // only two seconds: both are judged
        avg_tps: 7.0 / 1.5,
        max_response_time: 400.0,
        min_response_time: 30.0,
        avg_response_time: 1080.0 / 7.0,
        p50_response_time: 60.0,
        p95_response_time: 370.0,
        p99_response_time: 394.0,
        max_error_rate: 50.0,
        min_error_rate: 100.0 / 3.0,
        avg_error_rate: 3.0 / 7.0 * 100.0,
        max_vus: 7.0,
        min_vus: 5.0,
        avg_vus: 6.0,
    };
    assert_summary(&summary, &expected);

    // Both ends are included: a window of one instant holds the request made then.
    let instant = client.summary(7, window(100, 100), None).await.unwrap().unwrap();
    assert_eq!((instant.total_requests, instant.test_duration, instant.avg_tps), (1, 0.0, 1.0));
}

#[tokio::test]
async fn a_single_k6_without_instance_id_and_other_runs_are_kept_apart() {
    let server = InfluxServer::start().await;
    let client = write_fixture(&server, "single").await;
    let summary = client.summary(8, window(0, 10_000), None).await.unwrap().unwrap();
    assert_eq!((summary.total_requests, summary.failed_requests), (2, 1));
    assert_eq!((summary.max_vus, summary.min_vus, summary.avg_vus), (5.0, 5.0, 5.0));
    assert_eq!((summary.max_tps, summary.min_tps, summary.avg_tps), (2.0, 2.0, 2.0));
    assert_eq!(summary.avg_error_rate, 50.0);
}

#[tokio::test]
async fn no_samples_is_none() {
    let server = InfluxServer::start().await;
    let client = write_fixture(&server, "empty").await;
    assert_eq!(client.summary(9, window(0, 10_000), None).await.unwrap(), None);
    assert_eq!(client.summary(7, window(5000, 9000), None).await.unwrap(), None);
    assert_eq!(client.summary(7, window(0, 10_000), Some("nope")).await.unwrap(), None);
    // A database nobody has written to yet, once created, is just empty.
    let fresh = server.client("fresh");
    fresh.create_database().await.unwrap();
    assert_eq!(fresh.summary(7, window(0, 10_000), None).await.unwrap(), None);
}

#[tokio::test]
async fn a_quote_in_a_scenario_name_is_data_not_influxql() {
    let server = InfluxServer::start().await;
    let client = write_fixture(&server, "injection").await;
    let injection = "x' OR '1'='1";
    assert_eq!(client.summary(7, window(0, 10_000), Some(injection)).await.unwrap(), None);

    // A scenario really named like that matches itself, and only itself.
    let named = Request { at: 300, scenario: "x' OR '1'='1", instance: "0", duration_ms: 9.0, failed: false };
    let line = request_lines("7", &named).replace("x' OR '1'='1", r"x'\ OR\ '1'\='1");
    server.write("injection", &line).await;
    let summary = client.summary(7, window(0, 10_000), Some(injection)).await.unwrap().unwrap();
    assert_eq!((summary.total_requests, summary.max_response_time), (1, 9.0));
}

#[tokio::test]
async fn an_unknown_database_is_a_query_error() {
    let server = InfluxServer::start().await;
    let error = server.client("missing").summary(7, window(0, 1000), None).await.unwrap_err();
    assert!(matches!(&error, InfluxError::Query(message) if message.contains("database not found")));
}

#[test]
fn every_query_is_bounded_and_filtered() {
    let queries = SummaryQueries::new(7, window(0, 1000), Some("x' OR '1'='1"));
    let scenario_filter = r#""testid" = '7' AND "scenario" = 'x\' OR \'1\'=\'1' AND time >= "#;
    for query in [
        &queries.total_requests,
        &queries.failed_requests,
        &queries.requests_per_second,
        &queries.first_request,
        &queries.last_request,
        &queries.response_times,
        &queries.median_response_time,
        &queries.duration_at(3, 10),
        &queries.error_rates,
    ] {
        assert!(query.contains(scenario_filter), "{query}");
    }
    // The VU gauge has no scenario tag; every level of its subqueries is bounded.
    assert!(!queries.vus.contains("scenario"), "{}", queries.vus);
    assert_eq!(queries.vus.matches("time >= '2023-11-14T22:13:20Z'").count(), 3);
}

#[test]
fn throughput_judges_the_active_span_without_its_partial_edges() {
    let at = |second: i64, count: f64| (T0 + second * 1000, count);
    let steady = [at(10, 3.0), at(11, 10.0), at(12, 9.0), at(13, 10.0), at(14, 4.0)];
    let throughput = Throughput::from_buckets(&steady, 36, 4.0);
    assert_eq!(throughput, Throughput { max: 10.0, min: 9.0, avg: 9.0 });

    // A silent second inside the span is a real zero.
    let stalled = [at(10, 3.0), at(11, 10.0), at(13, 10.0), at(14, 4.0)];
    assert_eq!(Throughput::from_buckets(&stalled, 27, 4.0).min, 0.0);

    // One or two seconds: nothing to leave out; under a second counts as one second.
    assert_eq!(
        Throughput::from_buckets(&[at(10, 3.0), at(11, 5.0)], 8, 1.2),
        Throughput { max: 5.0, min: 3.0, avg: 8.0 / 1.2 }
    );
    assert_eq!(Throughput::from_buckets(&[at(10, 4.0)], 4, 0.3), Throughput { max: 4.0, min: 4.0, avg: 4.0 });
    assert_eq!(Throughput::from_buckets(&[], 0, 0.0), Throughput { max: 0.0, min: 0.0, avg: 0.0 });
}

#[test]
fn k6_ranks_interpolate_between_neighbours_like_k6s_trend_sink() {
    assert_eq!(K6Rank::new(0.95, 0), None);
    assert_eq!(K6Rank::new(0.95, 1), Some(K6Rank { lower: 0, upper: 0, fraction: 0.0 }));
    // 21 values: 0.95 × 20 = 19, an exact position.
    assert_eq!(K6Rank::new(0.95, 21), Some(K6Rank { lower: 19, upper: 19, fraction: 0.0 }));
    let rank = K6Rank::new(0.99, 12).unwrap();
    assert_eq!((rank.lower, rank.upper), (10, 11));
    assert!((rank.fraction - 0.89).abs() < 1e-12, "{rank:?}");
    assert!((rank.interpolate(400.0, 500.0) - 489.0).abs() < 1e-9);
}

#[test]
fn influxdbs_nearest_rank_reads_back_the_position_asked_for() {
    // InfluxDB: position = floor(n × q / 100 + 0.5) − 1, with q as parsed from the text.
    let queries = SummaryQueries::new(7, window(0, 1000), None);
    for n in [1_u64, 2, 3, 7, 12, 999, 1_000_003, 987_654_321] {
        let positions = [0, n / 3, n / 2, n * 95 / 100, n * 99 / 100, n - 1];
        for position in positions {
            let statement = queries.duration_at(position, n);
            let q: f64 = statement["SELECT percentile(\"value\", ".len()..]
                .split(')')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(q > 0.0 && q <= 100.0, "{statement}");
            let read = (n as f64 * q / 100.0 + 0.5).floor() as u64 - 1;
            assert_eq!(read, position, "n {n}, {statement}");
        }
    }
}
