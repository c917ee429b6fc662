//! GraphQL over HTTP to the server, with the token, a timeout on every request, and errors
//! sorted into those worth retrying while a run is followed and those that end the command.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use crate::tls::TrustedRoots;

/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What modern GraphQL clients accept: the GraphQL-over-HTTP media type first.
const ACCEPT: &str = "application/graphql-response+json, application/json;q=0.9";

/// Why a request to the server did not give the answer asked for.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: DNS, a refused or reset connection, TLS, a timeout.
    #[error("cannot reach the server at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The token was refused (HTTP 401, `UNAUTHENTICATED`).
    #[error("the server at {endpoint} refused the token: {message}")]
    Unauthenticated { endpoint: String, message: String },
    /// A GraphQL error with its `extensions.code`.
    #[error("{message} ({code})")]
    Refused { code: String, message: String },
    /// An answer that is not GraphQL: a wrong URL, a proxy's page, a gateway error.
    #[error("{endpoint} answered HTTP {status} with no GraphQL answer{excerpt}")]
    NotGraphql { endpoint: String, status: u16, excerpt: String },
}

impl ClientError {
    /// Whether asking again later may work: the server or the way to it is down for now.
    /// Only used while following a run; nothing before the launch is retried.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::NotGraphql { status, .. } => *status >= 500,
            Self::Refused { code, .. } => {
                matches!(code.as_str(), "UPSTREAM_UNAVAILABLE" | "INTERNAL_SERVER_ERROR")
            }
            Self::Unauthenticated { .. } => false,
        }
    }

    /// The error's `extensions.code`, when the server gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            Self::Unauthenticated { .. } => Some("UNAUTHENTICATED"),
            _ => None,
        }
    }
}

/// An answer's `data` with the errors reported beside it (e.g. InfluxDB down for one field).
pub struct Answer {
    pub data: Value,
    pub errors: Vec<ClientError>,
}

/// A client of one server's GraphQL endpoint, sending one token.
#[derive(Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    endpoint: Url,
    token: String,
}

impl ServerClient {
    /// A client of `endpoint` verifying https against `roots`.
    pub fn new(endpoint: Url, token: String, roots: &TrustedRoots) -> Self {
        let http = crate::tls::client_builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("metric-vault/", env!("CARGO_PKG_VERSION"), " (run)"))
            .tls_backend_preconfigured(roots.client_config())
            .build()
            .expect("a client with a rustls configuration always builds");
        Self { http, endpoint, token }
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Runs `document` and deserializes its `data`; any error fails it.
    pub async fn query<T: DeserializeOwned>(
        &self,
        document: &str,
        variables: Value,
    ) -> Result<T, ClientError> {
        let answer = self.answer(document, variables).await?;
        if let Some(error) = answer.errors.into_iter().next() {
            return Err(error);
        }
        serde_json::from_value(answer.data).map_err(|err| ClientError::Refused {
            code: "UNEXPECTED_ANSWER".into(),
            message: format!(
                "the server's answer does not have the expected shape ({err}); is it the same version?"
            ),
        })
    }

    /// Runs `document`: its `data` (null when the errors took it) and its errors.
    pub async fn answer(&self, document: &str, variables: Value) -> Result<Answer, ClientError> {
        let endpoint = self.endpoint.to_string();
        let response = self
            .http
            .post(self.endpoint.clone())
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .json(&json!({ "query": document, "variables": variables }))
            .send()
            .await
            .map_err(|err| ClientError::Unreachable {
                endpoint: endpoint.clone(),
                reason: why_unreachable(&err),
            })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|err| ClientError::Unreachable {
            endpoint: endpoint.clone(),
            reason: why_unreachable(&err),
        })?;
        let Ok(body) = serde_json::from_slice::<Value>(&body) else {
            return Err(ClientError::NotGraphql { endpoint, status, excerpt: excerpt(&body) });
        };
        let errors: Vec<ClientError> = body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|error| {
                let code = error["extensions"]["code"].as_str().unwrap_or("UNKNOWN").to_owned();
                let message = error["message"].as_str().unwrap_or("no message").to_owned();
                match code.as_str() {
                    "UNAUTHENTICATED" => ClientError::Unauthenticated { endpoint: endpoint.clone(), message },
                    _ => ClientError::Refused { code, message },
                }
            })
            .collect();
        if errors.is_empty() && (status == 401 || body.get("data").is_none()) {
            return Err(ClientError::NotGraphql {
                endpoint,
                status,
                excerpt: excerpt(body.to_string().as_bytes()),
            });
        }
        Ok(Answer { data: body.get("data").cloned().unwrap_or(Value::Null), errors })
    }
}

/// Why no answer came, in words: the certificate problem, the timeout, or the innermost cause.
fn why_unreachable(error: &reqwest::Error) -> String {
    if let Some(problem) = crate::tls::certificate_problem(error) {
        // The words are the server's own, for its fetches; here the one not trusting is us.
        let problem = problem.replace("this server does not trust", "not trusted here");
        return format!(
            "its TLS certificate is not trusted ({problem}); a private CA can be added with TLS_EXTRA_CA_FILE"
        );
    }
    if error.is_timeout() {
        return format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let prefix = if error.is_connect() { "could not connect: " } else { "" };
    format!("{prefix}{cause}")
}

/// The start of a body that is not JSON, to tell a proxy's page from a wrong URL.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return String::new();
    }
    let cut: String = text.chars().take(160).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    format!(": {cut}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_server_may_answer_later_is_retried_and_the_rest_is_not() {
        let refused = |code: &str| ClientError::Refused { code: code.into(), message: "m".into() };
        assert!(ClientError::Unreachable { endpoint: "e".into(), reason: "r".into() }.is_transient());
        assert!(refused("UPSTREAM_UNAVAILABLE").is_transient());
        assert!(
            ClientError::NotGraphql { endpoint: "e".into(), status: 502, excerpt: String::new() }
                .is_transient()
        );
        assert!(
            !ClientError::NotGraphql { endpoint: "e".into(), status: 404, excerpt: String::new() }
                .is_transient()
        );
        assert!(!refused("NOT_FOUND").is_transient());
        assert!(!refused("FORBIDDEN").is_transient());
        assert!(!ClientError::Unauthenticated { endpoint: "e".into(), message: "m".into() }.is_transient());
    }

    #[test]
    fn a_page_that_is_not_json_is_quoted_briefly() {
        assert_eq!(excerpt(b"<html>\n  <h1>Not Found</h1>\n</html>"), ": <html> <h1>Not Found</h1> </html>");
        assert_eq!(excerpt(b""), "");
        assert!(excerpt("x".repeat(500).as_bytes()).ends_with('…'));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_says_so() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let endpoint = Url::parse(&format!("http://127.0.0.1:{port}/graphql")).unwrap();
        let client = ServerClient::new(endpoint, "mv_x".into(), &TrustedRoots::default());
        let error = client.query::<Value>("{ viewer { name } }", json!({})).await.unwrap_err();
        assert!(error.is_transient());
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "cannot reach the server at http://127.0.0.1:{port}/graphql: could not connect"
            )),
            "{message}"
        );
    }
}
