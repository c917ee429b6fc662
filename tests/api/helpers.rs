//! `spawn_app()`: the real server on a free port with a fresh database.

use std::sync::atomic::{AtomicUsize, Ordering};

use metric_vault::{config::Settings, db::StatementCounter, startup::Application};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    pub db: DatabaseConnection,
    pub statements: StatementCounter,
    pub client: reqwest::Client,
    /// The server's database, for a second server that stands for a restart or a replica.
    pub database_url: String,
    scripts: std::path::PathBuf,
    /// Keeps the SQLite file alive for the test's duration.
    _data_dir: tempfile::TempDir,
}

/// A GraphQL answer with its HTTP status.
pub struct GraphQlResponse {
    pub status: u16,
    pub body: Value,
}

impl GraphQlResponse {
    /// The `data` of an answer that must have no errors.
    pub fn data(&self) -> &Value {
        assert!(self.body.get("errors").is_none(), "unexpected errors: {}", self.body);
        &self.body["data"]
    }

    /// The `extensions.code` of the first error.
    pub fn error_code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.body))
    }

    pub fn error_message(&self) -> &str {
        self.body["errors"][0]["message"].as_str().unwrap_or_default()
    }
}

impl TestApp {
    /// Where this server writes k6 scripts and k6's summary exports.
    pub fn scripts_dir(&self) -> &std::path::Path {
        &self.scripts
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Launches `input` (a `LaunchLoadTestInput`), which must succeed, and returns the run's id.
    pub async fn launch(&self, input: Value) -> String {
        let launched = self
            .graphql(
                "mutation($input: LaunchLoadTestInput!) { launchLoadTest(input: $input) { id } }",
                serde_json::json!({ "input": input }),
            )
            .await;
        launched.data()["launchLoadTest"]["id"].as_str().expect("the run's id").to_owned()
    }

    /// POSTs a GraphQL request with the bootstrap admin token.
    pub async fn graphql(&self, query: &str, variables: Value) -> GraphQlResponse {
        self.graphql_with(&self.client, query, variables).await
    }

    /// POSTs a GraphQL request through `client` (another token, or none), accepting what
    /// modern clients accept, so a document that never ran answers 400.
    pub async fn graphql_with(
        &self,
        client: &reqwest::Client,
        query: &str,
        variables: Value,
    ) -> GraphQlResponse {
        let (status, text) = self.graphql_text(client, query, variables).await;
        let body = serde_json::from_str(&text).expect("a JSON answer");
        GraphQlResponse { status, body }
    }

    /// As [`Self::graphql_with`], with the body as the server wrote it (parsed, a `Value`
    /// would sort its keys).
    pub async fn graphql_text(
        &self,
        client: &reqwest::Client,
        query: &str,
        variables: Value,
    ) -> (u16, String) {
        let response = client
            .post(self.url("/graphql"))
            .header("accept", GRAPHQL_ACCEPT)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("POST /graphql");
        (response.status().as_u16(), response.text().await.expect("a body"))
    }

    /// SQL statements the server sends to answer `query`. The counter is server-wide and the
    /// lifecycle's background passes (leases, schedules, webhook deliveries) send a statement now
    /// and then, so the query runs five times and the least count is its own cost (a cost that
    /// grows with the data grows in all five).
    pub async fn statements_for(&self, query: &str, variables: Value) -> u64 {
        let mut least = u64::MAX;
        for _ in 0..5 {
            let before = self.statements.get();
            self.graphql(query, variables.clone()).await.data();
            least = least.min(self.statements.get() - before);
        }
        least
    }

    /// Creates a project through the API and returns its id.
    pub async fn create_project(&self, title: &str) -> String {
        let response = self
            .graphql(
                "mutation($t: String!) { createProject(input: {title: $t}) { id } }",
                json!({ "t": title }),
            )
            .await;
        response.data()["createProject"]["id"].as_str().unwrap().to_owned()
    }
}

/// What modern GraphQL clients accept: the GraphQL-over-HTTP media type first.
pub const GRAPHQL_ACCEPT: &str = "application/graphql-response+json, application/json;q=0.9";

/// The bootstrap admin token every test server accepts; `TestApp::client` sends it.
pub const ADMIN_TOKEN: &str = "mv_test-admin-token-for-the-test-suite";

/// A client that sends `token` with every request.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers
        .insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().expect("a header value"));
    metric_vault::tls::client_builder().default_headers(headers).build().expect("a client")
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A fresh database URL: a SQLite file in `dir`, or a new database on the PostgreSQL server
/// of `TEST_DATABASE_URL` (dropped by the test command after the run).
async fn fresh_database_url(dir: &std::path::Path) -> String {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        return format!("sqlite://{}/metric-vault.db?mode=rwc", dir.display());
    };
    let name = format!(
        "mvt_{}_{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
    );
    let admin = Database::connect(&admin_url).await.expect("connect to TEST_DATABASE_URL");
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create a test database");
    admin.close().await.ok();
    let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// Settings for a test server: free port, fresh database, nothing else reachable by accident.
