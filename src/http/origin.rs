//! Which browser pages may talk to `/graphql`.
//!
//! - **Origin**: a websocket is not subject to CORS, so any page the user opens could open one
//!   to this server and, under `AUTH_MODE=none`, run mutations. A request that carries an
//!   `Origin` (browsers send it; other clients do not) is served only when that origin is the
//!   server's own (its host and port are the request's `Host`) or is listed in
//!   `ALLOWED_ORIGINS`. The rule holds for every `/graphql` request, in both auth modes: one
//!   rule is easier to trust than two, the websocket check already needs it, and it backs the
//!   CSRF guard up should a CORS layer ever be added.
//! - **Host** (only under `AUTH_MODE=none`, where a request needs no secret): a page on a
//!   domain that the attacker re-points to 127.0.0.1 (DNS rebinding) is same-origin with this
//!   server as far as the browser knows, but its requests carry the attacker's name in
//!   `Host`. So `Host` must be an IP literal, `localhost`, or a name in `ALLOWED_HOSTS`.
//!   Under tokens the page would still lack the token, which no browser sends by itself.
//!
//! `/health` and `/ready` are not guarded: they reveal nothing.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header, uri::Authority},
    middleware::Next,
    response::Response,
};

use super::{HttpState, error_response};
use crate::{
    access::AuthMode,
    config::{AllowedHosts, AllowedOrigins, ConnectionSettings, Origin},
};

/// `extensions.code` of a request refused for its `Origin`.
pub const FORBIDDEN_ORIGIN: &str = "FORBIDDEN_ORIGIN";
/// `extensions.code` of a request refused for its `Host` under `AUTH_MODE=none`.
pub const FORBIDDEN_HOST: &str = "FORBIDDEN_HOST";

/// Refuses requests whose `Host` or `Origin` the rules above do not allow.
pub async fn guard(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let settings = &state.app.settings;
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if settings.security.auth_mode == AuthMode::None
        && let Some(host) = host
        && !host_allowed(host, &settings.connections.allowed_hosts)
    {
        return error_response(
            StatusCode::FORBIDDEN,
            &format!(
                "Host `{}` is not this server's: under AUTH_MODE=none only IP addresses, localhost \
                 and the names in ALLOWED_HOSTS are answered",
                truncated(host)
            ),
            FORBIDDEN_HOST,
        );
    }
    if request.uri().path() == "/graphql"
        && let Err(origin) = check_origin(headers, &settings.connections)
    {
        return error_response(
            StatusCode::FORBIDDEN,
            &format!(
                "pages from `{}` may not use this server: only its own origin and those in \
                 ALLOWED_ORIGINS may",
                truncated(origin)
            ),
            FORBIDDEN_ORIGIN,
        );
    }
    next.run(request).await
}

/// Ok when the request has no `Origin`, its own, or an allowed one; else the refused value.
fn check_origin<'h>(headers: &'h HeaderMap, settings: &ConnectionSettings) -> Result<(), &'h str> {
    let Some(value) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("(not text)");
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match Origin::parse(text) {
        Some(origin) if origin_allowed(&origin, host, &settings.allowed_origins) => Ok(()),
        // `null` (sandboxed frames, files) and anything unparsable only pass a `*`.
        None if settings.allowed_origins == AllowedOrigins::Any => Ok(()),
        _ => Err(text),
    }
}

/// Whether a page from `origin` may send this request, whose `Host` is `host`.
pub fn origin_allowed(origin: &Origin, host: Option<&str>, allowed: &AllowedOrigins) -> bool {
    let same = host.is_some_and(|host| same_origin(origin, host));
    same || match allowed {
        AllowedOrigins::Any => true,
        AllowedOrigins::Listed(origins) => origins.contains(origin),
    }
}

/// The origin's host and port are the request's `Host` (a `Host` without a port is on the
/// default port of the scheme the page was loaded with).
fn same_origin(origin: &Origin, host: &str) -> bool {
    let Ok(authority) = host.parse::<Authority>() else { return false };
    let port = authority.port_u16().unwrap_or(if origin.scheme == "https" { 443 } else { 80 });
    authority.host().eq_ignore_ascii_case(&origin.host) && port == origin.port
}

/// An IP literal, `localhost`, or a name in `ALLOWED_HOSTS`; the port does not matter.
pub fn host_allowed(host: &str, allowed: &AllowedHosts) -> bool {
    let Ok(authority) = host.parse::<Authority>() else { return false };
    let name = authority.host();
    let literal = name.parse::<std::net::Ipv4Addr>().is_ok()
        || name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok());
    literal || name.trim_end_matches('.').eq_ignore_ascii_case("localhost") || allowed.allows(name)
}

/// A header value quoted back to its sender, cut short.
fn truncated(value: &str) -> &str {
    let mut end = value.len().min(100);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Origin {
        Origin::parse(text).unwrap()
    }

    #[test]
    fn a_page_of_the_same_host_and_port_is_same_origin() {
        let none = AllowedOrigins::Listed(Vec::new());
        assert!(origin_allowed(&origin("http://127.0.0.1:8000"), Some("127.0.0.1:8000"), &none));
        assert!(origin_allowed(&origin("https://MV.example.com"), Some("mv.example.com"), &none));
        assert!(origin_allowed(&origin("https://mv.example.com"), Some("mv.example.com:443"), &none));
        assert!(origin_allowed(&origin("http://[::1]:8000"), Some("[::1]:8000"), &none));

        assert!(!origin_allowed(&origin("http://127.0.0.1:8001"), Some("127.0.0.1:8000"), &none));
        assert!(!origin_allowed(&origin("https://mv.example.com"), Some("mv.example.com:80"), &none));
        assert!(!origin_allowed(&origin("http://evil.example"), Some("127.0.0.1:8000"), &none));
        assert!(!origin_allowed(&origin("http://127.0.0.1:8000"), None, &none));
    }

    #[test]
    fn listed_origins_and_a_star_let_foreign_pages_in() {
        let listed = AllowedOrigins::Listed(vec![origin("https://grafana.example.com")]);
        assert!(origin_allowed(&origin("https://grafana.example.com:443"), Some("mv:8000"), &listed));
        assert!(!origin_allowed(&origin("http://grafana.example.com"), Some("mv:8000"), &listed));
        assert!(origin_allowed(&origin("http://evil.example"), Some("mv:8000"), &AllowedOrigins::Any));
        assert!(Origin::parse("null").is_none());
    }

    #[test]
    fn under_no_auth_only_addresses_localhost_and_listed_names_are_answered() {
        let none = AllowedHosts::Listed(Vec::new());
        for good in ["127.0.0.1:8000", "10.1.2.3", "[::1]:8000", "localhost:8000", "LOCALHOST", "localhost."]
        {
            assert!(host_allowed(good, &none), "{good}");
        }
        for bad in
            ["evil.example", "evil.example:8000", "127.0.0.1.nip.io", "localhost.evil.example", "", "a b"]
        {
            assert!(!host_allowed(bad, &none), "{bad}");
        }
        let listed = AllowedHosts::Listed(vec!["mv.lan".into()]);
        assert!(host_allowed("MV.lan:8000", &listed));
        assert!(host_allowed("evil.example", &AllowedHosts::Any));
    }
}
