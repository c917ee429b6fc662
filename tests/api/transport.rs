//! HTTP and websocket transport: status codes, GET, GraphiQL, Playground, health, subprotocols.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use crate::helpers::{ADMIN_TOKEN, spawn_app};

#[tokio::test]
async fn parse_and_validation_failures_answer_400_with_apollo_codes() {
    let app = spawn_app().await;

    let parse = app.graphql("{ projects { id ", json!({})).await;
    assert_eq!(parse.status, 400);
    assert_eq!(parse.error_code(), "GRAPHQL_PARSE_FAILED");

    let validation = app.graphql("{ projects { nope } }", json!({})).await;
    assert_eq!(validation.status, 400);
    assert_eq!(validation.error_code(), "GRAPHQL_VALIDATION_FAILED");

    let execution = app.graphql("mutation { deleteProject(id: \"5\") }", json!({})).await;
    assert_eq!(execution.status, 200, "an execution error is still a 200 with errors");
}

fn get_url(endpoint: &str, query: &str) -> url::Url {
    url::Url::parse_with_params(endpoint, &[("query", query)]).unwrap()
}

#[tokio::test]
async fn get_runs_queries_but_refuses_mutations() {
    let app = spawn_app().await;
    app.create_project("Visible").await;

    let query = app.client.get(get_url(&app.url("/graphql"), "{ projects { title } }")).send().await.unwrap();
    assert_eq!(query.status(), 200);
    let body: Value = query.json().await.unwrap();
    assert_eq!(body["data"]["projects"][0]["title"], "Visible");

    let mutation_text = "mutation { createProject(input: {title: \"x\"}) { id } }";
    let mutation = app.client.get(get_url(&app.url("/graphql"), mutation_text)).send().await.unwrap();
    assert_eq!(mutation.status(), 405);
    let body: Value = mutation.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "METHOD_NOT_ALLOWED");
    let projects = app.graphql("{ projects { id } }", json!({})).await;
    assert_eq!(projects.data()["projects"].as_array().unwrap().len(), 1, "nothing was written");
}

#[tokio::test]
async fn browsers_get_graphiql_and_playground() {
    let app = spawn_app().await;

    let graphiql = app.client.get(app.url("/graphql")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql.text().await.unwrap().contains("GraphiQL"));

    let playground = app.client.get(app.url("/playground")).send().await.unwrap();
    assert_eq!(playground.status(), 200);
    assert!(playground.text().await.unwrap().contains("GraphQL Playground"));
}

#[tokio::test]
async fn health_ready_and_the_health_query_report_dependencies() {
    let app = spawn_app().await;

    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().text().await.unwrap(), "ok");
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let health = app
        .graphql(
            "{ health { status version database influxdb runners { runner available detail } } }",
            json!({}),
        )
        .await;
    let health = &health.data()["health"];
    assert_eq!(health["database"], true);
    assert_eq!(health["influxdb"], false, "tests point InfluxDB at a closed port");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["runners"][0]["runner"], "LOCAL");
}

async fn ws_connect(
    address: &str,
    protocol: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let mut request = format!("ws://{address}/graphql").into_client_request().unwrap();
    if let Some(protocol) = protocol {
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(protocol).unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(stream, _)| stream)
}

async fn next_json(
    stream: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("a message in time");
        if let Some(Ok(Message::Text(text))) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn websockets_speak_both_graphql_subprotocols() {
    let app = spawn_app().await;
    app.create_project("Over the socket").await;

    let mut modern = ws_connect(&app.address, Some("graphql-transport-ws")).await.unwrap();
    modern
        .send(Message::text(
            json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {ADMIN_TOKEN}")}})
                .to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut modern).await["type"], "connection_ack");
    modern
        .send(Message::text(
            json!({"id": "1", "type": "subscribe", "payload": {"query": "{ projects { title } }"}})
                .to_string(),
        ))
        .await
        .unwrap();
    let next = next_json(&mut modern).await;
    assert_eq!(next["type"], "next");
    assert_eq!(next["payload"]["data"]["projects"][0]["title"], "Over the socket");
    assert_eq!(next_json(&mut modern).await["type"], "complete");

    let mut legacy = ws_connect(&app.address, Some("graphql-ws")).await.unwrap();
    legacy
        .send(Message::text(
            json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {ADMIN_TOKEN}")}})
                .to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut legacy).await["type"], "connection_ack");
}

#[tokio::test]
async fn a_websocket_without_a_subprotocol_is_told_what_to_send() {
    let app = spawn_app().await;

    let refused = ws_connect(&app.address, None).await;

    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("graphql-transport-ws"), "{body}");
        }
        other => panic!("expected an HTTP 400 refusal, got {:?}", other.map(|_| "a connection")),
    }
}
