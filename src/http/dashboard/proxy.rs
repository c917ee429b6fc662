//! The proxy to k6's dashboard at a loopback address: its pages and files, its redirects moved
//! under the prefix, and its event streams, each closed once k6's test is over.

use std::{net::SocketAddr, sync::LazyLock, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};

use super::refusal;
use crate::k6::runner::{MAX_VIEWERS_PER_RUN, RunDashboards};

/// How long k6 gets to answer a request that is not an event stream, body included.
const UPSTREAM_LIMIT: Duration = Duration::from_secs(15);

/// k6's page loads its scripts, styles and event stream from where it is served, and nothing else.
const DASHBOARD_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The client that talks to k6's dashboards: loopback only, no redirects followed (they are
/// passed on, moved under the prefix), and no overall time limit (event streams last the run).
static UPSTREAM: LazyLock<reqwest::Client> = LazyLock::new(|| {
    crate::tls::client_builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("a plain HTTP client builds")
});

/// Passes GET `/{path}?{query}` to the dashboard at `address`, and its answer back.
pub(super) async fn proxy(
    run: &RunDashboards,
    address: SocketAddr,
    prefix: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let mut url = reqwest::Url::parse(&format!("http://{address}/")).expect("a socket address makes a URL");
    url.set_path(path);
    url.set_query(query);
    let mut request = UPSTREAM.get(url);
    // Only what k6 uses; never the caller's token.
    for name in [header::ACCEPT, header::HeaderName::from_static("last-event-id")] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value.clone());
        }
    }
    let upstream = match in_time(prefix, request.send()).await {
        Ok(upstream) => upstream,
        Err(answer) => return answer,
    };
    let status = upstream.status();
    let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let location = upstream
        .headers()
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|location| moved_location(location, prefix));
    let is_event_stream = content_type
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    let mut response = if is_event_stream {
        let viewer = match run.viewers.clone().try_acquire_owned() {
            Ok(viewer) => viewer,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "this run's dashboards already have {MAX_VIEWERS_PER_RUN} viewers; try again later"
                    ),
                );
            }
            Err(tokio::sync::TryAcquireError::Closed) => {
                return refusal(
                    StatusCode::CONFLICT,
                    "the run has just ended: its k6 dashboard closed with it",
                );
            }
        };
        let mut response = Response::new(Body::from_stream(event_stream(upstream, viewer)));
        // Proxies in front of this server (nginx) would otherwise hold the events back.
        response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    } else {
        match in_time(prefix, upstream.bytes()).await {
            Ok(body) => Response::new(Body::from(body)),
            Err(answer) => return answer,
        }
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    if let Some(location) = location.and_then(|location| HeaderValue::from_str(&location).ok()) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DASHBOARD_POLICY));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// k6's events as they come, holding a viewer's place until the stream ends: after k6's `stop`
/// event, when k6 closes it, when the viewer leaves (the body is dropped, and the upstream
/// response with it), or when the server is asked to stop (an open stream would hold its
/// graceful shutdown until the run ends).
fn event_stream(
    upstream: reqwest::Response,
    viewer: tokio::sync::OwnedSemaphorePermit,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    struct Open {
        upstream: reqwest::Response,
        _viewer: tokio::sync::OwnedSemaphorePermit,
        stopping: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        watch: StopWatch,
    }
    let open = Open {
        upstream,
        _viewer: viewer,
        stopping: Box::pin(server_stopping()),
        watch: StopWatch::default(),
    };
    futures_util::stream::unfold(Some(open), |open| async move {
        let mut open = open?;
        let chunk = tokio::select! {
            chunk = open.upstream.chunk() => chunk,
            () = &mut open.stopping => return None,
        };
        match chunk {
            Ok(Some(bytes)) => match open.watch.feed(&bytes) {
                // The last of it: this stream's end lets k6 exit.
                Some(end) => Some((Ok(bytes.slice(..end)), None)),
                None => Some((Ok(bytes), Some(open))),
            },
            Ok(None) => None,
            Err(error) => {
                tracing::debug!(%error, "k6's event stream broke off");
                None
            }
        }
    })
}

