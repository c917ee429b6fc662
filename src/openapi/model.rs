//! The errors that stop an import; the model a document is turned into is
//! [`crate::domain::spec`], re-exported here.

pub use crate::domain::{
    HttpMethod, ParameterLocation, UnknownName,
    spec::{JsonText, ParsedEndpoint, ParsedParameter, ParsedRequestBody, ParsedSpec, ParsedTag},
};

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
    /// A NUL character (`\u0000`) in a name or a text: PostgreSQL cannot store it in text or
    /// JSON, so no backend takes it.
    #[error("the document holds a NUL character (\\u0000) in a text, which cannot be stored; remove it")]
    NulCharacter,
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
