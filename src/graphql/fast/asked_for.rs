//! Subscribers that asked alike share one rendering of each event.
//!
//! async-graphql executes a subscription's selection set once per subscriber and event. A
//! `testMetrics` event is one snapshot for every subscriber of the run, so what a subscriber
//! receives depends only on that snapshot and on what it asked: its document, operation and
//! variables. [`SubscriptionExecutor`] marks every subscription with those ([`AskedFor`]);
//! the resolver renders each snapshot once per distinct mark and field and hands the same
//! value to every subscriber carrying it (see `metrics::live::Renderings`).

use std::{fmt::Write, sync::Arc};

use async_graphql::{
    ContextSelectionSet, Data, Executor, Request, Response, ServerResult, Value, parser::Pos,
};
use futures_util::stream::BoxStream;

use crate::{graphql::AppSchema, metrics::live::Renderings};

/// What one subscription asked for: its document, operation and variables, written out
/// so that two requests get the same mark exactly when those three are the same.
#[derive(Clone, Debug, PartialEq)]
pub struct AskedFor(Arc<str>);

impl AskedFor {
    /// None for a request without its document (an automatic persisted query sent by hash):
    /// the hash alone does not say which document the server will run.
    pub fn of(request: &Request) -> Option<Self> {
        if request.query.is_empty() {
            return None;
        }
        let operation = request.operation_name.as_deref().unwrap_or_default();
        // Lengths first, so that no split of the same characters between document and
        // operation reads the same. Variables are a sorted map: equal ones write alike.
        let variables = serde_json::to_string(&request.variables).ok()?;
        let mut written = String::with_capacity(request.query.len() + operation.len() + variables.len() + 24);
        let _ = write!(
            written,
            "{}:{}{}:{}{variables}",
            request.query.len(),
            request.query,
            operation.len(),
            operation
        );
        Some(Self(written.into()))
    }

    /// The mark of one field of the request: a document may select the same root field
    /// twice, with different selections.
    pub fn field_at(&self, position: Pos) -> Arc<str> {
        format!("{}@{}:{}", self.0, position.line, position.column).into()
    }
}

/// Executes as the schema does, with each subscription marked with what it asked for.
#[derive(Clone)]
pub struct SubscriptionExecutor(pub AppSchema);

impl Executor for SubscriptionExecutor {
    async fn execute(&self, request: Request) -> Response {
        self.0.execute(request).await
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let request = match AskedFor::of(&request) {
            Some(asked) => request.data(asked),
            None => request,
        };
        self.0.execute_stream_with_session_data(request, session_data.unwrap_or_default())
    }
}

/// The answer of an event to a subscription that `asked`: the rendering an earlier subscriber
/// with the same mark got, or `render`'s, filed for the next ones. Without a mark (or with the
/// fast paths off) every subscriber renders its own.
pub async fn shared_rendering(
    ctx: &ContextSelectionSet<'_>,
    asked: Option<&Arc<str>>,
    renderings: &Renderings,
    render: impl Future<Output = ServerResult<Value>>,
) -> ServerResult<Value> {
    let Some(asked) = asked.filter(|_| super::on(ctx)) else { return render.await };
    if let Some(rendered) = renderings.get::<Value>(asked) {
        return Ok(Value::clone(&rendered));
    }
    let rendered = render.await?;
    renderings.insert(asked.clone(), Arc::new(rendered.clone()));
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use async_graphql::Variables;
    use serde_json::json;

    use super::*;

    fn request(query: &str, operation: Option<&str>, variables: serde_json::Value) -> Request {
        let mut request = Request::new(query).variables(Variables::from_json(variables));
        request.operation_name = operation.map(str::to_owned);
        request
    }

    #[test]
    fn the_same_document_operation_and_variables_get_the_same_mark() {
        let a = request("subscription S { x }", Some("S"), json!({"id": "1", "n": 2}));
        let b = request("subscription S { x }", Some("S"), json!({"n": 2, "id": "1"}));
        assert_eq!(AskedFor::of(&a), AskedFor::of(&b), "variables in another order");
        let other_variables = request("subscription S { x }", Some("S"), json!({"id": "2", "n": 2}));
        let other_document = request("subscription S { y }", Some("S"), json!({"id": "1", "n": 2}));
        let no_operation = request("subscription S { x }", None, json!({"id": "1", "n": 2}));
        for other in [other_variables, other_document, no_operation] {
            assert_ne!(AskedFor::of(&a), AskedFor::of(&other), "{:?}", other.query);
        }
    }

    #[test]
    fn moving_characters_between_document_and_operation_changes_the_mark() {
        let a = request("ab", Some("c"), json!({}));
        let b = request("a", Some("bc"), json!({}));
        assert_ne!(AskedFor::of(&a), AskedFor::of(&b));
    }

    #[test]
    fn a_persisted_query_sent_by_hash_alone_gets_no_mark() {
        assert_eq!(AskedFor::of(&request("", None, json!({}))), None);
    }

    #[test]
    fn two_fields_of_one_request_get_two_marks() {
        let asked = AskedFor::of(&request("subscription { x x }", None, json!({}))).unwrap();
        assert_ne!(asked.field_at(Pos { line: 1, column: 16 }), asked.field_at(Pos { line: 1, column: 18 }));
    }
}
