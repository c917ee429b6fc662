//! The read side, one object per domain, merged into `Query`.

mod access;
mod catalogue;
mod health;
mod history;
mod plan;
mod webhook;

/// Every query field of the API.
#[derive(async_graphql::MergedObject, Default)]
pub struct Query(
    health::HealthQuery,
    catalogue::CatalogueQuery,
    history::HistoryQuery,
    plan::PlanQuery,
    webhook::WebhookQuery,
    access::AccessQuery,
);
