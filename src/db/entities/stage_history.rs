//! `stage_history`: one stage (duration, target) of a scenario.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "stage_history")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub scenario_history_id: i64,
    pub position: i32,
    pub duration: String,
    pub target: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
