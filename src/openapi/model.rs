//! The domain model an imported document is turned into, and the errors that stop an import.

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

pub use crate::domain::{HttpMethod, ParameterLocation, UnknownName};

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

/// Why a document could not be imported. The Display text is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but white space (or a YAML document with no content).
    #[error("the document is empty")]
    Empty,
    /// Neither JSON nor YAML syntax.
    #[error("the document is neither JSON nor YAML: {reason}")]
    Syntax {
        /// The parser's message, shortened.
        reason: String,
    },
    /// Typically a login page or a documentation site instead of the raw document.
    #[error("this looks like an HTML page, not an OpenAPI document")]
    Html,
    /// Valid JSON/YAML whose top level is not a mapping.
    #[error("not an OpenAPI or Swagger document: the top level is {found}, not an object")]
    NotAnObject {
        /// What the top level is, e.g. "a string".
        found: &'static str,
    },
    /// A mapping without `openapi` or `swagger`.
    #[error("not an OpenAPI or Swagger document: no `openapi` or `swagger` version field")]
    MissingVersion,
    /// A version this importer does not read.
    #[error("unsupported {family} version {version}; Swagger 2.0 and OpenAPI 3.0 to 3.2 can be imported")]
    UnsupportedVersion {
        /// "OpenAPI" or "Swagger".
        family: &'static str,
        /// The version as written.
        version: String,
    },
    /// `paths` is missing or not an object where the version requires it.
    #[error("{family} document has no `paths` object")]
    MissingPaths {
        /// "Swagger 2.0" or "OpenAPI 3.0".
        family: &'static str,
    },
    /// A local `$ref` used by an imported operation points nowhere.
    #[error("broken $ref `{reference}` at {location}: no such target")]
    BrokenRef {
        /// The reference as written.
        reference: String,
        /// Where it is used, e.g. `paths./pets.get.parameters[0]`.
        location: String,
    },
    /// `$ref`s that only point at each other.
    #[error("circular $ref `{reference}` at {location}: the references never reach a definition")]
    CircularRef {
        /// The reference as written.
        reference: String,
        /// Where it is used.
        location: String,
    },
    /// The document gives no absolute server URL and none could be resolved.
    #[error("no base URL can be derived from the document: {reason}; pass `baseUrl`")]
    NoBaseUrl {
        /// What was missing, e.g. "the server URL `/v1` is relative and the document has no URL of its own".
        reason: String,
    },
    /// More values than an import may read, counting what YAML aliases and merge keys repeat.
    #[error("{}", too_many_values(*limit, *through_aliases))]
    TooManyValues {
        /// `IMPORT_MAX_VALUES`.
        limit: usize,
        /// Whether the text itself is small enough and its aliases make it too large.
        through_aliases: bool,
    },
    /// YAML aliases that copy more text than one document may produce.
    #[error(
        "the YAML document's aliases repeat more than {limit_mb} MB of text \
         (limit: IMPORT_MAX_OUTPUT_MB = {limit_mb} per document)"
    )]
    AliasesRepeatTooMuch {
        /// `IMPORT_MAX_OUTPUT_MB`.
        limit_mb: usize,
    },
    /// Lists and mappings nested deeper than an import may read.
    #[error("the document nests more than {limit} levels deep (limit: IMPORT_MAX_DEPTH = {limit})")]
    TooDeep {
        /// `IMPORT_MAX_DEPTH`.
        limit: usize,
    },
    /// Inlined schemas and examples beyond what one document may produce.
    #[error("{}", too_much_output(*limit_mb, *through_refs))]
    TooMuchOutput {
        /// `IMPORT_MAX_OUTPUT_MB`.
        limit_mb: usize,
        /// Whether `$ref` inlining went past the limit (else examples and the rest).
        through_refs: bool,
    },
    /// Reading the document took longer than an import may.
    #[error("reading the document took longer than {limit} (limit: IMPORT_PARSE_SECONDS)")]
    TooSlow {
        /// The limit, e.g. "20 s".
        limit: String,
    },
    /// The caller's `baseUrl` override is unusable.
    #[error("baseUrl must be an absolute http(s) URL, got `{value}`")]
    InvalidBaseUrl {
        /// The override as given.
        value: String,
    },
}

fn too_many_values(limit: usize, through_aliases: bool) -> String {
    if through_aliases {
        format!(
            "the YAML document expands to more than {limit} values through its aliases \
             (limit: IMPORT_MAX_VALUES = {limit} per document)"
        )
    } else {
        format!("the document has more than {limit} values (limit: IMPORT_MAX_VALUES = {limit} per document)")
    }
}

fn too_much_output(limit_mb: usize, through_refs: bool) -> String {
    if through_refs {
        format!(
            "the document's schemas expand to more than {limit_mb} MB through their $refs \
             (limit: IMPORT_MAX_OUTPUT_MB = {limit_mb} per document)"
        )
    } else {
        format!(
            "the document's endpoints hold more than {limit_mb} MB of schemas, examples and descriptions \
             (limit: IMPORT_MAX_OUTPUT_MB = {limit_mb} per document)"
        )
    }
}
