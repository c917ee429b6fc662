//! Fetching an OpenAPI document over HTTP, with limits on time, size and redirects, from the
//! hosts the import policy allows.
//!
//! Whatever goes wrong below HTTP — a host outside the policy (on the URL, a redirect or a DNS
//! answer), a refused or reset connection, a timeout, a name that does not resolve, TLS — is
//! answered with one and the same [`FetchError::Unreachable`], so the import cannot be used
//! to tell open ports from closed or filtered ones; the log says what happened. Once a host
//! the policy allows answers in HTTP, its answer (a 404, a page that is not a document) is
//! reported as it is.

use std::error::Error as _;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use url::Url;

use crate::access::targets::{Host, ImportPolicy, TargetRefusal};
use crate::tls::TrustedRoots;

/// Bounds on one document download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchLimits {
    /// For the whole exchange, body included.
    pub timeout: Duration,
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
}

impl Default for FetchLimits {
    /// 10 s, 25 MiB, 5 redirects: the largest public descriptions (GitHub's) are about 12 MB.
    fn default() -> Self {
        FetchLimits { timeout: Duration::from_secs(10), max_bytes: 25 * 1024 * 1024, max_redirects: 5 }
    }
}

/// A downloaded document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedDocument {
    /// The body, as text.
    pub text: String,
    /// Where the document was finally served from, after redirects; relative server URLs
    /// in the document resolve against it.
    pub final_url: Url,
}

/// Why a document could not be fetched. The Display text is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The text is not a URL.
    #[error("`{url}` is not a valid URL: {reason}")]
    InvalidUrl {
        /// As given.
        url: String,
        /// The URL parser's message.
        reason: String,
    },
    /// `file:`, `ftp:` and the like.
    #[error("only http and https URLs can be imported, not `{scheme}:`")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// No answer in HTTP: the host is outside the import policy, or the network failed
    /// (refused, reset, timed out, no such name, TLS). Deliberately one message for all.
    #[error(
        "could not fetch {url}: no answer from that host, or it is not one documents may be \
         imported from (IMPORT_ALLOWED_HOSTS)"
    )]
    Unreachable {
        /// The URL requested, as given (never where a redirect led).
        url: String,
    },
    /// A status other than 2xx.
    #[error("{url} answered HTTP {status}")]
    HttpStatus {
        /// The URL that answered.
        url: String,
        /// Code and reason, e.g. "404 Not Found".
        status: String,
    },
    /// A redirect loop, or a chain longer than the limit.
    #[error("{url} redirected more than {max_redirects} times")]
    TooManyRedirects {
        /// The URL requested.
        url: String,
        /// The limit.
        max_redirects: usize,
    },
    /// The body is over the size limit.
    #[error("the document is larger than {limit}")]
    TooLarge {
        /// The limit, e.g. "25 MB".
        limit: String,
    },
    /// The body is not UTF-8 text.
    #[error("the document at {url} is not UTF-8 text")]
    NotUtf8 {
        /// The URL that served it.
        url: String,
    },
    /// The server's TLS certificate did not verify.
    #[error(
        "could not fetch {url}: its TLS certificate is not trusted ({problem}); a private CA can be added with TLS_EXTRA_CA_FILE"
    )]
    UntrustedCertificate {
        /// The URL requested.
        url: String,
        /// What is wrong with the certificate.
        problem: String,
    },
}

/// A client for [`fetch_document`]: follows at most `max_redirects` redirects, stops after
/// `timeout`, and ignores proxy environment variables (a server should not route imports
/// through whatever proxy its environment happens to name).
///
/// It never connects to a host outside `policy`: host names are checked with every answer
/// the resolver gives, so a name that resolves to a refused address is refused however it was
/// reached (redirects, DNS rebinding), and address literals are checked on the way in and on
/// every redirect.
///
/// https is verified against `roots` (the web PKI and `TLS_EXTRA_CA_FILE`).
pub fn build_client(limits: &FetchLimits, policy: &ImportPolicy, roots: &TrustedRoots) -> reqwest::Client {
    let max_redirects = limits.max_redirects;
    let redirect_policy = policy.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if let Some(refusal) = literal_refusal(&redirect_policy, attempt.url()) {
            return attempt.error(refusal);
        }
        if attempt.previous().len() > max_redirects {
            return attempt.error(format!("more than {max_redirects} redirects"));
        }
        attempt.follow()
    });
    crate::tls::client_builder()
        .redirect(redirects)
        .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() }))
        .timeout(limits.timeout)
        .no_proxy()
        .user_agent(concat!("metric-vault/", env!("CARGO_PKG_VERSION"), " (OpenAPI import)"))
        .tls_backend_preconfigured(roots.client_config())
        .build()
        .expect("a client with a rustls configuration and no proxies always builds")
}

