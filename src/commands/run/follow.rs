//! Following a launched run to its end: its status from polling `testHistory` every
//! [`POLL_EVERY`] (the source of truth, enough on its own), live figures from the websocket
//! while it lasts (from the run's time series in the polls once it is gone), all bounded by a
//! deadline and cut short by Ctrl-C or SIGTERM.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{sync::mpsc, time::Instant};

use super::{
    client::{ClientError, ServerClient},
    progress::{LiveFigures, Progress},
    report::{RUN_FIELDS, Run},
    socket::{self, SocketEvent},
};
use crate::tls::TrustedRoots;

/// How often the run's status is read.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
/// How often the same trouble (server unreachable) is noted again.
const NOTE_AGAIN_AFTER: Duration = Duration::from_secs(30);
/// How long a cancel may take before `run` gives up on it.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(20);

/// How following a run ended.
#[derive(Debug)]
pub enum Ending {
    /// The run ended and its results are read: the server's answer (the `RUN_FIELDS` of the run).
    Ended(Value),
    /// The run ended, but its results were still pending at the deadline.
    EndedWithoutResults(Value),
    /// The deadline came first.
    TimedOut,
    /// Ctrl-C or SIGTERM (which).
    Interrupted(&'static str),
    /// The server answered for good that it will not tell (token revoked, run deleted).
    Refused(ClientError),
}

/// Ctrl-C and SIGTERM, as they come (CI systems send SIGTERM, or SIGINT, to cancel a job).
pub struct Interrupts(mpsc::UnboundedReceiver<&'static str>);

impl Interrupts {
    /// Starts listening: from now on the signals no longer end the process by themselves.
    pub fn listen() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            loop {
                let which = tokio::select! {
                    result = tokio::signal::ctrl_c() => match result {
                        Ok(()) => "Ctrl-C",
                        Err(_) => return,
                    },
                    Some(()) = async {
                        match terminate.as_mut() {
                            Some(signal) => signal.recv().await,
                            None => std::future::pending().await,
                        }
                    } => "SIGTERM",
                };
                if sender.send(which).is_err() {
                    return;
                }
            }
        });
        Self(receiver)
    }

    /// The next interrupt.
    pub async fn next(&mut self) -> &'static str {
        match self.0.recv().await {
            Some(which) => which,
            // The listener ends only with the runtime.
            None => std::future::pending().await,
        }
    }
}

/// What one poll read: the run, and figures from its time series when asked for.
#[derive(Debug)]
struct Polled {
    answer: Value,
    run: Run,
    figures: Option<LiveFigures>,
}

/// Follows run `run_id` until it ends, `deadline` passes or an interrupt comes.
pub async fn follow(
    client: &ServerClient,
    roots: &TrustedRoots,
    run: &Run,
    progress: &mut Progress,
    deadline: Instant,
    interrupts: &mut Interrupts,
) -> Ending {
    let (socket_events, mut from_socket) = mpsc::channel(16);
    let socket = tokio::spawn(socket::follow_metrics(
        client.endpoint().clone(),
        client.token().to_owned(),
        roots.clone(),
        run.id.clone(),
        socket_events,
    ));
    // The time series is read in the polls only once the socket has failed.
    let want_series = Arc::new(AtomicBool::new(false));
    let poll_now = Arc::new(tokio::sync::Notify::new());
    let (poll_results, mut from_polls) = mpsc::channel(1);
    let step = series_step(run.planned_length());
    let poller = tokio::spawn(poll(
        client.clone(),
        run.id.clone(),
        step,
        want_series.clone(),
        poll_now.clone(),
        poll_results,
    ));

    let ending =
        watch(progress, deadline, interrupts, &mut from_socket, &mut from_polls, &want_series, &poll_now)
            .await;
    socket.abort();
    poller.abort();
    ending
}

