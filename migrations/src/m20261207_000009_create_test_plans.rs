//! Saved test plans and their schedules.
//!
//! A plan keeps every version of its definition (the launch input as JSON), so a run always
//! shows the plan as it ran (`test_history.plan_id`, `plan_version`). Deleting a plan only
//! marks it deleted: its runs keep pointing at the versions they ran. A plan's title is
//! unique among the live plans of its project, so the CI gate can name a plan by title.
//!
//! A schedule fires a plan on a cron expression in a time zone. `next_run_at` is the due time
//! not yet taken; a server takes it with a conditional update (one replica wins) and records
//! what it did in `schedule_firing`, one row per due time (unique), launched or skipped.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{cascade_fk, index_on};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000009_create_test_plans"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TestPlan {
    Table,
    Id,
    ProjectId,
    Title,
    CurrentVersion,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TestPlanVersion {
    Table,
    Id,
    PlanId,
    Version,
    /// The launch input as JSON, secret header values included (masked below OPERATOR).
    Definition,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TestSchedule {
    Table,
    Id,
    PlanId,
    Cron,
    TimeZone,
    Enabled,
    NextRunAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ScheduleFiring {
    Table,
    Id,
    ScheduleId,
    DueAt,
    /// LAUNCHED, SKIPPED_OVERLAP, SKIPPED_MISSED or FAILED.
    Outcome,
    TestHistoryId,
    Message,
    FiredBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TestHistory {
    Table,
    PlanId,
    PlanVersion,
}

#[derive(DeriveIden)]
enum Project {
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TestPlan::Table)
                    .col(big_pk_auto(TestPlan::Id))
                    .col(big_integer(TestPlan::ProjectId))
                    .col(string_len(TestPlan::Title, 200))
                    .col(integer(TestPlan::CurrentVersion))
                    .col(timestamp_with_time_zone(TestPlan::CreatedAt))
                    .col(timestamp_with_time_zone(TestPlan::UpdatedAt))
                    .col(timestamp_with_time_zone_null(TestPlan::DeletedAt))
                    .foreign_key(&mut cascade_fk(
                        "fk_test_plan_project",
                        TestPlan::Table,
                        TestPlan::ProjectId,
                        Project::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        // Partial unique indexes are plain SQL on both databases.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_test_plan_live_title ON test_plan (project_id, title) WHERE deleted_at IS NULL",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TestPlanVersion::Table)
                    .col(big_pk_auto(TestPlanVersion::Id))
                    .col(big_integer(TestPlanVersion::PlanId))
                    .col(integer(TestPlanVersion::Version))
                    .col(text(TestPlanVersion::Definition))
                    .col(timestamp_with_time_zone(TestPlanVersion::CreatedAt))
                    .foreign_key(&mut cascade_fk(
                        "fk_test_plan_version_plan",
                        TestPlanVersion::Table,
                        TestPlanVersion::PlanId,
                        TestPlan::Table,
                    ))
                    .index(
                        Index::create()
                            .name("ux_test_plan_version")
                            .col(TestPlanVersion::PlanId)
                            .col(TestPlanVersion::Version)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TestSchedule::Table)
                    .col(big_pk_auto(TestSchedule::Id))
                    .col(big_integer(TestSchedule::PlanId))
                    .col(string_len(TestSchedule::Cron, 200))
                    .col(string_len(TestSchedule::TimeZone, 64))
                    .col(boolean(TestSchedule::Enabled))
                    .col(timestamp_with_time_zone_null(TestSchedule::NextRunAt))
                    .col(timestamp_with_time_zone(TestSchedule::CreatedAt))
                    .col(timestamp_with_time_zone(TestSchedule::UpdatedAt))
                    .foreign_key(&mut cascade_fk(
                        "fk_test_schedule_plan",
                        TestSchedule::Table,
                        TestSchedule::PlanId,
                        TestPlan::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index_on("ix_test_schedule_next_run_at", TestSchedule::Table, &["next_run_at"]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScheduleFiring::Table)
                    .col(big_pk_auto(ScheduleFiring::Id))
                    .col(big_integer(ScheduleFiring::ScheduleId))
                    .col(timestamp_with_time_zone(ScheduleFiring::DueAt))
                    .col(string_len(ScheduleFiring::Outcome, 32))
                    .col(big_integer_null(ScheduleFiring::TestHistoryId))
                    .col(text_null(ScheduleFiring::Message))
                    .col(string_len(ScheduleFiring::FiredBy, 64))
                    .col(timestamp_with_time_zone(ScheduleFiring::CreatedAt))
                    .foreign_key(&mut cascade_fk(
                        "fk_schedule_firing_schedule",
                        ScheduleFiring::Table,
                        ScheduleFiring::ScheduleId,
                        TestSchedule::Table,
                    ))
                    .index(
                        Index::create()
                            .name("ux_schedule_firing_due")
                            .col(ScheduleFiring::ScheduleId)
                            .col(ScheduleFiring::DueAt)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        let add = |column: ColumnDef| Table::alter().table(TestHistory::Table).add_column(column).to_owned();
        manager.alter_table(add(big_integer_null(TestHistory::PlanId))).await?;
        manager.alter_table(add(integer_null(TestHistory::PlanVersion))).await?;
        manager.create_index(index_on("ix_test_history_plan", TestHistory::Table, &["plan_id", "id"])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("ix_test_history_plan").table(TestHistory::Table).to_owned())
            .await?;
        for column in [TestHistory::PlanVersion, TestHistory::PlanId] {
            crate::drop_column(manager, TestHistory::Table, column).await?;
        }
        for table in [
            ScheduleFiring::Table.into_iden(),
            TestSchedule::Table.into_iden(),
            TestPlanVersion::Table.into_iden(),
            TestPlan::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
