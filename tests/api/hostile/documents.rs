//! Hostile input: GraphQL documents. Nesting that would overflow the parser's stack, fragments
//! that double at every level, answers that grow as Nᵏ, and aliased upstream calls, each
//! refused with a stable code while `/health` keeps answering.

use std::time::{Duration, Instant};

use metric_vault::seed;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{assert_healthy, rss_kib};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn post(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("accept", crate::helpers::GRAPHQL_ACCEPT)
        .json(&body)
        .send()
        .await
        .expect("POST /graphql");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}"))
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

fn nested(open: &str, inner: &str, close: &str, levels: usize) -> String {
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

#[tokio::test]
async fn documents_nested_past_the_limit_are_refused_before_parsing() {
    let app = spawn_app().await;
    let attacks = [
        // The report: a 6 KB argument of nested lists aborted the process.
        format!("query {{ project(id: {}) {{ id }} }}", nested("[", "1", "]", 3000)),
        format!("query {{ project(id: {}) {{ id }} }}", nested("{a: ", "1", "}", 3000)),
        format!("query {}", nested("{ projects ", "{ id }", "}", 3000)),
        format!("query {}", nested("{ ... on Query ", "{ projects { id } }", "}", 3000)),
        format!("query($v: {}) {{ projects {{ id }} }}", nested("[", "Int", "]", 3000)),
    ];
    for query in attacks {
        let started = Instant::now();
        let (status, body) = post(&app, json!({ "query": query })).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(code(&body), "GRAPHQL_PARSE_FAILED", "{body}");
        assert!(message(&body).contains("GRAPHQL_MAX_NESTING"), "{body}");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert_healthy(&app).await;
    }

    // The same nesting inside a string is no nesting at all.
    let quoted = format!("query {{ project(id: \"{}\") {{ id }} }}", "[".repeat(3000));
    let (status, body) = post(&app, json!({ "query": quoted })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["project"], Value::Null);

    // Over GET too (urql's default for queries).
    let deep = format!("query {{ project(id: {}) {{ id }} }}", nested("[", "1", "]", 3000));
    let mut url = url::Url::parse(&app.url("/graphql")).unwrap();
    url.query_pairs_mut().append_pair("query", &deep);
    let response = app.client.get(url).header("accept", crate::helpers::GRAPHQL_ACCEPT).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "GRAPHQL_PARSE_FAILED");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn deep_variables_and_too_many_tokens_are_refused() {
    let app = spawn_app_with(&[("GRAPHQL_MAX_TOKENS", "2000")]).await;
    // JSON variables nested 100,000 deep: refused before the JSON reader recurses (each `[`
    // opens a value, and there are more than the request may hold).
    let body = format!(
        r#"{{"query":"query($id: ID!) {{ project(id: $id) {{ id }} }}","variables":{{"id":{}}}}}"#,
        nested("[", "1", "]", 100_000)
    );
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_healthy(&app).await;

    // A flat document of 3,000 aliases: more tokens than this server takes.
    let aliases: String = (0..1000).map(|i| format!("a{i}: __typename ")).collect();
    let (status, body) = post(&app, json!({ "query": format!("{{ {aliases} }}") })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "GRAPHQL_PARSE_FAILED");
    assert!(message(&body).contains("GRAPHQL_MAX_TOKENS"), "{body}");
}

#[tokio::test]
async fn persisted_queries_are_scanned_before_they_are_parsed_or_kept() {
    let app = spawn_app().await;
    let deep = format!("query {{ project(id: {}) {{ id }} }}", nested("[", "1", "]", 3000));
    let hash = format!("{:x}", Sha256::digest(deep.as_bytes()));
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let (status, body) = post(&app, json!({ "query": deep, "extensions": persisted })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "GRAPHQL_PARSE_FAILED");
    // It was not remembered.
    let (_, body) = post(&app, json!({ "extensions": persisted })).await;
    assert_eq!(message(&body), "PersistedQueryNotFound", "{body}");
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");

    // A document too long (a long string literal is one token, but the parser takes it byte by byte).
    let long = format!("{{ project(id: \"{}\") {{ id }} }}", "x".repeat(100 * 1024));
    let hash = format!("{:x}", Sha256::digest(long.as_bytes()));
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let (status, body) = post(&app, json!({ "query": long, "extensions": persisted })).await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("GRAPHQL_MAX_DOCUMENT_BYTES"), "{body}");
    let (_, body) = post(&app, json!({ "extensions": persisted })).await;
    assert_eq!(message(&body), "PersistedQueryNotFound", "{body}");
    assert_healthy(&app).await;
}

