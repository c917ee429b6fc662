//! Builds the application from settings and runs it until a signal stops it.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{
    access::{AuthMode, Authenticator},
    config::Settings,
    db::{self, StatementCounter},
    graphql::{AppState, build_schema},
    http::{ArenaTrimmer, HttpState, router},
    k6::runner::{Runners, kubernetes::ClusterError},
    lifecycle::{Lifecycle, RunLedger},
};

/// A bound, migrated, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    router: axum::Router,
}

impl Application {
    /// Connects and migrates the database, builds the schema and binds `settings.bind_addr`
    /// (port 0 picks a free port; see [`Application::port`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let cluster = crate::k6::runner::kubernetes::cluster_client().await;
        if let Err(why) = &cluster {
            tracing::info!(%why, "the Kubernetes runner is off");
        }
        Self::build_with_cluster(settings, cluster).await
    }

    /// [`Application::build`] with the Kubernetes API client given (or why there is none),
    /// so that tests never reach a cluster a kubeconfig on the machine might name.
    pub async fn build_with_cluster(
        mut settings: Settings,
        cluster: Result<kube::Client, impl Into<ClusterError>>,
    ) -> anyhow::Result<Self> {
        // Bound first: with PUBLIC_BASE_URL unset, links in notifications name this address.
        let listener = TcpListener::bind(settings.bind_addr)
            .await
            .with_context(|| format!("binding {}", settings.bind_addr))?;
        let address = listener.local_addr().context("reading the bound address")?;
        settings.webhooks.settle_public_base_url(address);
        let (db, statements) = db::connect_and_migrate(&settings.database_url).await?;
        let http = crate::tls::client_builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        let document_client = crate::openapi::build_client(
            &settings.import.fetch_limits,
            &settings.import.policy,
            &settings.import.tls_roots,
        );
        let settings = Arc::new(settings);
        // The runners, once: Kubernetes without a cluster is among them, saying why.
        let ledger = Arc::new(RunLedger::new(db.clone()));
        let (runners, reports) = Runners::build(&settings, cluster.map_err(Into::into), ledger);
        let lifecycle = Lifecycle::start(db.clone(), settings.clone(), http.clone(), runners, reports).await;
        let auth = Authenticator::new(
            settings.security.auth_mode,
            db.clone(),
            settings.security.admin_token.as_deref(),
        );
        warn_when_open(&settings);
        let state = AppState { settings, db, statements, http, document_client, lifecycle, auth };
        let schema = build_schema(state.clone());
        let executions =
            Arc::new(tokio::sync::Semaphore::new(state.settings.security.max_concurrent_requests));
        let router = router(HttpState {
            schema,
            app: state.clone(),
            trimmer: ArenaTrimmer::start(),
            sockets: Default::default(),
            executions,
        });
        Ok(Self { listener, address, state, router })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The database the server uses, for tests and benchmarks that seed data.
    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    /// How many SQL statements the server has sent so far.
    pub fn statements(&self) -> StatementCounter {
        self.state.statements.clone()
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(address = %self.address, "Metric Vault listening; GraphiQL at http://{}/graphql", self.address);
        // The peer's address caps its websockets (WS_MAX_SOCKETS_PER_ADDRESS).
        axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP")?;
        self.state.lifecycle.hand_over().await;
        self.state.db.clone().close().await.context("closing the database")?;
        tracing::info!("Metric Vault stopped");
        Ok(())
    }
}

/// `AUTH_MODE=none` makes everyone an admin: fine on a laptop, dangerous anywhere else.
fn warn_when_open(settings: &Settings) {
    if settings.security.auth_mode != AuthMode::None {
        return;
    }
    if settings.bind_addr.ip().is_loopback() {
        tracing::warn!("AUTH_MODE=none: no authentication; every caller on this machine is an admin");
    } else {
        tracing::error!(
            address = %settings.bind_addr,
            "AUTH_MODE=none ON A NON-LOOPBACK ADDRESS: anyone who can reach {} can launch load tests \
             against your targets and delete your history. Set AUTH_MODE=token unless this network is yours alone.",
            settings.bind_addr
        );
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
