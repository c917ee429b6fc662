//! `openapi_spec.revision`: a counter bumped in the same transaction as every change to a
//! spec's tags, endpoints, parameters and bodies (an import), so a reader that already holds
//! the spec row knows whether a cached copy of its catalogue is still current.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000005_add_spec_revision"
    }
}

#[derive(DeriveIden)]
enum OpenapiSpec {
    Table,
    Revision,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::add_counter(manager, OpenapiSpec::Table, OpenapiSpec::Revision).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_column(manager, OpenapiSpec::Table, OpenapiSpec::Revision).await
    }
}
