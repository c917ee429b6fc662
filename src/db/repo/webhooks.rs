//! Webhooks and their deliveries: create, change, delete, list; enqueue a delivery; claim the due
//! ones (one server instance each) and record how an attempt went.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TryInsertResult,
    sea_query::{Expr, ExprTrait},
};

use crate::{
    db::entities::{project, scenario_history, test_history, webhook, webhook_delivery},
    domain::webhook::{DeliveryStatus, WebhookEvent},
    error::{AppError, AppResult},
};

/// A webhook to create, already validated.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub project_id: i64,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub description: Option<String>,
    pub secret: String,
}

/// Changes to a webhook, already validated; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub events: Option<Vec<WebhookEvent>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub secret: Option<String>,
}

/// Creates a webhook, unless its project has `max_per_project` already (`BAD_USER_INPUT`) or
/// does not exist (`NOT_FOUND`). The project row is written first, so two creates for one
/// project take turns (on PostgreSQL too) and the limit holds.
#[tracing::instrument(skip(db, new), fields(project_id = new.project_id))]
pub async fn create(
    db: &DatabaseConnection,
    new: NewWebhook,
    max_per_project: u64,
) -> AppResult<webhook::Model> {
    let txn = crate::db::begin_write(db).await?;
    let locked = project::Entity::update_many()
        .col_expr(project::Column::Id, Expr::col(project::Column::Id))
        .filter(project::Column::Id.eq(new.project_id))
        .exec(&txn)
        .await?;
    if locked.rows_affected == 0 {
        return Err(AppError::not_found("Project", new.project_id));
    }
    let existing =
        webhook::Entity::find().filter(webhook::Column::ProjectId.eq(new.project_id)).count(&txn).await?;
    if existing >= max_per_project {
        return Err(AppError::bad_input(
            "input.projectId",
            format!(
                "project {} has {existing} webhooks, the most a project may have; delete one first",
                new.project_id
            ),
        ));
    }
    let now = Utc::now();
    let created = webhook::ActiveModel {
        project_id: Set(new.project_id),
        url: Set(new.url),
        events: Set(WebhookEvent::join(&new.events)),
        description: Set(new.description),
        secret: Set(new.secret),
        enabled: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(created)
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> AppResult<webhook::Model> {
    webhook::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::not_found("Webhook", id))
}

#[tracing::instrument(skip(db, changes))]
pub async fn update(db: &DatabaseConnection, id: i64, changes: WebhookChanges) -> AppResult<webhook::Model> {
    let txn = crate::db::begin_write(db).await?;
    let mut active: webhook::ActiveModel = get(&txn, id).await?.into();
    if let Some(url) = changes.url {
        active.url = Set(url);
    }
    if let Some(events) = changes.events {
        active.events = Set(WebhookEvent::join(&events));
    }
    if let Some(description) = changes.description {
        active.description = Set(description);
    }
    if let Some(enabled) = changes.enabled {
        active.enabled = Set(enabled);
    }
    if let Some(secret) = changes.secret {
        active.secret = Set(secret);
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Deletes a webhook with its deliveries (pending ones are then never sent).
#[tracing::instrument(skip(db))]
pub async fn delete(db: &DatabaseConnection, id: i64) -> AppResult<()> {
    let deleted = webhook::Entity::delete_by_id(id).exec(db).await?;
    if deleted.rows_affected == 0 {
        return Err(AppError::not_found("Webhook", id));
    }
    Ok(())
}

/// The webhooks of a project (or of every project), oldest first.
#[tracing::instrument(skip(db))]
pub async fn list(db: &DatabaseConnection, project_id: Option<i64>) -> AppResult<Vec<webhook::Model>> {
    let mut query = webhook::Entity::find();
    if let Some(project_id) = project_id {
        query = query.filter(webhook::Column::ProjectId.eq(project_id));
    }
    Ok(query.order_by_asc(webhook::Column::ProjectId).order_by_asc(webhook::Column::Id).all(db).await?)
}

/// Deliveries, newest first: of one webhook and/or about one run, or all.
#[tracing::instrument(skip(db))]
pub async fn deliveries(
    db: &DatabaseConnection,
    webhook_id: Option<i64>,
    test_history_id: Option<i64>,
    first: u64,
) -> AppResult<Vec<webhook_delivery::Model>> {
    let mut query = webhook_delivery::Entity::find();
    if let Some(webhook_id) = webhook_id {
        query = query.filter(webhook_delivery::Column::WebhookId.eq(webhook_id));
    }
    if let Some(test_history_id) = test_history_id {
        query = query.filter(webhook_delivery::Column::TestHistoryId.eq(test_history_id));
    }
    Ok(query.order_by_desc(webhook_delivery::Column::Id).limit(first).all(db).await?)
}

/// The enabled webhooks of `project_id` that subscribe to `event`.
pub async fn subscribed(
    conn: &impl ConnectionTrait,
    project_id: i64,
    event: WebhookEvent,
) -> AppResult<Vec<webhook::Model>> {
    let hooks = webhook::Entity::find()
        .filter(webhook::Column::ProjectId.eq(project_id))
        .filter(webhook::Column::Enabled.eq(true))
        .order_by_asc(webhook::Column::Id)
        .all(conn)
        .await?;
    Ok(hooks.into_iter().filter(|hook| hook.events().contains(&event)).collect())
}

/// Run `id`, read where a notification about it is being written.
pub async fn run(conn: &impl ConnectionTrait, id: i64) -> AppResult<test_history::Model> {
    test_history::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| AppError::not_found("TestHistory", id))
}

/// The scenarios of run `id` (for its verdict).
pub async fn scenarios_of_run(
    conn: &impl ConnectionTrait,
    id: i64,
) -> AppResult<Vec<scenario_history::Model>> {
    Ok(scenario_history::Entity::find()
        .filter(scenario_history::Column::TestHistoryId.eq(id))
        .all(conn)
        .await?)
}

/// Enqueues `event` about run `test_history_id` for `webhook_id`, due at `now`; `payload` makes
/// the body from the delivery's id. None when that webhook was already given that event of that
/// run (the unique key makes each enqueue happen once, whoever tries).
pub async fn enqueue(
    conn: &impl ConnectionTrait,
    webhook_id: i64,
    event: WebhookEvent,
    test_history_id: Option<i64>,
    now: DateTime<Utc>,
    payload: impl FnOnce(i64) -> String,
) -> AppResult<Option<webhook_delivery::Model>> {
    let row = webhook_delivery::ActiveModel {
        webhook_id: Set(webhook_id),
        event: Set(event),
        test_history_id: Set(test_history_id),
        payload: Set(String::new()),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_by: Set(None),
        claim_expires_at: Set(None),
        last_status_code: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
        ..Default::default()
    };
    let inserted = webhook_delivery::Entity::insert(row)
        .on_conflict_do_nothing_on([
            webhook_delivery::Column::WebhookId,
            webhook_delivery::Column::Event,
            webhook_delivery::Column::TestHistoryId,
        ])
        .exec_with_returning(conn)
        .await?;
    let TryInsertResult::Inserted(delivery) = inserted else {
        return Ok(None);
    };
    let mut active: webhook_delivery::ActiveModel = delivery.clone().into();
    active.payload = Set(payload(delivery.id));
    Ok(Some(active.update(conn).await?))
}

/// Claims up to `limit` due deliveries for `owner` until `until`, counting an attempt on each,
/// and returns them with their webhooks. Each claim is a conditional update on a delivery that
/// is PENDING, due and unclaimed (or whose claim expired before `now`), so of several instances
/// looking at once exactly one gets each delivery.
#[tracing::instrument(skip(db))]
pub async fn claim_due(
    db: &DatabaseConnection,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
) -> AppResult<Vec<(webhook_delivery::Model, webhook::Model)>> {
    let claimable = || {
        Condition::all()
            .add(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
            .add(webhook_delivery::Column::NextAttemptAt.lte(now))
            .add(
                Condition::any()
                    .add(webhook_delivery::Column::ClaimExpiresAt.is_null())
                    .add(webhook_delivery::Column::ClaimExpiresAt.lt(now)),
            )
    };
    let candidates: Vec<i64> = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(claimable())
        .order_by_asc(webhook_delivery::Column::NextAttemptAt)
        .order_by_asc(webhook_delivery::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    let mut claimed = Vec::new();
    for id in candidates {
        let taken = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::ClaimedBy, Expr::value(owner))
            .col_expr(webhook_delivery::Column::ClaimExpiresAt, Expr::value(until))
            .col_expr(
                webhook_delivery::Column::Attempts,
                Expr::col(webhook_delivery::Column::Attempts).add(1),
            )
            .filter(webhook_delivery::Column::Id.eq(id))
            .filter(claimable())
            .exec(db)
            .await?;
        if taken.rows_affected == 1 {
            claimed.push(id);
        }
    }
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let deliveries = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Id.is_in(claimed))
        .order_by_asc(webhook_delivery::Column::Id)
        .all(db)
        .await?;
    let hook_ids: Vec<i64> = deliveries.iter().map(|d| d.webhook_id).collect();
    let hooks = webhook::Entity::find().filter(webhook::Column::Id.is_in(hook_ids)).all(db).await?;
    // A delivery whose webhook was deleted meanwhile went with it.
    Ok(deliveries
        .into_iter()
        .filter_map(|delivery| {
            let hook = hooks.iter().find(|hook| hook.id == delivery.webhook_id)?.clone();
            Some((delivery, hook))
        })
        .collect())
}

/// How one attempt went, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptRecord {
    /// A 2xx answer.
    Delivered { status_code: i32, at: DateTime<Utc> },
    /// Failed; tried again at `at`.
    Retry { status_code: Option<i32>, error: String, at: DateTime<Utc> },
    /// Failed, and no attempt is left (or the webhook is gone or disabled).
    Failed { status_code: Option<i32>, error: String },
}

/// Records an attempt `owner` made on a delivery it claimed, releasing the claim; false (and
/// nothing written) when the claim is no longer `owner`'s.
pub async fn record_attempt(
    db: &DatabaseConnection,
    id: i64,
    owner: &str,
    outcome: AttemptRecord,
) -> AppResult<bool> {
    let mut update = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::ClaimedBy, Expr::value(Option::<String>::None))
        .col_expr(webhook_delivery::Column::ClaimExpiresAt, Expr::value(Option::<DateTime<Utc>>::None));
    let (status, status_code, error) = match outcome {
        AttemptRecord::Delivered { status_code, at } => {
            update = update.col_expr(webhook_delivery::Column::DeliveredAt, Expr::value(at));
            (DeliveryStatus::Delivered, Some(status_code), None)
        }
        AttemptRecord::Retry { status_code, error, at } => {
            update = update.col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(at));
            (DeliveryStatus::Pending, status_code, Some(error))
        }
        AttemptRecord::Failed { status_code, error } => (DeliveryStatus::Failed, status_code, Some(error)),
    };
    let recorded = update
        .col_expr(webhook_delivery::Column::Status, Expr::value(status))
        .col_expr(webhook_delivery::Column::LastStatusCode, Expr::value(status_code))
        .col_expr(webhook_delivery::Column::LastError, Expr::value(error))
        .filter(webhook_delivery::Column::Id.eq(id))
        .filter(webhook_delivery::Column::ClaimedBy.eq(owner))
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .exec(db)
        .await?;
    Ok(recorded.rows_affected == 1)
}

/// Lets the claims `owner` holds expire now (it is shutting down mid-send), so another instance
/// tries those deliveries at once rather than when the claims would have run out.
pub async fn release_claims(db: &DatabaseConnection, owner: &str, now: DateTime<Utc>) -> AppResult<u64> {
    let released = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::ClaimExpiresAt, Expr::value(now - chrono::Duration::seconds(1)))
        .filter(webhook_delivery::Column::ClaimedBy.eq(owner))
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .exec(db)
        .await?;
    Ok(released.rows_affected)
}
