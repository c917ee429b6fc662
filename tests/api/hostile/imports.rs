//! Hostile input: imports. Documents that expand (YAML aliases, `$ref` fan-out) or nest without
//! end are refused within their limits before anything is written; imports by URL reach only
//! the hosts the import policy allows and cannot tell a closed port from a forbidden host.
//!
//! Everything stays on loopback: the forbidden hosts are loopback addresses the test's
//! configuration leaves out (127.0.0.2, 127.0.0.3).

use std::time::{Duration, Instant};

use axum::{Router, http::StatusCode, response::Redirect, routing::get};
use serde_json::{Map, Value, json};

use super::assert_healthy;
use crate::helpers::{GraphQlResponse, TestApp, serve, spawn_app, spawn_app_with};

const ANALYZE: &str = r#"mutation($input: AnalyzeOpenApiInput!) {
    analyzeOpenApi(input: $input) { spec { id } addedEndpoints } }"#;

/// Said of every host an import may not reach, and of every network failure.
const NOT_IMPORTABLE: &str =
    "no answer from that host, or it is not one documents may be imported from (IMPORT_ALLOWED_HOSTS)";

async fn import(app: &TestApp, source: Value) -> GraphQlResponse {
    let project = app.create_project("Hostile").await;
    let mut input = json!({ "projectId": project, "baseUrl": "http://127.0.0.1:9/" });
    input.as_object_mut().unwrap().extend(source.as_object().unwrap().clone());
    app.graphql(ANALYZE, json!({ "input": input })).await
}

/// The refusal's code and message, and that nothing was stored and the server still answers.
async fn assert_refused(app: &TestApp, response: &GraphQlResponse, message: &str) {
    assert_eq!(response.error_code(), "BAD_USER_INPUT", "{}", response.body);
    assert!(response.error_message().contains(message), "{message:?} not in {}", response.body);
    let specs = app.graphql("{ openApiSpecs { id } }", json!({})).await;
    assert_eq!(specs.data()["openApiSpecs"], json!([]), "a refused import writes nothing");
    assert_healthy(app).await;
}

/// A valid document whose extension `x-payload` holds `payload` (YAML text, indented by 2).
fn yaml_document(payload: &str) -> String {
    format!(
        "openapi: 3.0.0\ninfo: {{title: Hostile, version: '1'}}\npaths:\n  /ok:\n    get: {{}}\nx-payload:\n{payload}"
    )
}

/// 3 KB of YAML that expands to 2.5 million values: a list of 1,000 scalars, aliased 100 times
/// in a second anchor, aliased 25 times. Within yaml_serde's jump limit (100 per event).
fn laughs() -> String {
    let scalars = vec!["1"; 1000].join(",");
    let hundred = vec!["*a"; 100].join(",");
    let twenty_five = vec!["*b"; 25].join(",");
    yaml_document(&format!("  a: &a [{scalars}]\n  b: &b [{hundred}]\n  c: [{twenty_five}]\n"))
}

const LAUGHS_REFUSAL: &str = "the YAML document expands to more than 1000000 values through its aliases";

#[tokio::test]
async fn yaml_aliases_that_expand_past_the_limit_are_refused_quickly() {
    let app = spawn_app().await;
    let text = laughs();
    assert!(text.len() < 4096, "{} bytes", text.len());

    let started = Instant::now();
    let inline = import(&app, json!({ "document": text })).await;
    assert!(started.elapsed() < Duration::from_secs(3), "refused in {:?}", started.elapsed());
    assert_refused(&app, &inline, LAUGHS_REFUSAL).await;

    let host = serve(Router::new().route("/laughs.yaml", get(move || async move { text }))).await;
    let started = Instant::now();
    let fetched = import(&app, json!({ "url": format!("{host}/laughs.yaml") })).await;
    assert!(started.elapsed() < Duration::from_secs(3), "refused in {:?}", started.elapsed());
    assert_refused(&app, &fetched, LAUGHS_REFUSAL).await;

    // Few values, but each alias of a long string copies it: 1 MB a hundred times.
    let long =
        yaml_document(&format!("  a: &a {}\n  b: [{}]\n", "x".repeat(1 << 20), vec!["*a"; 100].join(",")));
    let copies = import(&app, json!({ "document": long })).await;
    assert_refused(&app, &copies, "the YAML document's aliases repeat more than 64 MB of text").await;

    // The same shapes, small, import: aliases are fine, their expansion is what is bounded.
    let modest = yaml_document("  a: &a [1, 2, 3]\n  b: [*a, *a, *a]\n");
    assert!(
        import(&app, json!({ "document": modest })).await.data()["analyzeOpenApi"]["spec"]["id"].is_string()
    );
}