/// The report's 909-byte document: each fragment spreads the one below twice, 31 levels.
fn doubling_fragments(levels: usize) -> String {
    let mut document = format!("query {{ ...F{levels} }}\nfragment F0 on Query {{ projects {{ id }} }}\n");
    for level in 1..=levels {
        document.push_str(&format!("fragment F{level} on Query {{ ...F{0} ...F{0} }}\n", level - 1));
    }
    document
}

#[tokio::test]
async fn fragments_that_double_at_every_level_are_refused_at_once() {
    let app = spawn_app().await;
    for query in [
        doubling_fragments(31),
        // The same through inline fragments and a field on every level.
        {
            let mut document =
                "query { ...G40 }\nfragment G0 on Query { projects { id title } }\n".to_owned();
            for level in 1..=40 {
                document.push_str(&format!(
                    "fragment G{level} on Query {{ ... on Query {{ ...G{0} }} __typename ...G{0} }}\n",
                    level - 1
                ));
            }
            document
        },
    ] {
        let started = Instant::now();
        let (status, body) = post(&app, json!({ "query": query })).await;
        let took = started.elapsed();
        assert_eq!(status, 400, "{body}");
        assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
        assert!(message(&body).contains("fragments are expanded"), "{body}");
        assert!(took < Duration::from_secs(1), "{took:?}");
        assert_healthy(&app).await;
    }

    // Fragments that spread each other in a circle would send the depth rule round forever.
    let cycle = "query { ...A } fragment A on Query { projects { ...B } } fragment B on Project { specs { project { ...B } } }";
    let (status, body) = post(&app, json!({ "query": cycle })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");

    // A document that spreads fragments a few times is fine.
    let (status, body) = post(&app, json!({ "query": doubling_fragments(4) })).await;
    assert_eq!(status, 200, "{body}");
}

/// A spec of `endpoints` endpoints in a new project; returns the spec's id.
async fn seeded_spec(app: &TestApp, endpoints: usize) -> i64 {
    let project = app.create_project("hostile").await;
    seed::spec(&app.db, project.parse().unwrap(), "http://127.0.0.1:9000", 2, endpoints).await.spec_id
}

#[tokio::test]
async fn answers_that_grow_as_a_power_of_the_lists_are_refused() {
    let app = spawn_app().await;
    let spec = seeded_spec(&app, 60).await;
    let before = rss_kib();
    // N⁵ = 777,600,000 objects from 60 endpoints, within the depth and complexity limits.
    let fifth = "query($id: ID!) { openApiSpec(id: $id) { endpoints { spec { endpoints { spec { endpoints {
        spec { endpoints { spec { endpoints { id } } } } } } } } } } }";
    let started = Instant::now();
    let (status, body) = post(&app, json!({ "query": fifth, "variables": { "id": spec.to_string() } })).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), "COST_ACTUAL_TOO_EXPENSIVE", "{body}");
    assert!(message(&body).contains("GRAPHQL_MAX_RESPONSE_VALUES"), "{body}");
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "one error, not one per field");
    assert!(took < Duration::from_secs(20), "{took:?}");
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    // With the default GRAPHQL_MAX_RESPONSE_VALUES (100,000) the refused request costs ~180 MiB
    // at its peak in a debug build (the futures of the values in flight).
    assert!(grown_mib < 300, "the server grew by {grown_mib} MiB");
    assert_healthy(&app).await;

    // N² is an ordinary answer.
    let square = "query($id: ID!) { openApiSpec(id: $id) { endpoints { spec { endpoints { id } } } } }";
    let (status, body) =
        post(&app, json!({ "query": square, "variables": { "id": spec.to_string() } })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["openApiSpec"]["endpoints"][59]["spec"]["endpoints"].as_array().unwrap().len(),
        60
    );
}

