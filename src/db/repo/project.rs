//! Projects: create, update, delete (with everything under them), read.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::{
    db::entities::{project, test_history},
    domain::TestStatus,
    error::{AppError, AppResult},
};

/// A project's editable fields, already validated.
#[derive(Debug, Default)]
pub struct ProjectFields {
    pub title: Option<String>,
    pub summary: Option<Option<String>>,
    pub description: Option<Option<String>>,
}

#[tracing::instrument(skip(db))]
pub async fn list(db: &DatabaseConnection) -> AppResult<Vec<project::Model>> {
    Ok(project::Entity::find()
        .order_by_desc(project::Column::CreatedAt)
        .order_by_desc(project::Column::Id)
        .all(db)
        .await?)
}

#[tracing::instrument(skip(db))]
pub async fn get(db: &impl ConnectionTrait, id: i64) -> AppResult<project::Model> {
    project::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::not_found("Project", id))
}

/// Project `id`, its row locked until `txn` ends: writes that read a project's catalogue to
/// change it (imports) take turns. SQLite's write transactions already do
/// ([`crate::db::begin_write`]); PostgreSQL's, at READ COMMITTED, would both read the same
/// state and write over each other (the same spec revision for two different catalogues).
pub async fn lock(txn: &sea_orm::DatabaseTransaction, id: i64) -> AppResult<project::Model> {
    let mut find = project::Entity::find_by_id(id);
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        find = find.lock_exclusive();
    }
    find.one(txn).await?.ok_or_else(|| AppError::not_found("Project", id))
}

#[tracing::instrument(skip(db, fields))]
pub async fn create(db: &DatabaseConnection, fields: ProjectFields) -> AppResult<project::Model> {
    let now = Utc::now();
    let model = project::ActiveModel {
        title: Set(fields.title.unwrap_or_default()),
        summary: Set(fields.summary.flatten()),
        description: Set(fields.description.flatten()),
        created_at: Set(now),
        updated_at: Set(now),
        runs_revision: Set(0),
        ..Default::default()
    };
    Ok(model.insert(db).await?)
}

/// Records, inside the transaction that adds or deletes runs of `project_id`, that its set of
/// runs changed: cached counts of them (`graphql::read_cache`) are no longer current.
pub async fn runs_changed(txn: &impl ConnectionTrait, project_id: i64) -> AppResult<()> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    project::Entity::update_many()
        .col_expr(project::Column::RunsRevision, Expr::col(project::Column::RunsRevision).add(1))
        .filter(project::Column::Id.eq(project_id))
        .exec(txn)
        .await?;
    Ok(())
}

#[tracing::instrument(skip(db, fields))]
pub async fn update(db: &DatabaseConnection, id: i64, fields: ProjectFields) -> AppResult<project::Model> {
    let txn = crate::db::begin_write(db).await?;
    let mut model: project::ActiveModel = get(&txn, id).await?.into();
    if let Some(title) = fields.title {
        model.title = Set(title);
    }
    if let Some(summary) = fields.summary {
        model.summary = Set(summary);
    }
    if let Some(description) = fields.description {
        model.description = Set(description);
    }
    model.updated_at = Set(Utc::now());
    let updated = model.update(&txn).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Deletes the project and, through the cascading foreign keys, its specs, endpoints and history.
/// Refused while one of its runs is pending or running: their processes would lose their rows.
#[tracing::instrument(skip(db))]
pub async fn delete(db: &DatabaseConnection, id: i64) -> AppResult<()> {
    let txn = crate::db::begin_write(db).await?;
    get(&txn, id).await?;
    let active = test_history::Entity::find()
        .select_only()
        .column(test_history::Column::Id)
        .filter(test_history::Column::ProjectId.eq(id))
        .filter(test_history::Column::Status.is_in(TestStatus::ACTIVE))
        .limit(1)
        .into_tuple::<i64>()
        .one(&txn)
        .await?;
    if let Some(run) = active {
        return Err(AppError::Conflict(format!(
            "project {id} has an active run ({run}); cancel it or wait for it to finish before deleting the project"
        )));
    }
    project::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}
