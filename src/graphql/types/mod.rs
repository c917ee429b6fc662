//! API types: thin wrappers over database rows whose relations resolve through DataLoaders.

pub mod access;
pub mod catalogue;
pub mod comparison;
pub mod connection;
pub mod health;
pub mod history;
pub mod integrity;
pub mod plan;
pub mod webhook;

use async_graphql::{Context, ID};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sea_orm::DatabaseConnection;

use crate::{
    error::{AppError, AppResult},
    graphql::loaders::AppLoader,
};

/// The request's DataLoader.
pub fn loader<'a>(ctx: &Context<'a>) -> &'a AppLoader {
    ctx.data_unchecked::<AppLoader>()
}

/// The metadata database.
pub fn db<'a>(ctx: &Context<'a>) -> &'a DatabaseConnection {
    ctx.data_unchecked::<DatabaseConnection>()
}

/// Reads a database id from a GraphQL `ID` argument; `field` names it in the error.
pub fn parse_id(id: &ID, field: &str) -> AppResult<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AppError::bad_input(field, format!("`{}` is not a valid id for {field}", id.as_str())))
}

/// The id of a row as a GraphQL `ID`.
pub fn to_id(id: i64) -> ID {
    ID(id.to_string())
}

/// Opaque Relay cursor for a row of `kind`: clients must not build them, so they are encoded.
pub fn encode_cursor(kind: &str, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{id}"))
}

/// Reads a cursor made by [`encode_cursor`] for the same `kind`.
pub fn decode_cursor(kind: &str, cursor: &str) -> AppResult<i64> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(kind)?.strip_prefix(':')?.parse::<i64>().ok())
        .ok_or_else(|| AppError::bad_input("after", "`after` is not a cursor from this list"))
}

/// The most rows one page may ask for.
pub const MAX_PAGE_SIZE: i32 = 500;

/// Checks a `first` argument; an explicit `null` (or an unset variable) means the default.
pub fn page_size(first: Option<i32>, default: i32) -> AppResult<u64> {
    let first = first.unwrap_or(default);
    if (0..=MAX_PAGE_SIZE).contains(&first) {
        Ok(first as u64)
    } else {
        Err(AppError::bad_input(
            "first",
            format!("`first` must be between 0 and {MAX_PAGE_SIZE}, got {first}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_other_lists() {
        let cursor = encode_cursor("endpoint", 42);
        assert_eq!(decode_cursor("endpoint", &cursor).unwrap(), 42);
        assert!(decode_cursor("test_history", &cursor).is_err());
        assert!(decode_cursor("endpoint", "not-a-cursor").is_err());
    }

    #[test]
    fn ids_must_be_positive_integers() {
        assert_eq!(parse_id(&ID::from("7"), "id").unwrap(), 7);
        for bad in ["", "x", "-1", "0", "1.5"] {
            assert_eq!(parse_id(&ID::from(bad), "id").unwrap_err().code(), "BAD_USER_INPUT");
        }
    }
}
