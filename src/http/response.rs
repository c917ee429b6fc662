//! How a GraphQL answer goes back over HTTP (the GraphQL over HTTP spec): its media type,
//! chosen from the request's `Accept` header, and the status that media type implies.
//!
//! - `application/graphql-response+json`: a request that never ran (parse or validation
//!   failure) answers 400, without a `data` entry; a modern client reads the status.
//! - `application/json`: every well-formed request answers 200, errors in the body, because a
//!   legacy client cannot tell our 4xx from a proxy's.
//! - No `Accept` header: the spec's default since 2025, `application/graphql-response+json`.
//!   `*/*` or `application/*` alone: `application/json`, as graphql-http's audit expects.
//! - Nothing acceptable: 406.
//!
//! A mutation sent with GET answers 405, and a request with no `query` 400, whatever the
//! media type (the spec requires both).

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::graphql::{
    fast::eager::write_response,
    schema::{METHOD_NOT_ALLOWED, PARSE_FAILED, VALIDATION_FAILED},
};

/// The two media types a GraphQL answer can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    GraphQlResponseJson,
    Json,
}

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

impl MediaType {
    fn essence(self) -> &'static str {
        match self {
            MediaType::GraphQlResponseJson => GRAPHQL_RESPONSE_JSON,
            MediaType::Json => JSON,
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::GraphQlResponseJson => "application/graphql-response+json; charset=utf-8",
            MediaType::Json => "application/json; charset=utf-8",
        })
    }

    /// The media type to answer in, or the 406 to send when the client accepts neither.
    pub fn negotiate(headers: &HeaderMap) -> Result<MediaType, NotAcceptable> {
        let mut accept = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).peekable();
        if accept.peek().is_none() {
            return Ok(MediaType::GraphQlResponseJson);
        }
        let ranges: Vec<MediaRange> =
            accept.flat_map(|v| v.split(',')).filter_map(MediaRange::parse).collect();
        if ranges.is_empty() {
            return Ok(MediaType::GraphQlResponseJson);
        }
        let preferences = [MediaType::GraphQlResponseJson, MediaType::Json]
            .map(|media| (media, Preference::of(media.essence(), &ranges)));
        preferences
            .into_iter()
            .filter_map(|(media, preference)| Some((media, preference?)))
            .filter(|(_, preference)| preference.quality > 0.0)
            .max_by(|(a_media, a), (b_media, b)| {
                a.quality
                    .total_cmp(&b.quality)
                    .then(a.specificity.cmp(&b.specificity))
                    .then(b.position.cmp(&a.position))
                    // A wildcard alone: the legacy type, which every client reads.
                    .then((*a_media == MediaType::Json).cmp(&(*b_media == MediaType::Json)))
            })
            .map(|(media, _)| media)
            .ok_or(NotAcceptable)
    }
}

/// The client accepts neither media type: answered with 406.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAcceptable;

impl IntoResponse for NotAcceptable {
    fn into_response(self) -> Response {
        super::error_response(
            StatusCode::NOT_ACCEPTABLE,
            "GraphQL answers are written as application/graphql-response+json or application/json \
             (UTF-8): send an Accept header that allows one of them",
            "NOT_ACCEPTABLE",
        )
    }
}

/// One entry of an `Accept` header.
struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    quality: f32,
    /// A `charset` other than UTF-8 rules the range out: the server writes nothing else.
    utf8: bool,
}

impl<'a> MediaRange<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        let mut range = MediaRange { kind: kind.trim(), subtype: subtype.trim(), quality: 1.0, utf8: true };
        for parameter in parts {
            let Some((name, value)) = parameter.split_once('=') else { continue };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                // RFC 9110: a weight outside 0..=1, or not a number, makes the range meaningless.
                "q" => range.quality = value.parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))?,
                "charset" => {
                    range.utf8 = value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
                }
                _ => {}
            }
        }
        Some(range)
    }

    /// How closely this range names `essence`: 2 exactly, 1 as `type/*`, 0 as `*/*`.
    fn specificity(&self, essence: &str) -> Option<u8> {
        let (kind, subtype) = essence.split_once('/')?;
        match (self.kind, self.subtype) {
            ("*", "*") => Some(0),
            (k, "*") if k.eq_ignore_ascii_case(kind) => Some(1),
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => Some(2),
            _ => None,
        }
    }
}

/// What the client said about one media type: the most specific range that names it decides.
struct Preference {
    quality: f32,
    specificity: u8,
    position: usize,
}

