//! A small HTTP API to load-test, started by the tests on a loopback port; it publishes its
//! own OpenAPI document so the whole path import → launch → results runs for real.

use std::{collections::HashMap, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// Starts the target; returns its base URL (the document is at `/openapi.json`).
pub async fn start_target() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/openapi.json", get(document))
        .route("/items/{id}", get(item))
        .route("/items", post(create_item))
        .route("/broken", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .with_state(base.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Starts a target and imports its document into a new project of `app`: the project's id, and
/// the endpoint ids by operationId.
pub async fn project_with_target(app: &TestApp, title: &str) -> (String, HashMap<String, String>) {
    let target = start_target().await;
    let project = app.create_project(title).await;
    let imported = app
        .graphql(
            "mutation($p: ID!, $u: String!) { analyzeOpenApi(input: {projectId: $p, url: $u}) { spec { endpoints { id operationId } } } }",
            json!({ "p": project, "u": format!("{target}/openapi.json") }),
        )
        .await;
    let endpoints = imported.data()["analyzeOpenApi"]["spec"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["operationId"].as_str().unwrap().to_owned(), e["id"].as_str().unwrap().to_owned()))
        .collect();
    (project, endpoints)
}

async fn document(State(base): State<String>) -> Json<Value> {
    Json(json!({
        "openapi": "3.0.3",
        "info": {"title": "Load target", "version": "1.0.0"},
        "servers": [{"url": base}],
        "paths": {
            "/items/{id}": {"get": {
                "operationId": "getItem", "tags": ["items"],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "example": 7}}],
                "responses": {"200": {"description": "the item"}}
            }},
            "/items": {"post": {
                "operationId": "createItem", "tags": ["items"],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["name"], "properties": {"name": {"type": "string", "example": "widget"}}
                }}}},
                "responses": {"201": {"description": "created"}}
            }},
            "/broken": {"get": {"operationId": "broken", "responses": {"500": {"description": "always fails"}}}}
        }
    }))
}

async fn item(Path(id): Path<u64>) -> Json<Value> {
    // A few milliseconds, so response times are well above timer noise.
    tokio::time::sleep(Duration::from_millis(3)).await;
    Json(json!({ "id": id, "name": "widget" }))
}

async fn create_item(Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    tokio::time::sleep(Duration::from_millis(2)).await;
    let status = if body.get("name").is_some() { StatusCode::CREATED } else { StatusCode::BAD_REQUEST };
    (status, Json(body))
}