/// The refusal for a URL whose host is an address literal the policy refuses (names go
/// through the resolver). Webhook deliveries check their URLs with it too.
pub fn literal_refusal(policy: &ImportPolicy, url: &Url) -> Option<TargetRefusal> {
    let literal = match url.host()? {
        url::Host::Ipv4(address) => std::net::IpAddr::V4(address),
        url::Host::Ipv6(address) => std::net::IpAddr::V6(address),
        url::Host::Domain(_) => return None,
    };
    policy.check(&Host::new(&literal.to_string(), Vec::new())).err()
}

/// Resolves names with the system resolver, refusing any the policy does not cover with
/// every address it resolves to. Webhook deliveries resolve through it too.
pub struct GuardedResolver {
    policy: ImportPolicy,
}

impl GuardedResolver {
    pub fn new(policy: ImportPolicy) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let host = Host::new(&name, addresses.iter().map(SocketAddr::ip).collect());
            policy.check(&host)?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Downloads `url`, streaming the body so an oversized document is refused without being held
/// in memory. The redirect limit and the policy's guard are the client's, so `client` should
/// come from [`build_client`] with the same `policy`.
///
/// An [`FetchError::Unreachable`] answer comes when the time limit is up, whatever happened
/// and however fast: a refused port or a forbidden host answers no sooner than a silent one,
/// so neither the words nor the time of the answer tell them apart.
pub async fn fetch_document(
    client: &reqwest::Client,
    url: &str,
    limits: &FetchLimits,
    policy: &ImportPolicy,
) -> Result<FetchedDocument, FetchError> {
    let started = tokio::time::Instant::now();
    let result = fetch_unpadded(client, url, limits, policy).await;
    if let Err(FetchError::Unreachable { .. }) = &result {
        tokio::time::sleep_until(started + limits.timeout).await;
    }
    result
}

async fn fetch_unpadded(
    client: &reqwest::Client,
    url: &str,
    limits: &FetchLimits,
    policy: &ImportPolicy,
) -> Result<FetchedDocument, FetchError> {
    let parsed = Url::parse(url.trim())
        .map_err(|error| FetchError::InvalidUrl { url: url.to_owned(), reason: error.to_string() })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FetchError::UnsupportedScheme { scheme: parsed.scheme().to_owned() });
    }
    let shown_url = parsed.to_string();
    if let Some(refusal) = literal_refusal(policy, &parsed) {
        tracing::info!(url = %shown_url, %refusal, "import refused by the import policy");
        return Err(FetchError::Unreachable { url: shown_url });
    }
    // The client's own timeout may differ from `limits`; this one bounds the whole exchange.
    match tokio::time::timeout(limits.timeout, download(client, parsed, limits)).await {
        Ok(result) => result.map_err(|error| describe(error, &shown_url, limits)),
        Err(_elapsed) => {
            tracing::info!(url = %shown_url, limit = %human_duration(limits.timeout), "import fetch timed out");
            Err(FetchError::Unreachable { url: shown_url })
        }
    }
}

/// Failures inside the download, before they are worded for the user.
enum DownloadError {
    Client(reqwest::Error),
    Status { url: String, status: reqwest::StatusCode },
    TooLarge,
    NotUtf8 { url: String },
}

