//! Request-body schemas become text: they can run to megabytes, are only ever stored and
//! shown whole, and PostgreSQL's `json` type would check and copy every one on insert.
//! SQLite keeps JSON as text already, so only PostgreSQL changes.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000003_alter_request_body_schema_text"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE request_body ALTER COLUMN schema TYPE text")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE request_body ALTER COLUMN schema TYPE json USING schema::json",
                )
                .await?;
        }
        Ok(())
    }
}
