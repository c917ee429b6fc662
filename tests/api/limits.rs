//! What keeps a request from hurting the server: the CSRF rule, depth and complexity limits,
//! the body size cap, switchable introspection, and Apollo's persisted queries.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{ADMIN_TOKEN, GraphQlResponse, TestApp, client_with_token, spawn_app, spawn_app_with};

/// The deepest query a dashboard has reason to send: the catalogue down to each endpoint's
/// recent scenarios, their runs and summaries (8 levels).
const DASHBOARD: &str = "{ projects { id title specs { title tags { name endpoints { id method path
  parameters { name location } trend(last: 30) { testedAt p95ResponseTime avgTps }
  recentScenarios(last: 5) { name verdict summary { avgTps p95ResponseTime }
    stages { duration target }
    testHistory { id title status verdict summary { p95ResponseTime avgErrorRate } } } } } } } }";

/// Runs back and forth through the graph until it is 13 levels deep.
const TOO_DEEP: &str = "{ projects { specs { tags { endpoints { recentScenarios { testHistory { scenarios {
  endpoint { recentScenarios { testHistory { scenarios { endpoint { path } } } } } } } } } } } } }";

async fn post_raw(app: &TestApp, content_type: &str, extra: &[(&str, &str)], body: String) -> (u16, Value) {
    let mut request = app.client.post(app.url("/graphql")).header("content-type", content_type).body(body);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn project_count(app: &TestApp) -> usize {
    app.graphql("{ projects { id } }", json!({})).await.data()["projects"].as_array().unwrap().len()
}

#[tokio::test]
async fn posts_a_browser_could_forge_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let mutation =
        json!({ "query": "mutation { createProject(input: {title: \"forged\"}) { id } }" }).to_string();

    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
    {
        let (status, body) = post_raw(&app, content_type, &[], mutation.clone()).await;
        assert_eq!(status, 400, "{content_type}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("cross-site request forgery"));
    }
    assert_eq!(project_count(&app).await, 0);

    // A header only a script can set makes the same request acceptable, as with Apollo Server.
    let (status, body) =
        post_raw(&app, "text/plain", &[("apollo-require-preflight", "true")], mutation.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post_raw(&app, "application/json; charset=utf-8", &[], mutation).await;
    assert_eq!(status, 200);
    assert_eq!(project_count(&app).await, 2);
}

#[tokio::test]
async fn the_deepest_dashboard_query_passes_and_deeper_or_bigger_ones_do_not() {
    let app = spawn_app().await;
    app.create_project("Deep").await;

    let dashboard = app.graphql(DASHBOARD, json!({})).await;
    assert_eq!(dashboard.data()["projects"][0]["title"], "Deep");

    let deep = app.graphql(TOO_DEEP, json!({})).await;
    assert_eq!(deep.status, 400, "{}", deep.body);
    assert_eq!(deep.error_code(), "GRAPHQL_VALIDATION_FAILED");
    assert!(deep.error_message().contains("nested too deep"), "{}", deep.body);

    // 2,100 aliased fields: over the complexity limit, refused before anything runs.
    let wide = format!(
        "{{ {} }}",
        (0..2100).map(|i| format!("a{i}: health {{ status }}")).collect::<Vec<_>>().join(" ")
    );
    let wide = app.graphql(&wide, json!({})).await;
    assert_eq!(wide.status, 400);
    assert!(wide.error_message().contains("complex"), "{}", wide.body);

    // Pages are capped.
    let page = app.graphql("{ endpoints(first: 501) { totalCount } }", json!({})).await;
    assert_eq!(page.error_code(), "BAD_USER_INPUT");
}

#[tokio::test]
async fn request_bodies_over_the_limit_are_refused() {
    let app = spawn_app_with(&[("MAX_REQUEST_BYTES", "100000")]).await;
    let title = "x".repeat(120_000);
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "mutation($t: String!) { createProject(input: {title: $t}) { id } }", "variables": { "t": title } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(project_count(&app).await, 0);
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let open = spawn_app().await;
    let schema = open.graphql("{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(schema.data()["__schema"]["queryType"]["name"], "Query");

    let closed = spawn_app_with(&[("GRAPHQL_INTROSPECTION", "false")]).await;
    let refused = closed.graphql("{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_code(), "GRAPHQL_VALIDATION_FAILED");
    assert!(refused.error_message().contains("introspection is switched off"), "{}", refused.body);
    let hidden = closed
        .graphql(
            "query { ...Sneaky } fragment Sneaky on Query { __type(name: \"Query\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(hidden.status, 400, "{}", hidden.body);
    assert!(closed.graphql("{ health { status } }", json!({})).await.data()["health"].is_object());
}

#[tokio::test]
async fn apollo_persisted_queries_are_remembered_by_hash() {
    let app = spawn_app().await;
    let query = "{ projects { id title } }";
    let hash: String = Sha256::digest(query.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let send = |body: Value| {
        let client = client_with_token(ADMIN_TOKEN);
        let url = app.url("/graphql");
        async move {
            let response = client.post(url).json(&body).send().await.unwrap();
            GraphQlResponse { status: response.status().as_u16(), body: response.json().await.unwrap() }
        }
    };

    // First the hash alone: unknown, so the client must send the text once.
    let unknown = send(json!({ "extensions": persisted })).await;
    assert_eq!(unknown.error_message(), "PersistedQueryNotFound", "{}", unknown.body);
    let registered = send(json!({ "query": query, "extensions": persisted })).await;
    assert!(registered.data()["projects"].is_array());
    // From then on the hash is enough.
    let by_hash = send(json!({ "extensions": persisted })).await;
    assert!(by_hash.data()["projects"].is_array());
}
