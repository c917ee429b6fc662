//! `endpoint`: one operation (method + path) of a spec.

use sea_orm::entity::prelude::*;

use crate::domain::HttpMethod;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "endpoint")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Denormalised from the spec so project-wide filters need no join.
    pub project_id: i64,
    pub spec_id: i64,
    pub method: HttpMethod,
    pub path: String,
    pub operation_id: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub deprecated: bool,
    /// Set when a re-import no longer finds the operation; the row stays so past results keep their endpoint.
    pub removed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
