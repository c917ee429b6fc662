//! `schedule_firing`: what one due time of a schedule did (one row per due time).

use sea_orm::entity::prelude::*;

use crate::domain::FiringOutcome;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "schedule_firing")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub schedule_id: i64,
    pub due_at: DateTimeUtc,
    pub outcome: FiringOutcome,
    /// The run launched, when one was.
    pub test_history_id: Option<i64>,
    /// Why it was skipped or failed.
    pub message: Option<String>,
    /// The server instance that took the due time.
    pub fired_by: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