pub async fn test_settings(dir: &std::path::Path) -> Settings {
    test_settings_with(dir, &[]).await
}

/// [`test_settings`] with some variables set otherwise.
pub async fn test_settings_with(dir: &std::path::Path, extra: &[(&str, &str)]) -> Settings {
    let database_url = fresh_database_url(dir).await;
    let scripts = dir.join("scripts").display().to_string();
    let overrides = [
        ("DATABASE_URL", database_url.as_str()),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("K6_SCRIPT_FILE_FOLDER", scripts.as_str()),
        // A port nothing listens on, unless a test starts InfluxDB and says otherwise.
        ("INFLUXDB_PORT", "9"),
        ("LOG_LEVEL", "warn"),
        // k6 flushes its samples before it exits; tests need not wait long for them.
        ("SCHEDULER_METRICS_DELAY", "0.5"),
        ("SCHEDULER_MAX_RETRY", "1"),
        ("METRIC_VAULT_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    Settings::from_lookup(|name| {
        let set = extra.iter().chain(overrides.iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)));
        set.clone().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    })
    .expect("test settings are valid")
}

/// Starts the server with some variables set otherwise (e.g. the InfluxDB port).
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let settings = test_settings_with(data_dir.path(), extra).await;
    spawn_with(settings, data_dir).await
}

/// Starts the server on a free port with a fresh database.
pub async fn spawn_app() -> TestApp {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let settings = test_settings(data_dir.path()).await;
    spawn_with(settings, data_dir).await
}

/// The reason test servers give for having no Kubernetes runner.
pub const NO_CLUSTER: &str = "no Kubernetes cluster in tests";

pub async fn spawn_with(settings: Settings, data_dir: tempfile::TempDir) -> TestApp {
    spawn_with_cluster(settings, data_dir, Err(NO_CLUSTER.to_owned())).await
}

/// Starts the server with this Kubernetes API client (kube's mock service in tests): never
/// one inferred from the machine, which could name a real cluster.
pub async fn spawn_with_cluster(
    settings: Settings,
    data_dir: tempfile::TempDir,
    cluster: Result<kube::Client, String>,
) -> TestApp {
    let scripts = settings.k6_script_file_folder.clone();
    let database_url = settings.database_url.clone();
    let app = Application::build_with_cluster(settings, cluster).await.expect("the server builds");
    let address = app.address().to_string();
    let db = app.db().clone();
    let statements = app.statements();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        db,
        statements,
        client: client_with_token(ADMIN_TOKEN),
        database_url,
        scripts,
        _data_dir: data_dir,
    }
}

/// Serves `router` on a free loopback port (a target API or a document host) and returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

/// A document from `tests/fixtures/openapi/`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/openapi/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A throwaway CA made for one test, and a TLS acceptor whose certificate it signed for
/// `127.0.0.1` and `localhost`: the CA's PEM (to trust through `TLS_EXTRA_CA_FILE`) and the
/// acceptor, to put in front of a loopback listener.
pub fn throwaway_tls() -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use tokio_rustls::rustls;

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Metric Vault test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let certificate = CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![certificate.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (ca.pem(), tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}