/// Finds, chunk by chunk, the end of the `stop` event in k6's event stream (the blank line after
/// its `event: stop` line; k6 sends it when the test is over, and to late comers with the rest).
#[derive(Debug, Default)]
struct StopWatch {
    /// The start of the current line: as much as a `event: stop` line takes.
    line: Vec<u8>,
    /// The current line is longer than that.
    long: bool,
    /// The current event is `stop`.
    stopping: bool,
}

impl StopWatch {
    const LINE_KEPT: usize = 16;

    /// The offset in `chunk` just past the end of the `stop` event, when it ends there.
    fn feed(&mut self, chunk: &[u8]) -> Option<usize> {
        for (at, &byte) in chunk.iter().enumerate() {
            if byte != b'\n' {
                if self.line.len() < Self::LINE_KEPT {
                    self.line.push(byte);
                } else {
                    self.long = true;
                }
                continue;
            }
            let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
            if !self.long {
                if line.is_empty() && self.stopping {
                    return Some(at + 1);
                }
                if line == b"event: stop" || line == b"event:stop" {
                    self.stopping = true;
                }
            }
            self.line.clear();
            self.long = false;
        }
        None
    }
}

/// Resolves when the server is asked to stop (SIGINT, SIGTERM), as `startup` is.
async fn server_stopping() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// k6 redirects by absolute path (`/ui?endpoint=/`): the same place under `prefix`, its
/// `endpoint` (where the page finds its events) included. None for a redirect elsewhere.
fn moved_location(location: &str, prefix: &str) -> Option<String> {
    if !location.starts_with('/') || location.starts_with("//") {
        return None;
    }
    let (path, query) = match location.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (location, None),
    };
    let mut moved = format!("{prefix}{path}");
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| if pair == "endpoint=/" { format!("endpoint={prefix}/") } else { pair.to_owned() })
            .collect();
        moved.push('?');
        moved.push_str(&pairs.join("&"));
    }
    Some(moved)
}

/// What k6 answers within [`UPSTREAM_LIMIT`], or the answer that says it did not.
async fn in_time<T>(
    prefix: &str,
    answer: impl std::future::Future<Output = reqwest::Result<T>>,
) -> Result<T, Response> {
    match tokio::time::timeout(UPSTREAM_LIMIT, answer).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err(unreachable_k6(prefix, &error.to_string())),
        Err(_) => Err(unreachable_k6(prefix, "no answer in time")),
    }
}

/// k6's dashboard did not answer: the run may just be ending.
fn unreachable_k6(prefix: &str, why: &str) -> Response {
    tracing::debug!(prefix, why, "k6's dashboard did not answer");
    refusal(
        StatusCode::BAD_GATEWAY,
        &format!("k6's dashboard ({prefix}/) did not answer ({why}); the run may be ending"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_ends_just_after_the_stop_event_wherever_the_chunks_break() {
        let stream = b"id: 7\ndata: [1,2]\nevent: snapshot\n\nid: 8\ndata: {\"event: stop\":1}\nevent: stop\n\nid: 9\n";
        let end = stream.len() - "id: 9\n".len();
        for split in 0..stream.len() {
            let mut watch = StopWatch::default();
            let found = match watch.feed(&stream[..split]) {
                Some(at) => Some(at),
                None => watch.feed(&stream[split..]).map(|at| split + at),
            };
            assert_eq!(found, Some(end), "split at {split}");
        }
        let mut watch = StopWatch::default();
        assert_eq!(watch.feed(b"event: stopped\n\nevent: snapshot\r\n\r\n"), None);
    }

    #[test]
    fn k6_redirects_stay_under_the_prefix_with_their_events() {
        let prefix = "/runs/3/dashboard/1";
        assert_eq!(
            moved_location("/ui?endpoint=/", prefix).as_deref(),
            Some("/runs/3/dashboard/1/ui?endpoint=/runs/3/dashboard/1/")
        );
        assert_eq!(
            moved_location("/ui/?endpoint=/runs/3/dashboard/1/", prefix).as_deref(),
            Some("/runs/3/dashboard/1/ui/?endpoint=/runs/3/dashboard/1/")
        );
        assert_eq!(moved_location("/ui/", prefix).as_deref(), Some("/runs/3/dashboard/1/ui/"));
        assert_eq!(moved_location("//elsewhere.example/", prefix), None);
        assert_eq!(moved_location("https://elsewhere.example/", prefix), None);
    }
}
