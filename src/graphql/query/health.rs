//! `health`: liveness plus the state of the database, InfluxDB and the runners.

use async_graphql::{Context, Object};

use crate::graphql::{
    AppState,
    types::health::{Health, RunnerHealth},
};

#[derive(Default)]
pub struct HealthQuery;

#[Object]
impl HealthQuery {
    /// Liveness plus the state of each dependency (database, InfluxDB, runners).
    async fn health(&self, ctx: &Context<'_>) -> async_graphql::Result<Health> {
        crate::graphql::limits::spend_upstream(ctx)?;
        let state = ctx.data_unchecked::<AppState>();
        let (database, influxdb, runners) = tokio::join!(
            crate::db::ping(&state.db),
            state.lifecycle.influx().ping(),
            state.lifecycle.runner_health()
        );
        // Degraded when the runner launches use by default cannot start runs.
        let default_runner = state.settings.runner.kind();
        let default_available =
            runners.iter().any(|health| health.runner == default_runner && health.available);
        let status = if database && influxdb && default_available { "ok" } else { "degraded" };
        Ok(Health {
            status: status.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database,
            influxdb,
            runners: runners
                .into_iter()
                .map(|health| RunnerHealth {
                    runner: health.runner,
                    available: health.available,
                    detail: Some(health.detail),
                })
                .collect(),
        })
    }
}
