//! k6's own web dashboard of a live local run, proxied from the loopback port its k6 instance
//! serves it on (`/runs/{id}/dashboard/…`), and the HTML report k6 exported when the run ended
//! (`/runs/{id}/k6-report/{instance}`).
//!
//! - `/runs/{id}/dashboard/`: a run of one instance redirects to it; a split run lists its
//!   instances, each with a dashboard of its own share of the load.
//! - `/runs/{id}/dashboard/{instance}/` redirects to `…/{instance}/ui/?endpoint=/runs/{id}/dashboard/{instance}/`.
//!   k6's page loads its files by relative URLs and opens its event stream at `<endpoint>events`,
//!   so `endpoint` is all that places it under the prefix; k6's own redirects are moved there too.
//! - `/runs/{id}/dashboard/{instance}/{path}` is k6's `/{path}`. Event streams are passed on as
//!   k6 writes them, at most [`MAX_VIEWERS_PER_RUN`] per run; each ends when its viewer leaves
//!   (its upstream connection goes with it), after k6's `stop` event, or when the server is
//!   stopped. k6 exits only once every stream to its dashboard has closed, and k6's page never
//!   closes its own, so the proxy closes each one when the test is over.
//!
//! Who may look: the API's callers (`Authorization: Bearer <token>`, any role), checked as for
//! `/graphql`. Other refusals are short plain texts: 404 (no such run or instance), 409 (the run
//! is not live on this server, and why), 429 (too many viewers), 502 (k6 did not answer).

