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

/// An entity `Model` with the summary columns of [`crate::domain::summary_metrics`] after its
/// own fields (each nullable: a run's summary is unknown until its results are read), and
/// [`HasMetrics`] for it.
macro_rules! with_summary_columns {
    ([$(#[$meta:meta])* pub struct Model { $($fields:tt)* }] $($name:ident $column:ident $type:ty,)*) => {
        $(#[$meta])*
        pub struct Model {
            $($fields)*
            $(pub $name: Option<$type>,)*
        }

        impl $crate::db::entities::HasMetrics for Model {
            fn k6_counts(&self) -> Option<$crate::domain::counts::K6Counts> {
                Some($crate::domain::counts::K6Counts {
                    requests: self.k6_requests?,
                    failed_requests: self.k6_failed_requests?,
                    iterations: self.k6_iterations?,
                    data_sent: self.k6_data_sent?,
                    data_received: self.k6_data_received?,
                })
            }

            /// None until the request count is known; a figure not measured reads 0.
            fn metrics(&self) -> Option<$crate::domain::MetricSummary> {
                self.total_requests?;
                Some($crate::domain::MetricSummary { $($name: self.$name.unwrap_or_default(),)* })
            }
        }
    };
}
pub(crate) use with_summary_columns;

/// Writes a [`MetricSummary`] into the summary columns of a run's or a scenario's active model.
macro_rules! set_metric_columns {
    ([@set $model:expr, $summary:expr] $($name:ident $column:ident $type:ty,)*) => {{
        use sea_orm::Set;
        let model = &mut $model;
        let s: &$crate::domain::MetricSummary = $summary;
        $(model.$name = Set(Some(s.$name));)*
    }};
    ($model:expr, $summary:expr) => {
        $crate::domain::summary_metrics!($crate::db::entities::set_metric_columns, [@set $model, $summary])
    };
}
pub(crate) use set_metric_columns;
