//! OpenAPI import: fetch a document, parse it into endpoints, and make example values.
//!
//! One walker over a `serde_json::Value` tree reads Swagger 2.0, OpenAPI 3.0.x and 3.1.x; YAML goes
//! through yaml_serde into the same tree, and the version comes from the content, not the file name.
//! The typed `openapiv3` crate reads only 3.0 (it rejects 3.1 type arrays and 2.0), so a second path
//! would be needed anyway, and a tolerant tree walk accepts what real APIs publish.

/// Request bodies of 3.x operations and of Swagger 2.0 body and form parameters.
mod body;
/// What one import may cost (values, nesting, bytes produced, time), charged as it is spent.
mod budget;
/// Example values taken from the document or generated from JSON schemas (pure, deterministic).
pub mod examples;
/// Fetching a document by URL with time, size and redirect limits.
pub mod fetch;
/// The data types an import produces, and the errors it reports.
mod model;
/// One operation's parameters, request body and tags.
mod operation;
/// Document text to [`ParsedSpec`]: version detection, the `paths` walk, tags.
pub mod parse;
/// `$ref` lookup (JSON pointers, `$id`, `$anchor`) and bounded schema inlining.
mod resolve;
/// Base URL from servers, Swagger host fields, or the caller's override.
mod servers;
/// JSON or YAML text to a value tree that remembers the order of `paths`.
mod syntax;
/// YAML measured with its aliases expanded, in one pass over libyaml's events.
mod yaml_scan;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod fuzz_tests;

pub use budget::ParseLimits;
pub use examples::{example_from_schema, explicit_example};
pub use fetch::{FetchError, FetchLimits, FetchedDocument, build_client, fetch_document};
pub use parse::{
    DEFAULT_TAG, HttpMethod, JsonText, ParameterLocation, ParseError, ParsedEndpoint, ParsedParameter,
    ParsedRequestBody, ParsedSpec, ParsedTag, parse_document, parse_document_within,
};
pub use resolve::TRUNCATED_MARKER;
