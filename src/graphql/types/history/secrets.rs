//! What a caller sees of the secret request values a run was launched with.

use std::borrow::Cow;

use async_graphql::Json;

use crate::{
    access::{Principal, Role},
    db::entities::scenario_history,
    k6::is_secret_header,
    lifecycle::launch::{MASKED, mask_secret_headers},
};

/// Whether the caller may read secret request values: OPERATOR and above (who may launch
/// with them anyway). No principal: no.
pub(crate) fn sees_secrets(principal: Option<&Principal>) -> bool {
    principal.is_some_and(|principal| principal.role >= Role::Operator)
}

/// A scenario's stored request values as a caller sees them.
pub(crate) fn visible_request(
    row: &scenario_history::Model,
    sees_secrets: bool,
) -> Option<Json<serde_json::Value>> {
    let request = row.request.as_ref()?;
    Some(Json(if sees_secrets { request.clone() } else { mask_secret_headers(request) }))
}

/// A run's script as a caller sees it. Scripts rendered before secret values left them carry
/// credentials as `"Name": "value",` header lines (the only lines of a generated script made of
/// one string key and one string value): their values are masked below OPERATOR.
pub(crate) fn visible_script(script: &str, sees_secrets: bool) -> Cow<'_, str> {
    let masked_line = |line: &str| -> Option<String> {
        let pair = line.trim_start().strip_suffix(',')?;
        if !pair.starts_with('"') {
            return None;
        }
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&format!("{{{pair}}}")).ok()?;
        let (name, value) = object.iter().next().filter(|_| object.len() == 1)?;
        (value.is_string() && is_secret_header(name)).then(|| {
            let indent = &line[..line.len() - line.trim_start().len()];
            format!("{indent}{}: \"{MASKED}\",", serde_json::Value::String(name.clone()))
        })
    };
    if sees_secrets || !script.lines().any(|line| masked_line(line).is_some()) {
        return Cow::Borrowed(script);
    }
    let mut visible = String::with_capacity(script.len());
    for line in script.split_inclusive('\n') {
        let (text, end) = line.strip_suffix('\n').map_or((line, ""), |text| (text, "\n"));
        match masked_line(text) {
            Some(masked) => visible.push_str(&masked),
            None => visible.push_str(text),
        }
        visible.push_str(end);
    }
    Cow::Owned(visible)
}
