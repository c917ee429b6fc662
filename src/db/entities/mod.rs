//! SeaORM entities, one module per table.

pub mod endpoint;
pub mod endpoint_parameter;
pub mod openapi_spec;
pub mod project;
pub mod request_body;
pub mod scenario_history;
pub mod stage_history;
pub mod tag;
pub mod tag_endpoint;
pub mod test_history;

use crate::domain::MetricSummary;

/// A row that carries the summary columns (a run, or one of its scenarios).
pub trait HasMetrics {
    /// The stored summary, or None while the run's metrics have not been read.
    fn metrics(&self) -> Option<MetricSummary>;
}

/// Implements [`HasMetrics`] for a model with the shared summary columns.
macro_rules! impl_has_metrics {
    ($model:ty) => {
        impl $crate::db::entities::HasMetrics for $model {
            fn metrics(&self) -> Option<$crate::domain::MetricSummary> {
                let f = |v: Option<f64>| v.unwrap_or(0.0);
                Some($crate::domain::MetricSummary {
                    total_requests: self.total_requests?,
                    failed_requests: self.failed_requests.unwrap_or(0),
                    test_duration: f(self.test_duration),
                    max_tps: f(self.max_tps),
                    min_tps: f(self.min_tps),
                    avg_tps: f(self.avg_tps),
                    max_response_time: f(self.max_response_time),
                    min_response_time: f(self.min_response_time),
                    avg_response_time: f(self.avg_response_time),
                    p50_response_time: f(self.p50_response_time),
                    p95_response_time: f(self.p95_response_time),
                    p99_response_time: f(self.p99_response_time),
                    max_error_rate: f(self.max_error_rate),
                    min_error_rate: f(self.min_error_rate),
                    avg_error_rate: f(self.avg_error_rate),
                    max_vus: f(self.max_vus),
                    min_vus: f(self.min_vus),
                    avg_vus: f(self.avg_vus),
                })
            }
        }
    };
}
pub(crate) use impl_has_metrics;