impl Preference {
    fn of(essence: &str, ranges: &[MediaRange<'_>]) -> Option<Preference> {
        let mut best: Option<Preference> = None;
        for (position, range) in ranges.iter().enumerate() {
            let Some(specificity) = range.specificity(essence) else { continue };
            let quality = if range.utf8 { range.quality } else { 0.0 };
            let better = match &best {
                None => true,
                Some(best) => {
                    specificity > best.specificity
                        || (specificity == best.specificity && quality > best.quality)
                }
            };
            if better {
                best = Some(Preference { quality, specificity, position });
            }
        }
        best
    }
}

/// A 400 for a request that is not a GraphQL request at all: no `query`, and no persisted
/// query's hash in its place. The spec asks for 400 whatever the media type.
pub fn refuse_malformed(request: &async_graphql::Request) -> Option<Response> {
    if !request.query.trim().is_empty() || request.extensions.contains_key("persistedQuery") {
        return None;
    }
    Some(super::error_response(
        StatusCode::BAD_REQUEST,
        "the request has no `query`: send the GraphQL document in the `query` parameter",
        "BAD_REQUEST",
    ))
}

/// The HTTP answer for `response` in `media`. An answer that ran is written by
/// [`write_response`], which splices in the JSON text the database produced; one that never
/// ran has no `data` entry (GraphQL spec, "Response Format").
pub fn graphql_response(response: async_graphql::Response, media: MediaType) -> Response {
    let refusal = refusal(&response);
    let body = match refusal {
        Some(_) => {
            serde_json::to_vec(&RequestErrors { errors: &response.errors, extensions: &response.extensions })
        }
        None => write_response(&response),
    };
    let body = match body {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(error = %err, "writing a GraphQL answer");
            return super::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not write the answer",
                "INTERNAL_SERVER_ERROR",
            );
        }
    };
    let mut http_response = Response::new(axum::body::Body::from(body));
    *http_response.status_mut() = match (refusal, media) {
        (Some(Refusal::MethodNotAllowed), _) => StatusCode::METHOD_NOT_ALLOWED,
        (Some(Refusal::NeverRan), MediaType::GraphQlResponseJson) => StatusCode::BAD_REQUEST,
        (Some(Refusal::NeverRan), MediaType::Json) | (None, _) => StatusCode::OK,
    };
    let headers = http_response.headers_mut();
    headers.insert(header::CONTENT_TYPE, media.content_type());
    if response.is_ok()
        && let Some(cache_control) = response.cache_control.value()
        && let Ok(value) = HeaderValue::from_str(&cache_control)
    {
        headers.insert(header::CACHE_CONTROL, value);
    }
    headers.extend(response.http_headers);
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    http_response
}

/// Why a request never reached execution, read from its errors' codes.
#[derive(Clone, Copy)]
enum Refusal {
    NeverRan,
    MethodNotAllowed,
}

fn refusal(response: &async_graphql::Response) -> Option<Refusal> {
    let codes = response.errors.iter().filter_map(|e| match e.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code.as_str()),
        _ => None,
    });
    let mut refusal = None;
    for code in codes {
        if code == METHOD_NOT_ALLOWED {
            return Some(Refusal::MethodNotAllowed);
        }
        if code == PARSE_FAILED || code == VALIDATION_FAILED {
            refusal = Some(Refusal::NeverRan);
        }
    }
    refusal
}

#[derive(serde::Serialize)]
struct RequestErrors<'a> {
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiate(accept: Option<&str>) -> Result<MediaType, StatusCode> {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        }
        MediaType::negotiate(&headers).map_err(|refusal| refusal.into_response().status())
    }

    #[test]
    fn an_explicit_type_is_answered_in_that_type() {
        assert_eq!(negotiate(Some("application/json")), Ok(MediaType::Json));
        assert_eq!(negotiate(Some("application/graphql-response+json")), Ok(MediaType::GraphQlResponseJson));
        assert_eq!(negotiate(Some("Application/JSON; charset=UTF-8")), Ok(MediaType::Json));
    }

    #[test]
    fn weights_then_specificity_then_order_decide() {
        // What graphql-http's client and Apollo Client send.
        let modern = "application/graphql-response+json, application/json;q=0.9";
        assert_eq!(negotiate(Some(modern)), Ok(MediaType::GraphQlResponseJson));
        assert_eq!(
            negotiate(Some("application/graphql-response+json;q=0.5, application/json")),
            Ok(MediaType::Json)
        );
        assert_eq!(
            negotiate(Some("application/json, application/graphql-response+json")),
            Ok(MediaType::Json)
        );
        assert_eq!(
            negotiate(Some("application/graphql-response+json, */*")),
            Ok(MediaType::GraphQlResponseJson)
        );
        assert_eq!(negotiate(Some("application/json;q=0, */*")), Ok(MediaType::GraphQlResponseJson));
    }

    #[test]
    fn wildcards_get_json_and_no_header_gets_the_specs_default() {
        assert_eq!(negotiate(Some("*/*")), Ok(MediaType::Json));
        assert_eq!(negotiate(Some("application/*")), Ok(MediaType::Json));
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert_eq!(negotiate(Some(browser)), Ok(MediaType::Json));
        assert_eq!(negotiate(None), Ok(MediaType::GraphQlResponseJson));
    }

    #[test]
    fn nothing_acceptable_is_a_406() {
        assert_eq!(negotiate(Some("text/html")), Err(StatusCode::NOT_ACCEPTABLE));
        assert_eq!(negotiate(Some("application/xml, text/*")), Err(StatusCode::NOT_ACCEPTABLE));
        assert_eq!(negotiate(Some("application/json;q=0")), Err(StatusCode::NOT_ACCEPTABLE));
        assert_eq!(negotiate(Some("application/json; charset=latin1")), Err(StatusCode::NOT_ACCEPTABLE));
    }
}
