//! Document text to [`ParsedSpec`]: version detection, the walk over `paths`, and tags.

use std::collections::HashSet;

use serde_json::{Map, Value};
use url::Url;

use super::budget::{Budget, ParseLimits};
pub use super::model::{
    HttpMethod, JsonText, ParameterLocation, ParseError, ParsedEndpoint, ParsedParameter, ParsedRequestBody,
    ParsedSpec, ParsedTag, UnknownName,
};
use super::operation::OperationReader;
use super::resolve::{Resolver, Target, ref_of};
use super::{servers, syntax};

/// Name of the tag that collects operations the document leaves untagged.
pub const DEFAULT_TAG: &str = "default";

/// Title used when the document has none.
const UNTITLED: &str = "Untitled API";

/// How many skipped references or cut schemas a warning names before it says "and N more".
const NAMED_IN_WARNING: usize = 5;

/// The family of a document, which decides where bodies, parameters and servers live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpecVersion {
    Swagger2,
    OpenApi30,
    /// 3.1, and 3.2, which reads the same for what is imported here.
    OpenApi31,
}

/// Parses an OpenAPI 3.0/3.1 or Swagger 2.0 document (JSON or YAML).
///
/// `document_url` is where the document was fetched from; relative server URLs are resolved
/// against it. `base_url_override`, when given and not blank, replaces the document's servers.
pub fn parse_document(
    text: &str,
    document_url: Option<&Url>,
    base_url_override: Option<&str>,
) -> Result<ParsedSpec, ParseError> {
    parse_document_within(text, document_url, base_url_override, &ParseLimits::DEFAULT)
}

/// [`parse_document`] within `limits`: values read (aliases expanded), nesting, bytes of
/// inlined schemas and examples, and time. A document past one of them is refused with the
/// [`ParseError`] that names it, before anything is returned.
pub fn parse_document_within(
    text: &str,
    document_url: Option<&Url>,
    base_url_override: Option<&str>,
    limits: &ParseLimits,
) -> Result<ParsedSpec, ParseError> {
    let budget = Budget::new(limits);
    let tree = syntax::read_document(text, &budget)?;
    let (version, format) = detect_version(&tree.root)?;
    let override_url = base_url_override
        .filter(|value| !value.trim().is_empty())
        .map(servers::base_url_from_override)
        .transpose()?;
    let root = Value::Object(tree.root);
    let Value::Object(root_map) = &root else { unreachable!("the syntax tree root is always an object") };

    let mut warnings = Vec::new();
    let mut resolver = Resolver::new(&root, &budget);
    let endpoints = {
        let mut reader = OperationReader::new(version, root_map, &mut resolver, &mut warnings);
        read_paths(&mut reader, version, root_map, &tree.path_order)?
    };
    let base_url = match override_url {
        Some(url) => url,
        None if version == SpecVersion::Swagger2 => servers::base_url_from_swagger(root_map, document_url)?,
        None => servers::base_url_from_servers(root_map, document_url)?,
    };

    let info = root_map.get("info");
    let title = info.and_then(|info| scalar_text(info.get("title")?)).filter(|title| !title.is_empty());
    if title.is_none() {
        warnings.push(format!("the document has no `info.title`; it is imported as \"{UNTITLED}\""));
    }
    let webhook_operations = count_webhook_operations(&mut resolver, root_map);
    if webhook_operations > 0 {
        let noun = if webhook_operations == 1 { "operation" } else { "operations" };
        warnings.push(format!(
            "{webhook_operations} webhook {noun} not imported: webhooks are requests the API sends, not endpoints to test"
        ));
    }
    warnings.extend(resolver_warnings(&resolver));

    let spec = ParsedSpec {
        format,
        title: title.unwrap_or_else(|| UNTITLED.to_owned()),
        version: info
            .and_then(|info| scalar_text(info.get("version")?))
            .filter(|version| !version.is_empty()),
        base_url,
        tags: collect_tags(root_map, &endpoints),
        endpoints,
        warnings,
    };
    tracing::debug!(
        format = %spec.format,
        endpoints = spec.endpoints.len(),
        tags = spec.tags.len(),
        warnings = spec.warnings.len(),
        "parsed OpenAPI document"
    );
    Ok(spec)
}

