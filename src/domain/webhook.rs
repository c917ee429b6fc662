//! Webhooks' vocabulary: the events a project's webhooks subscribe to, and where a delivery is.

use async_graphql::Enum;
use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

/// What a webhook is told about. A run that ends CANCELLED fires none: someone stopped it on
/// purpose, and the people who cancel runs are the ones who would be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Enum, DeriveActiveEnum, EnumIter)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum WebhookEvent {
    /// A run ended COMPLETED (whatever its verdict).
    #[sea_orm(string_value = "RUN_FINISHED")]
    RunFinished,
    /// A run ended FAILED: k6 could not start or crashed, it outlived its time limit, or its
    /// server stopped under it.
    #[sea_orm(string_value = "RUN_FAILED")]
    RunFailed,
    /// A run's verdict is FAILED (a target was missed); sent when the verdict becomes known,
    /// which for a run whose results were filled in later is when they were.
    #[sea_orm(string_value = "VERDICT_FAILED")]
    VerdictFailed,
    /// A run regressed against its baseline: fired by regression verdicts (issue 18), once
    /// they exist; until then no run fires it.
    #[sea_orm(string_value = "REGRESSION")]
    Regression,
}

impl WebhookEvent {
    /// Every event, in the order they are listed and stored.
    pub const ALL: [WebhookEvent; 4] =
        [Self::RunFinished, Self::RunFailed, Self::VerdictFailed, Self::Regression];

    /// The stored and shown name, e.g. `RUN_FINISHED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunFinished => "RUN_FINISHED",
            Self::RunFailed => "RUN_FAILED",
            Self::VerdictFailed => "VERDICT_FAILED",
            Self::Regression => "REGRESSION",
        }
    }

    /// Reads a name written by [`Self::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == text)
    }

    /// A set of events as one column value: names in [`Self::ALL`] order, comma-separated.
    pub fn join(events: &[WebhookEvent]) -> String {
        Self::ALL.into_iter().filter(|e| events.contains(e)).map(Self::as_str).collect::<Vec<_>>().join(",")
    }

    /// The events of a column value written by [`Self::join`] (unknown names are skipped).
    pub fn split(text: &str) -> Vec<WebhookEvent> {
        text.split(',').filter_map(|name| Self::parse(name.trim())).collect()
    }
}

/// Where a delivery is: waiting for its (next) attempt, or done one way or the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Enum, DeriveActiveEnum, EnumIter)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum DeliveryStatus {
    /// Not sent yet, or to be tried again at `nextAttemptAt`.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// The receiver answered 2xx.
    #[sea_orm(string_value = "DELIVERED")]
    Delivered,
    /// Every attempt failed; `lastStatusCode` / `lastError` say how the last one did.
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_sets_are_stored_in_one_order_without_repeats() {
        let events = [WebhookEvent::Regression, WebhookEvent::RunFinished, WebhookEvent::RunFinished];
        let stored = WebhookEvent::join(&events);
        assert_eq!(stored, "RUN_FINISHED,REGRESSION");
        assert_eq!(WebhookEvent::split(&stored), [WebhookEvent::RunFinished, WebhookEvent::Regression]);
        assert_eq!(WebhookEvent::split("RUN_FAILED,SOMETHING_NEW"), [WebhookEvent::RunFailed]);
    }
}