async fn download(
    client: &reqwest::Client,
    url: Url,
    limits: &FetchLimits,
) -> Result<FetchedDocument, DownloadError> {
    let mut response = client.get(url).send().await.map_err(DownloadError::Client)?;
    let final_url = response.url().clone();
    if !response.status().is_success() {
        return Err(DownloadError::Status { url: final_url.to_string(), status: response.status() });
    }
    if response.content_length().is_some_and(|length| length > limits.max_bytes as u64) {
        return Err(DownloadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(DownloadError::Client)? {
        if body.len() + chunk.len() > limits.max_bytes {
            return Err(DownloadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| DownloadError::NotUtf8 { url: final_url.to_string() })?;
    Ok(FetchedDocument { text, final_url })
}

fn describe(error: DownloadError, url: &str, limits: &FetchLimits) -> FetchError {
    let url = url.to_owned();
    let error = match error {
        DownloadError::Client(error) => error,
        DownloadError::Status { url, status } => {
            let reason = status.canonical_reason().unwrap_or("");
            return FetchError::HttpStatus {
                url,
                status: format!("{} {reason}", status.as_u16()).trim_end().to_owned(),
            };
        }
        DownloadError::TooLarge => {
            return FetchError::TooLarge { limit: human_size(limits.max_bytes) };
        }
        DownloadError::NotUtf8 { url } => return FetchError::NotUtf8 { url },
    };
    let refusal = refusal_in(&error);
    if refusal.is_none() && error.is_redirect() {
        // Only a redirect loop or too long a chain gets here: a refused redirect carries its refusal.
        return FetchError::TooManyRedirects { url, max_redirects: limits.max_redirects };
    }
    if refusal.is_none()
        && let Some(problem) = crate::tls::certificate_problem(&error)
    {
        tracing::info!(url = %url, %problem, "import refused: the TLS certificate did not verify");
        return FetchError::UntrustedCertificate { url, problem };
    }
    match refusal {
        Some(refusal) => tracing::info!(url = %url, %refusal, "import refused by the import policy"),
        None => tracing::info!(url = %url, reason = %innermost_message(&error), "import fetch failed"),
    }
    FetchError::Unreachable { url }
}

/// The policy's refusal behind a client error (from the resolver or the redirect policy).
fn refusal_in(error: &reqwest::Error) -> Option<TargetRefusal> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<TargetRefusal>() {
            return Some(refusal.clone());
        }
        source = cause.source();
    }
    None
}

/// reqwest's own message is generic ("error sending request"); the cause says what happened.
fn innermost_message(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    message
}

fn human_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

fn human_size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::Redirect;
    use axum::routing::get;
    use tokio::net::TcpListener;

    const DOCUMENT: &str = "openapi: 3.0.0\ninfo: {title: Local, version: '1'}\npaths: {}\n";

    /// Serves the test routes on a free loopback port; the task ends with the test's runtime.
    async fn start_server() -> String {
        let router = Router::new()
            .route("/spec.yaml", get(|| async { DOCUMENT }))
            .route("/moved", get(|| async { Redirect::temporary("/spec.yaml") }))
            .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no such spec") }))
            .route("/loop", get(|| async { Redirect::temporary("/loop") }))
            .route("/big", get(|| async { "x".repeat(4096) }))
            .route("/latin1", get(|| async { vec![0x63_u8, 0x61, 0x66, 0xe9] }))
            .route("/elsewhere", get(|| async { Redirect::temporary("http://127.0.0.3:9/spec.yaml") }))
            .route(
                "/never",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "too late"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{address}")
    }

    fn small_limits() -> FetchLimits {
        FetchLimits { timeout: Duration::from_millis(300), max_bytes: 1024, max_redirects: 3 }
    }

    #[tokio::test]
    async fn fetches_and_follows_redirects() {
        let base = start_server().await;
        let limits = small_limits();
        let client = build_client(&limits, &ImportPolicy::default(), &TrustedRoots::default());
        let fetched = fetch_document(&client, &format!("{base}/moved"), &limits, &ImportPolicy::default())
            .await
            .unwrap();
        assert_eq!(fetched.text, DOCUMENT);
        assert_eq!(fetched.final_url.as_str(), format!("{base}/spec.yaml"));
        let spec = super::super::parse_document(&fetched.text, Some(&fetched.final_url), None).unwrap();
        assert_eq!(spec.base_url, format!("{base}/"));
    }

    #[tokio::test]
    async fn reports_status_loops_size_timeout_and_encoding() {
        let base = start_server().await;
        let limits = small_limits();
        let client = build_client(&limits, &ImportPolicy::default(), &TrustedRoots::default());
        let fetch = async |path: &str| {
            fetch_document(&client, &format!("{base}{path}"), &limits, &ImportPolicy::default()).await
        };

        let error = fetch("/missing").await.unwrap_err();
        assert_eq!(error.to_string(), format!("{base}/missing answered HTTP 404 Not Found"));
        let error = fetch("/loop").await.unwrap_err();
        assert!(matches!(error, FetchError::TooManyRedirects { max_redirects: 3, .. }), "{error}");
        let error = fetch("/big").await.unwrap_err();
        assert_eq!(error.to_string(), "the document is larger than 1 KB");
        let error = fetch("/never").await.unwrap_err();
        assert_eq!(error, FetchError::Unreachable { url: format!("{base}/never") }, "a timeout says no more");
        let error = fetch("/latin1").await.unwrap_err();
        assert!(matches!(error, FetchError::NotUtf8 { .. }), "{error}");
    }

    #[tokio::test]
    async fn stops_reading_a_chunked_body_at_the_cap() {
        use std::io::{Read, Write};
        // A body without Content-Length can only be caught while streaming. A plain thread with
        // blocking sockets keeps the test free of tokio's io-util feature.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0_u8; 1024];
            let _ = socket.read(&mut request);
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for _ in 0..8 {
                let chunk = [b"200\r\n".as_slice(), &[b'y'; 0x200], b"\r\n"].concat();
                if socket.write_all(&chunk).is_err() {
                    return;
                }
            }
            let _ = socket.write_all(b"0\r\n\r\n");
        });
        let limits = small_limits();
        let error = fetch_document(
            &build_client(&limits, &ImportPolicy::default(), &TrustedRoots::default()),
            &format!("http://{address}/"),
            &limits,
            &ImportPolicy::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, FetchError::TooLarge { .. }), "{error}");
    }

    #[tokio::test]
    async fn rejects_bad_urls_and_closed_ports() {
        let limits = small_limits();
        let client = build_client(&limits, &ImportPolicy::default(), &TrustedRoots::default());
        let error = fetch_document(&client, "file:///etc/passwd", &limits, &ImportPolicy::default())
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "only http and https URLs can be imported, not `file:`");
        let error =
            fetch_document(&client, "not a url", &limits, &ImportPolicy::default()).await.unwrap_err();
        assert!(matches!(error, FetchError::InvalidUrl { .. }), "{error}");

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = listener.local_addr().unwrap();
        drop(listener);
        let error =
            fetch_document(&client, &format!("http://{closed}/spec.json"), &limits, &ImportPolicy::default())
                .await
                .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "could not fetch http://{closed}/spec.json: no answer from that host, or it is not one \
                 documents may be imported from (IMPORT_ALLOWED_HOSTS)"
            )
        );
    }

    #[tokio::test]
    async fn hosts_outside_the_policy_look_like_closed_ports() {
        let base = start_server().await;
        let limits = small_limits();
        let loopback_one: ImportPolicy = ImportPolicy::from_targets(
            Some("127.0.0.1".parse().unwrap()),
            &crate::access::targets::TargetPolicy::default(),
        );
        let client = build_client(&limits, &loopback_one, &TrustedRoots::default());
        let fetch =
            async |url: String| fetch_document(&client, &url, &limits, &loopback_one).await.unwrap_err();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_port = listener.local_addr().unwrap().port();
        drop(listener);
        let closed = fetch(format!("http://127.0.0.1:{closed_port}/spec.yaml")).await;
        let outside = fetch(format!("http://127.0.0.2:{closed_port}/spec.yaml")).await;
        // The server itself serves on 127.0.0.1: the policy, not the network, refuses these.
        let redirected = fetch(format!("{base}/elsewhere")).await;
        let mapped = fetch(format!("http://[::ffff:127.0.0.2]:{closed_port}/spec.yaml")).await;
        let started = std::time::Instant::now();
        let _ = fetch(format!("http://127.0.0.2:{closed_port}/spec.yaml")).await;
        assert!(started.elapsed() >= limits.timeout, "a refusal waits out the time limit");
        for error in [&closed, &outside, &redirected, &mapped] {
            assert!(matches!(error, FetchError::Unreachable { .. }), "{error}");
            let text = error.to_string();
            let (_, reason) = text.split_once(": ").unwrap();
            assert_eq!(reason, closed.to_string().split_once(": ").unwrap().1);
        }
        assert!(redirected.to_string().contains(&format!("{base}/elsewhere")), "never where it led");
        let served = fetch_document(&client, &format!("{base}/spec.yaml"), &limits, &loopback_one).await;
        assert_eq!(served.unwrap().text, DOCUMENT, "the allowed host still serves");
    }

    #[test]
    fn limits_are_worded_for_people() {
        assert_eq!(human_size(25 * 1024 * 1024), "25 MB");
        assert_eq!(human_duration(Duration::from_secs(10)), "10 s");
        assert_eq!(FetchLimits::default().max_redirects, 5);
    }
}