fn detect_version(root: &Map<String, Value>) -> Result<(SpecVersion, String), ParseError> {
    let (family, field) = match (root.get("openapi"), root.get("swagger")) {
        (Some(field), _) => ("OpenAPI", field),
        (None, Some(field)) => ("Swagger", field),
        (None, None) => return Err(ParseError::MissingVersion),
    };
    // YAML reads `openapi: 3.0` as a number; its text is what the author meant.
    let version = scalar_text(field).unwrap_or_else(|| field.to_string());
    let mut parts = version.split('.');
    let (major, minor) = (parts.next().unwrap_or_default(), parts.next().unwrap_or("0"));
    let detected = match (family, major, minor) {
        ("OpenAPI", "3", "0") => SpecVersion::OpenApi30,
        ("OpenAPI", "3", "1" | "2") => SpecVersion::OpenApi31,
        ("Swagger", "2", "0") => SpecVersion::Swagger2,
        _ => return Err(ParseError::UnsupportedVersion { family, version }),
    };
    Ok((detected, format!("{} {version}", family.to_ascii_lowercase())))
}

/// Text of a string or number, trimmed.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn read_paths<'a>(
    reader: &mut OperationReader<'a, '_>,
    version: SpecVersion,
    root: &'a Map<String, Value>,
    path_order: &[String],
) -> Result<Vec<ParsedEndpoint>, ParseError> {
    let paths = match (root.get("paths"), version) {
        (Some(Value::Object(paths)), _) => paths,
        // 3.1 made `paths` optional: a document may describe only webhooks or components.
        (None | Some(Value::Null), SpecVersion::OpenApi31) => return Ok(Vec::new()),
        (_, SpecVersion::Swagger2) => {
            return Err(ParseError::MissingPaths { family: "Swagger 2.0" });
        }
        (_, SpecVersion::OpenApi30) => {
            return Err(ParseError::MissingPaths { family: "OpenAPI 3.0" });
        }
        (_, SpecVersion::OpenApi31) => {
            return Err(ParseError::MissingPaths { family: "OpenAPI 3.1" });
        }
    };
    let mut endpoints = Vec::new();
    for path in path_order.iter().filter(|path| !path.starts_with("x-")) {
        if let Some((path, item)) = paths.get_key_value(path) {
            reader.read_path_item(path, item, &mut endpoints)?;
        }
    }
    Ok(endpoints)
}

/// Webhooks are only counted, for the warning; a broken or external one counts as empty.
fn count_webhook_operations(resolver: &mut Resolver<'_>, root: &Map<String, Value>) -> usize {
    let Some(Value::Object(webhooks)) = root.get("webhooks") else {
        return 0;
    };
    let mut count = 0;
    for item in webhooks.values() {
        let target = match ref_of(item).map(|reference| resolver.lookup(reference)) {
            Some(Target::Found(target)) => Some(target),
            _ => None,
        };
        count += HttpMethod::ALL
            .iter()
            .map(|method| method.path_item_key())
            .filter(|key| {
                let operation = item.get(*key).or_else(|| target?.get(*key));
                operation.is_some_and(Value::is_object)
            })
            .count();
    }
    count
}

fn resolver_warnings(resolver: &Resolver<'_>) -> Vec<String> {
    let mut warnings = Vec::new();
    if !resolver.external_refs.is_empty() {
        warnings.push(format!(
            "{} skipped: references to other files or URLs are not fetched",
            name_some("external $ref", resolver.external_refs.iter().map(String::as_str))
        ));
    }
    if !resolver.recursive_refs.is_empty() {
        warnings.push(format!(
            "{} cut where the schema contains itself (marked `x-metric-vault-truncated`)",
            name_some("recursive schema", resolver.recursive_refs.iter().copied())
        ));
    }
    if resolver.schemas_cut_for_size > 0 {
        warnings.push(format!(
            "{} too large or too deeply nested to inline completely; the rest is left as `$ref`s marked `x-metric-vault-truncated`",
            if resolver.schemas_cut_for_size == 1 {
                "1 schema was".to_owned()
            } else {
                format!("{} schemas were", resolver.schemas_cut_for_size)
            }
        ));
    }
    warnings
}

