//! What one GraphQL request may cost, enforced before anything recursive or expensive runs.
//!
//! The threat: a caller with any token (or none, under `AUTH_MODE=none`) sends one small
//! document that costs the server far more than it costs the caller. Four guards, in the order a
//! request meets them:
//!
//! 1. **The text** ([`scan_document`], before parsing): its length is bounded (the parser takes
//!    ~90 ns a byte, so a 32 MiB body would hold a worker for seconds), and a linear scan counts
//!    tokens and the nesting of `{`, `[` and `(`. The parser recurses once per nesting level and a worker thread's stack
//!    is 2 MiB, so a few thousand levels would abort the process; the scan refuses the document
//!    first. It runs before Apollo's persisted-query extension too, which parses a document it
//!    is asked to remember.
//! 2. **Fragments** ([`check_expansion`], right after parsing): async-graphql's recursion-depth
//!    check and its depth and complexity rules walk a fragment's selections every time it is
//!    spread, so fragments that spread each other twice per level cost 2ⁿ. Here each fragment is measured once (in
//!    dependency order, so nothing recurses through fragment chains) and a document whose
//!    expansion selects more than twice the complexity limit, or nests deeper than the nesting
//!    limit, is refused before those rules run. Cycles are refused here too: the rules that walk
//!    spreads would otherwise recurse forever.
//! 3. **The answer** ([`ResponseBudget`], while executing): complexity counts a list's field once
//!    whatever the list's length, so `endpoints { spec { endpoints { … } } }` grows as Nᵏ. Every
//!    value the answer gets (each field and each list item) is counted; past the limit the
//!    remaining fields fail at once, and the request answers with one error and no data.
//! 4. **Upstream calls** ([`spend_upstream`]): fields that call InfluxDB or the cluster
//!    (`timeseries`, `health`) may run a bounded number of times per request, aliases and
//!    lists included.

mod budget;
mod expansion;
mod text;

use std::sync::{Arc, OnceLock};

use async_graphql::{
    Request, Response, ServerError, ServerResult, Value,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextResolve,
        NextSubscribe, ResolveInfo,
    },
    futures_util::stream::BoxStream,
    parser::types::{DocumentOperations, ExecutableDocument},
};
use futures_util::StreamExt;

use budget::text_cost;
pub use budget::{ResponseBudget, budget, spend_upstream, value_cost};
pub use expansion::{ExpansionRefusal, check_expansion};
pub use text::{TextRefusal, scan_document};

use super::{
    field_order::in_selection_order,
    schema::{PARSE_FAILED, VALIDATION_FAILED, with_code},
};

/// The code of a request refused for what it would cost to answer (Apollo Router's demand
/// control uses the same one when a query's actual cost passes its limit).
pub const COST_TOO_EXPENSIVE: &str = "COST_ACTUAL_TOO_EXPENSIVE";

/// How many values an answer builds between two turns it gives the other tasks of its worker.
const YIELD_EVERY_VALUES: usize = 256;

/// The limits of one request, from `SecuritySettings`.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// `GRAPHQL_MAX_NESTING`: the deepest `{`/`[`/`(` nesting of a document's text, and of its
    /// selections once fragments are expanded.
    pub max_nesting: usize,
    /// `GRAPHQL_MAX_TOKENS`: the most lexical tokens a document may have.
    pub max_tokens: usize,
    /// `GRAPHQL_MAX_DOCUMENT_BYTES`: the longest document text (large values go in variables,
    /// which a JSON reader takes at a hundred times the parser's speed).
    pub max_document_bytes: usize,
    /// `GRAPHQL_MAX_DEPTH`: the deepest nesting of fields, introspection's type chains aside.
    pub max_depth: usize,
    /// `GRAPHQL_MAX_COMPLEXITY`: the most fields a document may select (its expansion may hold
    /// twice as many selections, counting fragments and `__typename`).
    pub max_complexity: usize,
    /// `GRAPHQL_MAX_RESPONSE_VALUES`: the most values (fields and list items) one answer holds.
    pub max_response_values: usize,
    /// `GRAPHQL_MAX_UPSTREAM_CALLS`: how many InfluxDB- or cluster-calling fields one request runs.
    pub max_upstream_calls: usize,
}

