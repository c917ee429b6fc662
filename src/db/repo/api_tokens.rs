//! API tokens: create, list, revoke, and find one by its digest.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    sea_query::Expr,
};

use crate::{
    db::entities::api_token,
    domain::Role,
    error::{AppError, AppResult},
};

#[tracing::instrument(skip(db, token_hash))]
pub async fn create(
    db: &DatabaseConnection,
    name: &str,
    role: Role,
    token_hash: String,
    token_prefix: String,
) -> AppResult<api_token::Model> {
    let model = api_token::ActiveModel {
        name: Set(name.to_owned()),
        role: Set(role),
        token_hash: Set(token_hash),
        token_prefix: Set(token_prefix),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
        ..Default::default()
    };
    Ok(model.insert(db).await?)
}

/// Every token, newest first, revoked ones included (they say when they were revoked).
#[tracing::instrument(skip(db))]
pub async fn list(db: &DatabaseConnection) -> AppResult<Vec<api_token::Model>> {
    Ok(api_token::Entity::find()
        .order_by_desc(api_token::Column::CreatedAt)
        .order_by_desc(api_token::Column::Id)
        .all(db)
        .await?)
}

/// The live (not revoked) token with this digest.
#[tracing::instrument(skip_all)]
pub async fn find_live(db: &DatabaseConnection, token_hash: &str) -> AppResult<Option<api_token::Model>> {
    Ok(api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(token_hash))
        .filter(api_token::Column::RevokedAt.is_null())
        .one(db)
        .await?)
}

/// Revokes a token; revoking one already revoked is a conflict.
#[tracing::instrument(skip(db))]
pub async fn revoke(db: &DatabaseConnection, id: i64) -> AppResult<api_token::Model> {
    let token = api_token::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("ApiToken", id))?;
    if token.revoked_at.is_some() {
        return Err(AppError::Conflict(format!("API token {id} is already revoked")));
    }
    let mut active: api_token::ActiveModel = token.into();
    active.revoked_at = Set(Some(Utc::now()));
    Ok(active.update(db).await?)
}

/// Records that a token was used (called at most once a minute per token).
#[tracing::instrument(skip(db))]
pub async fn touch(db: &DatabaseConnection, id: i64, at: DateTime<Utc>) -> AppResult<()> {
    api_token::Entity::update_many()
        .col_expr(api_token::Column::LastUsedAt, Expr::value(at))
        .filter(api_token::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
