//! Cross-site request forgery: a browser lets any page POST a form or `text/plain` body to
//! any origin without asking first. Such a "simple" request must not run a mutation, so, as
//! Apollo Server does, a POST must carry a JSON content type (which makes the browser ask the
//! server first, through a CORS preflight) or a header only a script can set.

use axum::{
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

/// Headers whose presence (non-empty) proves the request did not come from a plain form.
const PREFLIGHT_HEADERS: [&str; 2] = ["x-apollo-operation-name", "apollo-require-preflight"];

/// Content types a browser sends without a preflight.
const SIMPLE_TYPES: [&str; 3] = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"];

/// Why a POST was refused.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        super::error_response(self.status, &self.message, "BAD_REQUEST")
    }
}

/// Refuses a POST that a foreign page could have sent.
pub fn check_post(headers: &HeaderMap) -> Result<(), Refusal> {
    let has_preflight_header = PREFLIGHT_HEADERS
        .iter()
        .any(|name| headers.get(*name).and_then(|v| v.to_str().ok()).is_some_and(|v| !v.trim().is_empty()));
    if has_preflight_header {
        return Ok(());
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some(media) if media == "application/json" || media.ends_with("+json") => Ok(()),
        Some(media) if !SIMPLE_TYPES.contains(&media) && !media.is_empty() => Err(refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("POST /graphql takes `content-type: application/json`, not `{media}`"),
        )),
        _ => Err(refusal(
            StatusCode::BAD_REQUEST,
            "this request has been blocked as a possible cross-site request forgery: send it with \
             `content-type: application/json`, or with a non-empty `x-apollo-operation-name` or \
             `apollo-require-preflight` header",
        )),
    }
}

fn refusal(status: StatusCode, message: &str) -> Refusal {
    Refusal { status, message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn json_and_preflighted_posts_pass_simple_ones_do_not() {
        assert!(check_post(&headers(&[("content-type", "application/json")])).is_ok());
        assert!(check_post(&headers(&[("content-type", "application/json; charset=utf-8")])).is_ok());
        assert!(check_post(&headers(&[("content-type", "application/graphql-response+json")])).is_ok());
        assert!(
            check_post(&headers(&[("content-type", "text/plain"), ("apollo-require-preflight", "true")]))
                .is_ok()
        );
        assert!(check_post(&headers(&[("x-apollo-operation-name", "Board")])).is_ok());

        for blocked in [
            headers(&[("content-type", "text/plain")]),
            headers(&[("content-type", "application/x-www-form-urlencoded")]),
            headers(&[("content-type", "multipart/form-data; boundary=x")]),
            headers(&[("content-type", "text/plain"), ("apollo-require-preflight", " ")]),
            headers(&[]),
        ] {
            let refused = check_post(&blocked).unwrap_err();
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{blocked:?}");
        }
        let xml = check_post(&headers(&[("content-type", "application/xml")])).unwrap_err();
        assert_eq!(xml.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
