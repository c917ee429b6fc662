//! HTTP routes: `/graphql` (POST, GET, websocket), `/playground`, `/runs/{id}/report` (a run's
//! report page), `/assets/…` (the pages' files), `/health`, `/ready`.
//!
//! Every GraphQL request is authenticated here (see [`crate::access`]) and carries its
//! [`Principal`] into the schema, where fields check the role they need. `/health`, `/ready`
//! and the GraphiQL and Playground pages and their assets answer without a token: they reveal
//! nothing.

mod csrf;
mod dashboard;
mod origin;
mod pages;
mod report;
mod response;
mod websocket;

pub use crate::memory::ArenaTrimmer;

use async_graphql::Data;
use async_graphql_axum::GraphQLRequest;
use axum::{
    Router,
    extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};

use crate::access::{AuthError, Principal};
use crate::graphql::{
    AppSchema, AppState, fast::eager::RawJsonWriter, loaders::request_loader, schema::ReadOnlyTransport,
};
use response::{MediaType, graphql_response};

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub schema: AppSchema,
    pub app: AppState,
    /// Gives memory back after websockets close.
    pub trimmer: ArenaTrimmer,
    /// Open websockets per client address and per API token.
    pub sockets: SocketCounts,
    /// GraphQL requests over HTTP running at once (`GRAPHQL_MAX_CONCURRENT`).
    pub executions: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Open websockets per client address and per API token.
#[derive(Clone, Default)]
pub struct SocketCounts {
    by_address: websocket::Admissions<std::net::IpAddr>,
    by_token: websocket::Admissions<websocket::TokenKey>,
}

/// The server's routes.
pub fn router(state: HttpState) -> Router {
    // Inline OpenAPI documents may be up to 25 MB; the default leaves room for the JSON envelope.
    let max_body = state.app.settings.security.max_request_bytes;
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/playground", get(pages::playground))
        .route("/runs/{id}/report", get(report::report_page))
        .route("/runs/{id}/dashboard", get(dashboard::dashboard))
        .route("/runs/{id}/dashboard/", get(dashboard::dashboard))
        .route("/runs/{id}/dashboard/{*path}", get(dashboard::dashboard))
        .route("/runs/{id}/k6-report/{instance}", get(dashboard::k6_report))
        .route_layer(middleware::from_fn_with_state(state.clone(), origin::guard))
        .route("/assets/{name}", get(pages::asset))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn execute(
    state: &HttpState,
    principal: Principal,
    request: async_graphql::Request,
    media: MediaType,
) -> Response {
    if let Some(refusal) = response::refuse_malformed(&request) {
        return refusal;
    }
    let request = request.data(request_loader(state.app.db.clone())).data(principal).data(RawJsonWriter);
    // A request that resolves from memory runs on its worker without yielding; a crowd of them
    // would queue `/health` and every cheap request behind it. Those past the permits wait
    // parked, not in the workers' queues.
    let Ok(_permit) = state.executions.acquire().await else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
            "UPSTREAM_UNAVAILABLE",
        );
    };
    graphql_response(state.schema.execute(request).await, media)
}

async fn graphql_post(State(state): State<HttpState>, request: Request) -> Response {
    if let Err(refusal) = csrf::check_post(request.headers()) {
        return refusal.into_response();
    }
    let media = match MediaType::negotiate(request.headers()) {
        Ok(media) => media,
        Err(refusal) => return refusal.into_response(),
    };
    let principal = match authenticate(&state, request.headers()).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    let request = match limit_body(request, state.app.settings.security.max_request_bytes).await {
        Ok(request) => request,
        Err(refusal) => return refusal,
    };
    match <GraphQLRequest as FromRequest<HttpState>>::from_request(request, &state).await {
        Ok(request) => execute(&state, principal, request.into_inner(), media).await,
        Err(rejection) => unreadable(rejection.0),
    }
}

/// Reads the body up to `max` bytes, within [`BODY_READ_TIMEOUT`], and refuses one whose JSON
/// holds more than [`MAX_REQUEST_JSON_VALUES`] values. async-graphql's extractor streams the body
/// itself, past axum's `DefaultBodyLimit`, so the cap is applied here; and it turns every JSON
/// value into a GraphQL value of ~70 bytes, declared variable or not, so 30 MB of `[0,0,…]`
/// would cost over a gigabyte. Large inputs travel as strings (an OpenAPI document is one value).
async fn limit_body(request: Request, max: usize) -> Result<Request, Response> {
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body is larger than {max} bytes (MAX_REQUEST_BYTES)"),
            "BAD_REQUEST",
        )
    };
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, max)).await {
        Ok(read) => read.map_err(|_| too_large())?,
        Err(_) => {
            return Err(error_response(
                StatusCode::REQUEST_TIMEOUT,
                &format!("the request body did not arrive within {} s", BODY_READ_TIMEOUT.as_secs()),
                "BAD_REQUEST",
            ));
        }
    };
    if json_values_exceed(&bytes, MAX_REQUEST_JSON_VALUES) {
        return Err(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request holds more than {MAX_REQUEST_JSON_VALUES} JSON values (lists and objects in \
                 variables or extensions); send large inputs as strings"
            ),
            "BAD_REQUEST",
        ));
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// How long a client may take to send its request body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The most JSON values (array items and object members) one request body may hold.
pub const MAX_REQUEST_JSON_VALUES: usize = 100_000;