#[tokio::test]
async fn documents_nested_100000_levels_deep_are_refused_and_the_server_stays_up() {
    let app = spawn_app().await;
    let levels = 100_000;
    let json_lists = format!(
        r#"{{"openapi": "3.0.0", "info": {{"title": "Deep", "version": "1"}}, "paths": {{}}, "x": {}{}}}"#,
        "[".repeat(levels),
        "]".repeat(levels)
    );
    let json_objects = format!(
        r#"{{"openapi": "3.0.0", "paths": {{}}, "x": {}1{}}}"#,
        r#"{"a":"#.repeat(levels),
        "}".repeat(levels)
    );
    let yaml_flow = yaml_document(&format!("  deep: {}x{}\n", "{a: ".repeat(levels), "}".repeat(levels)));
    let yaml_block = yaml_document(&format!("  deep:\n    {}x\n", "- ".repeat(levels)));
    for document in [json_lists, json_objects, yaml_flow, yaml_block] {
        let refused = import(&app, json!({ "document": document })).await;
        assert_refused(
            &app,
            &refused,
            "the document nests more than 100 levels deep (limit: IMPORT_MAX_DEPTH = 100)",
        )
        .await;
    }
}

/// Eight schemas, each an `allOf` of the next twice, the last with 100 KB of description: one
/// request body inlines 128 copies (12.8 MB; within one schema's own bounds of 8 levels and
/// 400 expansions), and the document has 40 operations using it.
fn ref_fan_out() -> String {
    let mut schemas = Map::new();
    for level in 0..7 {
        let next = json!({ "$ref": format!("#/components/schemas/S{}", level + 1) });
        schemas.insert(format!("S{level}"), json!({ "allOf": [next.clone(), next] }));
    }
    schemas.insert("S7".into(), json!({ "type": "string", "description": "x".repeat(100_000) }));
    let body =
        json!({ "content": { "application/json": { "schema": { "$ref": "#/components/schemas/S0" } } } });
    let paths: Map<String, Value> =
        (0..40).map(|n| (format!("/op{n}"), json!({ "post": { "requestBody": body.clone() } }))).collect();
    json!({ "openapi": "3.0.0", "info": { "title": "Fan-out", "version": "1" }, "paths": paths,
            "components": { "schemas": schemas } })
    .to_string()
}

#[tokio::test]
async fn ref_fan_out_is_refused_by_what_it_would_produce() {
    let app = spawn_app().await;
    let document = ref_fan_out();
    assert!(document.len() < 200_000, "{} bytes", document.len());
    let started = Instant::now();
    let refused = import(&app, json!({ "document": document })).await;
    assert!(started.elapsed() < Duration::from_secs(20), "refused in {:?}", started.elapsed());
    assert_refused(
        &app,
        &refused,
        "the document's schemas expand to more than 64 MB through their $refs (limit: IMPORT_MAX_OUTPUT_MB = 64",
    )
    .await;
}

#[tokio::test]
async fn parsing_stops_at_its_time_limit() {
    // A millisecond is less than OpenAI's 3 MB document takes: the deadline, checked as the
    // parse goes, stops it, whichever phase it is in.
    let app = spawn_app_with(&[("IMPORT_PARSE_SECONDS", "0.001")]).await;
    let refused = import(&app, json!({ "document": crate::helpers::fixture("openai-openapi.yaml") })).await;
    assert_refused(
        &app,
        &refused,
        "reading the document took longer than 1 ms (limit: IMPORT_PARSE_SECONDS)",
    )
    .await;
}

