//! createWebhook, updateWebhook, rotateWebhookSecret, deleteWebhook.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result};

use crate::{
    access::{Role, RoleGuard},
    db::repo::{
        self,
        webhooks::{NewWebhook, WebhookChanges},
    },
    domain::webhook::WebhookEvent,
    error::AppError,
    graphql::{
        AppState,
        types::{
            db, parse_id, to_id,
            webhook::{CreatedWebhook, Webhook},
        },
    },
    notify::{MAX_WEBHOOKS_PER_PROJECT, signature::generate_secret, target::check_url},
};

const DESCRIPTION_MAX: usize = 500;

#[derive(Default)]
pub struct WebhookMutation;

#[derive(InputObject)]
pub struct CreateWebhookInput {
    project_id: ID,
    /// An http(s) URL whose host the import host policy allows (IMPORT_ALLOWED_HOSTS, else
    /// ALLOWED_TARGETS, else any host not in BLOCKED_TARGETS). A Slack incoming-webhook URL works as is.
    url: String,
    /// At least one.
    events: Vec<WebhookEvent>,
    description: Option<String>,
}

/// Fields left out stay as they are; `description: null` clears it.
#[derive(InputObject)]
pub struct UpdateWebhookInput {
    url: Option<String>,
    events: Option<Vec<WebhookEvent>>,
    description: MaybeUndefined<String>,
    enabled: Option<bool>,
}

fn events(field: &str, events: &[WebhookEvent]) -> Result<Vec<WebhookEvent>, AppError> {
    if events.is_empty() {
        return Err(AppError::bad_input(field, "a webhook needs at least one event"));
    }
    let mut events = events.to_vec();
    events.sort();
    events.dedup();
    Ok(events)
}

fn description(value: Option<&str>) -> Result<Option<String>, AppError> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > DESCRIPTION_MAX {
        return Err(AppError::bad_input(
            "input.description",
            format!("description must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    Ok(Some(text.to_owned()))
}

#[Object]
impl WebhookMutation {
    /// Creates a webhook and shows its signing secret, once. At most 20 per project.
    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    #[tracing::instrument(skip(self, ctx, input), fields(project_id = %input.project_id.as_str()))]
    async fn create_webhook(&self, ctx: &Context<'_>, input: CreateWebhookInput) -> Result<CreatedWebhook> {
        let state = ctx.data_unchecked::<AppState>();
        let project_id = parse_id(&input.project_id, "input.projectId")?;
        let events = events("input.events", &input.events)?;
        let description = description(input.description.as_deref())?;
        let url = check_url("input.url", &input.url, &state.settings.import.policy).await?;
        let secret = generate_secret();
        let new =
            NewWebhook { project_id, url: url.to_string(), events, description, secret: secret.clone() };
        let created = repo::webhooks::create(db(ctx), new, MAX_WEBHOOKS_PER_PROJECT).await?;
        tracing::info!(webhook_id = created.id, "webhook created");
        Ok(CreatedWebhook { secret, webhook: Webhook(created) })
    }

    /// Changes a webhook's URL, events, description or whether it is enabled.
    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn update_webhook(&self, ctx: &Context<'_>, id: ID, input: UpdateWebhookInput) -> Result<Webhook> {
        let state = ctx.data_unchecked::<AppState>();
        let id = parse_id(&id, "id")?;
        let events = input.events.as_deref().map(|list| events("input.events", list)).transpose()?;
        let description = match &input.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(text) => Some(description(Some(text))?),
        };
        let url = match &input.url {
            Some(url) => Some(check_url("input.url", url, &state.settings.import.policy).await?.to_string()),
            None => None,
        };
        let changes = WebhookChanges { url, events, description, enabled: input.enabled, secret: None };
        Ok(Webhook(repo::webhooks::update(db(ctx), id, changes).await?))
    }

    /// Replaces a webhook's signing secret and shows the new one, once; deliveries are signed
    /// with it from the next attempt on. Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn rotate_webhook_secret(&self, ctx: &Context<'_>, id: ID) -> Result<CreatedWebhook> {
        let id = parse_id(&id, "id")?;
        let secret = generate_secret();
        let changes = WebhookChanges { secret: Some(secret.clone()), ..WebhookChanges::default() };
        let updated = repo::webhooks::update(db(ctx), id, changes).await?;
        tracing::info!(webhook_id = id, "webhook secret rotated");
        Ok(CreatedWebhook { secret, webhook: Webhook(updated) })
    }

    /// Deletes a webhook with its delivery log; pending deliveries are not sent.
    /// Needs the OPERATOR role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let id = parse_id(&id, "id")?;
        repo::webhooks::delete(db(ctx), id).await?;
        Ok(to_id(id))
    }
}
