//! One attempt against real receivers on loopback: what is sent, and what each kind of answer
//! (or none) makes of the delivery.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, StatusCode},
    response::Redirect,
    routing::{get, post},
};

use super::*;
use crate::{
    access::targets::TargetPolicy,
    domain::webhook::{DeliveryStatus, WebhookEvent},
};

const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn delivery(payload: &str) -> webhook_delivery::Model {
    let now = Utc::now();
    webhook_delivery::Model {
        id: 41,
        webhook_id: 7,
        event: WebhookEvent::RunFinished,
        test_history_id: Some(3),
        payload: payload.to_owned(),
        status: DeliveryStatus::Pending,
        attempts: 1,
        next_attempt_at: now,
        claimed_by: Some("me".into()),
        claim_expires_at: Some(now),
        last_status_code: None,
        last_error: None,
        created_at: now,
        delivered_at: None,
    }
}

fn hook(url: &str) -> webhook::Model {
    let now = Utc::now();
    webhook::Model {
        id: 7,
        project_id: 1,
        url: url.to_owned(),
        events: "RUN_FINISHED".into(),
        description: None,
        secret: SECRET.into(),
        enabled: true,
        created_at: now,
        updated_at: now,
    }
}

fn courier(timeout: Duration) -> Courier {
    Courier::new(&ImportPolicy::default(), &TrustedRoots::default(), timeout)
}

async fn serve(router: Router, address: &str) -> String {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[test]
fn the_back_off_quadruples_from_the_first_wait_up_to_an_hour() {
    let second = Duration::from_secs(1);
    let waits: Vec<u64> = (1..=7).map(|n| retry_delay(second, n).as_secs()).collect();
    assert_eq!(waits, [1, 4, 16, 64, 256, 1024, 3600]);
    assert_eq!(retry_delay(second, 40), WebhookSettings::MAX_RETRY_DELAY);
    assert_eq!(retry_delay(Duration::from_millis(200), 2), Duration::from_millis(800));
}

#[test]
fn an_answer_delivers_retries_or_fails_by_status_and_attempts_left() {
    let mut settings = WebhookSettings::default();
    settings.max_attempts = 3;
    let answered = |status| Attempt::Answered { status, start_of_answer: "busy".into() };
    assert!(matches!(judge(answered(204), 1, &settings), AttemptRecord::Delivered { status_code: 204, .. }));
    let before = Utc::now();
    match judge(answered(503), 2, &settings) {
        AttemptRecord::Retry { status_code: Some(503), error, at } => {
            assert_eq!(error, "HTTP 503: busy");
            let wait = (at - before).num_milliseconds();
            assert!((4000..4500).contains(&wait), "the second failure waits 4 s, got {wait} ms");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        judge(Attempt::NoAnswer { error: "no answer in time".into() }, 3, &settings),
        AttemptRecord::Failed { status_code: None, error: "no answer in time".into() }
    );
}

#[tokio::test]
async fn an_attempt_posts_the_body_signed_with_the_event_and_delivery_headers() {
    let seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let keep = seen.clone();
    let router = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| async move {
            keep.lock().unwrap().push((headers, body));
            StatusCode::NO_CONTENT
        }),
    );
    let base = serve(router, "127.0.0.1:0").await;
    let body = r#"{"event":"RUN_FINISHED","text":"done"}"#;

    let attempt =
        courier(Duration::from_secs(5)).attempt(&delivery(body), &hook(&format!("{base}/hook"))).await;

    assert_eq!(attempt, Attempt::Answered { status: 204, start_of_answer: String::new() });
    let seen = seen.lock().unwrap();
    let (headers, received) = &seen[0];
    assert_eq!(received.as_ref(), body.as_bytes());
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("x-metricvault-event"), "RUN_FINISHED");
    assert_eq!(header("x-metricvault-delivery"), "41");
    let timestamp: i64 = header("x-metricvault-timestamp").parse().unwrap();
    assert!((Utc::now().timestamp() - timestamp).abs() <= 5);
    assert!(signature::verify(SECRET, timestamp, body, &header("x-metricvault-signature")));
}

#[tokio::test]
async fn a_redirect_is_an_answer_to_retry_not_a_place_to_go() {
    let followed = Arc::new(AtomicUsize::new(0));
    let count = followed.clone();
    let router = Router::new().route("/hook", post(|| async { Redirect::temporary("/elsewhere") })).route(
        "/elsewhere",
        post(move || async move {
            count.fetch_add(1, Ordering::SeqCst);
            "here"
        }),
    );
    let base = serve(router, "127.0.0.1:0").await;

    let attempt =
        courier(Duration::from_secs(5)).attempt(&delivery("{}"), &hook(&format!("{base}/hook"))).await;

    assert_eq!(attempt, Attempt::Answered { status: 307, start_of_answer: String::new() });
    assert_eq!(followed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn only_the_start_of_a_long_answer_is_read_and_kept() {
    let router = Router::new()
        .route("/hook", post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops ".repeat(200_000)) }));
    let base = serve(router, "127.0.0.1:0").await;

    let attempt =
        courier(Duration::from_secs(5)).attempt(&delivery("{}"), &hook(&format!("{base}/hook"))).await;

    let Attempt::Answered { status: 500, start_of_answer } = attempt else { panic!("{attempt:?}") };
    assert!(start_of_answer.starts_with("oops oops"));
    assert_eq!(start_of_answer.chars().count(), MAX_ERROR_CHARS + 1, "cut, with an ellipsis");
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_in_time_fails_the_attempt() {
    let router = Router::new().route(
        "/hook",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let base = serve(router, "127.0.0.1:0").await;
    let started = std::time::Instant::now();

    let attempt =
        courier(Duration::from_millis(300)).attempt(&delivery("{}"), &hook(&format!("{base}/hook"))).await;

    assert!(matches!(&attempt, Attempt::NoAnswer { error } if error.starts_with("no answer")), "{attempt:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_host_outside_the_policy_is_never_contacted() {
    let contacted = Arc::new(AtomicUsize::new(0));
    let count = contacted.clone();
    let router = Router::new().route(
        "/hook",
        get(|| async { "no" }).post(move || async move {
            count.fetch_add(1, Ordering::SeqCst);
            "yes"
        }),
    );
    let outside = serve(router, "127.0.0.2:0").await;
    let loopback_one =
        ImportPolicy::from_targets(Some("127.0.0.1".parse().unwrap()), &TargetPolicy::default());
    let guarded = Courier::new(&loopback_one, &TrustedRoots::default(), Duration::from_secs(5));

    let attempt = guarded.attempt(&delivery("{}"), &hook(&format!("{outside}/hook"))).await;

    assert!(
        matches!(&attempt, Attempt::NoAnswer { error } if error.contains("not a host webhooks may be sent to")),
        "{attempt:?}"
    );
    assert_eq!(contacted.load(Ordering::SeqCst), 0);
    // The same receiver is reached when the policy allows it.
    let allowed =
        courier(Duration::from_secs(5)).attempt(&delivery("{}"), &hook(&format!("{outside}/hook"))).await;
    assert_eq!(allowed, Attempt::Answered { status: 200, start_of_answer: "yes".into() });
}

#[tokio::test]
async fn a_network_failure_is_described_without_the_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{closed}/services/T000/B000/very-secret-token");

    let attempt = courier(Duration::from_secs(5)).attempt(&delivery("{}"), &hook(&url)).await;

    let Attempt::NoAnswer { error } = attempt else { panic!("{attempt:?}") };
    assert!(error.starts_with("no answer: "), "{error}");
    assert!(!error.contains("very-secret-token"), "{error}");
}