async fn watch(
    progress: &mut Progress,
    deadline: Instant,
    interrupts: &mut Interrupts,
    from_socket: &mut mpsc::Receiver<SocketEvent>,
    from_polls: &mut mpsc::Receiver<Result<Polled, ClientError>>,
    want_series: &AtomicBool,
    poll_now: &tokio::sync::Notify,
) -> Ending {
    let mut socket_open = true;
    let mut noted_unreachable: Option<Instant> = None;
    let mut noted_pending = false;
    let mut noted_unavailable = false;
    let mut ended_without_results: Option<Value> = None;
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            polled = from_polls.recv() => match polled {
                Some(Ok(polled)) => {
                    noted_unreachable = None;
                    progress.status(&polled.run.status);
                    if let Some(figures) = polled.figures {
                        progress.figures(figures, None);
                    }
                    if polled.run.is_active() {
                        continue;
                    }
                    if !polled.run.results_pending {
                        return Ending::Ended(polled.answer);
                    }
                    if !noted_pending {
                        noted_pending = true;
                        progress.note(&format!(
                            "run {} ended; its results are not read yet ({}): waiting for them",
                            polled.run.id,
                            polled.run.failure_reason.as_deref().unwrap_or("InfluxDB unavailable"),
                        ));
                    }
                    ended_without_results = Some(polled.answer);
                }
                Some(Err(error)) if error.is_transient() => {
                    if noted_unreachable.is_none_or(|at| at.elapsed() >= NOTE_AGAIN_AFTER) {
                        noted_unreachable = Some(Instant::now());
                        progress.note(&format!("{error}; retrying every {} s", POLL_EVERY.as_secs()));
                    }
                }
                Some(Err(error)) => return Ending::Refused(error),
                // The poller stops only when this loop does; a panic in it lands here.
                None => return Ending::Refused(ClientError::Refused {
                    code: "INTERNAL".into(),
                    message: "the status poller stopped".into(),
                }),
            },
            event = from_socket.recv(), if socket_open => match event {
                Some(SocketEvent::Snapshot(snapshot)) => {
                    noted_unavailable = false;
                    let elapsed = Duration::try_from_secs_f64(snapshot.elapsed_seconds).ok();
                    progress.figures(LiveFigures::from(&snapshot), elapsed);
                    if snapshot.is_final {
                        poll_now.notify_one();
                    }
                }
                Some(SocketEvent::Unavailable(why)) => {
                    if !noted_unavailable {
                        noted_unavailable = true;
                        progress.note(&format!("live figures unavailable: {why}"));
                    }
                }
                Some(SocketEvent::Ended(None)) => socket_open = false,
                Some(SocketEvent::Ended(Some(why))) => {
                    socket_open = false;
                    fall_back_to_polls(progress, want_series, &why);
                }
                None => {
                    socket_open = false;
                    fall_back_to_polls(progress, want_series, "it stopped");
                }
            },
            _ = clock.tick() => progress.tick(),
            () = tokio::time::sleep_until(deadline) => {
                return match ended_without_results {
                    Some(answer) => Ending::EndedWithoutResults(answer),
                    None => Ending::TimedOut,
                };
            }
            which = interrupts.next() => return Ending::Interrupted(which),
        }
    }
}

/// The socket failed before the run's end: the polls read the time series from now on.
fn fall_back_to_polls(progress: &mut Progress, want_series: &AtomicBool, why: &str) {
    want_series.store(true, Ordering::Relaxed);
    progress.note(&format!(
        "live figures: the websocket failed ({why}); reading them every {} s instead",
        POLL_EVERY.as_secs()
    ));
}

/// Reads the run every [`POLL_EVERY`] (or at once when told), sending each answer.
async fn poll(
    client: ServerClient,
    run_id: String,
    step: u64,
    want_series: Arc<AtomicBool>,
    poll_now: Arc<tokio::sync::Notify>,
    results: mpsc::Sender<Result<Polled, ClientError>>,
) {
    let document = format!(
        "query($id: ID!, $series: Boolean!, $step: Int) {{ testHistory(id: $id) {{ {RUN_FIELDS}
            timeseries(stepSeconds: $step) @include(if: $series) {{ tps p95ResponseTime errorRate vus }} }} }}"
    );
    loop {
        let series = want_series.load(Ordering::Relaxed);
        let variables = json!({ "id": run_id, "series": series, "step": step });
        let result = client
            .answer(&document, variables)
            .await
            .and_then(|answer| read_poll(&run_id, answer.data, answer.errors));
        if results.send(result).await.is_err() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_EVERY) => {}
            () = poll_now.notified() => {}
        }
    }
}

