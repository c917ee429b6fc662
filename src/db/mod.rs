//! The metadata database: connect (SQLite by default, PostgreSQL on request), migrate, count statements.

pub mod cache;
pub mod entities;
pub mod repo;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

/// Rows sqlx's SQLite worker may read ahead of the task that consumes them.
const SQLITE_ROW_BUFFER: usize = 1024;

/// Begins a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails at once
/// with "database is locked" when another connection wrote in between, whatever the busy
/// timeout; taking the lock up front makes it wait its turn instead. PostgreSQL ignores the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Sends `payload` to the listeners of the PostgreSQL `channel` (`NOTIFY`).
pub async fn pg_notify(
    pool: &sea_orm::sqlx::PgPool,
    channel: &str,
    payload: &str,
) -> Result<(), sea_orm::sqlx::Error> {
    sea_orm::sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(pool).await?;
    Ok(())
}

/// Counts every SQL statement the server sends, so tests and benchmarks can check
/// that a nested query costs a number of statements that does not grow with the data.
#[derive(Clone, Debug, Default)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Connects, applies pending migrations and returns the pool with its statement counter.
#[tracing::instrument(skip(database_url), fields(backend))]
pub async fn connect_and_migrate(
    database_url: &str,
) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    let is_sqlite = database_url.starts_with("sqlite:");
    if is_sqlite {
        create_sqlite_folder(database_url)?;
    }
    let mut options = ConnectOptions::new(database_url.to_owned());
    options
        .max_connections(if is_sqlite { 4 } else { 16 })
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .create_if_missing(true)
                // sqlx steps SQLite on a worker thread and hands rows over a bounded channel
                // (50 by default): a large level (thousands of parameters) then costs a thread
                // hand-off every 50 rows. A deeper channel lets the worker run through.
                .row_buffer_size(SQLITE_ROW_BUFFER)
        });
    let mut db = Database::connect(options)
        .await
        .with_context(|| format!("connecting to the database at {}", redact(database_url)))?;
    tracing::Span::current().record("backend", format!("{:?}", db.get_database_backend()));

    let counter = StatementCounter::default();
    let count = counter.0.clone();
    db.set_metric_callback(move |info| {
        tracing::trace!(target: "metric_vault::sql", sql = %info.statement.sql, elapsed = ?info.elapsed, "statement");
        count.fetch_add(1, Ordering::Relaxed);
    });

    migrate(&db).await.context("applying database migrations")?;
    Ok((db, counter))
}

/// Applies the migrations. On PostgreSQL, replicas that start together take turns: the
/// migrations run in one transaction holding an advisory lock, so the second replica waits,
/// then finds them applied (otherwise both would add the same column, and one fail to start).
async fn migrate(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        // Two processes on one SQLite file (a test's two replicas) may start together: the
        // second then fails on a table the first has just made and not yet recorded. Once the
        // first has finished, the migrations are found applied.
        let mut attempt = 0;
        loop {
            match Migrator::up(db, None).await {
                Err(err) if attempt < 20 => {
                    attempt += 1;
                    tracing::debug!(%err, attempt, "migrations clashed with another process; trying again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                result => return result,
            }
        }
    }
    let txn = db.begin().await?;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")).await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// The advisory lock key migrations hold on PostgreSQL ("mvmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d76_6d69_6772;

/// True when the database answers a trivial query.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok()
}

/// SQLite creates the file but not its folder; `./data/` may not exist on a fresh clone.
fn create_sqlite_folder(database_url: &str) -> anyhow::Result<()> {
    let path = database_url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the database folder {}", parent.display()))?;
    }
    Ok(())
}

/// The URL without its password, for logs and error messages.
pub fn redact(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => database_url.to_owned(),
    }
}
