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
        manager
            .alter_table(
                Table::alter()
                    .table(OpenapiSpec::Table)
                    .add_column(ColumnDef::new(OpenapiSpec::Revision).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(OpenapiSpec::Table).drop_column(OpenapiSpec::Revision).to_owned(),
            )
            .await
    }
}
