//! `webhook`: where a project's run events are sent, and with which signing secret.

use sea_orm::entity::prelude::*;

use crate::domain::webhook::WebhookEvent;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: i64,
    pub url: String,
    /// Comma-separated event names ([`WebhookEvent::join`]); see [`Model::events`].
    pub events: String,
    pub description: Option<String>,
    /// The HMAC-SHA256 key deliveries are signed with (hex of 32 random bytes). Kept as is,
    /// since signing needs it; shown once, when the webhook is created.
    pub secret: String,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl Model {
    /// The events the webhook subscribes to.
    pub fn events(&self) -> Vec<WebhookEvent> {
        WebhookEvent::split(&self.events)
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
