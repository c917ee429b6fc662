//! Secrets the server makes for itself, shared by every replica through the database: the key
//! that signs report links (`/runs/{id}/report?…&sig=…`), so a link made by one instance opens
//! on any other and after a restart.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261208_000011_create_server_secrets"
    }
}

#[derive(DeriveIden)]
enum ServerSecret {
    Table,
    /// What the secret is for (`report_link_key`).
    Name,
    /// Random bytes, in hex.
    Value,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ServerSecret::Table)
                    .col(string_len(ServerSecret::Name, 64).primary_key())
                    .col(text(ServerSecret::Value))
                    .col(timestamp_with_time_zone(ServerSecret::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ServerSecret::Table).to_owned()).await
    }
}
