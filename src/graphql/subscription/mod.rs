//! The live side, one object per domain, merged into `Subscription`.
//!
//! Served over websocket on `/graphql` (`graphql-transport-ws` and the legacy `graphql-ws`
//! subprotocol; see `http::websocket`).

mod metrics;
mod status;

pub use super::fast::asked_for::SubscriptionExecutor;

/// Every subscription of the API.
#[derive(async_graphql::MergedSubscription, Default)]
pub struct Subscription(metrics::MetricsSubscription, status::StatusSubscription);
