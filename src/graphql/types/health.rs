//! `health`: the server and each dependency it needs.

use async_graphql::SimpleObject;

use crate::domain::RunnerKind;

/// Liveness plus the state of each dependency.
#[derive(SimpleObject)]
pub struct Health {
    /// "ok" when every dependency answers, "degraded" otherwise.
    pub status: String,
    pub version: String,
    pub database: bool,
    pub influxdb: bool,
    pub runners: Vec<RunnerHealth>,
}

/// Whether a runner can start a run now.
#[derive(SimpleObject)]
pub struct RunnerHealth {
    pub runner: RunnerKind,
    pub available: bool,
    pub detail: Option<String>,
}
