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

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicUsize, Ordering},
};

use async_graphql::{
    Context, ErrorExtensions, Request, Response, ServerError, ServerResult, Value,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextResolve,
        NextSubscribe, ResolveInfo,
    },
    futures_util::stream::BoxStream,
    parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet},
};
use futures_util::StreamExt;

use super::schema::{PARSE_FAILED, VALIDATION_FAILED, with_code};

/// The code of a request refused for what it would cost to answer (Apollo Router's demand
/// control uses the same one when a query's actual cost passes its limit).
pub const COST_TOO_EXPENSIVE: &str = "COST_ACTUAL_TOO_EXPENSIVE";

/// How many values an answer builds between two turns it gives the other tasks of its worker.
const YIELD_EVERY_VALUES: usize = 256;

/// A JSON text the database wrote (see `types::eager::raw_json`) counts one value per this many
/// bytes.
const RAW_JSON_BYTES_PER_VALUE: usize = 16;

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

/// Why a document's text was refused before parsing.
#[derive(Debug, PartialEq, Eq)]
pub enum TextRefusal {
    TooLong { limit: usize },
    TooDeep { limit: usize },
    TooManyTokens { limit: usize },
}

impl std::fmt::Display for TextRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong { limit } => write!(
                f,
                "the document is longer than {limit} bytes (GRAPHQL_MAX_DOCUMENT_BYTES): send large values, \
                 such as an OpenAPI document, as variables"
            ),
            Self::TooDeep { limit } => write!(
                f,
                "the document nests `{{`, `[` and `(` more than {limit} levels deep (GRAPHQL_MAX_NESTING)"
            ),
            Self::TooManyTokens { limit } => {
                write!(
                    f,
                    "the document is too complex to read: it has more than {limit} tokens (GRAPHQL_MAX_TOKENS)"
                )
            }
        }
    }
}

/// Counts the tokens and bracket nesting of a GraphQL document in one pass, without
/// recursion, stopping at the first limit passed. Strings (block strings included) and
/// comments are skipped as the GraphQL lexer skips them; anything malformed is left for the
/// parser to refuse.
pub fn scan_document(source: &str, max_nesting: usize, max_tokens: usize) -> Result<(), TextRefusal> {
    let bytes = source.as_bytes();
    let (mut i, mut depth, mut tokens) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => i = skip_block_string(bytes, i + 3),
            b'"' => i = skip_string(bytes, i + 1),
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max_nesting {
                    return Err(TextRefusal::TooDeep { limit: max_nesting });
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            byte if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'+' | b'.'))
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
        tokens += 1;
        if tokens > max_tokens {
            return Err(TextRefusal::TooManyTokens { limit: max_tokens });
        }
    }
    Ok(())
}

/// The index after a `"…"` string whose opening quote ends before `i` (or the line's end, where
/// the parser will refuse the unterminated string).
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after a `"""…"""` block string whose opening quotes end before `i`.
fn skip_block_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return i + 3;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Why a parsed document was refused before validation.
#[derive(Debug, PartialEq, Eq)]
pub enum ExpansionRefusal {
    Cycle { fragment: String },
    TooManySelections { limit: usize },
    TooDeep { limit: usize },
    FieldsTooDeep { limit: usize },
}

impl std::fmt::Display for ExpansionRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cycle { fragment } => write!(f, "Cannot spread fragment \"{fragment}\": it spreads itself"),
            Self::TooManySelections { limit } => write!(
                f,
                "Query is too complex: the document selects more than {limit} fields, fragments and __typename once its fragments \
                 are expanded (twice GRAPHQL_MAX_COMPLEXITY)"
            ),
            Self::TooDeep { limit } => write!(
                f,
                "the document's selections nest more than {limit} levels deep once its fragments are \
                 expanded (GRAPHQL_MAX_NESTING)"
            ),
            Self::FieldsTooDeep { limit } => write!(
                f,
                "Query is nested too deep: its fields nest more than {limit} levels (GRAPHQL_MAX_DEPTH)"
            ),
        }
    }
}

