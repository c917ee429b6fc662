//! Webhook, WebhookDelivery, CreatedWebhook. A webhook's secret is in no type but
//! `CreatedWebhook` (and the answer of `rotateWebhookSecret`): it cannot be read back by anyone.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::{
    catalogue::{Project, project_by_id},
    history::{TestHistory, sees_secrets},
    loader, to_id,
};
use crate::{
    access::Principal,
    db::entities::{webhook, webhook_delivery},
    domain::webhook::{DeliveryStatus, WebhookEvent},
    graphql::loaders::TestHistoryById,
    notify::target::origin,
};

/// Where a project's run events are sent.
pub struct Webhook(pub webhook::Model);

#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn project(&self, ctx: &Context<'_>) -> Result<Project> {
        project_by_id(ctx, self.0.project_id).await
    }
    /// Where deliveries are POSTed. Below OPERATOR only its origin (scheme, host and port): the
    /// rest of a webhook URL may be a credential (Slack's incoming-webhook URLs are).
    async fn url(&self, ctx: &Context<'_>) -> String {
        if sees_secrets(ctx.data_opt::<Principal>()) { self.0.url.clone() } else { origin(&self.0.url) }
    }
    /// True when `url` is cut to its origin for this caller.
    async fn url_redacted(&self, ctx: &Context<'_>) -> bool {
        !sees_secrets(ctx.data_opt::<Principal>())
    }
    async fn events(&self) -> Vec<WebhookEvent> {
        self.0.events()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// A disabled webhook is sent nothing new; its pending deliveries fail.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A new webhook with its signing secret, shown only in this answer.
#[derive(SimpleObject)]
pub struct CreatedWebhook {
    /// The HMAC-SHA256 key of `X-MetricVault-Signature` (64 hex characters, used as it is
    /// written). It cannot be shown again: keep it in the receiver's configuration.
    pub secret: String,
    pub webhook: Webhook,
}

/// One event sent, or to be sent, to one webhook.
pub struct WebhookDelivery(pub webhook_delivery::Model);

#[Object]
impl WebhookDelivery {
    /// Also the `deliveryId` of the payload and the `X-MetricVault-Delivery` header.
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn webhook_id(&self) -> ID {
        to_id(self.0.webhook_id)
    }
    async fn event(&self) -> WebhookEvent {
        self.0.event
    }
    /// The run the event is about (kept when the run is deleted).
    async fn test_history_id(&self) -> Option<ID> {
        self.0.test_history_id.map(to_id)
    }
    /// The run, while it exists.
    async fn test_history(&self, ctx: &Context<'_>) -> Result<Option<TestHistory>> {
        let Some(id) = self.0.test_history_id else { return Ok(None) };
        Ok(loader(ctx).load_one(TestHistoryById(id)).await?.map(TestHistory))
    }
    async fn status(&self) -> DeliveryStatus {
        self.0.status
    }
    /// Attempts made so far (counted as each starts).
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// When the next attempt is due; null once DELIVERED or FAILED.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.status == DeliveryStatus::Pending).then_some(self.0.next_attempt_at)
    }
    /// The HTTP status of the last answer (null when there was none).
    async fn last_status_code(&self) -> Option<i32> {
        self.0.last_status_code
    }
    /// What went wrong with the last failed attempt: the status and the start of the answer,
    /// or why there was no answer.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    /// The JSON body, exactly as sent and signed.
    async fn payload(&self) -> &str {
        &self.0.payload
    }
}
