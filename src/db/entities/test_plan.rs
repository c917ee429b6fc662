//! `test_plan`: a saved test (the launch input, versioned in `test_plan_version`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "test_plan")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: i64,
    /// Unique among the project's live plans.
    pub title: String,
    /// The newest version; every edit adds one.
    pub current_version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Deleted plans stay, so their runs still show what they ran.
    pub deleted_at: Option<DateTimeUtc>,
    /// The run new runs of this plan are judged against (`lifecycle::regression`).
    pub baseline_run_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
