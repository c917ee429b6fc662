//! The request a scenario sends: its URL (path parameters and query percent-encoded, so the
//! URL is one literal) and its headers, folded as a JS object must hold them.

use std::fmt::Write as _;

use super::super::plan::RequestPlan;

/// The full request URL: base URL, path with parameters substituted, query string.
pub(super) fn request_url(request: &RequestPlan) -> String {
    let mut url = request.base_url.trim_end_matches('/').to_owned();
    let path = expand_path(&request.path_template, &request.path_params);
    if !path.is_empty() && !path.starts_with('/') {
        url.push('/');
    }
    url.push_str(&path);
    for (position, (name, value)) in request.query.iter().enumerate() {
        let separator = if position > 0 || url.contains('?') { '&' } else { '?' };
        let _ = write!(url, "{separator}{}={}", encode_component(name), encode_component(value));
    }
    url
}

/// Substitutes `{name}` placeholders with percent-encoded values. Placeholders
/// without a value stay visible (encoded) so the failing requests point at them.
pub(super) fn expand_path(template: &str, params: &[(String, String)]) -> String {
    let mut path = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|offset| open + offset) else {
            break;
        };
        path.push_str(&encode_path_text(&rest[..open]));
        let name = &rest[open + 1..close];
        match params.iter().find(|(param, _)| param == name) {
            Some((_, value)) => path.push_str(&encode_component(value)),
            None => path.push_str(&encode_path_text(&rest[open..=close])),
        }
        rest = &rest[close + 1..];
    }
    path.push_str(&encode_path_text(rest));
    path
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for values
/// that must stay one path segment or one query key/value.
fn encode_component(text: &str) -> String {
    percent_encode(text, |byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
}

/// Percent-encodes what may not appear literally in a path; `/` and existing
/// `%` escapes in the template are kept.
fn encode_path_text(text: &str) -> String {
    percent_encode(text, |byte| byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&byte))
}

fn percent_encode(text: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if keep(byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// Headers with repeated names (compared case-insensitively, as HTTP does)
/// folded into one, since a JS object can hold each name once, plus the body's
/// `Content-Type` unless one was given.
pub(super) fn merged_headers(request: &RequestPlan) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = Vec::new();
    for (name, value) in &request.headers {
        match merged.iter_mut().find(|(seen, _)| seen.eq_ignore_ascii_case(name)) {
            Some((_, existing)) => {
                existing.push_str(if name.eq_ignore_ascii_case("cookie") { "; " } else { ", " });
                existing.push_str(value);
            }
            None => merged.push((name.clone(), value.clone())),
        }
    }
    if let Some(body) = &request.body
        && !body.content_type.is_empty()
        && !merged.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        merged.push(("Content-Type".to_owned(), body.content_type.clone()));
    }
    merged
}
