//! Builds the application from settings and runs it until a signal stops it.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{
    config::Settings,
    db::{self, StatementCounter},
    graphql::{AppState, build_schema},
    http::{ArenaTrimmer, HttpState, router},
    scheduler::Scheduler,
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
        let (db, statements) = db::connect_and_migrate(&settings.database_url).await?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        let document_client = crate::openapi::build_client(&crate::openapi::FetchLimits::default());
        let settings = Arc::new(settings);
        let scheduler = Scheduler::start(db.clone(), settings.clone(), http.clone()).await;
        let state = AppState { settings, db, statements, http, document_client, scheduler };
        let schema = build_schema(state.clone());
        let router = router(HttpState { schema, app: state.clone(), trimmer: ArenaTrimmer::start() });
        let listener = TcpListener::bind(state.settings.bind_addr)
            .await
            .with_context(|| format!("binding {}", state.settings.bind_addr))?;
        let address = listener.local_addr().context("reading the bound address")?;
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
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP")?;
        self.state.db.clone().close().await.context("closing the database")?;
        tracing::info!("Metric Vault stopped");
        Ok(())
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
