//! Metric Vault: a GraphQL server for API load testing.

/// Who may do what (API tokens, roles) and where load may go.
pub mod access;
/// Subcommands of the binary besides serving (`token create`, `export-schema`).
pub mod commands;
/// Typed settings from the environment.
pub mod config;
/// The metadata database: connection, migrations, entities, repositories.
pub mod db;
/// Enums and value types shared by the database and the API.
pub mod domain;
/// The one error type and its GraphQL codes.
pub mod error;
/// The GraphQL schema, loaders and types.
pub mod graphql;
/// HTTP routes around the schema.
pub mod http;
/// k6: durations, load plans and script generation.
pub mod k6;
/// Metrics: reading k6 samples back from InfluxDB.
pub mod metrics;
/// Reading OpenAPI and Swagger documents into the catalogue's model.
pub mod openapi;
/// The life of a run: launch, status, results, cancellation, recovery.
pub mod scheduler;
/// Deterministic fixture data for tests and benchmarks.
pub mod seed;
/// Building and running the server.
pub mod startup;
/// Logging setup.
pub mod telemetry;