use std::{net::SocketAddr, sync::LazyLock, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

use super::{HttpState, authenticate, plain_refusal as refusal};
use crate::{
    db::{entities::test_history, repo},
    domain::{RunnerKind, TestStatus},
    error::AppError,
    k6::runner::local::{MAX_VIEWERS_PER_RUN, RunDashboards, dashboard_url, k6_report_url, report_file},
};

/// How long k6 gets to answer a request that is not an event stream, body included.
const UPSTREAM_LIMIT: Duration = Duration::from_secs(15);

/// k6's page loads its scripts, styles and event stream from where it is served, and nothing else.
const DASHBOARD_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";
/// k6's report is one file: its scripts, styles and data are inline, and it fetches nothing.
const REPORT_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    img-src data:; font-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// The instance list, a page without scripts.
const LIST_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

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

/// What a path under `/runs/{id}/dashboard` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Place<'a> {
    /// `/runs/{id}/dashboard` (no slash).
    Bare,
    /// `/runs/{id}/dashboard/`.
    Overview,
    /// `/runs/{id}/dashboard/{instance}` or `…/{instance}/`.
    Instance(&'a str),
    /// `/runs/{id}/dashboard/{instance}/{path}`: k6's `/{path}`.
    Upstream(&'a str, &'a str),
}

/// The run id and the place of a path the router matched under `/runs/{id}/dashboard`.
fn place(path: &str) -> Option<(&str, Place<'_>)> {
    let (id, rest) = path.strip_prefix("/runs/")?.split_once('/')?;
    let rest = rest.strip_prefix("dashboard")?;
    let place = match rest.strip_prefix('/') {
        None => Place::Bare,
        Some("") => Place::Overview,
        Some(rest) => match rest.split_once('/') {
            None | Some((_, "")) => Place::Instance(rest.trim_end_matches('/')),
            Some((instance, path)) => Place::Upstream(instance, path),
        },
    };
    Some((id, place))
}

/// GET /runs/{id}/dashboard, /runs/{id}/dashboard/ and everything below.
#[tracing::instrument(skip_all, fields(path = %uri.path()))]
pub async fn dashboard(State(state): State<HttpState>, uri: Uri, headers: HeaderMap) -> Response {
    let Some((id_text, place)) = place(uri.path()) else {
        return refusal(StatusCode::NOT_FOUND, "not a dashboard path");
    };
    // Ids are what the API shows; anything else names no run.
    let Ok(id) = id_text.parse::<i64>() else {
        return refusal(StatusCode::NOT_FOUND, &format!("there is no run {id_text}"));
    };
    match admit(&state, id, &uri, &headers).await {
        Admitted::Yes => {}
        Admitted::Refused(refusal) | Admitted::Redirect(refusal) => return refusal,
    }
    let Some(run) = state.app.lifecycle.live_dashboards(id) else {
        return not_live(&state, id).await;
    };
    let (text, path) = match place {
        Place::Bare => return redirect(&dashboard_url(id)),
        Place::Overview if run.addresses.len() == 1 => return redirect(&ui_url(id, 0)),
        Place::Overview => return instance_list(id, run.addresses.len()),
        Place::Instance(text) => (text, None),
        Place::Upstream(text, path) => (text, Some(path)),
    };
    let Some((index, address)) =
        text.parse::<u32>().ok().and_then(|index| Some((index, *run.addresses.get(index as usize)?)))
    else {
        let last = run.addresses.len().saturating_sub(1);
        return refusal(
            StatusCode::NOT_FOUND,
            &format!("run {id} has no k6 instance {text}: its instances are 0 to {last}"),
        );
    };
    match path {
        None => redirect(&ui_url(id, index)),
        Some(path) => {
            proxy(&run, address, &format!("/runs/{id}/dashboard/{index}"), path, uri.query(), &headers).await
        }
    }
}

/// k6's page of instance `index`, told where its events are.
fn ui_url(id: i64, index: u32) -> String {
    format!("/runs/{id}/dashboard/{index}/ui/?endpoint=/runs/{id}/dashboard/{index}/")
}

/// Why run `id` has no live dashboard here.
async fn not_live(state: &HttpState, id: i64) -> Response {
    let run = match repo::runs::get(&state.app.db, id).await {
        Ok(run) => run,
        Err(AppError::NotFound { .. }) => {
            return refusal(StatusCode::NOT_FOUND, &format!("there is no run {id}"));
        }
        Err(error) => return failed(&error),
    };
    let message = if run.runner == RunnerKind::Kubernetes {
        format!(
            "run {id} runs on Kubernetes: k6's web dashboard is served for local runs only \
             (README, \"k6's web dashboard\")"
        )
    } else if !run.status.is_active() {
        format!(
            "run {id} has ended ({}): its k6 dashboard closed with it; k6's HTML reports are listed in \
             TestHistory.k6ReportUrls (instance 0: {})",
            status_name(run.status),
            k6_report_url(id, 0)
        )
    } else if !state.app.settings.k6_web_dashboard {
        "k6's web dashboard is off on this server (K6_WEB_DASHBOARD=false)".to_owned()
    } else if run.status == TestStatus::Pending {
        format!(
            "run {id} is starting: its dashboard opens once every k6 instance is up; try again in a moment"
        )
    } else {
        format!(
            "run {id}'s k6 is not running on this server instance: {}; its dashboard is served only \
             by the instance running its k6",
            owner(&run)
        )
    };
    refusal(StatusCode::CONFLICT, &message)
}

fn owner(run: &test_history::Model) -> String {
    match &run.owner_instance {
        Some(owner) => format!("it runs on instance {owner}, or has just ended"),
        None => "it has just ended".to_owned(),
    }
}

/// The status as the API spells it.
fn status_name(status: TestStatus) -> String {
    format!("{status:?}").to_uppercase()
}

/// A split run's instances, each a link to its dashboard.
fn instance_list(id: i64, count: usize) -> Response {
    let items: String = (0..count as u32)
        .map(|index| format!("<li><a href=\"{}\">instance {index}</a> of {count}</li>\n", ui_url(id, index)))
        .collect();
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Run {id}: k6 dashboards</title></head>\n\
         <body style=\"font-family: sans-serif\"><h1>Run {id}: k6's dashboards</h1>\n\
         <p>The load is split across {count} k6 instances, each with a dashboard of its own share.</p>\n\
         <ul>\n{items}</ul></body></html>\n"
    );
    let mut response = page.into_response();
    set_page_headers(response.headers_mut(), "text/html; charset=utf-8", LIST_POLICY);
    response
}

