//! `test_schedule`: a cron expression in a time zone that launches a plan.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "test_schedule")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub plan_id: i64,
    pub cron: String,
    /// An IANA time zone name, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub enabled: bool,
    /// The next due time no server has taken yet; None while disabled.
    pub next_run_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
