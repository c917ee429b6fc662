//! Parses every document of the shared corpus and checks the result against its MANIFEST.json,
//! whose ground truth was computed by independent tools.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;
use url::Url;

use super::{DEFAULT_TAG, ParseLimits, ParsedSpec, parse_document, parse_document_within};

/// The scratch build points this at the repository's fixtures; inside the crate it is not set.
fn fixtures_dir() -> &'static str {
    option_env!("METRIC_VAULT_FIXTURES")
        .unwrap_or(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openapi"))
}

fn read_fixture(file: &str) -> String {
    let path = format!("{}/{file}", fixtures_dir());
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

fn document_url(file: &str) -> Url {
    Url::parse(&format!("https://example.test/specs/{file}")).unwrap()
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|items| items.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The manifest's base URL made absolute the way the importer is specified to do it.
fn expected_base_url(entry: &Value, file: &str) -> String {
    let raw = entry["base_url"].as_str().unwrap();
    let absolute = match entry["base_url_kind"].as_str().unwrap() {
        "absolute" => Url::parse(raw).unwrap(),
        _ => document_url(file).join(raw).unwrap(),
    };
    let text = String::from(absolute);
    let bare_origin = text.ends_with('/') && text.matches('/').count() == 3;
    if text.ends_with('/') && !bare_origin { text[..text.len() - 1].to_owned() } else { text }
}

fn check_document(entry: &Value, spec: &ParsedSpec) {
    let file = entry["file"].as_str().unwrap();
    let expected_format = match entry["spec_family"].as_str().unwrap() {
        "swagger-2.0" => format!("swagger {}", entry["spec_version"].as_str().unwrap()),
        _ => format!("openapi {}", entry["spec_version"].as_str().unwrap()),
    };
    assert_eq!(spec.format, expected_format, "{file}: format");
    assert_eq!(spec.title, entry["title"].as_str().unwrap(), "{file}: title");
    assert_eq!(spec.version.as_deref(), entry["version"].as_str(), "{file}: info.version");
    assert_eq!(spec.base_url, expected_base_url(entry, file), "{file}: base URL");
    assert_eq!(spec.endpoints.len() as u64, entry["operations"].as_u64().unwrap(), "{file}: operations");

    let mut methods: HashMap<String, u64> = HashMap::new();
    for endpoint in &spec.endpoints {
        *methods.entry(endpoint.method.as_str().to_ascii_lowercase()).or_default() += 1;
    }
    let expected_methods: HashMap<String, u64> = entry["methods"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(method, count)| (method.clone(), count.as_u64().unwrap()))
        .collect();
    assert_eq!(methods, expected_methods, "{file}: methods");

    let tag_names: Vec<&str> = spec.tags.iter().map(|tag| tag.name.as_str()).collect();
    let declared = strings(&entry["declared_tags"]);
    assert_eq!(&tag_names[..declared.len()], declared.as_slice(), "{file}: declared tags first, in order");
    for used in strings(&entry["tags_used"]) {
        assert!(tag_names.contains(&used), "{file}: tag {used} missing");
    }
    let untagged = entry["untagged_operations"].as_u64().unwrap();
    assert_eq!(tag_names.contains(&DEFAULT_TAG), untagged > 0, "{file}: default tag");
    assert_eq!(
        tag_names.len(),
        declared.len()
            + entry["tags_used_not_declared"].as_array().unwrap().len()
            + usize::from(untagged > 0 && !declared.contains(&DEFAULT_TAG)),
        "{file}: tag count"
    );

    let mut per_tag: HashMap<&str, u64> = HashMap::new();
    for endpoint in &spec.endpoints {
        assert!(!endpoint.tags.is_empty(), "{file}: {} {} has no tag", endpoint.method, endpoint.path);
        for tag in &endpoint.tags {
            assert!(tag_names.contains(&tag.as_str()), "{file}: endpoint tag {tag} not in spec.tags");
            *per_tag.entry(tag).or_default() += 1;
        }
    }
    // The manifest has no per-tag counts; what it does pin down is checked.
    assert_eq!(per_tag.get(DEFAULT_TAG).copied().unwrap_or(0), untagged, "{file}: untagged endpoints");
    for unused in strings(&entry["tags_declared_not_used"]) {
        assert_eq!(per_tag.get(unused), None, "{file}: declared but unused tag {unused} has endpoints");
    }
    for used in strings(&entry["tags_used"]) {
        assert!(per_tag.get(used).copied().unwrap_or(0) > 0, "{file}: tag {used} has no endpoint");
    }
    let deprecated = spec.endpoints.iter().filter(|endpoint| endpoint.deprecated).count() as u64;
    assert_eq!(
        deprecated,
        entry["features"]["deprecated_operations"].as_u64().unwrap(),
        "{file}: deprecated"
    );

    let webhooks = entry["webhook_operations"].as_u64().unwrap();
    let webhook_warning = spec.warnings.iter().find(|warning| warning.contains("webhook"));
    match webhook_warning {
        Some(warning) => assert!(warning.starts_with(&format!("{webhooks} webhook")), "{file}: {warning}"),
        None => assert_eq!(webhooks, 0, "{file}: webhook warning missing"),
    }
}

#[test]
fn corpus_documents_match_the_manifest() {
    let manifest: Value = serde_json::from_str(&read_fixture("MANIFEST.json")).unwrap();
    let documents = manifest["documents"].as_array().unwrap();
    assert_eq!(documents.len() as u64, manifest["document_count"].as_u64().unwrap());
    for entry in documents {
        let file = entry["file"].as_str().unwrap();
        let spec = parse_document(&read_fixture(file), Some(&document_url(file)), None)
            .unwrap_or_else(|error| panic!("{file}: {error}"));
        check_document(entry, &spec);
        // The override wins over whatever the document says.
        let overridden = parse_document(&read_fixture(file), None, Some("http://127.0.0.1:9/")).unwrap();
        assert_eq!(overridden.base_url, "http://127.0.0.1:9/");
    }
}

/// The import limits must not bite real documents: every corpus document (OpenAI's 3 MB is the
/// largest) still imports with an eighth of the values and output and a quarter of the depth.
#[test]
fn corpus_documents_fit_well_within_the_default_limits() {
    let defaults = ParseLimits::DEFAULT;
    let tight = ParseLimits {
        max_values: defaults.max_values / 8,
        max_depth: defaults.max_depth / 4,
        max_output_bytes: defaults.max_output_bytes / 8,
        max_duration: defaults.max_duration,
    };
    let manifest: Value = serde_json::from_str(&read_fixture("MANIFEST.json")).unwrap();
    for entry in manifest["documents"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let spec = parse_document_within(&read_fixture(file), Some(&document_url(file)), None, &tight);
        assert!(spec.is_ok(), "{file}: {}", spec.unwrap_err());
    }
}

#[test]
fn corpus_parses_deterministically_with_examples() {
    for file in [
        "swagger-petstore-v3-openapi.yaml",
        "oai-v2.0-petstore.json",
        "swagger-petstore-v31-code-first-openapi.json",
    ] {
        let text = read_fixture(file);
        let first = parse_document(&text, Some(&document_url(file)), None).unwrap();
        assert_eq!(first, parse_document(&text, Some(&document_url(file)), None).unwrap(), "{file}");
        let with_body = first.endpoints.iter().filter_map(|endpoint| endpoint.request_body.as_ref());
        for body in with_body.filter(|body| body.content_type.contains("json")) {
            assert!(body.example.as_ref().is_some_and(|example| !example.is_null()), "{file}: {body:?}");
        }
    }
}

/// Release-mode timing for the largest fixture; prints, does not assert.
/// `cargo test --release -- --ignored --nocapture openai_parse_timing`
#[test]
#[ignore]
fn openai_parse_timing() {
    let file = "openai-openapi.yaml";
    let text = read_fixture(file);
    for round in 1..=3 {
        let started = Instant::now();
        let spec = parse_document(&text, Some(&document_url(file)), None).unwrap();
        let elapsed = started.elapsed();
        let schema_bytes: usize = spec
            .endpoints
            .iter()
            .filter_map(|endpoint| endpoint.request_body.as_ref()?.schema.as_ref())
            .map(|schema| schema.as_str().len())
            .sum();
        println!(
            "round {round}: parsed {file} ({} bytes, {} endpoints) in {elapsed:?}; request body schemas {schema_bytes} bytes; warnings {:?}",
            text.len(),
            spec.endpoints.len(),
            spec.warnings
        );
    }
}
