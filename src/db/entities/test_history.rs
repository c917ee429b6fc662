//! `test_history`: one load-test run and its run-wide summary.

use sea_orm::entity::prelude::*;

use crate::domain::{RunnerKind, TestStatus};

crate::domain::summary_metrics!(super::with_summary_columns, [
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "test_history")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub project_id: i64,
        pub title: String,
        pub description: Option<String>,
        pub target_tps: Option<f64>,
        pub status: TestStatus,
        pub runner: RunnerKind,
        pub parallelism: i32,
        pub job_name: String,
        pub k6_script_file_name: String,
        #[sea_orm(column_type = "Text")]
        pub k6_script: String,
        pub tested_at: DateTimeUtc,
        pub started_at: Option<DateTimeUtc>,
        pub completed_at: Option<DateTimeUtc>,
        pub failure_reason: Option<String>,
        pub is_completed: bool,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        /// k6's own counts (the sum of every instance's end-of-test summary); None when an
        /// instance wrote none.
        pub k6_requests: Option<i64>,
        pub k6_failed_requests: Option<i64>,
        pub k6_iterations: Option<i64>,
        pub k6_data_sent: Option<i64>,
        pub k6_data_received: Option<i64>,
        /// Per k6 instance: requests reported, samples stored ([`crate::domain::integrity::InstanceSamples`]).
        pub instance_samples: Option<Json>,
        /// Every instance reported, and InfluxDB holds exactly that many samples of each.
        pub results_complete: bool,
        /// The server instance running the run (`lifecycle::lease`); None once it has ended.
        pub owner_instance: Option<String>,
        /// Until when the owner has promised to be alive; renewed every few seconds.
        pub lease_expires_at: Option<DateTimeUtc>,
        /// Another instance asked the owner to cancel the run.
        pub cancel_requested_at: Option<DateTimeUtc>,
        /// The saved plan this run was launched from, and which version of it.
        pub plan_id: Option<i64>,
        pub plan_version: Option<i32>,
        /// Regression verdicts against the plan's baseline (`domain::regression::RunRegression` as JSON).
        #[sea_orm(column_type = "Text", nullable)]
        pub regression: Option<String>,
        /// Where a local run's k6 processes are (`k6::runner::local::LocalProcesses` as JSON), so a
        /// server taking the run over can re-attach to them.
        #[sea_orm(column_type = "Text", nullable)]
        pub k6_processes: Option<String>,
    }
]);

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
