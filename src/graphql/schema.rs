//! The schema and what every resolver can reach through its context.

use std::sync::Arc;

use async_graphql::{
    ErrorExtensionValues, Schema, ServerError, ServerResult, ValidationResult, Value, Variables, async_trait,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
        apollo_persisted_queries::{ApolloPersistedQueries, LruCacheStorage},
    },
    parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet},
};
use sea_orm::DatabaseConnection;

use super::{
    fast::{FastPaths, read_cache::ReadCaches},
    mutation::Mutation,
    query::Query,
    subscription::Subscription,
};
use crate::{
    access::{Authenticator, Principal},
    config::Settings,
    db::StatementCounter,
    metrics::live::{self, LiveMetrics},
};

/// The executable schema.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Shared state of the running server, available to every resolver.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: DatabaseConnection,
    pub statements: StatementCounter,
    /// For outbound calls (InfluxDB, targets); each call sets its own timeout.
    pub http: reqwest::Client,
    /// For OpenAPI documents: bounded redirects and time (see `openapi::fetch`).
    pub document_client: reqwest::Client,
    /// Launches and follows runs.
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// Checks API tokens.
    pub auth: Authenticator,
}

/// Builds the schema with the state as schema data, and the live-metrics pollers that
/// `testMetrics` subscribers share.
pub fn build_schema(state: AppState) -> AppSchema {
    let judged = state.settings.regression;
    let regression = crate::metrics::regression::Settings {
        confidence: judged.confidence,
        min_effect: judged.min_effect,
        min_absolute_effect: 0.0,
        min_samples: judged.min_intervals.max(2),
    };
    let live = LiveMetrics::judging(
        state.db.clone(),
        state.lifecycle.influx().clone(),
        live::DEFAULT_INTERVAL,
        regression,
    );
    let limits = state.settings.security.clone();
    let mut builder = Schema::build(Query::default(), Mutation::default(), Subscription::default())
        // Field depth is checked with the document's other limits (`limits.rs`), where GraphiQL's
        // and Playground's schema query (nine levels of `ofType`) is not held against it.
        .limit_complexity(limits.max_query_complexity)
        // First, so that a document is scanned before the persisted-query extension parses it.
        .extension(super::limits::LimitsExtension(super::limits::RequestLimits {
            max_nesting: limits.max_document_nesting,
            max_tokens: limits.max_document_tokens,
            max_document_bytes: limits.max_document_bytes,
            max_depth: limits.max_query_depth,
            max_complexity: limits.max_query_complexity,
            max_response_values: limits.max_response_values,
            max_upstream_calls: limits.max_upstream_calls,
        }))
        .extension(ApolloPersistedQueries::new(LruCacheStorage::new(PERSISTED_QUERIES)));
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    let fast = state.settings.fast_paths;
    builder
        .data(state.db.clone())
        .data(live)
        .data(state.auth.clone())
        .data(Arc::new(ReadCaches::new(if fast { state.settings.read_cache_rows } else { 0 })))
        .data(FastPaths(fast))
        .data(state)
        .extension(ApolloErrorCodes { introspection: limits.introspection })
        .finish()
}

/// How many persisted queries (Apollo's automatic persisted queries) the server remembers.
const PERSISTED_QUERIES: usize = 1024;

/// The schema's SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), Subscription::default()).finish().sdl()
}

/// Marks a request that arrived as an HTTP GET, which may only read.
#[derive(Clone, Copy, Debug)]
pub struct ReadOnlyTransport;

/// The most validation errors one answer lists.
const MAX_VALIDATION_ERRORS: usize = 50;

/// Codes a client sees when its document never reached execution.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";

/// Gives parse and validation failures the `extensions.code` Apollo Server uses,
/// and refuses mutations sent over GET.
struct ApolloErrorCodes {
    /// When false, a document asking for `__schema` or `__type` is refused with a clear error
    /// (async-graphql alone would answer `null` without saying why).
    introspection: bool,
}

impl ExtensionFactory for ApolloErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ApolloErrorCodes { introspection: self.introspection })
    }
}

/// Whether a selection set asks for `__schema` or `__type` at its top (through fragments too).
fn asks_for_introspection(document: &ExecutableDocument, selections: &SelectionSet, depth: usize) -> bool {
    depth < 8
        && selections.items.iter().any(|selection| match &selection.node {
            Selection::Field(field) => matches!(field.node.name.node.as_str(), "__schema" | "__type"),
            Selection::InlineFragment(fragment) => {
                asks_for_introspection(document, &fragment.node.selection_set.node, depth + 1)
            }
            Selection::FragmentSpread(spread) => document
                .fragments
                .get(&spread.node.fragment_name.node)
                .is_some_and(|f| asks_for_introspection(document, &f.node.selection_set.node, depth + 1)),
        })
}

pub(crate) fn with_code(mut error: ServerError, code: &str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(ErrorExtensionValues::default);
    if extensions.get("code").is_none() {
        extensions.set("code", Value::from(code));
    }
    error
}

#[async_trait::async_trait]
impl Extension for ApolloErrorCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Every transport authenticates before it executes; this catches one that forgot.
        if ctx.data_opt::<Principal>().is_none() {
            return Err(with_code(ServerError::new("authentication required", None), "UNAUTHENTICATED"));
        }
        let document = next.run(ctx, query, variables).await.map_err(|e| with_code(e, PARSE_FAILED))?;
        if !self.introspection
            && document
                .operations
                .iter()
                .any(|(_, op)| asks_for_introspection(&document, &op.node.selection_set.node, 0))
        {
            return Err(with_code(
                ServerError::new(
                    "introspection is switched off on this server (GRAPHQL_INTROSPECTION=false)",
                    None,
                ),
                VALIDATION_FAILED,
            ));
        }
        if ctx.data_opt::<ReadOnlyTransport>().is_some()
            && document.operations.iter().any(|(_, op)| op.node.ty != OperationType::Query)
        {
            return Err(with_code(
                ServerError::new(
                    "only queries may be sent with GET; send mutations and subscriptions with POST",
                    None,
                ),
                METHOD_NOT_ALLOWED,
            ));
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            let total = errors.len();
            // A document can earn an error per token (3,000 unused variables): the first few
            // say what is wrong, and the answer stays small.
            let mut errors: Vec<ServerError> = errors
                .into_iter()
                .take(MAX_VALIDATION_ERRORS)
                .map(|e| with_code(e, VALIDATION_FAILED))
                .collect();
            if total > MAX_VALIDATION_ERRORS {
                let more = ServerError::new(
                    format!("… and {} more validation errors", total - MAX_VALIDATION_ERRORS),
                    None,
                );
                errors.push(with_code(more, VALIDATION_FAILED));
            }
            errors
        })
    }
}