/// Passes GET `/{path}?{query}` to the dashboard at `address`, and its answer back.
async fn proxy(
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
    let upstream = match tokio::time::timeout(UPSTREAM_LIMIT, request.send()).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(error)) => return unreachable_k6(prefix, &error.to_string()),
        Err(_) => return unreachable_k6(prefix, "no answer in time"),
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
        match tokio::time::timeout(UPSTREAM_LIMIT, upstream.bytes()).await {
            Ok(Ok(body)) => Response::new(Body::from(body)),
            Ok(Err(error)) => return unreachable_k6(prefix, &error.to_string()),
            Err(_) => return unreachable_k6(prefix, "no answer in time"),
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

/// GET /runs/{id}/k6-report/{instance}: the report k6 exported when the run ended.
#[tracing::instrument(skip_all, fields(test_id = %id, instance = %instance))]
pub async fn k6_report(
    State(state): State<HttpState>,
    Path((id, instance)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (Ok(id), Ok(index)) = (id.parse::<i64>(), instance.parse::<u32>()) else {
        return refusal(StatusCode::NOT_FOUND, &format!("there is no report {instance} of run {id}"));
    };
    match admit(&state, id, &uri, &headers).await {
        Admitted::Yes => {}
        Admitted::Refused(refusal) | Admitted::Redirect(refusal) => return refusal,
    }
    let run = match repo::runs::get(&state.app.db, id).await {
        Ok(run) => run,
        Err(AppError::NotFound { .. }) => {
            return refusal(StatusCode::NOT_FOUND, &format!("there is no run {id}"));
        }
        Err(error) => return failed(&error),
    };
    if run.runner == RunnerKind::Kubernetes {
        return refusal(
            StatusCode::NOT_FOUND,
            &format!("run {id} ran on Kubernetes: k6's HTML report is kept for local runs only"),
        );
    }
    if run.status.is_active() {
        return refusal(
            StatusCode::CONFLICT,
            &format!(
                "run {id} is still running: k6 writes its report when the run ends; watch it live at {}",
                dashboard_url(id)
            ),
        );
    }
    if i64::from(index) >= i64::from(run.parallelism) {
        return refusal(
            StatusCode::NOT_FOUND,
            &format!("run {id} had {} k6 instance(s), numbered from 0", run.parallelism),
        );
    }
    let file = report_file(&state.app.settings.k6_script_file_folder, id, index);
    match tokio::fs::read(&file).await {
        Ok(html) => {
            let mut response = html.into_response();
            set_page_headers(response.headers_mut(), "text/html; charset=utf-8", REPORT_POLICY);
            response
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => refusal(
            StatusCode::NOT_FOUND,
            &format!(
                "k6 wrote no report for instance {index} of run {id}: k6 skips a run too short to chart, an \
                 instance that did not end normally writes none, K6_WEB_DASHBOARD=false turns it off, and a \
                 run of another server instance is in that instance's scripts folder"
            ),
        ),
        Err(error) => failed(&AppError::Unexpected(
            anyhow::Error::new(error).context(format!("reading {}", file.display())),
        )),
    }
}

fn set_page_headers(headers: &mut HeaderMap, content_type: &'static str, policy: &'static str) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// k6's dashboard did not answer: the run may just be ending.
fn unreachable_k6(prefix: &str, why: &str) -> Response {
    tracing::debug!(prefix, why, "k6's dashboard did not answer");
    refusal(
        StatusCode::BAD_GATEWAY,
        &format!("k6's dashboard ({prefix}/) did not answer ({why}); the run may be ending"),
    )
}

/// An internal failure: the cause is logged, the caller gets a generic line.
fn failed(error: &AppError) -> Response {
    tracing::error!(error = ?error, "a dashboard request failed");
    refusal(StatusCode::INTERNAL_SERVER_ERROR, "the request failed; the server's log says why")
}

/// Whether a request may see run `id`'s dashboard or k6 reports.
enum Admitted {
    Yes,
    Refused(Response),
    /// A signed link was followed: the same path without it, with a cookie that carries it.
    Redirect(Response),
}

/// The cookie that carries a followed signed link for one run's pages.
fn link_cookie(id: i64) -> String {
    format!("mv_run_{id}")
}

/// Browsers send no `Authorization` header on page loads or event streams, so besides the
/// API's token a run's signed link (`TestHistory.reportUrl` / `dashboardUrl`: role, expiry,
/// signature) admits them: followed once, it is kept in an HttpOnly cookie limited to the
/// run's paths until it expires.
async fn admit(state: &HttpState, id: i64, uri: &Uri, headers: &HeaderMap) -> Admitted {
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let value = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let (Some(role), Some(expires), Some(sig)) = (value("role"), value("expires"), value("sig")) {
        let verified = state
            .app
            .settings
            .report
            .verify(&state.app.db, id, (Some(&role), Some(&expires), Some(&sig)), chrono::Utc::now())
            .await;
        return match verified {
            Ok(Ok(_)) => {
                let rest: Vec<String> = query
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "role" | "expires" | "sig"))
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            url::form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>(),
                            url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                        )
                    })
                    .collect();
                let target = if rest.is_empty() {
                    uri.path().to_owned()
                } else {
                    format!("{}?{}", uri.path(), rest.join("&"))
                };
                let max_age = expires.parse::<i64>().unwrap_or(0) - chrono::Utc::now().timestamp();
                let cookie = format!(
                    "{}={role}.{expires}.{sig}; Path=/runs/{id}/; Max-Age={}; HttpOnly; SameSite=Strict",
                    link_cookie(id),
                    max_age.max(0)
                );
                let mut response = redirect(&target);
                if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().insert(header::SET_COOKIE, cookie);
                }
                Admitted::Redirect(response)
            }
            Ok(Err(refused)) => Admitted::Refused(refusal(StatusCode::FORBIDDEN, &refused.to_string())),
            Err(_) => Admitted::Refused(refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the signing key could not be read",
            )),
        };
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == link_cookie(id))
        .map(|(_, value)| value.to_owned());
    if let Some(cookie) = cookie {
        let mut parts = cookie.splitn(3, '.');
        let (role, expires, sig) = (parts.next(), parts.next(), parts.next());
        let verified = state
            .app
            .settings
            .report
            .verify(&state.app.db, id, (role, expires, sig), chrono::Utc::now())
            .await;
        if let Ok(Ok(_)) = verified {
            return Admitted::Yes;
        }
    }
    match authenticate(state, headers).await {
        Ok(_) => Admitted::Yes,
        Err(refusal) => Admitted::Refused(refusal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_run_and_what_of_its_dashboards() {
        assert_eq!(place("/runs/7/dashboard"), Some(("7", Place::Bare)));
        assert_eq!(place("/runs/7/dashboard/"), Some(("7", Place::Overview)));
        assert_eq!(place("/runs/7/dashboard/1"), Some(("7", Place::Instance("1"))));
        assert_eq!(place("/runs/7/dashboard/1/"), Some(("7", Place::Instance("1"))));
        assert_eq!(place("/runs/7/dashboard/1/ui/"), Some(("7", Place::Upstream("1", "ui/"))));
        assert_eq!(place("/runs/7/dashboard/0/events"), Some(("7", Place::Upstream("0", "events"))));
        assert_eq!(place("/runs/7/report"), None);
    }

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
