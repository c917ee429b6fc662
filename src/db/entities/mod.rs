//! SeaORM entities, one module per table.

pub mod api_token;
pub mod endpoint;
pub mod endpoint_parameter;
pub mod openapi_spec;
pub mod project;
pub mod request_body;
pub mod scenario_history;
pub mod schedule_firing;
pub mod server_secret;
pub mod stage_history;
pub mod tag;
pub mod tag_endpoint;
pub mod test_history;
pub mod test_plan;
pub mod test_plan_version;
pub mod test_schedule;
pub mod webhook;
pub mod webhook_delivery;

use crate::domain::{MetricSummary, counts::K6Counts};

/// A row that carries the summary and count columns (a run, or one of its scenarios).
pub trait HasMetrics {
    /// The stored summary, or None while the run's metrics have not been read.
    fn metrics(&self) -> Option<MetricSummary>;
    /// k6's own counts, or None when they were not stored (an instance reported none).
    fn k6_counts(&self) -> Option<K6Counts>;
}

/// Implements [`HasMetrics`] for a model with the shared summary and count columns.
macro_rules! impl_has_metrics {
    ($model:ty) => {
        impl $crate::db::entities::HasMetrics for $model {
            fn k6_counts(&self) -> Option<$crate::domain::counts::K6Counts> {
                Some($crate::domain::counts::K6Counts {
                    requests: self.k6_requests?,
                    failed_requests: self.k6_failed_requests?,
                    iterations: self.k6_iterations?,
                    data_sent: self.k6_data_sent?,
                    data_received: self.k6_data_received?,
                })
            }

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

/// Writes a [`MetricSummary`] into the summary columns of a run's or a scenario's active model.
macro_rules! set_metric_columns {
    ($model:expr, $summary:expr) => {{
        use sea_orm::Set;
        let model = &mut $model;
        let s: &$crate::domain::MetricSummary = $summary;
        model.total_requests = Set(Some(s.total_requests));
        model.failed_requests = Set(Some(s.failed_requests));
        model.test_duration = Set(Some(s.test_duration));
        model.max_tps = Set(Some(s.max_tps));
        model.min_tps = Set(Some(s.min_tps));
        model.avg_tps = Set(Some(s.avg_tps));
        model.max_response_time = Set(Some(s.max_response_time));
        model.min_response_time = Set(Some(s.min_response_time));
        model.avg_response_time = Set(Some(s.avg_response_time));
        model.p50_response_time = Set(Some(s.p50_response_time));
        model.p95_response_time = Set(Some(s.p95_response_time));
        model.p99_response_time = Set(Some(s.p99_response_time));
        model.max_error_rate = Set(Some(s.max_error_rate));
        model.min_error_rate = Set(Some(s.min_error_rate));
        model.avg_error_rate = Set(Some(s.avg_error_rate));
        model.max_vus = Set(Some(s.max_vus));
        model.min_vus = Set(Some(s.min_vus));
        model.avg_vus = Set(Some(s.avg_vus));
    }};
}
pub(crate) use set_metric_columns;