/// The size of a selection set once its fragments are expanded: how many selections a walk
/// that follows every spread visits, and how deep it nests.
#[derive(Clone, Copy, Default)]
struct Expanded {
    selections: u64,
    /// Nesting of selection sets (fields, inline fragments and spreads each open one).
    depth: usize,
    /// Nesting of fields alone, not counting inside `__schema` and `__type`: what
    /// `GRAPHQL_MAX_DEPTH` bounds. Introspection's `ofType` chains are as deep as the schema's
    /// types (GraphiQL asks for nine levels of them), and [`Expanded::depth`] bounds them still.
    field_depth: usize,
}

/// Refuses a document whose operations, with every fragment spread expanded where it is
/// spread, select more than `max_selections` times or nest deeper than `max_depth`, or whose
/// fragments spread each other in a cycle. Linear in the document's size: each fragment is
/// measured once, after the fragments it spreads.
pub fn check_expansion(
    document: &ExecutableDocument,
    max_selections: usize,
    max_depth: usize,
    max_field_depth: usize,
) -> Result<(), ExpansionRefusal> {
    use std::collections::HashMap;

    let names: Vec<&str> = document.fragments.keys().map(|name| name.as_str()).collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, name)| (*name, i)).collect();
    // Kahn's algorithm over "fragment i spreads fragment j": measure j before i.
    let mut spreads: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    let mut spread_by: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (i, name) in names.iter().enumerate() {
        let fragment = &document.fragments[*name];
        let mut found = Vec::new();
        spreads_in(&fragment.node.selection_set.node, &mut found);
        found.sort_unstable();
        found.dedup();
        for spread in found {
            // An unknown fragment is KnownFragmentNames' to report; it expands to nothing here.
            if let Some(&j) = index.get(spread) {
                spreads[i].push(j);
                spread_by[j].push(i);
            }
        }
    }
    let mut waiting: Vec<usize> = spreads.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..names.len()).filter(|&i| waiting[i] == 0).collect();
    let mut measured: Vec<Option<Expanded>> = vec![None; names.len()];
    let measure_of = |name: &str, measured: &[Option<Expanded>]| {
        index.get(name).and_then(|&i| measured[i]).unwrap_or_default()
    };
    while let Some(i) = ready.pop() {
        let fragment = &document.fragments[names[i]];
        let size = measure(&fragment.node.selection_set.node, &|name| measure_of(name, &measured));
        measured[i] = Some(size);
        for &parent in &spread_by[i] {
            waiting[parent] -= 1;
            if waiting[parent] == 0 {
                ready.push(parent);
            }
        }
    }
    if let Some(i) = measured.iter().position(Option::is_none) {
        return Err(ExpansionRefusal::Cycle { fragment: names[i].to_owned() });
    }
    for size in measured.iter().flatten() {
        check_size(*size, max_selections, max_depth)?;
    }
    for (_, operation) in document.operations.iter() {
        let size = measure(&operation.node.selection_set.node, &|name| measure_of(name, &measured));
        check_size(size, max_selections, max_depth)?;
        if size.field_depth > max_field_depth {
            return Err(ExpansionRefusal::FieldsTooDeep { limit: max_field_depth });
        }
    }
    Ok(())
}

fn check_size(size: Expanded, max_selections: usize, max_depth: usize) -> Result<(), ExpansionRefusal> {
    if size.selections > max_selections as u64 {
        return Err(ExpansionRefusal::TooManySelections { limit: max_selections });
    }
    if size.depth > max_depth {
        return Err(ExpansionRefusal::TooDeep { limit: max_depth });
    }
    Ok(())
}

/// The fragments spread anywhere in `selections` (not through other fragments).
fn spreads_in<'a>(selections: &'a SelectionSet, found: &mut Vec<&'a str>) {
    for selection in &selections.items {
        match &selection.node {
            Selection::Field(field) => spreads_in(&field.node.selection_set.node, found),
            Selection::InlineFragment(inline) => spreads_in(&inline.node.selection_set.node, found),
            Selection::FragmentSpread(spread) => found.push(spread.node.fragment_name.node.as_str()),
        }
    }
}

