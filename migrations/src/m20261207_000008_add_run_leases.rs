//! Run ownership: the server instance that runs a run (`owner_instance`), until when it has
//! promised to be alive (`lease_expires_at`, renewed every few seconds), and a cancel asked of
//! it by another instance (`cancel_requested_at`). Only a run whose lease expired is ended or
//! taken over by another instance.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000008_add_run_leases"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum TestHistory {
    Table,
    OwnerInstance,
    LeaseExpiresAt,
    CancelRequestedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let add = |column: ColumnDef| Table::alter().table(TestHistory::Table).add_column(column).to_owned();
        manager.alter_table(add(string_len_null(TestHistory::OwnerInstance, 64))).await?;
        manager.alter_table(add(timestamp_with_time_zone_null(TestHistory::LeaseExpiresAt))).await?;
        manager.alter_table(add(timestamp_with_time_zone_null(TestHistory::CancelRequestedAt))).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in
            [TestHistory::CancelRequestedAt, TestHistory::LeaseExpiresAt, TestHistory::OwnerInstance]
        {
            crate::drop_column(manager, TestHistory::Table, column).await?;
        }
        Ok(())
    }
}
