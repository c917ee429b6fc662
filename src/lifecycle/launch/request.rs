//! A launch's request values: what the history keeps of them (secret header values masked for
//! readers who may not see them) and the k6 request plan made from them.

use serde_json::Value;

use super::{LaunchEndpoint, RequestValues, bad};
use crate::{
    domain::ParameterLocation,
    error::AppResult,
    k6::{RequestBodyPlan, RequestPlan, is_secret_header},
};

/// What the history keeps of a scenario's request input (`scenario_history.request`).
pub(super) fn request_json(input: &RequestValues) -> Value {
    serde_json::to_value(input).expect("request values are JSON already")
}

const SECRET_HEADERS_KEY: &str = "secretHeaders";

/// What replaces a secret header value for readers who may not see it.
pub const MASKED: &str = "***";

/// A stored request ([`RequestValues`] as JSON) with every secret header value replaced by [`MASKED`].
pub fn mask_secret_headers(request: &Value) -> Value {
    let mut masked = request.clone();
    let marked: Vec<String> = request
        .get(SECRET_HEADERS_KEY)
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(headers) = masked.get_mut("headers").and_then(Value::as_object_mut) {
        for (name, value) in headers.iter_mut() {
            if is_secret_header(name) || marked.iter().any(|secret| secret.eq_ignore_ascii_case(name)) {
                *value = Value::String(MASKED.to_owned());
            }
        }
    }
    masked
}

/// A JSON object of scalar values as (name, text) pairs.
fn scalar_map(value: Option<&Value>, field: &str) -> AppResult<Vec<(String, String)>> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let object = value.as_object().ok_or_else(|| bad(field, format!("`{field}` must be a JSON object")))?;
    object
        .iter()
        .map(|(name, value)| {
            scalar_text(value)
                .map(|text| (name.clone(), text))
                .ok_or_else(|| bad(format!("{field}.{name}"), "values must be strings, numbers or booleans"))
        })
        .collect()
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// The request a scenario sends: the user's values, else the endpoint's examples for required parameters.
pub(super) fn request_plan(
    input: Option<&RequestValues>,
    endpoint: &LaunchEndpoint,
    at: &str,
) -> AppResult<RequestPlan> {
    let empty = RequestValues::default();
    let input = input.unwrap_or(&empty);
    let mut path_params = scalar_map(input.path_params.as_ref(), &format!("{at}.request.pathParams"))?;
    let mut query = scalar_map(input.query_params.as_ref(), &format!("{at}.request.queryParams"))?;
    let mut headers = scalar_map(input.headers.as_ref(), &format!("{at}.request.headers"))?;
    // A header k6 cannot send is a mistake, and a name that is not a token (`X-Sig `) would slip
    // past the secret names it was meant to match.
    for (name, _) in &headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(bad(
                format!("{at}.request.headers"),
                format!(
                    "`{name}` is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
                ),
            ));
        }
    }
    let secret_headers = input.secret_headers.clone().unwrap_or_default();
    for (index, name) in secret_headers.iter().enumerate() {
        // A misspelt name would leave the value it meant to hide in the script.
        if !headers.iter().any(|(header, _)| header.eq_ignore_ascii_case(name)) {
            return Err(bad(
                format!("{at}.request.secretHeaders[{index}]"),
                format!("`{name}` is not one of the headers given in `request.headers`"),
            ));
        }
    }
    for parameter in &endpoint.parameters {
        let (target, needed) = match parameter.location {
            ParameterLocation::Path => (&mut path_params, true),
            ParameterLocation::Query => (&mut query, parameter.required),
            ParameterLocation::Header => (&mut headers, parameter.required),
            ParameterLocation::Cookie => continue,
        };
        if !needed || target.iter().any(|(name, _)| name == &parameter.name) {
            continue;
        }
        let example = parameter.example.as_ref().and_then(scalar_text).unwrap_or_else(|| "1".to_owned());
        target.push((parameter.name.clone(), example));
    }
    let body = match (&input.body, &endpoint.body) {
        (Some(value), stored) => {
            let content_type = stored.as_ref().map_or("application/json", |b| b.content_type.as_str());
            Some(body_plan(content_type, value))
        }
        (None, Some(stored)) => {
            stored.example.as_ref().map(|example| body_plan(&stored.content_type, example))
        }
        (None, None) => None,
    };
    Ok(RequestPlan {
        method: endpoint.endpoint.method.as_str().to_owned(),
        base_url: endpoint.base_url.clone(),
        path_template: endpoint.endpoint.path.clone(),
        path_params,
        query,
        headers,
        secret_headers,
        body,
    })
}

/// Serializes a body for its content type: form fields for urlencoded, JSON otherwise
/// (a JSON string is sent as is for non-JSON types such as text/plain).
fn body_plan(content_type: &str, value: &Value) -> RequestBodyPlan {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let text = match (essence.as_str(), value) {
        ("application/x-www-form-urlencoded", Value::Object(fields)) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in fields {
                form.append_pair(name, &scalar_text(value).unwrap_or_else(|| value.to_string()));
            }
            form.finish()
        }
        (essence, Value::String(text)) if !essence.contains("json") => text.clone(),
        _ => value.to_string(),
    };
    RequestBodyPlan { content_type: content_type.to_owned(), text }
}
