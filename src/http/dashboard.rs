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

mod admission;
mod proxy;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

use admission::admit;
use proxy::proxy;

use super::{HttpState, plain_refusal as refusal};
use crate::{
    db::{entities::test_history, repo},
    domain::{RunnerKind, TestStatus},
    error::AppError,
    k6::runner::{dashboard_url, k6_report_url},
};

/// k6's report is one file: its scripts, styles and data are inline, and it fetches nothing.
const REPORT_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    img-src data:; font-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// The instance list, a page without scripts.
const LIST_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

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
    if let Err(answer) = admit(&state, id, &uri, &headers).await {
        return answer;
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
    let run = match stored_run(state, id).await {
        Ok(run) => run,
        Err(refusal) => return refusal,
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

/// Run `id`, or the answer that says why it cannot be read.
async fn stored_run(state: &HttpState, id: i64) -> Result<test_history::Model, Response> {
    match repo::runs::get(&state.app.db, id).await {
        Ok(run) => Ok(run),
        Err(AppError::NotFound { .. }) => {
            Err(refusal(StatusCode::NOT_FOUND, &format!("there is no run {id}")))
        }
        Err(error) => Err(failed(&error)),
    }
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
    if let Err(answer) = admit(&state, id, &uri, &headers).await {
        return answer;
    }
    let run = match stored_run(&state, id).await {
        Ok(run) => run,
        Err(refusal) => return refusal,
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
    let Some(file) = state.app.lifecycle.k6_report_file(&run, index) else {
        return refusal(StatusCode::NOT_FOUND, &format!("run {id}'s runner keeps no k6 report here"));
    };
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

/// An internal failure: the cause is logged, the caller gets a generic line.
fn failed(error: &AppError) -> Response {
    tracing::error!(error = ?error, "a dashboard request failed");
    refusal(StatusCode::INTERNAL_SERVER_ERROR, "the request failed; the server's log says why")
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
}
