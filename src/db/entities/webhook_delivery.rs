//! `webhook_delivery`: one event sent (or to be sent) to one webhook: the sender's outbox and
//! the log people read.

use sea_orm::entity::prelude::*;

use crate::domain::webhook::{DeliveryStatus, WebhookEvent};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_delivery")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub webhook_id: i64,
    pub event: WebhookEvent,
    /// The run the event is about; no foreign key, so the log outlives a deleted run.
    pub test_history_id: Option<i64>,
    /// The JSON body, exactly as sent (and signed).
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub status: DeliveryStatus,
    /// Attempts started so far (an attempt counts from its claim, so one whose sender died counts).
    pub attempts: i32,
    /// When the next attempt is due (while PENDING).
    pub next_attempt_at: DateTimeUtc,
    /// The server instance sending it now, until `claim_expires_at`.
    pub claimed_by: Option<String>,
    pub claim_expires_at: Option<DateTimeUtc>,
    pub last_status_code: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