/// The expansion of `selections`, given the expansion of every fragment it may spread. The
/// recursion follows the document's own nesting, which [`scan_document`] has bounded.
fn measure(selections: &SelectionSet, fragment: &dyn Fn(&str) -> Expanded) -> Expanded {
    let mut total = Expanded::default();
    for selection in &selections.items {
        let inner = match &selection.node {
            Selection::Field(field) => measure(&field.node.selection_set.node, fragment),
            Selection::InlineFragment(inline) => measure(&inline.node.selection_set.node, fragment),
            Selection::FragmentSpread(spread) => fragment(spread.node.fragment_name.node.as_str()),
        };
        total.selections = total.selections.saturating_add(1).saturating_add(inner.selections);
        total.depth = total.depth.max(inner.depth + 1);
        let field_depth = match &selection.node {
            Selection::Field(field) if matches!(field.node.name.node.as_str(), "__schema" | "__type") => 1,
            Selection::Field(_) => inner.field_depth + 1,
            _ => inner.field_depth,
        };
        total.field_depth = total.field_depth.max(field_depth);
    }
    total
}

/// What one request (or one event of a subscription) has spent of its answer and upstream
/// budgets. Shared by the request's extension and, through the request data, the resolvers that
/// build values without async-graphql's per-field calls (the eager paths) or call upstream.
#[derive(Debug)]
pub struct ResponseBudget {
    values: AtomicUsize,
    upstream: AtomicUsize,
    max_values: usize,
    max_upstream: usize,
}

impl ResponseBudget {
    pub fn new(max_values: usize, max_upstream: usize) -> Self {
        Self { values: AtomicUsize::new(0), upstream: AtomicUsize::new(0), max_values, max_upstream }
    }

    /// Counts `count` more values of the answer; an error once the answer holds too many.
    pub fn spend(&self, count: usize) -> async_graphql::Result<()> {
        let spent = self.values.fetch_add(count, Ordering::Relaxed).saturating_add(count);
        if spent > self.max_values { Err(self.too_large()) } else { Ok(()) }
    }

    /// Counts a JSON text the database wrote for the answer.
    pub fn spend_raw_json(&self, json: &str) -> async_graphql::Result<()> {
        self.spend(json.len() / RAW_JSON_BYTES_PER_VALUE + 1)
    }

    /// Why the request must answer with one error and no data, if it must.
    fn refusal(&self) -> Option<async_graphql::Error> {
        if self.values.load(Ordering::Relaxed) > self.max_values {
            Some(self.too_large())
        } else if self.upstream.load(Ordering::Relaxed) > self.max_upstream {
            Some(self.too_many_upstream_calls())
        } else {
            None
        }
    }

    fn reset(&self) {
        self.values.store(0, Ordering::Relaxed);
        self.upstream.store(0, Ordering::Relaxed);
    }

    fn too_large(&self) -> async_graphql::Error {
        async_graphql::Error::new(format!(
            "the answer would hold more than {} values (fields and list items; \
             GRAPHQL_MAX_RESPONSE_VALUES): select fewer fields or nest fewer lists, or page through them",
            self.max_values
        ))
        .extend_with(|_, e| e.set("code", COST_TOO_EXPENSIVE))
    }

    fn too_many_upstream_calls(&self) -> async_graphql::Error {
        async_graphql::Error::new(format!(
            "one request may run at most {} fields that ask InfluxDB or the cluster (timeseries, health; \
             aliases and list items count each; GRAPHQL_MAX_UPSTREAM_CALLS): split the request",
            self.max_upstream
        ))
        .extend_with(|_, e| e.set("code", COST_TOO_EXPENSIVE))
    }
}

/// Counts one call of a field that asks InfluxDB or the cluster; an error once the request has
/// made as many as it may.
pub fn spend_upstream(ctx: &Context<'_>) -> async_graphql::Result<()> {
    let Some(budget) = ctx.data_opt::<Arc<ResponseBudget>>() else { return Ok(()) };
    let calls = budget.upstream.fetch_add(1, Ordering::Relaxed).saturating_add(1);
    if calls > budget.max_upstream { Err(budget.too_many_upstream_calls()) } else { Ok(()) }
}

