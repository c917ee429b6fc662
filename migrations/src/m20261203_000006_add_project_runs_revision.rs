//! `project.runs_revision`: a counter bumped in the same transaction as every run added to or
//! deleted from the project, so a reader holding the project row knows whether a cached count
//! of its runs is still right.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000006_add_project_runs_revision"
    }
}

#[derive(DeriveIden)]
enum Project {
    Table,
    RunsRevision,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::add_counter(manager, Project::Table, Project::RunsRevision).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_column(manager, Project::Table, Project::RunsRevision).await
    }
}
