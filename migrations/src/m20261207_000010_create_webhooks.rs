//! Webhooks: a project's receivers of run events (`webhook`), and every delivery made or to be
//! made to them (`webhook_delivery`), which is both the outbox the sender works from and the
//! log people read.
//!
//! A delivery keeps its `test_history_id` without a foreign key: deleting a run does not unsend
//! what was sent about it, so its deliveries stay in the log (they go with their webhook, and a
//! webhook with its project). `(webhook_id, event, test_history_id)` is unique, so one event of
//! one run is enqueued once per webhook, however many paths or replicas try.
//! `claimed_by` / `claim_expires_at` let exactly one server instance send a delivery at a time;
//! a claim whose sender died expires and the delivery is tried again.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{cascade_fk, index_on};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000010_create_webhooks"
    }
}

#[derive(DeriveIden)]
enum Project {
    Table,
}

#[derive(DeriveIden)]
enum Webhook {
    Table,
    Id,
    ProjectId,
    Url,
    /// Comma-separated event names.
    Events,
    Description,
    /// Hex of 32 random bytes: the HMAC key, so it is kept as is (and never shown again).
    Secret,
    Enabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDelivery {
    Table,
    Id,
    WebhookId,
    Event,
    TestHistoryId,
    /// The JSON body, exactly as sent.
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimedBy,
    ClaimExpiresAt,
    LastStatusCode,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Webhook::Table)
                    .col(big_pk_auto(Webhook::Id))
                    .col(big_integer(Webhook::ProjectId))
                    .col(string_len(Webhook::Url, 2048))
                    .col(string_len(Webhook::Events, 128))
                    .col(string_len_null(Webhook::Description, 500))
                    .col(string_len(Webhook::Secret, 64))
                    .col(boolean(Webhook::Enabled).default(true))
                    .col(timestamp_with_time_zone(Webhook::CreatedAt))
                    .col(timestamp_with_time_zone(Webhook::UpdatedAt))
                    .foreign_key(&mut cascade_fk(
                        "fk_webhook_project",
                        Webhook::Table,
                        Webhook::ProjectId,
                        Project::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index_on("ix_webhook_project", Webhook::Table, &["project_id", "id"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDelivery::Table)
                    .col(big_pk_auto(WebhookDelivery::Id))
                    .col(big_integer(WebhookDelivery::WebhookId))
                    .col(string_len(WebhookDelivery::Event, 32))
                    .col(big_integer_null(WebhookDelivery::TestHistoryId))
                    .col(text(WebhookDelivery::Payload))
                    .col(string_len(WebhookDelivery::Status, 16))
                    .col(integer(WebhookDelivery::Attempts).default(0))
                    .col(timestamp_with_time_zone(WebhookDelivery::NextAttemptAt))
                    .col(string_len_null(WebhookDelivery::ClaimedBy, 64))
                    .col(timestamp_with_time_zone_null(WebhookDelivery::ClaimExpiresAt))
                    .col(integer_null(WebhookDelivery::LastStatusCode))
                    .col(text_null(WebhookDelivery::LastError))
                    .col(timestamp_with_time_zone(WebhookDelivery::CreatedAt))
                    .col(timestamp_with_time_zone_null(WebhookDelivery::DeliveredAt))
                    .foreign_key(&mut cascade_fk(
                        "fk_webhook_delivery_webhook",
                        WebhookDelivery::Table,
                        WebhookDelivery::WebhookId,
                        Webhook::Table,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_delivery_once")
                    .table(WebhookDelivery::Table)
                    .col(WebhookDelivery::WebhookId)
                    .col(WebhookDelivery::Event)
                    .col(WebhookDelivery::TestHistoryId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The sender looks for due deliveries; the log lists them newest first per webhook or run.
        manager
            .create_index(index_on(
                "ix_webhook_delivery_due",
                WebhookDelivery::Table,
                &["status", "next_attempt_at"],
            ))
            .await?;
        manager
            .create_index(index_on(
                "ix_webhook_delivery_run",
                WebhookDelivery::Table,
                &["test_history_id", "id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(WebhookDelivery::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Webhook::Table).to_owned()).await
    }
}
