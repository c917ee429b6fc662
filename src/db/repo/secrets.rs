//! Secrets the server makes for itself (the report links' key), kept in the database so every
//! replica, and the next start, uses the same one.

use chrono::Utc;
use sea_orm::{DatabaseConnection, EntityTrait, Set, sea_query::OnConflict};

use crate::{
    db::entities::server_secret,
    error::{AppError, AppResult},
};

/// The secret called `name`, stored as `fresh` if there is none yet. Instances racing at their
/// first use each try to insert their own; the first insert wins and every one reads it back.
#[tracing::instrument(skip(db, fresh))]
pub async fn get_or_create(db: &DatabaseConnection, name: &str, fresh: String) -> AppResult<String> {
    let row = server_secret::ActiveModel {
        name: Set(name.to_owned()),
        value: Set(fresh),
        created_at: Set(Utc::now()),
    };
    server_secret::Entity::insert(row)
        .on_conflict(OnConflict::column(server_secret::Column::Name).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    let stored = server_secret::Entity::find_by_id(name.to_owned()).one(db).await?;
    stored.map(|row| row.value).ok_or_else(|| {
        AppError::Unexpected(anyhow::anyhow!("the server secret `{name}` was inserted but cannot be read"))
    })
}
