//! The base URL endpoints are called on: from `servers` (3.x), `schemes`/`host`/`basePath` (2.0),
//! or the caller's override.

use serde_json::{Map, Value};
use url::Url;

use super::model::ParseError;

/// The caller's `baseUrl`, which must be usable as is.
pub(crate) fn base_url_from_override(value: &str) -> Result<String, ParseError> {
    let invalid = || ParseError::InvalidBaseUrl { value: value.to_owned() };
    let url = Url::parse(value.trim()).map_err(|_| invalid())?;
    if !is_http(&url) {
        return Err(invalid());
    }
    Ok(finish(url))
}

/// OpenAPI 3.x: the first server's URL with its variables replaced by their defaults.
pub(crate) fn base_url_from_servers(
    root: &Map<String, Value>,
    document_url: Option<&Url>,
) -> Result<String, ParseError> {
    let first_server = root.get("servers").and_then(Value::as_array).and_then(|servers| servers.first());
    let Some(server) = first_server else {
        // The specification's default server is "/", i.e. the host the document came from.
        return resolve("/", document_url, "the document declares no `servers`");
    };
    let template = server.get("url").and_then(Value::as_str).unwrap_or("/");
    let url = substitute_variables(template, server.get("variables"))?;
    resolve(&url, document_url, &format!("the server URL `{url}` is relative"))
}

/// Swagger 2.0: `schemes[0]://host basePath`, or `basePath` on the document's own host.
pub(crate) fn base_url_from_swagger(
    root: &Map<String, Value>,
    document_url: Option<&Url>,
) -> Result<String, ParseError> {
    let base_path = root.get("basePath").and_then(Value::as_str).unwrap_or("");
    let Some(host) = root.get("host").and_then(Value::as_str).filter(|host| !host.trim().is_empty()) else {
        let path = if base_path.is_empty() { "/" } else { base_path };
        return resolve(path, document_url, "the document declares no `host`");
    };
    let declared_scheme = root.get("schemes").and_then(Value::as_array).and_then(|schemes| {
        schemes.iter().filter_map(Value::as_str).find(|s| matches!(*s, "http" | "https"))
    });
    // Without `schemes` the API is served with the scheme the document was fetched with.
    let scheme = declared_scheme
        .or_else(|| document_url.map(Url::scheme).filter(|s| matches!(*s, "http" | "https")))
        .unwrap_or("https");
    let separator = if base_path.is_empty() || base_path.starts_with('/') { "" } else { "/" };
    let text = format!("{scheme}://{}{separator}{base_path}", host.trim());
    let url = Url::parse(&text).map_err(|error| ParseError::NoBaseUrl {
        reason: format!("`{text}` from `schemes`, `host` and `basePath` is not a valid URL ({error})"),
    })?;
    Ok(finish(url))
}

fn substitute_variables(template: &str, variables: Option<&Value>) -> Result<String, ParseError> {
    let mut url = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|offset| open + offset) else {
            break;
        };
        let name = &rest[open + 1..close];
        let default = variables.and_then(|variables| variables.get(name)?.get("default"));
        let value = match default {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                return Err(ParseError::NoBaseUrl {
                    reason: format!("server URL variable `{name}` in `{template}` has no default"),
                });
            }
        };
        url.push_str(&rest[..open]);
        url.push_str(&value);
        rest = &rest[close + 1..];
    }
    url.push_str(rest);
    Ok(url)
}