/// "3 external $refs (`a`, `b`, `c`)", naming at most [`NAMED_IN_WARNING`].
fn name_some<'n>(noun: &str, names: impl ExactSizeIterator<Item = &'n str>) -> String {
    let total = names.len();
    let shown: Vec<String> = names.take(NAMED_IN_WARNING).map(|name| format!("`{name}`")).collect();
    let more = if total > shown.len() { format!(" and {} more", total - shown.len()) } else { String::new() };
    let plural = if total == 1 { "" } else { "s" };
    format!("{total} {noun}{plural} ({}{more})", shown.join(", "))
}

fn collect_tags(root: &Map<String, Value>, endpoints: &[ParsedEndpoint]) -> Vec<ParsedTag> {
    let mut tags = Vec::new();
    let mut seen = HashSet::new();
    let declared = root.get("tags").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for tag in declared {
        let Some(name) = tag.get("name").and_then(scalar_text).filter(|name| !name.is_empty()) else {
            continue;
        };
        if seen.insert(name.clone()) {
            let description = tag.get("description").and_then(Value::as_str).map(str::trim);
            let description = description.filter(|text| !text.is_empty()).map(str::to_owned);
            tags.push(ParsedTag { name, description });
        }
    }
    // Endpoints already carry DEFAULT_TAG when untagged; it goes last unless the document declares it.
    let mut uses_default = false;
    for name in endpoints.iter().flat_map(|endpoint| &endpoint.tags) {
        if name == DEFAULT_TAG && !seen.contains(DEFAULT_TAG) {
            uses_default = true;
        } else if seen.insert(name.clone()) {
            tags.push(ParsedTag { name: name.clone(), description: None });
        }
    }
    if uses_default {
        tags.push(ParsedTag { name: DEFAULT_TAG.to_owned(), description: None });
    }
    tags
}

/// [`parse_document`] of a document fetched from `https://example.test/specs/api.yaml`, as the
/// parsing modules' tests read theirs.
#[cfg(test)]
pub(super) fn parse_example(text: &str) -> Result<ParsedSpec, ParseError> {
    let document_url = Url::parse("https://example.test/specs/api.yaml").unwrap();
    parse_document(text, Some(&document_url), None)
}

#[cfg(test)]
mod tests {
    use super::parse_example as parse;
    use super::*;
    use serde_json::json;

