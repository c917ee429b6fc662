//! webhooks, webhookDeliveries.

use async_graphql::{Context, ID, Object, Result};

use crate::{
    db::repo,
    graphql::types::{
        db, page_size, parse_id,
        webhook::{Webhook, WebhookDelivery},
    },
};

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The webhooks of a project, or of every project, oldest first. Below OPERATOR their URLs
    /// show only scheme, host and port.
    async fn webhooks(&self, ctx: &Context<'_>, project_id: Option<ID>) -> Result<Vec<Webhook>> {
        let project_id = project_id.as_ref().map(|id| parse_id(id, "projectId")).transpose()?;
        Ok(repo::webhooks::list(db(ctx), project_id).await?.into_iter().map(Webhook).collect())
    }

    /// Deliveries newest first: of one webhook, about one run, both, or all.
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        webhook_id: Option<ID>,
        test_history_id: Option<ID>,
        #[graphql(default = 50)] first: Option<i32>,
    ) -> Result<Vec<WebhookDelivery>> {
        let webhook_id = webhook_id.as_ref().map(|id| parse_id(id, "webhookId")).transpose()?;
        let test_history_id = test_history_id.as_ref().map(|id| parse_id(id, "testHistoryId")).transpose()?;
        let first = page_size(first, 50)?;
        let rows = repo::webhooks::deliveries(db(ctx), webhook_id, test_history_id, first).await?;
        Ok(rows.into_iter().map(WebhookDelivery).collect())
    }
}
