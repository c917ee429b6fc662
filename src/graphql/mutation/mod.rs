//! The write side, one object per domain, merged into `Mutation`.

mod access;
mod catalogue;
mod history;
mod launch;
mod launch_input;
mod plan;
mod project;
mod webhook;

/// Every mutation of the API.
#[derive(async_graphql::MergedObject, Default)]
pub struct Mutation(
    project::ProjectMutation,
    catalogue::CatalogueMutation,
    history::HistoryMutation,
    launch::LaunchMutation,
    plan::PlanMutation,
    webhook::WebhookMutation,
    access::AccessMutation,
);