#[tokio::test]
async fn the_answer_limit_is_a_setting_and_counts_every_path() {
    // Low enough that N² of 40 endpoints passes it, on the JSON path (plain endpoint lists) and
    // on the general one (a fragment).
    let app = spawn_app_with(&[("GRAPHQL_MAX_RESPONSE_VALUES", "1000")]).await;
    let spec = seeded_spec(&app, 40).await;
    let variables = json!({ "id": spec.to_string() });
    for query in [
        "query($id: ID!) { openApiSpec(id: $id) { endpoints { spec { endpoints { id method path } } } } }",
        "query($id: ID!) { openApiSpec(id: $id) { endpoints { spec { endpoints { ...E } } } } }
         fragment E on Endpoint { id method path }",
    ] {
        let (status, body) = post(&app, json!({ "query": query, "variables": variables })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(code(&body), "COST_ACTUAL_TOO_EXPENSIVE", "{query}: {body}");
    }
    let (_, body) = post(
        &app,
        json!({ "query": "query($id: ID!) { openApiSpec(id: $id) { endpoints { id method path } } }", "variables": variables }),
    )
    .await;
    assert_eq!(body["data"]["openApiSpec"]["endpoints"].as_array().unwrap().len(), 40, "{body}");
}

/// A spec whose two endpoints' bodies have examples far larger than the answer limit:
/// a 2,000,000-character string and an array of 150,000 numbers, and whose first endpoint has a
/// 2,000,000-character description (red team, issue 15).
async fn spec_with_huge_examples(app: &TestApp) -> (String, Vec<String>) {
    let project = app.create_project("huge examples").await;
    let body = |example: Value| json!({ "required": true, "content": { "application/json": { "example": example } } });
    let document = json!({
        "openapi": "3.0.3", "info": { "title": "Huge", "version": "1" },
        "servers": [{ "url": "http://127.0.0.1:9" }],
        "paths": {
            "/text": { "post": {
                "description": "d".repeat(2_000_000),
                "requestBody": body(json!("x".repeat(2_000_000))), "responses": { "200": { "description": "ok" } } } },
            "/numbers": { "post": { "requestBody": body(json!(vec![1; 150_000])), "responses": { "200": { "description": "ok" } } } }
        }
    });
    let imported = app
        .graphql(
            "mutation($input: AnalyzeOpenApiInput!) { analyzeOpenApi(input: $input) { spec { id endpoints { id } } } }",
            json!({ "input": { "projectId": project, "document": document.to_string() } }),
        )
        .await;
    let spec = &imported.data()["analyzeOpenApi"]["spec"];
    let endpoints =
        spec["endpoints"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned());
    (spec["id"].as_str().unwrap().to_owned(), endpoints.collect())
}

#[tokio::test]
async fn large_texts_count_against_the_answer_limit_on_every_path() {
    for fast_paths in ["on", "off"] {
        let app = spawn_app_with(&[("GRAPHQL_FAST_PATHS", fast_paths)]).await;
        large_texts_are_refused(&app).await;
    }
}

async fn large_texts_are_refused(app: &TestApp) {
    let (spec, endpoints) = spec_with_huge_examples(app).await;
    let before = rss_kib();
    let aliased: String = (0..300)
        .map(|i| format!("e{i}: endpoint(id: \"{}\") {{ requestBody {{ example }} }} ", endpoints[0]))
        .collect();
    let queries = [
        format!("{{ endpoint(id: \"{}\") {{ id requestBody {{ example }} }} }}", endpoints[0]),
        format!("{{ endpoint(id: \"{}\") {{ id requestBody {{ example }} }} }}", endpoints[1]),
        format!(
            "{{ endpoints(filter: {{specId: \"{spec}\"}}, first: 1) {{ nodes {{ id requestBody {{ example }} }} }} }}"
        ),
        format!(
            "{{ openApiSpec(id: \"{spec}\") {{ endpoints {{ id path requestBody {{ example }} spec {{ id }} }} }} }}"
        ),
        format!("{{ openApiSpec(id: \"{spec}\") {{ endpoints {{ id requestBody {{ example }} }} }} }}"),
        format!("{{ {aliased} }}"),
        // Plain text, not JSON: a description counts by its length too.
        format!("{{ endpoints(filter: {{specId: \"{spec}\"}}) {{ nodes {{ description }} }} }}"),
        format!(
            "{{ {} }}",
            (0..300)
                .map(|i| format!("d{i}: openApiSpec(id: \"{spec}\") {{ endpoints {{ description }} }} "))
                .collect::<String>()
        ),
        format!(
            "{{ {} }}",
            (0..300)
                .map(|i| format!("d{i}: endpoint(id: \"{}\") {{ description }} ", endpoints[i % 2]))
                .collect::<String>()
        ),
    ];
    for query in &queries {
        let started = Instant::now();
        let (status, body) = post(app, json!({ "query": query })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(code(&body), "COST_ACTUAL_TOO_EXPENSIVE", "{}: {body}", &query[..query.len().min(200)]);
        assert!(body["data"].is_null(), "{body}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 200, "the server grew by {grown_mib} MiB");
    // Without the examples, the same endpoints answer.
    let (_, body) = post(app, json!({ "query": format!("{{ endpoint(id: \"{}\") {{ id requestBody {{ contentType }} }} }}", endpoints[0]) })).await;
    assert_eq!(body["data"]["endpoint"]["requestBody"]["contentType"], "application/json", "{body}");
    assert_healthy(app).await;
}

#[tokio::test]
async fn a_nul_character_is_refused_wherever_it_comes_and_writes_nothing() {
    // PostgreSQL stores no NUL in text or JSON: every backend refuses it the same way.
    let app = spawn_app().await;
    let project = app.create_project("kept").await;
    let create = "mutation($title: String!) { createProject(input: {title: $title}) { id } }";
    let document = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},"servers":[{"url":"http://127.0.0.1:9"}],
        "paths":{"/p":{"get":{"summary":"a\u0000b","responses":{"200":{"description":"ok"}}}}}}"#;
    let import = "mutation($input: AnalyzeOpenApiInput!) { analyzeOpenApi(input: $input) { spec { id } } }";
    let attempts = [
        json!({ "query": create, "variables": { "title": "a\u{0}b" } }),
        json!({ "query": "mutation { createProject(input: {title: \"a\\u0000b\"}) { id } }" }),
        json!({ "query": "mutation { createProject(input: {title: \"a\\u{00}b\"}) { id } }" }),
        json!({ "query": import, "variables": { "input": { "projectId": project, "document": document } } }),
        json!({ "query": "mutation M { createProject(input: {title: \"x\"}) { id } }", "operationName": "M\u{0}" }),
    ];
    for attempt in attempts {
        let (status, body) = post(&app, attempt.clone()).await;
        assert!(status == 200 || status == 400, "{status} {body}");
        assert_eq!(code(&body), "BAD_USER_INPUT", "{attempt}: {body}");
        assert!(message(&body).contains("NUL"), "{body}");
    }
    let (_, body) = post(&app, json!({ "query": "{ projects { title specs { id } } }" })).await;
    assert_eq!(body["data"]["projects"], json!([{ "title": "kept", "specs": [] }]), "{body}");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn upstream_calls_are_bounded_per_request_however_they_are_aliased() {
    let app = spawn_app().await;
    let aliased: String = (0..200).map(|i| format!("h{i}: health {{ status }} ")).collect();
    let started = Instant::now();
    let (status, body) = post(&app, json!({ "query": format!("{{ {aliased} }}") })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), "COST_ACTUAL_TOO_EXPENSIVE", "{body}");
    assert!(message(&body).contains("GRAPHQL_MAX_UPSTREAM_CALLS"), "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Through a list: one InfluxDB read per run.
    let project: i64 = app.create_project("runs").await.parse().unwrap();
    for _ in 0..20 {
        seed::Run::new(project).status(metric_vault::domain::TestStatus::Completed).insert(&app.db).await;
    }
    let listed = "{ testHistories(first: 20) { nodes { id timeseries { time tps } } } }";
    let (status, body) = post(&app, json!({ "query": listed })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), "COST_ACTUAL_TOO_EXPENSIVE", "{body}");

    // A few are fine.
    let (status, body) =
        post(&app, json!({ "query": "{ a: health { status } b: health { status } }" })).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["b"]["status"].is_string(), "{body}");
    assert_healthy(&app).await;
}

/// A small deterministic generator (xorshift), so that a failing document can be replayed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A random selection set: fields of the schema (some with lists under them), aliases,
/// `__typename`, inline fragments, spreads of random fragments (cycles included), directives,
/// and now and then brackets that go nowhere.
fn selection_set(dice: &mut Dice, depth: usize, fragments: usize, out: &mut String) {
    out.push_str("{ ");
    for _ in 0..1 + dice.below(if depth > 20 { 2 } else { 6 }) {
        // Documents of a few KB: the generator must not grow as the documents it tries.
        if out.len() > 4096 {
            break;
        }
        match dice.below(10) {
            0 if fragments > 0 => out.push_str(&format!("...F{} ", dice.below(fragments))),
            1 => {
                out.push_str("... on Query ");
                if depth < 200 {
                    let deeper = depth + 1 + dice.below(30);
                    selection_set(dice, deeper, fragments, out);
                }
            }
            2 => out.push_str(&format!("a{}: __typename ", dice.below(1000))),
            3 => out.push_str(&format!("health @include(if: {}) {{ status }} ", dice.below(2) == 0)),
            4 => {
                let levels = dice.below(120);
                out.push_str(&format!(
                    "project(id: {}1{}) {{ id }} ",
                    "[".repeat(levels),
                    "]".repeat(levels)
                ));
            }
            5 => out.push_str(&format!("x{}: projects ", dice.below(5))),
            _ => out.push_str("projects "),
        }
        if out.ends_with("projects ") && depth < 200 {
            let mut inner = String::new();
            selection_set(dice, depth + 1, fragments, &mut inner);
            out.push_str(
                &inner.replace("health", "specs").replace("project(", "id: id(").replace("projects", "specs"),
            );
        }
    }
    out.push_str("} ");
}

fn random_document(seed: u64) -> String {
    let mut dice = Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let fragments = dice.below(12);
    let mut document = String::from("query ");
    selection_set(&mut dice, 0, fragments, &mut document);
    for i in 0..fragments {
        document.push_str(&format!("fragment F{i} on Query "));
        // Each fragment spreads others twice, often: expansions double per level.
        document.push_str(&format!("{{ ...F{} ...F{} ", dice.below(fragments), dice.below(fragments)));
        let mut body = String::new();
        selection_set(&mut dice, 0, fragments, &mut body);
        document.push_str(&body[2..]);
    }
    if dice.below(8) == 0 {
        // Unbalanced on purpose.
        document.push_str(&"{".repeat(dice.below(5000)));
    }
    document
}

#[tokio::test]
async fn random_documents_get_an_answer_or_a_400_never_a_crash_or_a_hang() {
    let app = spawn_app().await;
    let (mut answered, mut refused) = (0, 0);
    for seed in 0..300u64 {
        let document = random_document(seed);
        let started = Instant::now();
        let (status, body) = post(&app, json!({ "query": document })).await;
        // Generous: a hang detector, not a measurement (benches/documents.rs measures).
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "seed {seed} took {:?}: {document}",
            started.elapsed()
        );
        match status {
            200 => answered += 1,
            400 => {
                assert!(
                    matches!(code(&body), "GRAPHQL_PARSE_FAILED" | "GRAPHQL_VALIDATION_FAILED"),
                    "seed {seed}: {body}"
                );
                refused += 1;
            }
            other => panic!("seed {seed}: HTTP {other}: {body}"),
        }
    }
    assert!(answered > 0 && refused > 0, "{answered} answered, {refused} refused: the generator is too tame");
    assert_healthy(&app).await;
}

