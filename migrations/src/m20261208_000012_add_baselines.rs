//! Baselines and regression verdicts: a plan's baseline run (`test_plan.baseline_run_id`), and
//! each run's verdicts against it (`test_history.regression`, JSON), recorded with its end.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261208_000012_add_baselines"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TestPlan {
    Table,
    BaselineRunId,
}

#[derive(DeriveIden, Clone, Copy)]
enum TestHistory {
    Table,
    Regression,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let plan = Table::alter()
            .table(TestPlan::Table)
            .add_column(big_integer_null(TestPlan::BaselineRunId))
            .to_owned();
        manager.alter_table(plan).await?;
        let run = Table::alter()
            .table(TestHistory::Table)
            .add_column(text_null(TestHistory::Regression))
            .to_owned();
        manager.alter_table(run).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_column(manager, TestHistory::Table, TestHistory::Regression).await?;
        crate::drop_column(manager, TestPlan::Table, TestPlan::BaselineRunId).await
    }
}
