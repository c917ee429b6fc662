//! Generated k6 scripts embed user text — titles, names, paths, parameters, headers, bodies —
//! and must keep it data. This launches a real k6 run whose every user-supplied field tries to
//! break out of the script, and checks that k6 ran it, the attack never ran, and the target
//! received each hostile string verbatim as plain data.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::{Request, State},
    routing::{any, get},
};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

/// What the target saw.
#[derive(Default)]
struct Seen {
    canary_hits: usize,
    requests: Vec<(String, Option<String>, String)>, // (path and query, x-hostile header, body)
}

/// Breaks out of a JSON/JS string, a template literal, a comment and a tag, and calls the canary.
fn payload(canary: &str) -> String {
    format!(
        "'\"`);import http from 'k6/http';http.get('{canary}');//${{http.get('{canary}')}}\\\u{2028}*/</script>\n"
    )
}

async fn target(seen: Arc<Mutex<Seen>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new()
        .route(
            "/canary",
            get(|State(seen): State<Arc<Mutex<Seen>>>| async move {
                seen.lock().unwrap().canary_hits += 1;
            }),
        )
        .fallback(any(|State(seen): State<Arc<Mutex<Seen>>>, request: Request| async move {
            let (parts, body) = request.into_parts();
            let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
            let header = parts.headers.get("x-hostile").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let target = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
            seen.lock().unwrap().requests.push((target, header, String::from_utf8_lossy(&body).into_owned()));
            "ok"
        }))
        .with_state(seen);
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn hostile_text_in_every_field_stays_data_in_a_real_k6_run() {
    let app = spawn_app().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let base = target(seen.clone()).await;
    let hostile = payload(&format!("{base}/canary"));

    // The document itself carries hostile text: title, summary, operationId, a parameter's example.
    let document = json!({
        "openapi": "3.0.3",
        "info": { "title": hostile, "version": "1" },
        "servers": [{ "url": base }],
        "paths": { "/echo/{id}": { "post": {
            "operationId": hostile, "summary": hostile, "tags": [hostile],
            "parameters": [
                { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "example": hostile } },
                { "name": "q", "in": "query", "required": true, "schema": { "type": "string", "example": hostile } }
            ],
            "requestBody": { "content": { "application/json": { "schema": { "type": "object" } } } },
            "responses": { "200": { "description": "echo" } }
        } } }
    });
    let project = app.create_project(&hostile[..60]).await;
    let imported = app
        .graphql(
            "mutation($p: ID!, $d: String!) { analyzeOpenApi(input: {projectId: $p, document: $d}) { spec { endpoints { id } } } }",
            json!({ "p": project, "d": document.to_string() }),
        )
        .await;
    let endpoint =
        imported.data()["analyzeOpenApi"]["spec"]["endpoints"][0]["id"].as_str().unwrap().to_owned();

    let input = json!({
        "title": &hostile[..100],
        "description": hostile,
        "scenarios": [{
            "name": &hostile[..90],
            "endpointId": endpoint,
            "executor": "CONSTANT_ARRIVAL_RATE",
            "stages": [{ "duration": "1s", "target": 3 }],
            "thinkTime": 0,
            "responseTimeTarget": 10000,
            "request": {
                "pathParams": { "id": hostile },
                "queryParams": { "q": hostile },
                "headers": { "x-hostile": hostile.replace(['\n', '\u{2028}'], " ") },
                "body": { "note": hostile }
            }
        }]
    });
    let launched = app
        .graphql(
            "mutation($i: LaunchLoadTestInput!) { launchLoadTest(input: $i) { id k6Script } }",
            json!({ "i": input }),
        )
        .await;
    let id = launched.data()["launchLoadTest"]["id"].as_str().unwrap().to_owned();
    let script = launched.data()["launchLoadTest"]["k6Script"].as_str().unwrap().to_owned();
    assert!(!script.contains('\u{2028}'), "line separators are escaped");

    let run = loop {
        let run = app
            .graphql("query($id: ID!) { testHistory(id: $id) { status failureReason } }", json!({ "id": id }))
            .await;
        let run = run.data()["testHistory"].clone();
        if !matches!(run["status"].as_str(), Some("PENDING" | "RUNNING")) {
            break run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // k6 parsed and ran the script: the hostile text broke nothing.
    assert_eq!(run["status"], "COMPLETED", "{run}");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.canary_hits, 0, "the injected code never ran");
    assert!(seen.requests.len() >= 2, "k6 sent its load: {}", seen.requests.len());
    for (target, header, body) in &seen.requests {
        let (path, query) = target.split_once('?').expect("a query string");
        let id = path.strip_prefix("/echo/").expect("the endpoint's path");
        assert_eq!(percent_decode(id), hostile, "the path parameter arrived as data");
        assert_eq!(percent_decode(query.strip_prefix("q=").unwrap()), hostile, "so did the query parameter");
        // HTTP trims a header value's trailing blanks; everything else arrives as sent.
        let sent_header = hostile.replace(['\n', '\u{2028}'], " ");
        assert_eq!(header.as_deref(), Some(sent_header.trim_end()), "and the header");
        let body: Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(body["note"], hostile, "and the body");
    }
}
