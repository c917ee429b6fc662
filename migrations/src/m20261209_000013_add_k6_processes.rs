//! Where a local run's k6 processes are (`test_history.k6_processes`, JSON: host, work folder,
//! and per instance its pid and REST API address), so a server that takes the run over after
//! a restart can re-attach to them instead of ending the run.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261209_000013_add_k6_processes"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TestHistory {
    Table,
    K6Processes,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let run = Table::alter()
            .table(TestHistory::Table)
            .add_column(text_null(TestHistory::K6Processes))
            .to_owned();
        manager.alter_table(run).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_column(manager, TestHistory::Table, TestHistory::K6Processes).await
    }
}
