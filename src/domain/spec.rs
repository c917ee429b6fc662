//! What Metric Vault keeps of an imported OpenAPI or Swagger document: the catalogue's
//! model, read by `openapi` and written by `db`.

use serde::Serialize;
use serde_json::Value;

/// Everything Metric Vault keeps from one OpenAPI or Swagger document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedSpec {
    /// Family and version as written in the document: "swagger 2.0", "openapi 3.0.3", "openapi 3.1.0".
    pub format: String,
    /// `info.title`, trimmed; "Untitled API" (with a warning) when the document has none.
    pub title: String,
    /// `info.version`, as written.
    pub version: Option<String>,
    /// Absolute http(s) URL the endpoints' paths are appended to, without a trailing "/"
    /// unless it is the bare origin.
    pub base_url: String,
    /// Declared tags in document order, then tags used but not declared in first-seen order,
    /// then "default" when some operation has no tag.
    pub tags: Vec<ParsedTag>,
    /// Operations in document order: paths as written, methods in [`HttpMethod::ALL`] order.
    pub endpoints: Vec<ParsedEndpoint>,
    /// Things that were skipped or simplified, worded for the person who imported the document.
    pub warnings: Vec<String>,
}

/// A tag that groups endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedTag {
    /// Tag name, unique within a [`ParsedSpec`].
    pub name: String,
    /// Description from the top-level `tags` array, when the tag is declared there.
    pub description: Option<String>,
}

/// One operation: a method on a path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedEndpoint {
    /// HTTP method.
    pub method: HttpMethod,
    /// Path template as written under `paths`, e.g. "/pets/{petId}".
    pub path: String,
    /// `operationId`, when given.
    pub operation_id: Option<String>,
    /// `summary`, when given and not blank.
    pub summary: Option<String>,
    /// `description`, when given and not blank.
    pub description: Option<String>,
    /// `deprecated` flag.
    pub deprecated: bool,
    /// Tag names without duplicates; `["default"]` for an operation the document leaves untagged,
    /// so every endpoint belongs to at least one entry of [`ParsedSpec::tags`].
    pub tags: Vec<String>,
    /// Path-level and operation-level parameters merged (the operation's win), without the body.
    pub parameters: Vec<ParsedParameter>,
    /// The request body, from `requestBody` (3.x) or `in: body` / `in: formData` parameters (2.0).
    pub request_body: Option<ParsedRequestBody>,
}

/// A path, query, header or cookie parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedParameter {
    /// Parameter name.
    pub name: String,
    /// Where the parameter goes.
    pub location: ParameterLocation,
    /// Whether the operation requires it; path parameters always do.
    pub required: bool,
    /// The schema's `type` (for 3.1 type lists the first one that is not "null").
    pub schema_type: Option<String>,
    /// `description`, when given and not blank.
    pub description: Option<String>,
    /// An explicit example from the document, else one generated from the schema.
    pub example: Option<Value>,
}

/// The request body of an operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedRequestBody {
    /// The media type chosen: a JSON one when offered, else the first one.
    pub content_type: String,
    /// Whether the body is required.
    pub required: bool,
    /// The schema with local `$ref`s inlined up to a bounded depth; cut points carry
    /// [`TRUNCATED_MARKER`](super::resolve::TRUNCATED_MARKER).
    pub schema: Option<JsonText>,
    /// An explicit example from the document, else one generated from the schema
    /// (generated only for JSON and form media types).
    pub example: Option<Value>,
}

use super::{HttpMethod, ParameterLocation};

/// A JSON value kept as its text.
///
/// A request-body schema with its references inlined can run to megabytes, and a parsed
/// `serde_json::Value` takes over ten times the memory of its text; an import holds every
/// schema of a document at once, so it keeps them as text and parses each one only when a
/// row is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct JsonText(String);

impl JsonText {
    /// Serializes `value`.
    pub fn new(value: &Value) -> Self {
        Self(value.to_string())
    }

    /// The value, parsed again.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).expect("JsonText always holds serialized JSON")
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
