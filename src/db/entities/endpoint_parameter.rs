//! `endpoint_parameter`: a path, query, header or cookie parameter of an endpoint.

use sea_orm::entity::prelude::*;

use crate::domain::ParameterLocation;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "endpoint_parameter")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub endpoint_id: i64,
    pub position: i32,
    pub name: String,
    pub location: ParameterLocation,
    pub required: bool,
    pub schema_type: Option<String>,
    pub description: Option<String>,
    pub example: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