    fn error_text(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn rejects_what_is_not_an_openapi_document() {
        assert_eq!(error_text(""), "the document is empty");
        assert_eq!(error_text(" \n\t "), "the document is empty");
        assert_eq!(
            error_text("<!doctype html>\n<html><head><title>Login</title></head></html>"),
            "this looks like an HTML page, not an OpenAPI document"
        );
        assert_eq!(
            error_text(r#"{"hello": 1}"#),
            "not an OpenAPI or Swagger document: no `openapi` or `swagger` version field"
        );
        assert_eq!(
            error_text("just a sentence"),
            "not an OpenAPI or Swagger document: the top level is a string, not an object"
        );
        assert!(
            error_text("{\"openapi\": \"3.0.0\",").starts_with("the document is neither JSON nor YAML: ")
        );
        assert!(error_text("openapi: 4.0.0\npaths: {}").starts_with("unsupported OpenAPI version 4.0.0"));
        assert!(error_text("swagger: '1.2'\npaths: {}").starts_with("unsupported Swagger version 1.2"));
        assert_eq!(
            error_text("swagger: '2.0'\ninfo: {title: T, version: '1'}\nhost: x.test"),
            "Swagger 2.0 document has no `paths` object"
        );
    }

    #[test]
    fn broken_local_ref_used_by_an_operation_is_an_error() {
        let text = r##"{"openapi": "3.0.3", "info": {"title": "T", "version": "1"},
            "paths": {"/pets": {"get": {"parameters": [{"$ref": "#/components/parameters/Nope"}]}}}}"##;
        assert_eq!(
            error_text(text),
            "broken $ref `#/components/parameters/Nope` at paths./pets.get.parameters[0]: no such target"
        );
        let text = r##"{"openapi": "3.0.3", "info": {"title": "T", "version": "1"},
            "paths": {"/pets": {"post": {"requestBody": {"content": {"application/json": {"schema":
                {"type": "object", "properties": {"owner": {"$ref": "#/components/schemas/Nope"}}}}}}}}}}"##;
        assert_eq!(
            error_text(text),
            "broken $ref `#/components/schemas/Nope` at paths./pets.post.requestBody.content.application/json.schema.properties.owner: no such target"
        );
        // Unused components may be broken without failing the import.
        let text = r##"{"openapi": "3.0.3", "info": {"title": "T", "version": "1"}, "paths": {},
            "components": {"schemas": {"Unused": {"$ref": "#/components/schemas/Nope"}}}}"##;
        assert!(parse(text).is_ok());
    }

    #[test]
    fn base_url_needs_a_document_url_or_an_override() {
        let text = "openapi: 3.1.0\ninfo: {title: T, version: '1'}\nservers: [{url: /v1}]\npaths: {}\n";
        let error = parse_document(text, None, None).unwrap_err().to_string();
        assert!(error.starts_with("no base URL can be derived from the document: "), "{error}");
        assert!(error.ends_with("pass `baseUrl`"), "{error}");
        let spec = parse_document(text, None, Some("http://127.0.0.1:8080/api/")).unwrap();
        assert_eq!(spec.base_url, "http://127.0.0.1:8080/api");
        let error = parse_document(text, None, Some("localhost:8080")).unwrap_err();
        assert!(matches!(error, ParseError::InvalidBaseUrl { .. }), "{error}");
        assert_eq!(
            parse_document(text, None, Some("  ")).unwrap_err().to_string(),
            error_text_without_url(text)
        );
    }

    fn error_text_without_url(text: &str) -> String {
        parse_document(text, None, None).unwrap_err().to_string()
    }

    #[test]
    fn reads_3_1_type_lists_and_recursive_schemas_deterministically() {
        let text = r##"{
          "openapi": "3.1.0",
          "info": {"title": "  Trees  ", "version": "2"},
          "servers": [{"url": "https://trees.test/api/"}],
          "webhooks": {"grown": {"post": {}}},
          "paths": {"/nodes": {"post": {
            "parameters": [{"name": "q", "in": "query", "schema": {"type": ["string", "null"]}}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}}}},
          "components": {"schemas": {"Node": {"type": "object", "required": ["name", "children"], "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}}
        }"##;
        let spec = parse(text).unwrap();
        assert_eq!((spec.format.as_str(), spec.title.as_str()), ("openapi 3.1.0", "Trees"));
        assert_eq!(spec.base_url, "https://trees.test/api");
        let endpoint = &spec.endpoints[0];
        assert_eq!(endpoint.parameters[0].schema_type.as_deref(), Some("string"));
        let body = endpoint.request_body.as_ref().unwrap();
        assert_eq!(body.example, Some(json!({"name": "string", "children": []})));
        let schema = body.schema.as_ref().unwrap().to_value();
        let cut = &schema["properties"]["children"]["items"];
        assert_eq!(cut[super::super::TRUNCATED_MARKER], true);
        assert!(spec.warnings.iter().any(|warning| warning.contains("1 webhook operation not imported")));
        assert_eq!(spec.warnings.iter().filter(|warning| warning.contains("recursive")).count(), 1);
        assert_eq!(parse(text).unwrap(), spec);
    }

    #[test]
    fn method_and_location_names_round_trip() {
        for method in HttpMethod::ALL {
            assert_eq!(method.as_str().parse::<HttpMethod>(), Ok(method));
        }
        assert_eq!("patch".parse::<HttpMethod>(), Ok(HttpMethod::Patch));
        assert!("FETCH".parse::<HttpMethod>().is_err());
        assert_eq!("cookie".parse::<ParameterLocation>(), Ok(ParameterLocation::Cookie));
        assert_eq!(ParameterLocation::Query.as_str(), "query");
    }
}
