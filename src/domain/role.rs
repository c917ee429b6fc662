//! Roles of API tokens, stored with the token and checked by the API's guards.

use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

/// What a token allows; each role includes the ones before it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, async_graphql::Enum, DeriveActiveEnum, EnumIter,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Role {
    /// Queries and subscriptions.
    #[sea_orm(string_value = "VIEWER")]
    Viewer,
    /// Also imports documents, edits projects, launches and cancels load tests.
    #[sea_orm(string_value = "OPERATOR")]
    Operator,
    /// Also deletes, and manages API tokens.
    #[sea_orm(string_value = "ADMIN")]
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "VIEWER",
            Self::Operator => "OPERATOR",
            Self::Admin => "ADMIN",
        }
    }

    /// Parses `viewer`, `OPERATOR`, … (any case).
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Viewer, Self::Operator, Self::Admin]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(text))
    }
}
