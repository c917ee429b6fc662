//! `openapi_spec`: one imported document of a project, keyed by its base URL.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "openapi_spec")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: i64,
    pub title: String,
    pub version: Option<String>,
    pub base_url: String,
    pub spec_format: String,
    pub source_url: Option<String>,
    pub imported_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    /// Bumped by every import that rewrites the spec's catalogue (see `db::cache`).
    pub revision: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