fn read_poll(run_id: &str, data: Value, errors: Vec<ClientError>) -> Result<Polled, ClientError> {
    let mut answer = data.get("testHistory").cloned().unwrap_or(Value::Null);
    if answer.is_null() {
        // Errors beside a run (InfluxDB down for the time series) do not count; without one they do.
        return Err(errors.into_iter().next().unwrap_or_else(|| ClientError::Refused {
            code: "NOT_FOUND".into(),
            message: format!("run {run_id} no longer exists"),
        }));
    }
    let figures = answer.as_object_mut().and_then(|run| run.remove("timeseries")).and_then(|series| {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Point {
            tps: f64,
            p95_response_time: f64,
            error_rate: f64,
            vus: f64,
        }
        let points: Vec<Point> = serde_json::from_value(series).ok()?;
        // The last interval is still filling: the one before it is the latest whole one.
        let point = points.iter().rev().nth(1).or(points.last())?;
        Some(LiveFigures {
            tps: point.tps,
            p95_ms: point.p95_response_time,
            error_rate: point.error_rate,
            vus: point.vus,
            total_requests: None,
            lagging: false,
        })
    });
    let run: Run = serde_json::from_value(answer.clone()).map_err(|err| ClientError::Refused {
        code: "UNEXPECTED_ANSWER".into(),
        message: format!(
            "the server's run does not have the expected shape ({err}); is it the same version?"
        ),
    })?;
    Ok(Polled { answer, run, figures })
}

/// The time series' step: at least 2 s, and at most ~200 points for the whole run.
fn series_step(planned: Option<Duration>) -> u64 {
    planned.map_or(2, |planned| (planned.as_secs() / 200).max(2))
}

/// Asks the server to cancel run `run_id` and returns the run as the cancel left it, or why
/// not: no answer within [`CANCEL_TIMEOUT`], a refusal, or a second interrupt first.
pub async fn cancel(
    client: &ServerClient,
    run_id: &str,
    interrupts: &mut Interrupts,
) -> Result<Value, String> {
    let document = format!("mutation($id: ID!) {{ cancelLoadTest(id: $id) {{ {RUN_FIELDS} }} }}");
    let cancelling = client.query::<Value>(&document, json!({ "id": run_id }));
    tokio::select! {
        result = cancelling => match result {
            Ok(mut data) => Ok(data["cancelLoadTest"].take()),
            // The run ended as the cancel went out: it is judged as it ended.
            Err(ClientError::Refused { code, .. }) if code == "CONFLICT" => {
                let document = format!("query($id: ID!) {{ testHistory(id: $id) {{ {RUN_FIELDS} }} }}");
                let mut data = client.query::<Value>(&document, json!({ "id": run_id })).await.map_err(|e| e.to_string())?;
                Ok(data["testHistory"].take())
            }
            Err(error) => Err(error.to_string()),
        },
        () = tokio::time::sleep(CANCEL_TIMEOUT) => Err(format!("no answer within {} s", CANCEL_TIMEOUT.as_secs())),
        which = interrupts.next() => Err(format!("{which} again: not waiting for the answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_step_keeps_a_long_run_to_about_200_points() {
        assert_eq!(series_step(None), 2);
        assert_eq!(series_step(Some(Duration::from_secs(30))), 2);
        assert_eq!(series_step(Some(Duration::from_secs(3600))), 18);
    }

    #[test]
    fn a_poll_takes_the_latest_whole_interval_and_ignores_errors_beside_the_run() {
        let data = json!({ "testHistory": {
            "id": "5", "title": "t", "status": "RUNNING", "verdict": "UNKNOWN", "failureReason": null,
            "targetTps": null, "resultsPending": false, "missingSamples": null,
            "project": {"id": "1", "title": "p"}, "summary": null, "scenarios": [],
            "timeseries": [
                {"tps": 10.0, "p95ResponseTime": 3.0, "errorRate": 0.0, "vus": 2.0},
                {"tps": 4.0, "p95ResponseTime": 1.0, "errorRate": 0.0, "vus": 2.0}
            ] } });
        let beside = ClientError::Refused { code: "UPSTREAM_UNAVAILABLE".into(), message: "InfluxDB".into() };
        let polled = read_poll("5", data, vec![beside]).unwrap();
        assert_eq!(polled.run.status, "RUNNING");
        assert_eq!(polled.figures.unwrap().tps, 10.0);
        assert!(polled.answer.get("timeseries").is_none(), "the series is not part of the run's document");

        let gone = read_poll("5", json!({ "testHistory": null }), Vec::new()).unwrap_err();
        assert_eq!(gone.to_string(), "run 5 no longer exists (NOT_FOUND)");
    }
}