/// The shape of the schema query GraphiQL and Playground send when they open: nine levels of
/// `ofType` under each type reference.
fn schema_query() -> String {
    let type_ref = format!("{}{{ kind name }}{}", "{ kind name ofType ".repeat(9), " }".repeat(9));
    format!(
        "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }}
           subscriptionType {{ name }} types {{ ...FullType }}
           directives {{ name description locations args {{ ...InputValue }} }} }} }}
         fragment FullType on __Type {{ kind name description
           fields(includeDeprecated: true) {{ name description args {{ ...InputValue }} type {{ ...TypeRef }}
             isDeprecated deprecationReason }}
           inputFields {{ ...InputValue }} interfaces {{ ...TypeRef }}
           enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
           possibleTypes {{ ...TypeRef }} }}
         fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }}
         fragment TypeRef on __Type {type_ref}"
    )
}

#[tokio::test]
async fn the_schema_query_of_graphiql_passes_the_depth_limit_and_deep_fields_do_not() {
    let app = spawn_app().await;
    let (status, body) = post(&app, json!({ "query": schema_query() })).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["__schema"]["types"].as_array().unwrap().len() > 20, "{body}");

    // The depth limit still holds for everything else, through fragments too.
    let deep = "{ projects { specs { tags { endpoints { spec { project { specs { tags { endpoints {
        spec { project { specs { id } } } } } } } } } } } } }";
    let (status, body) = post(&app, json!({ "query": deep })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");
    assert!(message(&body).contains("GRAPHQL_MAX_DEPTH"), "{body}");
    let through_fragment = "{ projects { ...P } } fragment P on Project { specs { tags { endpoints { spec {
        project { specs { tags { endpoints { spec { project { specs { id } } } } } } } } } } } }";
    let (status, _) = post(&app, json!({ "query": through_fragment })).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_document_whose_operation_cannot_be_chosen_is_a_validation_failure() {
    let app = spawn_app().await;
    let two = "query A { projects { id } } query B { projects { title } }";
    for body in [
        json!({ "query": two }),
        json!({ "query": two, "operationName": "C" }),
        json!({ "query": "{ projects { id } }", "operationName": "A" }),
    ] {
        let (status, answer) = post(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(code(&answer), "GRAPHQL_VALIDATION_FAILED", "{answer}");
    }
    let (status, answer) = post(&app, json!({ "query": two, "operationName": "B" })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["projects"], json!([]));
}

async fn post_text(app: &TestApp, body: String) -> (u16, Option<String>, Value) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("accept", crate::helpers::GRAPHQL_ACCEPT)
        .body(body)
        .send()
        .await
        .expect("POST /graphql");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, content_type, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn json_that_would_cost_more_than_it_weighs_is_refused_before_it_is_read() {
    let app = spawn_app().await;
    // The red team's case: 30 MB of `[0,0,…]` in an undeclared variable cost the server 1.6 GB.
    let zeros = vec!["0"; 300_000].join(",");
    for body in [
        format!(r#"{{"query":"{{ __typename }}","variables":{{"x":[{zeros}]}}}}"#),
        format!(r#"{{"query":"{{ __typename }}","extensions":{{"x":[{zeros}]}}}}"#),
    ] {
        let before = rss_kib();
        let (status, _, answer) = post_text(&app, body).await;
        assert_eq!(status, 413, "{answer}");
        assert_eq!(code(&answer), "BAD_REQUEST", "{answer}");
        assert!(rss_kib().saturating_sub(before) < 100 * 1024, "the refusal cost memory");
    }
    // Long strings are one value each: an inline document is not refused for its size.
    let long = format!(r#"{{"query":"{{ __typename }}","variables":{{"x":"{}"}}}}"#, "0,".repeat(300_000));
    let (status, _, answer) = post_text(&app, long).await;
    assert_eq!(status, 200, "{answer}");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn requests_that_are_not_graphql_get_a_graphql_error_with_a_code() {
    let app = spawn_app().await;
    for body in [
        "{\"query\": ".to_owned(),
        r#"[{"query":"{ __typename }"},{"query":"{ __typename }"}]"#.to_owned(),
        "null".to_owned(),
        r#"{"query": 1}"#.to_owned(),
        r#"{"query":"{ __typename }","variables":"x"}"#.to_owned(),
    ] {
        let (status, content_type, answer) = post_text(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(content_type.is_some_and(|t| t.contains("json")), "{body}");
        assert_eq!(code(&answer), "BAD_REQUEST", "{body}: {answer}");
    }
    assert_healthy(&app).await;
}
