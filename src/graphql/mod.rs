//! The GraphQL API: schema, loaders, types, and the query, mutation and subscription roots.

/// Level batching of relation loads, per request.
pub mod batch;
pub mod fast;
pub mod field_order;
pub mod limits;
pub mod loaders;
pub mod mutation;
pub mod query;
pub mod schema;
pub mod subscription;
pub mod types;

pub use schema::{AppSchema, AppState, build_schema};