/// Why the request names no operation of `document` that could run, as async-graphql says it
/// (which would answer it later, without a code).
fn operation_missing(document: &ExecutableDocument, name: Option<&str>) -> Option<String> {
    match (&document.operations, name) {
        (DocumentOperations::Single(_), Some(name)) => Some(format!(r#"Unknown operation named "{name}""#)),
        (DocumentOperations::Multiple(operations), Some(name)) if !operations.contains_key(name) => {
            Some(format!(r#"Unknown operation named "{name}""#))
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() > 1 => Some(format!(
            "Operation name required in request: the document holds {} operations; say which to run with \
             `operationName`",
            operations.len()
        )),
        _ => None,
    }
}

/// The extension that applies [`RequestLimits`] to every request, over every transport.
/// Register it before Apollo's persisted-query extension, so that a document is scanned before
/// that extension parses it.
pub struct LimitsExtension(pub RequestLimits);

impl ExtensionFactory for LimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestGuard { limits: self.0, budget: OnceLock::new(), selected: OnceLock::new() })
    }
}

struct RequestGuard {
    limits: RequestLimits,
    budget: OnceLock<Arc<ResponseBudget>>,
    /// The request's document and operation, to put its answers in selection order
    /// (`super::field_order`: async-graphql files fields as they finish).
    selected: OnceLock<Arc<(ExecutableDocument, Option<String>)>>,
}

/// The answer of a request refused for its cost: one error, no data (the fields that failed past
/// the limit would each say the same).
fn refused(error: async_graphql::Error) -> Response {
    Response::from_errors(vec![error.into_server_error(Default::default())])
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestGuard {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let refuse = |message: String, code: &str| with_code(ServerError::new(message, None), code);
        // Persisted queries are checked here too, before Apollo's extension parses and keeps them.
        if request.query.len() > self.limits.max_document_bytes {
            let refusal = TextRefusal::TooLong { limit: self.limits.max_document_bytes };
            return Err(refuse(refusal.to_string(), PARSE_FAILED));
        }
        if let Err(refusal) = scan_document(&request.query, self.limits.max_nesting, self.limits.max_tokens) {
            return Err(refuse(refusal.to_string(), PARSE_FAILED));
        }
        let named_nul = request.operation_name.as_deref().is_some_and(|name| name.contains('\0'));
        if named_nul || text::names_nul(&request.query) || text::holds_nul(&request.variables) {
            let message = "text may not hold a NUL character (\\u0000): no database stores it";
            return Err(refuse(message.to_owned(), "BAD_USER_INPUT"));
        }
        // Parsed here (once: async-graphql keeps the document) so that fragments are measured
        // before anything walks them: async-graphql's own recursion-depth check, which runs
        // right after parsing, follows every spread as often as it is spread.
        if !request.query.is_empty() {
            let operation_name = request.operation_name.clone();
            let document = request.parsed_query().map_err(|err| with_code(err, PARSE_FAILED))?;
            if let Some(message) = operation_missing(document, operation_name.as_deref()) {
                return Err(refuse(message, VALIDATION_FAILED));
            }
            let _ = self.selected.set(Arc::new((document.clone(), operation_name.clone())));
            let max_selections = self.limits.max_complexity.saturating_mul(2);
            let limits = &self.limits;
            if let Err(refusal) =
                check_expansion(document, max_selections, limits.max_nesting, limits.max_depth)
            {
                return Err(refuse(refusal.to_string(), VALIDATION_FAILED));
            }
        }
        let budget = self
            .budget
            .get_or_init(|| {
                Arc::new(ResponseBudget::new(self.limits.max_response_values, self.limits.max_upstream_calls))
            })
            .clone();
        // Apollo's persisted-query extension says what went wrong without a code.
        next.run(ctx, request.data(budget)).await.map_err(|error| {
            let code = if error.message == "PersistedQueryNotFound" {
                "PERSISTED_QUERY_NOT_FOUND"
            } else {
                "BAD_REQUEST"
            };
            with_code(error, code)
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        match self.budget.get().and_then(|budget| budget.refusal()) {
            Some(error) => refused(error),
            None => {
                if let Some(selected) = self.selected.get() {
                    in_selection_order(&selected.0, selected.1.as_deref(), &mut response.data);
                }
                response
            }
        }
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let budget = self.budget.get().cloned();
        let selected = self.selected.get().cloned();
        // Each event of a subscription has the budget of a request of its own.
        next.run(ctx, stream)
            .map(move |mut response| {
                if let Some(selected) = &selected {
                    in_selection_order(&selected.0, selected.1.as_deref(), &mut response.data);
                }
                let Some(budget) = &budget else { return response };
                let refusal = budget.refusal();
                budget.reset();
                refusal.map_or(response, refused)
            })
            .boxed()
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if let Some(budget) = self.budget.get() {
            budget.spend(1).map_err(|err| err.into_server_error(info.field.name.pos))?;
            // Values answered from memory never wait, so a large answer would hold its worker
            // until it is built: every so often it lets `/health` and the other requests run.
            if budget.spent().is_multiple_of(YIELD_EVERY_VALUES) {
                tokio::task::yield_now().await;
            }
        }
        let is_json = info.return_type.trim_end_matches('!') == "JSON";
        let position = info.field.name.pos;
        let value = next.run(ctx, info).await?;
        if let (Some(budget), Some(value)) = (self.budget.get(), value.as_ref()) {
            // A JSON scalar is one field with all its contents inside: they count as what they
            // hold. Text counts by its length (a 10 MB string is not one value's worth).
            let cost = if is_json { value_cost(value) } else { text_cost(value) };
            if cost > 0 {
                budget.spend(cost).map_err(|err| err.into_server_error(position))?;
            }
        }
        Ok(value)
    }
}