/// How many values `value` holds: itself, and every list item and object field inside it.
pub fn count_values(value: &Value) -> usize {
    let mut count = 0usize;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        count += 1;
        match value {
            Value::List(items) => pending.extend(items.iter()),
            Value::Object(fields) => pending.extend(fields.values()),
            _ => {}
        }
    }
    count
}

/// The budget of the request `ctx` belongs to, for resolvers that build many values at once.
pub fn budget<'a>(ctx: &'a async_graphql::ContextBase<'_, impl Sized>) -> Option<&'a Arc<ResponseBudget>> {
    ctx.data_opt::<Arc<ResponseBudget>>()
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
        Arc::new(RequestGuard { limits: self.0, budget: OnceLock::new() })
    }
}

struct RequestGuard {
    limits: RequestLimits,
    budget: OnceLock<Arc<ResponseBudget>>,
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
        // Parsed here (once: async-graphql keeps the document) so that fragments are measured
        // before anything walks them: async-graphql's own recursion-depth check, which runs
        // right after parsing, follows every spread as often as it is spread.
        if !request.query.is_empty() {
            let operation_name = request.operation_name.clone();
            let document = request.parsed_query().map_err(|err| with_code(err, PARSE_FAILED))?;
            if let Some(message) = operation_missing(document, operation_name.as_deref()) {
                return Err(refuse(message, VALIDATION_FAILED));
            }
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
        let response = next.run(ctx, operation_name).await;
        match self.budget.get().and_then(|budget| budget.refusal()) {
            Some(error) => refused(error),
            None => response,
        }
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let budget = self.budget.get().cloned();
        // Each event of a subscription has the budget of a request of its own.
        next.run(ctx, stream)
            .map(move |response| {
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
            if budget.values.load(Ordering::Relaxed).is_multiple_of(YIELD_EVERY_VALUES) {
                tokio::task::yield_now().await;
            }
        }
        let is_json = info.return_type.trim_end_matches('!') == "JSON";
        let position = info.field.name.pos;
        let value = next.run(ctx, info).await?;
        // A JSON scalar is one field with all its contents inside: they count as what they hold.
        if is_json && let (Some(budget), Some(value)) = (self.budget.get(), value.as_ref()) {
            budget.spend(json_cost(value)).map_err(|err| err.into_server_error(position))?;
        }
        Ok(value)
    }
}

/// What a JSON scalar's contents cost: one value for each value inside it, and strings by
/// their length as the database-written JSON is charged ([`RAW_JSON_BYTES_PER_VALUE`] bytes a value).
fn json_cost(value: &Value) -> usize {
    let mut cost = 0usize;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        cost = cost.saturating_add(1);
        match value {
            Value::List(items) => pending.extend(items.iter()),
            Value::Object(fields) => {
                cost = cost.saturating_add(fields.keys().map(|k| k.len() / RAW_JSON_BYTES_PER_VALUE).sum());
                pending.extend(fields.values());
            }
            Value::String(text) => cost = cost.saturating_add(text.len() / RAW_JSON_BYTES_PER_VALUE),
            _ => {}
        }
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(source: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(source).expect("a valid document")
    }

    #[test]
    fn the_scan_counts_brackets_outside_strings_and_comments() {
        assert_eq!(scan_document("{ a { b { c } } }", 3, 100), Ok(()));
        assert_eq!(scan_document("{ a { b { c } } }", 2, 100), Err(TextRefusal::TooDeep { limit: 2 }));
        assert_eq!(scan_document(r#"{ a(x: "{{{{[[[[") }"#, 2, 100), Ok(()));
        assert_eq!(scan_document("{ a(x: \"\"\"{{{{ \\\"\"\" [[[[\"\"\") }", 2, 100), Ok(()));
        assert_eq!(scan_document("# {{{{{{\n{ a }", 1, 100), Ok(()));
        assert_eq!(
            scan_document(
                &format!("query {{ p(id: {}1{}) }}", "[".repeat(3000), "]".repeat(3000)),
                64,
                100_000
            ),
            Err(TextRefusal::TooDeep { limit: 64 })
        );
        assert_eq!(scan_document("{ a b c d }", 8, 5), Err(TextRefusal::TooManyTokens { limit: 5 }));
        assert_eq!(scan_document("{ a b c }", 8, 5), Ok(()));
        // Unterminated strings end the scan; the parser refuses them.
        assert_eq!(scan_document("{ a(x: \"never closed", 8, 100), Ok(()));
        assert_eq!(scan_document("{ a(x: \"\"\"never closed", 8, 100), Ok(()));
    }

    #[test]
    fn fragments_are_measured_once_however_often_they_are_spread() {
        // Each level spreads the one below twice: 2^40 selections if walked naively.
        let mut source = String::from("query { ...F40 }\nfragment F0 on Query { __typename }\n");
        for level in 1..=40 {
            source.push_str(&format!("fragment F{level} on Query {{ ...F{0} ...F{0} }}\n", level - 1));
        }
        let started = std::time::Instant::now();
        let refused = check_expansion(&parse(&source), 4000, 64, 64).unwrap_err();
        assert_eq!(refused, ExpansionRefusal::TooManySelections { limit: 4000 });
        assert!(started.elapsed().as_millis() < 100, "{:?}", started.elapsed());

        // The same shape, small enough: accepted.
        let small = "query { ...F2 } fragment F0 on Query { __typename } \
                     fragment F1 on Query { ...F0 ...F0 } fragment F2 on Query { ...F1 ...F1 }";
        assert_eq!(check_expansion(&parse(small), 4000, 64, 64), Ok(()));
    }

    /// `{ name { name { … leaf } } }`, `levels` deep.
    fn nested_field(name: &str, levels: usize, leaf: &str) -> String {
        format!("{}{{ {leaf} }}{}", format!("{{ {name} ").repeat(levels), " }".repeat(levels))
    }

    #[test]
    fn fragment_cycles_and_deep_expansions_are_refused() {
        let cycle = "query { ...A } fragment A on Query { ...B } fragment B on Query { health { ...A } }";
        assert!(matches!(check_expansion(&parse(cycle), 4000, 64, 64), Err(ExpansionRefusal::Cycle { .. })));
        let selfish = "query { ...A } fragment A on Query { ...A }";
        assert!(matches!(
            check_expansion(&parse(selfish), 4000, 64, 64),
            Err(ExpansionRefusal::Cycle { .. })
        ));

        // Ten fragments, each nesting two levels and spreading the next: 20 levels expanded.
        let mut chain = String::from("query { ...N0 }\n");
        for level in 0..10 {
            let next = if level < 9 { format!("...N{}", level + 1) } else { "id".to_owned() };
            chain.push_str(&format!("fragment N{level} on Query {{ a {{ b {{ {next} }} }} }}\n"));
        }
        assert_eq!(check_expansion(&parse(&chain), 4000, 64, 64), Ok(()));
        assert_eq!(
            check_expansion(&parse(&chain), 4000, 16, 64),
            Err(ExpansionRefusal::TooDeep { limit: 16 })
        );
        // 20 levels of fields through the chain, but not inside introspection.
        assert_eq!(
            check_expansion(&parse(&chain), 4000, 64, 19),
            Err(ExpansionRefusal::FieldsTooDeep { limit: 19 })
        );
        let introspection = format!(
            "{{ __schema {{ types {{ fields {{ type {} }} }} }} }}",
            nested_field("ofType", 8, "name")
        );
        assert_eq!(check_expansion(&parse(&introspection), 4000, 64, 4), Ok(()));
        assert_eq!(
            check_expansion(&parse("{ a { b { c { d { e } } } } }"), 4000, 64, 4),
            Err(ExpansionRefusal::FieldsTooDeep { limit: 4 })
        );
    }

    #[test]
    fn the_response_budget_refuses_past_its_limit() {
        let budget = ResponseBudget::new(10, 1);
        assert!(budget.spend(10).is_ok());
        assert!(budget.refusal().is_none());
        assert!(budget.spend(1).is_err());
        assert!(budget.refusal().is_some());
        budget.reset();
        assert!(budget.spend_raw_json(&"x".repeat(9 * RAW_JSON_BYTES_PER_VALUE)).is_ok());
        assert!(budget.spend_raw_json("[]").is_err());
    }
}
