//! `request_body`: the body an endpoint takes, at most one per endpoint.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "request_body")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub endpoint_id: i64,
    pub content_type: String,
    pub required: bool,
    /// JSON text (see the migration that made it text): parsed only when shown.
    #[sea_orm(column_type = "Text", nullable)]
    pub schema: Option<String>,
    pub example: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
