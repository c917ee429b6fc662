//! A finished result as a point on a trend.

use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};

use super::{TestHistory, run_by_id};
use crate::db::entities::{scenario_history, test_history};

/// One finished result (a scenario's against its endpoint, or a plan's run), as a point on a trend.
pub struct TrendPoint {
    test_history_id: i64,
    avg_tps: Option<f64>,
    avg_response_time: Option<f64>,
    p95_response_time: Option<f64>,
    avg_error_rate: Option<f64>,
}

impl From<scenario_history::Model> for TrendPoint {
    fn from(row: scenario_history::Model) -> Self {
        Self {
            test_history_id: row.test_history_id,
            avg_tps: row.avg_tps,
            avg_response_time: row.avg_response_time,
            p95_response_time: row.p95_response_time,
            avg_error_rate: row.avg_error_rate,
        }
    }
}

impl From<test_history::Model> for TrendPoint {
    fn from(run: test_history::Model) -> Self {
        Self {
            test_history_id: run.id,
            avg_tps: run.avg_tps,
            avg_response_time: run.avg_response_time,
            p95_response_time: run.p95_response_time,
            avg_error_rate: run.avg_error_rate,
        }
    }
}

#[Object]
impl TrendPoint {
    async fn test_history(&self, ctx: &Context<'_>) -> Result<TestHistory> {
        Ok(TestHistory(run_by_id(ctx, self.test_history_id).await?))
    }
    async fn tested_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        Ok(run_by_id(ctx, self.test_history_id).await?.tested_at)
    }
    async fn avg_tps(&self) -> Option<f64> {
        self.avg_tps
    }
    async fn avg_response_time(&self) -> Option<f64> {
        self.avg_response_time
    }
    async fn p95_response_time(&self) -> Option<f64> {
        self.p95_response_time
    }
    async fn avg_error_rate(&self) -> Option<f64> {
        self.avg_error_rate
    }
}
