//! Who may do what: API tokens, roles, the websocket handshake, AUTH_MODE=none.

use futures_util::StreamExt;
use metric_vault::access::tokens;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    helpers::{ADMIN_TOKEN, GraphQlResponse, TestApp, client_with_token, spawn_app, spawn_app_with},
    subscriptions::support::{PATIENCE, Protocol, open_socket},
};

const CREATE_TOKEN: &str = "mutation($name: String!, $role: Role!) {
  createApiToken(input: {name: $name, role: $role}) { token apiToken { id name role prefix createdAt lastUsedAt revokedAt } } }";

/// POSTs `query` with `token` (or none).
async fn graphql_as(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> GraphQlResponse {
    let client = token.map_or_else(reqwest::Client::new, client_with_token);
    app.graphql_with(&client, query, variables).await
}

async fn create_token(app: &TestApp, name: &str, role: &str) -> (String, String) {
    let created = app.graphql(CREATE_TOKEN, json!({ "name": name, "role": role })).await;
    let created = &created.data()["createApiToken"];
    (created["token"].as_str().unwrap().to_owned(), created["apiToken"]["id"].as_str().unwrap().to_owned())
}

async fn project_count(app: &TestApp) -> i64 {
    let row = app
        .db
        .query_one_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM project",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_unauthenticated() {
    let app = spawn_app().await;

    for token in [None, Some("mv_not-a-real-token"), Some("")] {
        let answer = graphql_as(&app, token, "{ projects { id } }", json!({})).await;
        assert_eq!(answer.status, 401, "{token:?}: {}", answer.body);
        assert_eq!(answer.error_code(), "UNAUTHENTICATED");
    }
    let malformed = metric_vault::tls::client()
        .post(app.url("/graphql"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .json(&json!({ "query": "{ projects { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 401);
    assert_eq!(malformed.headers()["www-authenticate"], "Bearer");
    let body: Value = malformed.json().await.unwrap();
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("Bearer"), "{body}");

    // GET queries (urql) need the token as well.
    let get = metric_vault::tls::client()
        .get(app.url("/graphql?query=%7Bprojects%7Bid%7D%7D"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 401);

    // Liveness, readiness and the GraphiQL page reveal nothing and need no token.
    let plain = metric_vault::tls::client();
    assert_eq!(plain.get(app.url("/health")).send().await.unwrap().status(), 200);
    assert_eq!(plain.get(app.url("/ready")).send().await.unwrap().status(), 200);
    let page = plain.get(app.url("/graphql")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn each_role_can_do_what_it_should_and_nothing_more() {
    let app = spawn_app().await;
    let (viewer, _) = create_token(&app, "dashboard", "VIEWER").await;
    let (operator, _) = create_token(&app, "ci", "OPERATOR").await;
    let (admin, _) = create_token(&app, "ops lead", "ADMIN").await;
    let create = "mutation { createProject(input: {title: \"Shop\"}) { id } }";

    // VIEWER: reads, never writes — and a refused write leaves nothing behind.
    let me =
        graphql_as(&app, Some(&viewer), "{ viewer { name role tokenId } projects { id } }", json!({})).await;
    assert_eq!(me.data()["viewer"]["role"], "VIEWER");
    assert_eq!(me.data()["viewer"]["name"], "dashboard");
    let refused = graphql_as(&app, Some(&viewer), create, json!({})).await;
    assert_eq!(refused.error_code(), "FORBIDDEN");
    assert!(refused.error_message().contains("OPERATOR"), "{}", refused.body);
    assert_eq!(project_count(&app).await, 0, "a refused mutation writes nothing");
    let tokens = graphql_as(&app, Some(&viewer), "{ apiTokens { id } }", json!({})).await;
    assert_eq!(tokens.error_code(), "FORBIDDEN");

    // OPERATOR: creates and edits, may not delete or manage tokens.
    let project = graphql_as(&app, Some(&operator), create, json!({})).await;
    let id = project.data()["createProject"]["id"].as_str().unwrap().to_owned();
    let delete = "mutation($id: ID!) { deleteProject(id: $id) }";
    let refused = graphql_as(&app, Some(&operator), delete, json!({ "id": id })).await;
    assert_eq!(refused.error_code(), "FORBIDDEN");
    assert_eq!(project_count(&app).await, 1);
    let refused =
        graphql_as(&app, Some(&operator), CREATE_TOKEN, json!({ "name": "escalate", "role": "ADMIN" })).await;
    assert_eq!(refused.error_code(), "FORBIDDEN");

    // ADMIN: deletes.
    let deleted = graphql_as(&app, Some(&admin), delete, json!({ "id": id })).await;
    assert_eq!(deleted.data()["deleteProject"], id);
}

#[tokio::test]
async fn tokens_are_shown_once_stored_as_digests_listed_without_secrets_and_revocable() {
    let app = spawn_app().await;
    let (token, id) = create_token(&app, "grafana", "VIEWER").await;
    assert!(token.starts_with("mv_") && token.len() > 40, "{token}");

    // Only the SHA-256 digest is stored.
    let row = app
        .db
        .query_one_raw(Statement::from_string(
            app.db.get_database_backend(),
            format!("SELECT token_hash, token_prefix FROM api_token WHERE id = {id}"),
        ))
        .await
        .unwrap()
        .unwrap();
    let stored: String = row.try_get("", "token_hash").unwrap();
    assert_eq!(stored, tokens::hex(&tokens::digest(&token)));
    assert!(!stored.contains(&token[3..]));

    // Used once, the token's last use is recorded (in the background).
    let used = graphql_as(&app, Some(&token), "{ viewer { tokenId } }", json!({})).await;
    assert_eq!(used.data()["viewer"]["tokenId"], id);
    let listed = loop {
        let list = app.graphql("{ apiTokens { id name role prefix lastUsedAt revokedAt } }", json!({})).await;
        let listed = list.data()["apiTokens"][0].clone();
        if !listed["lastUsedAt"].is_null() {
            break listed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(listed["name"], "grafana");
    assert_eq!(listed["prefix"], token[..9]);
    assert!(!listed.to_string().contains(&token[9..]), "the secret is never shown again: {listed}");

    // Revoked, it stops working at once.
    let revoke = "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }";
    let revoked = app.graphql(revoke, json!({ "id": id })).await;
    assert!(revoked.data()["revokeApiToken"]["revokedAt"].is_string());
    let after = graphql_as(&app, Some(&token), "{ viewer { name } }", json!({})).await;
    assert_eq!(after.status, 401);
    assert_eq!(app.graphql(revoke, json!({ "id": id })).await.error_code(), "CONFLICT");
    assert_eq!(app.graphql(revoke, json!({ "id": "999" })).await.error_code(), "NOT_FOUND");

    // Bad input is refused and writes nothing.
    let blank = app.graphql(CREATE_TOKEN, json!({ "name": "  ", "role": "VIEWER" })).await;
    assert_eq!(blank.error_code(), "BAD_USER_INPUT");
    let all = app.graphql("{ apiTokens { id } }", json!({})).await;
    assert_eq!(all.data()["apiTokens"].as_array().unwrap().len(), 1);
}

/// Reads frames until the server closes; returns the close code and the texts seen before it.
async fn close_code(socket: &mut crate::subscriptions::support::TcpGraphQlSocket) -> (u16, Vec<Value>) {
    let mut texts = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, socket.socket.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), texts),
            Some(Ok(Message::Text(text))) => texts.push(serde_json::from_str(&text).unwrap()),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn websockets_take_the_token_in_connection_init_and_close_4403_without_one() {
    let app = spawn_app().await;
    let (viewer, _) = create_token(&app, "wall screen", "VIEWER").await;

    for (protocol, payload) in [
        (Protocol::Modern, json!({})),
        (Protocol::Modern, json!({ "authorization": "Bearer mv_wrong" })),
        (Protocol::Legacy, json!({ "authorization": "Bearer mv_wrong" })),
    ] {
        let mut socket = open_socket(&app.address, protocol).await;
        socket.send(json!({ "type": "connection_init", "payload": payload })).await;
        // A subscription sent right behind the refused handshake must not start.
        socket.subscribe("1", "subscription { testStatusChanged { status } }", json!({})).await;
        let (code, texts) = close_code(&mut socket).await;
        assert_eq!(code, 4403, "{protocol:?} {payload}");
        assert!(
            texts.iter().all(|t| t["type"] != "connection_ack" && t["type"] != "next" && t["type"] != "data")
        );
        if protocol == Protocol::Legacy {
            assert_eq!(texts[0]["type"], "connection_error", "{texts:?}");
        }
    }

    // A stored token works, in the payload or (for clients that cannot set a payload) as a header.
    let mut socket = open_socket(&app.address, Protocol::Modern).await;
    let ack = socket.init_with(json!({ "authorization": format!("Bearer {viewer}") })).await;
    assert_eq!(ack["type"], "connection_ack");
    socket.subscribe("1", "query { viewer { role } }", json!({})).await;
    let answer = socket.next_message().await;
    assert_eq!(answer["payload"]["data"]["viewer"]["role"], "VIEWER", "{answer}");
    assert_eq!(socket.next_message().await["type"], "complete");
    socket.subscribe("2", "mutation { createProject(input: {title: \"x\"}) { id } }", json!({})).await;
    let refused = socket.next_message().await;
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");
}

#[tokio::test]
async fn revoking_a_token_closes_the_websockets_it_opened_and_no_other() {
    let app = spawn_app().await;
    let (revoked, revoked_id) = create_token(&app, "old wall screen", "VIEWER").await;
    let (kept, _) = create_token(&app, "new wall screen", "VIEWER").await;
    let mut doomed = Vec::new();
    for protocol in [Protocol::Modern, Protocol::Legacy] {
        let mut socket = open_socket(&app.address, protocol).await;
        let ack = socket.init_with(json!({ "authorization": format!("Bearer {revoked}") })).await;
        assert_eq!(ack["type"], "connection_ack", "{protocol:?}");
        socket.subscribe("1", "subscription { testStatusChanged { status } }", json!({})).await;
        doomed.push(socket);
    }
    let mut survivor = open_socket(&app.address, Protocol::Modern).await;
    let ack = survivor.init_with(json!({ "authorization": format!("Bearer {kept}") })).await;
    assert_eq!(ack["type"], "connection_ack");
    survivor.subscribe("1", "subscription { testStatusChanged { status } }", json!({})).await;

    let revoke = "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }";
    assert!(
        app.graphql(revoke, json!({ "id": revoked_id })).await.data()["revokeApiToken"]["revokedAt"]
            .is_string()
    );

    // Closed at once — well before the first keep-alive re-check, 12 s after connecting —
    // with the code of a refused token.
    for socket in &mut doomed {
        let (code, texts) = tokio::time::timeout(std::time::Duration::from_secs(5), close_code(socket))
            .await
            .expect("closed at once");
        assert_eq!(code, 4403, "{texts:?}");
    }
    // The other token's connection is untouched and still answers.
    survivor.subscribe("2", "query { viewer { name } }", json!({})).await;
    let answer = survivor.next_message().await;
    assert_eq!(answer["payload"]["data"]["viewer"]["name"], "new wall screen", "{answer}");
}

#[tokio::test]
async fn auth_mode_none_lets_everyone_in_as_admin() {
    let app = spawn_app_with(&[("AUTH_MODE", "none")]).await;
    let open = graphql_as(&app, None, "{ viewer { role name } }", json!({})).await;
    assert_eq!(open.data()["viewer"]["role"], "ADMIN");
    let created =
        graphql_as(&app, None, "mutation { createProject(input: {title: \"Laptop\"}) { id } }", json!({}))
            .await;
    assert!(created.data()["createProject"]["id"].is_string());
    // The bootstrap token is simply not needed; it is no error to send one.
    let with_token = graphql_as(&app, Some(ADMIN_TOKEN), "{ projects { id } }", json!({})).await;
    assert_eq!(with_token.status, 200);
}
