//! Who may see a run's dashboard and k6 reports: the API's callers, and browsers that followed
//! the run's signed link.

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::Response,
};

use super::{
    super::{HttpState, authenticate},
    redirect, refusal,
};
use crate::{
    access::{Role, report_link::LinkRefusal},
    error::AppResult,
};

/// The cookie that carries a followed signed link for one run's pages.
fn link_cookie(id: i64) -> String {
    format!("mv_run_{id}")
}

/// Browsers send no `Authorization` header on page loads or event streams, so besides the
/// API's token a run's signed link (`TestHistory.reportUrl` / `dashboardUrl`: role, expiry,
/// signature) admits them: followed once, it is kept in an HttpOnly cookie limited to the
/// run's paths until it expires.
///
/// Whether a request may see run `id`'s dashboard or k6 reports: if not, the answer, a refusal
/// or, when a signed link was followed, a redirect to the same path without it, with a cookie
/// that carries it.
pub(super) async fn admit(
    state: &HttpState,
    id: i64,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let value = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let (Some(role), Some(expires), Some(sig)) = (value("role"), value("expires"), value("sig")) {
        return match verify(state, id, (Some(&role), Some(&expires), Some(&sig))).await {
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
                Err(response)
            }
            Ok(Err(refused)) => Err(refusal(StatusCode::FORBIDDEN, &refused.to_string())),
            Err(_) => Err(refusal(StatusCode::SERVICE_UNAVAILABLE, "the signing key could not be read")),
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
        if let Ok(Ok(_)) = verify(state, id, (role, expires, sig)).await {
            return Ok(());
        }
    }
    authenticate(state, headers).await.map(|_| ())
}

/// The role a signed link's `role`, `expires` and `sig` grant on run `id` now, or why none.
async fn verify(
    state: &HttpState,
    id: i64,
    link: (Option<&str>, Option<&str>, Option<&str>),
) -> AppResult<Result<Role, LinkRefusal>> {
    state.app.settings.report.verify(&state.app.db, id, link, chrono::Utc::now()).await
}
