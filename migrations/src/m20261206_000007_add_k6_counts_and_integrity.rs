//! k6's own counts of a run and of each scenario (`k6_requests`, `k6_failed_requests`,
//! `k6_iterations`, `k6_data_sent`, `k6_data_received`: the sums of every k6 instance's
//! end-of-test summary), and the run's integrity: `instance_samples` (JSON: per instance, the
//! requests k6 reported and the samples InfluxDB holds) and `results_complete`.
//!
//! One `ALTER TABLE … ADD COLUMN` per column: SQLite takes no more in one statement.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000007_add_k6_counts_and_integrity"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TestHistory {
    Table,
    InstanceSamples,
    ResultsComplete,
}

#[derive(DeriveIden, Clone, Copy)]
enum ScenarioHistory {
    Table,
}

/// The columns are named after k6 (`k6_requests`, …), hence the shared prefix.
#[derive(DeriveIden, Clone, Copy)]
#[allow(clippy::enum_variant_names)]
enum Counts {
    K6Requests,
    K6FailedRequests,
    K6Iterations,
    K6DataSent,
    K6DataReceived,
}

const COUNTS: [Counts; 5] = [
    Counts::K6Requests,
    Counts::K6FailedRequests,
    Counts::K6Iterations,
    Counts::K6DataSent,
    Counts::K6DataReceived,
];

async fn add<T: IntoIden + 'static>(
    manager: &SchemaManager<'_>,
    table: T,
    column: ColumnDef,
) -> Result<(), DbErr> {
    manager.alter_table(Table::alter().table(table).add_column(column).to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in COUNTS {
            add(manager, TestHistory::Table, big_integer_null(column)).await?;
            add(manager, ScenarioHistory::Table, big_integer_null(column)).await?;
        }
        add(manager, TestHistory::Table, json_null(TestHistory::InstanceSamples)).await?;
        add(manager, TestHistory::Table, boolean(TestHistory::ResultsComplete).default(false).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_column(manager, TestHistory::Table, TestHistory::ResultsComplete).await?;
        crate::drop_column(manager, TestHistory::Table, TestHistory::InstanceSamples).await?;
        for column in COUNTS {
            crate::drop_column(manager, ScenarioHistory::Table, column).await?;
            crate::drop_column(manager, TestHistory::Table, column).await?;
        }
        Ok(())
    }
}
