//! `GET /runs/{id}/report`: one run's report as a self-contained HTML page — its verdict and
//! times, the summary table, targets and verdicts, k6's totals, the plan and the exact script,
//! and uPlot charts over time — that renders with no network and can be saved and mailed.
//!
//! Who may read it: the API's callers (`Authorization: Bearer <token>`, any role), or whoever
//! holds a signed link from `TestHistory.reportUrl` (see [`crate::access::report_link`]), which
//! carries the role of the token that asked for it. Below OPERATOR, secret header values read
//! `***`, as in the API. Refusals are short plain texts: 401 without a token (or a bad one), 403
//! for a changed or expired link, 404 for a run that does not exist.

mod data;
mod render;
mod series;

use std::sync::LazyLock;

use super::{HttpState, plain_refusal as refusal};
use crate::{
    access::{AuthError, Principal},
    db::repo,
    error::AppError,
};
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde::Deserialize;

/// The policy of every page this build serves (uPlot's presence is fixed at build time).
static POLICY: LazyLock<render::ContentPolicy> =
    LazyLock::new(|| render::ContentPolicy::new(render::UPLOT.as_ref()));

/// A signed link's query values; none of them means the caller signs in with a token.
#[derive(Debug, Default, Deserialize)]
pub struct LinkQuery {
    role: Option<String>,
    expires: Option<String>,
    sig: Option<String>,
}

/// GET /runs/{id}/report
#[tracing::instrument(skip_all, fields(test_id = %id))]
pub async fn report_page(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    Query(link): Query<LinkQuery>,
    headers: HeaderMap,
) -> Response {
    // Ids are what the API shows; anything else names no run.
    let Ok(id) = id.parse::<i64>() else {
        return refusal(StatusCode::NOT_FOUND, &format!("there is no run {id}"));
    };
    let reader = match reader(&state, id, &link, &headers).await {
        Ok(reader) => reader,
        Err(refused) => return refused,
    };
    let db = &state.app.db;
    let run = match repo::runs::get(db, id).await {
        Ok(run) => run,
        Err(AppError::NotFound { .. }) => {
            return refusal(StatusCode::NOT_FOUND, &format!("there is no run {id}"));
        }
        Err(error) => return failed(&error),
    };
    let data = match data::load(db, state.app.lifecycle.influx(), run, &reader, Utc::now()).await {
        Ok(data) => data,
        Err(AppError::NotFound { .. }) => {
            return refusal(StatusCode::NOT_FOUND, &format!("there is no run {id}"));
        }
        Err(error) => return failed(&error),
    };
    let html = render::page(&data, render::UPLOT.as_ref(), &POLICY);
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&POLICY.header()).expect("hashes are header-safe"),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        // It may show secrets to an operator, and a link is a credential: keep no shared copies.
        (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
    ];
    (headers, html).into_response()
}

/// Who is reading: the signed link's role when the query has any of its values, else the
/// caller behind the `Authorization` header.
async fn reader(
    state: &HttpState,
    id: i64,
    link: &LinkQuery,
    headers: &HeaderMap,
) -> Result<Principal, Response> {
    if link.role.is_some() || link.expires.is_some() || link.sig.is_some() {
        let values = (link.role.as_deref(), link.expires.as_deref(), link.sig.as_deref());
        return match state.app.settings.report.verify(&state.app.db, id, values, Utc::now()).await {
            Ok(Ok(role)) => Ok(Principal { token_id: None, name: "signed report link".into(), role }),
            Ok(Err(refused)) => Err(refusal(StatusCode::FORBIDDEN, &refused.to_string())),
            Err(error) => Err(failed(&error)),
        };
    }
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.app.auth.authenticate(authorization).await.map_err(|error| {
        if error == AuthError::Unavailable {
            return refusal(StatusCode::SERVICE_UNAVAILABLE, &error.to_string());
        }
        let mut response = refusal(
            StatusCode::UNAUTHORIZED,
            &format!("{error}, or open a signed link (TestHistory.reportUrl)"),
        );
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    })
}

/// An internal failure: the cause is logged, the reader gets a generic line.
fn failed(error: &AppError) -> Response {
    tracing::error!(error = ?error, "the report page could not be made");
    refusal(StatusCode::INTERNAL_SERVER_ERROR, "the report could not be made; the server's log says why")
}
