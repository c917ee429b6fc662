//! `metric-vault demo-target`: a small shop API on loopback that publishes its own OpenAPI
//! document, so a first session can import, launch and watch a real run with nothing else
//! installed (README, "A first session").
//!
//! It answers every request itself, after a short pause that varies with the request (2–6 ms),
//! so runs show response times that are not all the same; `GET /products/{id}` answers 404 for
//! an id past the catalogue, so error rates can be tried too.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    extract::Path,
    http::StatusCode,
    routing::{get, post},
};
use serde_json::{Value, json};

/// Products in the catalogue: ids 1 to this.
const PRODUCTS: u64 = 20;

/// The document the demo publishes at `/openapi.json`, with `base` as its server.
pub fn openapi_document(base: &str) -> Value {
    let product = json!({ "type": "object", "properties": {
        "id": {"type": "integer", "example": 7}, "name": {"type": "string", "example": "Espresso cup"},
        "price": {"type": "number", "example": 12.5} } });
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Metric Vault demo shop", "version": "1.0.0",
                  "description": "A small API served by `metric-vault demo-target`, for a first load test." },
        "servers": [{ "url": base }],
        "tags": [{ "name": "catalogue" }, { "name": "orders" }],
        "paths": {
            "/products": { "get": { "operationId": "listProducts", "tags": ["catalogue"], "summary": "Every product",
                "responses": { "200": { "description": "the catalogue",
                    "content": { "application/json": { "schema": { "type": "array", "items": product } } } } } } },
            "/products/{id}": { "get": { "operationId": "getProduct", "tags": ["catalogue"], "summary": "One product",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" }, "example": 7 }],
                "responses": { "200": { "description": "the product", "content": { "application/json": { "schema": product } } },
                               "404": { "description": "no such product" } } } },
            "/orders": { "post": { "operationId": "placeOrder", "tags": ["orders"], "summary": "Place an order",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object",
                    "properties": { "productId": {"type": "integer", "example": 7}, "quantity": {"type": "integer", "example": 2} } } } } },
                "responses": { "201": { "description": "the order, accepted" } } } }
        }
    })
}

fn product(id: u64) -> Value {
    json!({ "id": id, "name": format!("Product {id}"), "price": 5.0 + (id % 7) as f64 * 2.5 })
}

/// A pause of 2–6 ms, varying with `seed`.
async fn work(seed: u64) {
    tokio::time::sleep(Duration::from_millis(2 + seed.wrapping_mul(2_654_435_761) % 5)).await;
}

/// The demo's routes, its document naming `base`.
pub fn router(base: &str) -> Router {
    let document = openapi_document(base);
    Router::new()
        .route("/openapi.json", get(move || async move { Json(document) }))
        .route(
            "/products",
            get(|| async {
                work(0).await;
                Json(Value::Array((1..=PRODUCTS).map(product).collect()))
            }),
        )
        .route(
            "/products/{id}",
            get(|Path(id): Path<u64>| async move {
                work(id).await;
                if (1..=PRODUCTS).contains(&id) { Ok(Json(product(id))) } else { Err(StatusCode::NOT_FOUND) }
            }),
        )
        .route(
            "/orders",
            post(|Json(order): Json<Value>| async move {
                work(order["productId"].as_u64().unwrap_or(1)).await;
                (StatusCode::CREATED, Json(json!({ "accepted": true, "order": order })))
            }),
        )
}

/// Serves the demo on `bind` (a loopback address: load tests go to loopback only) until
/// stopped, printing its document's URL first.
pub async fn serve(bind: SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(bind.ip().is_loopback(), "the demo target listens on loopback only, not {bind}");
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let address = listener.local_addr()?;
    let base = format!("http://{address}");
    println!("demo target: {base}/openapi.json");
    axum::serve(listener, router(&base)).await?;
    Ok(())
}