/// Makes `url` absolute, against the URL the document was fetched from when it is relative.
fn resolve(url: &str, document_url: Option<&Url>, why_relative: &str) -> Result<String, ParseError> {
    let url = url.trim();
    match Url::parse(url) {
        Ok(absolute) if is_http(&absolute) => return Ok(finish(absolute)),
        Ok(absolute) => {
            return Err(ParseError::NoBaseUrl {
                reason: format!("the server URL `{url}` uses the scheme `{}`", absolute.scheme()),
            });
        }
        Err(url::ParseError::RelativeUrlWithoutBase) => {}
        Err(error) => {
            return Err(ParseError::NoBaseUrl {
                reason: format!("the server URL `{url}` is not valid ({error})"),
            });
        }
    }
    let Some(document_url) = document_url else {
        return Err(ParseError::NoBaseUrl {
            reason: format!("{why_relative} and the document was not fetched from a URL"),
        });
    };
    match document_url.join(url) {
        Ok(joined) if is_http(&joined) => Ok(finish(joined)),
        _ => Err(ParseError::NoBaseUrl {
            reason: format!("{why_relative} and the document's URL `{document_url}` is not an http(s) URL"),
        }),
    }
}

fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.has_host()
}

/// Removes one trailing "/" so paths can be appended, except from a bare origin,
/// where "https://host/" is the canonical spelling.
fn finish(url: Url) -> String {
    let mut text = String::from(url);
    if text.ends_with('/') && !text.ends_with("://") {
        let without = &text[..text.len() - 1];
        let origin_only = without.find("://").is_some_and(|at| !without[at + 3..].contains('/'));
        if !origin_only {
            text.pop();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn server_variables_and_relative_servers() {
        let doc = object(json!({"servers": [{"url": "{scheme}://api.example.com:{port}/v{major}/",
            "variables": {"scheme": {"default": "https"}, "port": {"default": "8443"}, "major": {"default": 2}}}]}));
        assert_eq!(base_url_from_servers(&doc, None).unwrap(), "https://api.example.com:8443/v2");
        let doc = object(json!({"servers": [{"url": "/v1"}]}));
        let document_url = Url::parse("https://example.test/specs/api.yaml").unwrap();
        assert_eq!(base_url_from_servers(&doc, Some(&document_url)).unwrap(), "https://example.test/v1");
        let error = base_url_from_servers(&doc, None).unwrap_err();
        assert!(error.to_string().ends_with("pass `baseUrl`"), "{error}");
        let empty = object(json!({"servers": []}));
        assert_eq!(base_url_from_servers(&empty, Some(&document_url)).unwrap(), "https://example.test/");
        let missing_default = object(json!({"servers": [{"url": "https://{region}.example.com"}]}));
        assert!(base_url_from_servers(&missing_default, None).unwrap_err().to_string().contains("`region`"));
    }

    #[test]
    fn swagger_host_scheme_and_base_path() {
        let doc = object(json!({"schemes": ["https", "http"], "host": "api.uber.com", "basePath": "/v1"}));
        assert_eq!(base_url_from_swagger(&doc, None).unwrap(), "https://api.uber.com/v1");
        let document_url = Url::parse("http://localhost:8080/swagger.json").unwrap();
        let no_scheme = object(json!({"host": "petstore.example", "basePath": "/v2"}));
        assert_eq!(
            base_url_from_swagger(&no_scheme, Some(&document_url)).unwrap(),
            "http://petstore.example/v2"
        );
        assert_eq!(base_url_from_swagger(&no_scheme, None).unwrap(), "https://petstore.example/v2");
        let no_host = object(json!({"basePath": "/api"}));
        assert_eq!(
            base_url_from_swagger(&no_host, Some(&document_url)).unwrap(),
            "http://localhost:8080/api"
        );
        assert!(base_url_from_swagger(&no_host, None).is_err());
    }

    #[test]
    fn override_must_be_absolute_http() {
        assert_eq!(
            base_url_from_override("https://staging.example.com/api/").unwrap(),
            "https://staging.example.com/api"
        );
        assert_eq!(base_url_from_override("http://127.0.0.1:9000").unwrap(), "http://127.0.0.1:9000/");
        for bad in ["/relative", "ftp://example.com", "not a url", "mailto:a@b.c"] {
            let error = base_url_from_override(bad).unwrap_err();
            assert!(error.to_string().starts_with("baseUrl must be an absolute http(s) URL"), "{error}");
        }
    }
}
