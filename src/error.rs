//! One error type for the whole server, each variant with a stable `extensions.code`.

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, SqlErr};

/// What can go wrong while answering a request.
///
/// It deliberately does not implement `Display`: async-graphql turns any `Display` type into
/// an error without a code, so this type only reaches clients through its `From` impl below.
#[derive(Debug)]
pub enum AppError {
    /// The request itself is wrong; `field` names the input path (`input.title`).
    BadUserInput {
        message: String,
        field: Option<String>,
    },
    NotFound {
        entity: &'static str,
        id: String,
    },
    Conflict(String),
    Forbidden(String),
    /// A dependency (InfluxDB, the cluster, a target API) did not answer.
    UpstreamUnavailable(String),
    Database(DbErr),
    Unexpected(anyhow::Error),
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        Self::Database(err)
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        Self::Unexpected(err)
    }
}

/// Shorthand for results in resolvers and repositories.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// A `BAD_USER_INPUT` error about one input field.
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadUserInput { message: message.into(), field: Some(field.into()) }
    }

    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Self::NotFound { entity, id: id.to_string() }
    }

    /// The stable code a client can switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput { .. } => "BAD_USER_INPUT",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::UpstreamUnavailable(_) => "UPSTREAM_UNAVAILABLE",
            Self::Database(err) if unique_violation(err) => "CONFLICT",
            Self::Database(_) | Self::Unexpected(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// What the client is told. Internal causes are logged, never shown.
    pub fn message(&self) -> String {
        match self {
            Self::BadUserInput { message, .. } => message.clone(),
            Self::NotFound { entity, id } => format!("{entity} {id} does not exist"),
            Self::Conflict(message) | Self::Forbidden(message) | Self::UpstreamUnavailable(message) => {
                message.clone()
            }
            Self::Database(err) if unique_violation(err) => {
                "this conflicts with an existing record".to_owned()
            }
            Self::Database(_) | Self::Unexpected(_) => "internal server error".to_owned(),
        }
    }
}

fn unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if err.code() == "INTERNAL_SERVER_ERROR" {
            tracing::error!(error = ?err, "request failed with an internal error");
        }
        let code = err.code();
        let field = match &err {
            AppError::BadUserInput { field, .. } => field.clone(),
            _ => None,
        };
        async_graphql::Error::new(err.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(field) = &field {
                ext.set("field", field.as_str());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_internal_details_stay_hidden() {
        let err: async_graphql::Error = AppError::bad_input("input.title", "title must not be empty").into();
        let ext = err.extensions.as_ref().unwrap();
        assert_eq!(ext.get("code"), Some(&async_graphql::Value::from("BAD_USER_INPUT")));
        assert_eq!(ext.get("field"), Some(&async_graphql::Value::from("input.title")));

        let err: async_graphql::Error = AppError::Database(DbErr::Custom("password=secret".into())).into();
        assert_eq!(err.message, "internal server error");
        let ext = err.extensions.as_ref().unwrap();
        assert_eq!(ext.get("code"), Some(&async_graphql::Value::from("INTERNAL_SERVER_ERROR")));

        assert_eq!(AppError::not_found("Project", 7).message(), "Project 7 does not exist");
    }
}
