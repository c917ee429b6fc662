//! `scenario_history`: one scenario of a run, against one endpoint, with its own summary.

use sea_orm::entity::prelude::*;

use crate::domain::Executor;

crate::domain::summary_metrics!(super::with_summary_columns, [
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scenario_history")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub test_history_id: i64,
        pub endpoint_id: i64,
        pub position: i32,
        pub name: String,
        /// The k6 scenario key, which k6 writes as the `scenario` tag of every sample.
        pub scenario_tag: String,
        pub executor: Executor,
        pub think_time: f64,
        /// The `maxVus` the launch asked for (arrival-rate executors).
        pub max_vus_limit: Option<i32>,
        pub response_time_target: Option<f64>,
        pub error_rate_target: Option<f64>,
        /// The request values the launch gave (path/query/header/body), as JSON.
        pub request: Option<Json>,
        /// k6's own counts (the sum of every instance's end-of-test summary); None when an
        /// instance wrote none.
        pub k6_requests: Option<i64>,
        pub k6_failed_requests: Option<i64>,
        pub k6_iterations: Option<i64>,
        pub k6_data_sent: Option<i64>,
        pub k6_data_received: Option<i64>,
    }
]);

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