/// A document host on `address` serving `/doc.json`, `/missing` and `/redirect` to `to`.
async fn document_host(address: &str, to: Option<String>) -> String {
    let listener = tokio::net::TcpListener::bind(address).await.expect("bind a loopback address");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let document = json!({ "openapi": "3.0.0", "info": { "title": "Docs", "version": "1" },
                           "servers": [{ "url": "http://127.0.0.1:9/" }], "paths": { "/a": { "get": {} } } })
    .to_string();
    let mut router = Router::new()
        .route("/doc.json", get(move || async move { document }))
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no") }));
    if let Some(to) = to {
        router = router.route("/redirect", get(move || async move { Redirect::temporary(&to) }));
    }
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test]
async fn hosts_outside_the_import_policy_read_like_closed_ports() {
    let elsewhere = document_host("127.0.0.2:0", None).await;
    let third = document_host("127.0.0.3:0", None).await;
    let allowed = document_host("127.0.0.1:0", Some(format!("{third}/doc.json"))).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let port_of = |base: &str| base.rsplit(':').next().unwrap().to_owned();

    // Every network-level refusal answers when the fetch's time limit is up.
    let policy = [("IMPORT_ALLOWED_HOSTS", "127.0.0.1"), ("IMPORT_FETCH_SECONDS", "2")];
    let app = spawn_app_with(&policy).await;
    let ok = import(&app, json!({ "url": format!("{allowed}/doc.json") })).await;
    assert_eq!(ok.data()["analyzeOpenApi"]["addedEndpoints"], 1, "the allowed host imports");
    let missing = import(&app, json!({ "url": format!("{allowed}/missing") })).await;
    assert!(missing.error_message().contains("answered HTTP 404"), "HTTP answers say what they were");

    let app = spawn_app_with(&policy).await;
    let urls = [
        format!("http://127.0.0.1:{closed}/doc.json"), // a closed port on an allowed host
        format!("{elsewhere}/doc.json"),               // a live server on a host outside the policy
        format!("{allowed}/redirect"),                 // an allowed host redirecting outside it
        format!("http://[::ffff:127.0.0.2]:{}/doc.json", port_of(&elsewhere)), // IPv4 in IPv6
    ];
    for url in urls {
        let started = Instant::now();
        let refused = import(&app, json!({ "url": url })).await;
        // Neither the words nor the time tell a closed port from a forbidden host.
        assert!(started.elapsed() >= Duration::from_secs(2), "{url}: answered in {:?}", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(4), "{url}: answered in {:?}", started.elapsed());
        // The URL as given (never where a redirect led), then one reason for every case.
        let message = refused.error_message();
        let shown =
            message.strip_prefix("could not fetch ").and_then(|rest| rest.strip_suffix(NOT_IMPORTABLE));
        assert!(shown.is_some_and(|shown| !shown.contains("127.0.0.3")), "{message}");
        assert_refused(&app, &refused, NOT_IMPORTABLE).await;
    }

    // `0.0.0.0` reaches this host: it is loopback for the policy, outside a 127.0.0.2 allow list.
    let other = spawn_app_with(&[("IMPORT_ALLOWED_HOSTS", "127.0.0.2"), ("IMPORT_FETCH_SECONDS", "1")]).await;
    let refused =
        import(&other, json!({ "url": format!("http://0.0.0.0:{}/doc.json", port_of(&allowed)) })).await;
    assert_refused(&other, &refused, NOT_IMPORTABLE).await;
    let fetched = import(&other, json!({ "url": format!("{elsewhere}/doc.json") })).await;
    assert_eq!(fetched.data()["analyzeOpenApi"]["addedEndpoints"], 1);
}
