//! Metric Vault's database schema, as reversible sea-orm migrations.
//!
//! The same migrations run on SQLite (the embedded default) and PostgreSQL, so
//! they stick to what both support: integer ids, text, doubles, JSON stored as
//! text on SQLite, and foreign keys with `ON DELETE CASCADE` where the API
//! promises that a delete cascades.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_catalogue;
mod m20261127_000002_create_history;
mod m20261127_000003_alter_request_body_schema_text;
mod m20261203_000004_create_api_token;
mod m20261203_000005_add_spec_revision;
mod m20261203_000006_add_project_runs_revision;
mod m20261206_000007_add_k6_counts_and_integrity;
mod m20261207_000008_add_run_leases;
mod m20261207_000009_create_test_plans;
mod m20261207_000010_create_webhooks;
mod m20261208_000011_create_server_secrets;
mod m20261208_000012_add_baselines;
mod m20261209_000013_add_k6_processes;

/// Applies every migration in order; `Migrator::up(db, None)` at start-up.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_catalogue::Migration),
            Box::new(m20261127_000002_create_history::Migration),
            Box::new(m20261127_000003_alter_request_body_schema_text::Migration),
            Box::new(m20261203_000004_create_api_token::Migration),
            Box::new(m20261203_000005_add_spec_revision::Migration),
            Box::new(m20261203_000006_add_project_runs_revision::Migration),
            Box::new(m20261206_000007_add_k6_counts_and_integrity::Migration),
            Box::new(m20261207_000008_add_run_leases::Migration),
            Box::new(m20261207_000009_create_test_plans::Migration),
            Box::new(m20261207_000010_create_webhooks::Migration),
            Box::new(m20261208_000011_create_server_secrets::Migration),
            Box::new(m20261208_000012_add_baselines::Migration),
            Box::new(m20261209_000013_add_k6_processes::Migration),
        ]
    }
}

/// Foreign key from `from_table.from_col` to `to_table.id`, deleted with its parent.
pub(crate) fn cascade_fk<F, C, T>(
    name: &str,
    from_table: F,
    from_col: C,
    to_table: T,
) -> ForeignKeyCreateStatement
where
    F: IntoIden + 'static,
    C: IntoIden + 'static,
    T: IntoIden + 'static,
{
    ForeignKey::create()
        .name(name)
        .from(from_table, from_col)
        .to(to_table, Alias::new("id"))
        .on_delete(ForeignKeyAction::Cascade)
        .on_update(ForeignKeyAction::Cascade)
        .to_owned()
}

/// A plain (non-unique) index on the given columns.
pub(crate) fn index_on<T: IntoIden + 'static>(
    name: &str,
    table: T,
    columns: &[&'static str],
) -> IndexCreateStatement {
    let mut index = Index::create().name(name).table(table).to_owned();
    for column in columns {
        index.col(Alias::new(*column));
    }
    index
}

/// Adds `table.column BIGINT NOT NULL DEFAULT 0`: a counter that writes bump so readers can
/// tell whether a cached copy is current (the server's `db::cache`).
pub(crate) async fn add_counter<T, C>(manager: &SchemaManager<'_>, table: T, column: C) -> Result<(), DbErr>
where
    T: IntoIden + 'static,
    C: IntoIden + 'static,
{
    let counter = ColumnDef::new(column).big_integer().not_null().default(0).to_owned();
    manager.alter_table(Table::alter().table(table).add_column(counter).to_owned()).await
}

/// Drops `table.column` (the way back from [`add_counter`]).
pub(crate) async fn drop_column<T, C>(manager: &SchemaManager<'_>, table: T, column: C) -> Result<(), DbErr>
where
    T: IntoIden + 'static,
    C: IntoIden + 'static,
{
    manager.alter_table(Table::alter().table(table).drop_column(column).to_owned()).await
}