/// Whether `json` holds more than `limit` values, counted without parsing: every `[`, `{` and
/// `,` outside strings starts one.
fn json_values_exceed(json: &[u8], limit: usize) -> bool {
    let (mut values, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' | b',' => {
                values += 1;
                if values > limit {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// A request async-graphql could not read (not JSON, a batch, fields of the wrong type), said
/// as a GraphQL error with a code rather than as the extractor's debug text.
fn unreadable(error: async_graphql::ParseRequestError) -> Response {
    let detail = error.to_string();
    let message = if matches!(error, async_graphql::ParseRequestError::UnsupportedBatch) {
        "batched requests (a JSON array) are not supported: send one operation per request".to_owned()
    } else {
        let mut detail = detail;
        detail.truncate(300);
        format!(
            "the request is not a GraphQL request (`query`, `variables`, `operationName`, `extensions`): {detail}"
        )
    };
    error_response(StatusCode::BAD_REQUEST, &message, "BAD_REQUEST")
}

/// The caller behind the request's `Authorization` header, or a 401 answer saying why not.
async fn authenticate(state: &HttpState, headers: &HeaderMap) -> Result<Principal, Response> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.app.auth.authenticate(authorization).await.map_err(|err| {
        let status = if err == AuthError::Unavailable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::UNAUTHORIZED
        };
        let code = if err == AuthError::Unavailable { "UPSTREAM_UNAVAILABLE" } else { "UNAUTHENTICATED" };
        let mut response = error_response(status, &err.to_string(), code);
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        response
    })
}

/// A GraphQL-shaped error answer for requests refused before they reach the schema.
pub(crate) fn error_response(status: StatusCode, message: &str, code: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, axum::Json(body)).into_response()
}

/// GET serves three clients: websocket upgrades, a browser asking for GraphiQL, and
/// query-string requests (urql's default for queries).
async fn graphql_get(State(state): State<HttpState>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    if is_websocket_upgrade(&parts.headers) {
        return websocket(state, &mut parts);
    }
    if parts.uri.query().is_none_or(str::is_empty) && wants_html(&parts.headers) {
        return pages::graphiql();
    }
    let media = match MediaType::negotiate(&parts.headers) {
        Ok(media) => media,
        Err(refusal) => return refusal.into_response(),
    };
    let principal = match authenticate(&state, &parts.headers).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    let request = Request::from_parts(parts, body);
    match <GraphQLRequest as FromRequest<HttpState>>::from_request(request, &state).await {
        Ok(request) => execute(&state, principal, request.into_inner().data(ReadOnlyTransport), media).await,
        Err(rejection) => unreadable(rejection.0),
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

fn websocket(state: HttpState, parts: &mut Parts) -> Response {
    let Some(protocol) = websocket::negotiate(&parts.headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "GraphQL over websocket needs a subprotocol: send Sec-WebSocket-Protocol \
             `graphql-transport-ws` (graphql-ws, Apollo Client, urql) or `graphql-ws` (legacy subscriptions-transport-ws)",
        )
            .into_response();
    };
    let settings = &state.app.settings.connections;
    let peer = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip());
    let place = match peer {
        Some(peer) => {
            match state
                .sockets
                .by_address
                .admit(websocket::client_key(peer), settings.max_sockets_per_address)
            {
                Some(place) => Some(place),
                None => {
                    return error_response(
                        StatusCode::TOO_MANY_REQUESTS,
                        &format!(
                            "this address already holds {} open websockets (WS_MAX_SOCKETS_PER_ADDRESS)",
                            settings.max_sockets_per_address
                        ),
                        "TOO_MANY_SOCKETS",
                    );
                }
            }
        }
        None => None,
    };
    let handshake = match websocket::handshake(parts) {
        Ok(handshake) => handshake,
        Err(refusal) => return refusal.into_response(),
    };
    let authorization =
        parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let limits = websocket::SocketLimits::from(settings);
    let budget = websocket::InboundBudget::new(limits.max_bytes_before_init);
    handshake.accept(
        protocol.sec_websocket_protocol(),
        limits.config(),
        budget.clone(),
        move |socket| async move {
            let _place = place;
            // One loader for the connection. It keeps no rows between batches, so every event
            // shows the rows as they are then, and nothing grows with the events.
            let loader = request_loader(state.app.db.clone());
            let mut data = Data::default();
            data.insert(loader);
            let auth = websocket::Auth {
                authenticator: state.app.auth.clone(),
                upgrade_header: authorization,
                tokens: state.sockets.by_token.clone(),
            };
            websocket::serve(socket, budget, state.schema.clone(), protocol, data, auth, limits).await;
            state.trimmer.connection_closed();
        },
    )
}

async fn ready(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if crate::db::ping(&state.app.db).await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

/// A short plain-text answer (the report page's and the dashboard proxy's refusals).
fn plain_refusal(status: StatusCode, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers = [
        (header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8")),
        (header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff")),
        (header::CACHE_CONTROL, header::HeaderValue::from_static("no-store")),
    ];
    (status, headers, format!("{message}\n")).into_response()
}
