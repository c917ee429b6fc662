//! Run history: test_history → scenario_history → stage_history, with the metric summary columns.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{cascade_fk, index_on};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000002_create_history"
    }
}

#[derive(DeriveIden)]
enum Project {
    Table,
}

#[derive(DeriveIden)]
enum Endpoint {
    Table,
}

#[derive(DeriveIden)]
enum TestHistory {
    Table,
    Id,
    ProjectId,
    Title,
    Description,
    TargetTps,
    Status,
    Runner,
    Parallelism,
    JobName,
    K6ScriptFileName,
    K6Script,
    TestedAt,
    StartedAt,
    CompletedAt,
    FailureReason,
    IsCompleted,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScenarioHistory {
    Table,
    Id,
    TestHistoryId,
    EndpointId,
    Position,
    Name,
    ScenarioTag,
    Executor,
    ThinkTime,
    MaxVusLimit,
    ResponseTimeTarget,
    ErrorRateTarget,
    Request,
}

#[derive(DeriveIden)]
enum StageHistory {
    Table,
    Id,
    ScenarioHistoryId,
    Position,
    Duration,
    Target,
}

/// The summary columns of the original ERD, shared by a run and each of its scenarios.
/// All nullable: a run has no summary until its metrics have been read.
fn add_metric_columns(table: &mut TableCreateStatement) {
    for name in [
        "test_duration",
        "max_tps",
        "min_tps",
        "avg_tps",
        "max_response_time",
        "min_response_time",
        "avg_response_time",
        "p50_response_time",
        "p95_response_time",
        "p99_response_time",
        "max_error_rate",
        "min_error_rate",
        "avg_error_rate",
        "max_vus",
        "min_vus",
        "avg_vus",
    ] {
        table.col(double_null(Alias::new(name)));
    }
    table.col(big_integer_null(Alias::new("total_requests")));
    table.col(big_integer_null(Alias::new("failed_requests")));
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut test_history = Table::create()
            .table(TestHistory::Table)
            .col(big_pk_auto(TestHistory::Id))
            .col(big_integer(TestHistory::ProjectId))
            .col(string(TestHistory::Title))
            .col(text_null(TestHistory::Description))
            .col(double_null(TestHistory::TargetTps))
            .col(string_len(TestHistory::Status, 16))
            .col(string_len(TestHistory::Runner, 16))
            .col(integer(TestHistory::Parallelism).default(1))
            .col(string(TestHistory::JobName))
            .col(string(TestHistory::K6ScriptFileName))
            .col(text(TestHistory::K6Script))
            .col(timestamp_with_time_zone(TestHistory::TestedAt))
            .col(timestamp_with_time_zone_null(TestHistory::StartedAt))
            .col(timestamp_with_time_zone_null(TestHistory::CompletedAt))
            .col(text_null(TestHistory::FailureReason))
            .col(boolean(TestHistory::IsCompleted).default(false))
            .col(timestamp_with_time_zone(TestHistory::CreatedAt))
            .col(timestamp_with_time_zone(TestHistory::UpdatedAt))
            .foreign_key(&mut cascade_fk(
                "fk_test_history_project",
                TestHistory::Table,
                TestHistory::ProjectId,
                Project::Table,
            ))
            .to_owned();
        add_metric_columns(&mut test_history);
        manager.create_table(test_history).await?;
        // The board lists runs newest first, per project and per status.
        manager
            .create_index(index_on("ix_test_history_project", TestHistory::Table, &["project_id", "id"]))
            .await?;
        manager
            .create_index(index_on("ix_test_history_status", TestHistory::Table, &["status", "id"]))
            .await?;
        manager
            .create_index(index_on("ix_test_history_tested_at", TestHistory::Table, &["tested_at"]))
            .await?;

        let mut scenario_history = Table::create()
            .table(ScenarioHistory::Table)
            .col(big_pk_auto(ScenarioHistory::Id))
            .col(big_integer(ScenarioHistory::TestHistoryId))
            .col(big_integer(ScenarioHistory::EndpointId))
            .col(integer(ScenarioHistory::Position))
            .col(string(ScenarioHistory::Name))
            .col(string(ScenarioHistory::ScenarioTag))
            .col(string_len(ScenarioHistory::Executor, 32))
            .col(double(ScenarioHistory::ThinkTime))
            .col(integer_null(ScenarioHistory::MaxVusLimit))
            .col(double_null(ScenarioHistory::ResponseTimeTarget))
            .col(double_null(ScenarioHistory::ErrorRateTarget))
            .col(json_null(ScenarioHistory::Request))
            .foreign_key(&mut cascade_fk(
                "fk_scenario_history_test_history",
                ScenarioHistory::Table,
                ScenarioHistory::TestHistoryId,
                TestHistory::Table,
            ))
            .foreign_key(&mut cascade_fk(
                "fk_scenario_history_endpoint",
                ScenarioHistory::Table,
                ScenarioHistory::EndpointId,
                Endpoint::Table,
            ))
            .to_owned();
        add_metric_columns(&mut scenario_history);
        manager.create_table(scenario_history).await?;
        manager
            .create_index(index_on(
                "ix_scenario_history_test_history",
                ScenarioHistory::Table,
                &["test_history_id", "position"],
            ))
            .await?;
        manager
            .create_index(index_on(
                "ix_scenario_history_endpoint",
                ScenarioHistory::Table,
                &["endpoint_id", "test_history_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StageHistory::Table)
                    .col(big_pk_auto(StageHistory::Id))
                    .col(big_integer(StageHistory::ScenarioHistoryId))
                    .col(integer(StageHistory::Position))
                    .col(string_len(StageHistory::Duration, 32))
                    .col(integer(StageHistory::Target))
                    .foreign_key(&mut cascade_fk(
                        "fk_stage_history_scenario_history",
                        StageHistory::Table,
                        StageHistory::ScenarioHistoryId,
                        ScenarioHistory::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index_on(
                "ix_stage_history_scenario_history",
                StageHistory::Table,
                &["scenario_history_id", "position"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            StageHistory::Table.into_iden(),
            ScenarioHistory::Table.into_iden(),
            TestHistory::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
