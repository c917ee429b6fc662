//! The GraphQL API: schema, loaders, types, and the query and mutation roots.

pub mod loaders;
pub mod mutation;
pub mod query;
pub mod schema;
pub mod types;

pub use schema::{AppSchema, AppState, build_schema};
