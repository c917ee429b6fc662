//! HTTP routes: `/graphql` (POST, GET, websocket), `/playground`, `/health`, `/ready`.

mod trim;
mod websocket;

pub use trim::ArenaTrimmer;

use async_graphql::{
    Data,
    http::{GraphQLPlaygroundConfig, WebSocketProtocols, playground_source},
};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};

use crate::graphql::{
    AppSchema, AppState,
    loaders::request_loader,
    schema::{METHOD_NOT_ALLOWED, PARSE_FAILED, ReadOnlyTransport, VALIDATION_FAILED},
};

/// The largest request body accepted.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub schema: AppSchema,
    pub app: AppState,
    /// Gives memory back after websockets close.
    pub trimmer: ArenaTrimmer,
}

/// The server's routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/playground", get(playground))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        // Inline OpenAPI documents may be up to 25 MB; leave room for the JSON envelope.
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

async fn execute(state: &HttpState, request: async_graphql::Request) -> Response {
    let response = state.schema.execute(request.data(request_loader(state.app.db.clone()))).await;
    // As Apollo Server does: a document that never ran is the client's fault, said with a 4xx.
    let status =
        response.errors.iter().filter_map(|e| e.extensions.as_ref()?.get("code").cloned()).find_map(|code| {
            match code {
                async_graphql::Value::String(code) if code == PARSE_FAILED || code == VALIDATION_FAILED => {
                    Some(StatusCode::BAD_REQUEST)
                }
                async_graphql::Value::String(code) if code == METHOD_NOT_ALLOWED => {
                    Some(StatusCode::METHOD_NOT_ALLOWED)
                }
                _ => None,
            }
        });
    let mut http_response = GraphQLResponse::from(response).into_response();
    if let Some(status) = status {
        *http_response.status_mut() = status;
    }
    http_response
}

async fn graphql_post(State(state): State<HttpState>, request: GraphQLRequest) -> Response {
    execute(&state, request.into_inner()).await
}

/// GET serves three clients: websocket upgrades, a browser asking for GraphiQL, and
/// query-string requests (urql's default for queries).
async fn graphql_get(State(state): State<HttpState>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    if is_websocket_upgrade(&parts.headers) {
        let protocol = websocket::negotiate(&parts.headers);
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        return websocket(state, protocol, upgrade);
    }
    if parts.uri.query().is_none_or(str::is_empty) && wants_html(&parts.headers) {
        return Html(GRAPHIQL_PAGE).into_response();
    }
    let request = Request::from_parts(parts, body);
    match <GraphQLRequest as FromRequest<HttpState>>::from_request(request, &state).await {
        Ok(request) => execute(&state, request.into_inner().data(ReadOnlyTransport)).await,
        Err(rejection) => rejection.into_response(),
    }
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

fn websocket(state: HttpState, protocol: Option<WebSocketProtocols>, upgrade: WebSocketUpgrade) -> Response {
    let Some(protocol) = protocol else {
        return (
            StatusCode::BAD_REQUEST,
            "GraphQL over websocket needs a subprotocol: send Sec-WebSocket-Protocol \
             `graphql-transport-ws` (graphql-ws, Apollo Client, urql) or `graphql-ws` (legacy subscriptions-transport-ws)",
        )
            .into_response();
    };
    let upgrade = upgrade
        .protocols([protocol.sec_websocket_protocol()])
        .read_buffer_size(websocket::BUFFER_BYTES)
        .write_buffer_size(websocket::BUFFER_BYTES);
    upgrade.on_upgrade(move |socket| async move {
        // One loader for the connection. It keeps no rows between batches, so every event
        // shows the rows as they are then, and nothing grows with the events.
        let loader = request_loader(state.app.db.clone());
        let mut data = Data::default();
        data.insert(loader);
        websocket::serve(socket, state.schema.clone(), protocol, data).await;
        state.trimmer.connection_closed();
    })
}

async fn playground() -> Html<String> {
    Html(playground_source(GraphQLPlaygroundConfig::new("/graphql").subscription_endpoint("/graphql")))
}

async fn ready(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if crate::db::ping(&state.app.db).await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

/// GraphiQL 3 from a CDN, with graphql-ws for subscriptions on the same path.
const GRAPHIQL_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Metric Vault · GraphiQL</title>
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3.8.3/graphiql.min.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="https://unpkg.com/react@18.3.1/umd/react.production.min.js" crossorigin></script>
  <script src="https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js" crossorigin></script>
  <script src="https://unpkg.com/graphql-ws@5.16.0/umd/graphql-ws.min.js" crossorigin></script>
  <script src="https://unpkg.com/graphiql@3.8.3/graphiql.min.js" crossorigin></script>
  <script>
    const url = new URL('/graphql', window.location.href);
    const wsUrl = url.href.replace(/^http/, 'ws');
    const fetcher = GraphiQL.createFetcher({ url: url.href, wsClient: graphqlWs.createClient({ url: wsUrl }) });
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true })
    );
  </script>
</body>
</html>
"#;
