//! The third and fourth guards: what an answer may hold, and how many upstream calls a request
//! may make.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use async_graphql::{Context, ErrorExtensions, Value};

use super::COST_TOO_EXPENSIVE;

/// A JSON text the database wrote (see `fast::eager::raw_json`) counts one value per this many
/// bytes.
const RAW_JSON_BYTES_PER_VALUE: usize = 16;

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

    /// How many values the answer holds so far.
    pub(super) fn spent(&self) -> usize {
        self.values.load(Ordering::Relaxed)
    }

    /// The error of an answer past its limit, once it is: what is still to be built need not be.
    pub fn spent_out(&self) -> Option<async_graphql::Error> {
        (self.values.load(Ordering::Relaxed) > self.max_values).then(|| self.too_large())
    }

    /// Why the request must answer with one error and no data, if it must.
    pub(super) fn refusal(&self) -> Option<async_graphql::Error> {
        if self.values.load(Ordering::Relaxed) > self.max_values {
            Some(self.too_large())
        } else if self.upstream.load(Ordering::Relaxed) > self.max_upstream {
            Some(self.too_many_upstream_calls())
        } else {
            None
        }
    }

    pub(super) fn reset(&self) {
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

/// The budget of the request `ctx` belongs to, for resolvers that build many values at once.
pub fn budget<'a>(ctx: &'a async_graphql::ContextBase<'_, impl Sized>) -> Option<&'a Arc<ResponseBudget>> {
    ctx.data_opt::<Arc<ResponseBudget>>()
}

/// What `value` costs, built at once (a JSON scalar's contents, or a part of an answer built
/// from memory): one for each value inside it, and text by its length as the database-written
/// JSON is charged ([`RAW_JSON_BYTES_PER_VALUE`] bytes a value) — what its fields would cost
/// one by one on the general path.
pub fn value_cost(value: &Value) -> usize {
    sum_over(value, |value| own_text_cost(value).saturating_add(1))
}

/// What the text of a plain field's value costs beyond the field itself: a string by its
/// length, a list's strings each by theirs ([`RAW_JSON_BYTES_PER_VALUE`] bytes a value).
pub(super) fn text_cost(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len() / RAW_JSON_BYTES_PER_VALUE,
        Value::List(items) => items.iter().map(text_cost).sum(),
        _ => 0,
    }
}

fn own_text_cost(value: &Value) -> usize {
    match value {
        Value::Object(fields) => fields.keys().map(|key| key.len() / RAW_JSON_BYTES_PER_VALUE).sum(),
        Value::String(text) => text.len() / RAW_JSON_BYTES_PER_VALUE,
        _ => 0,
    }
}

/// The sum of `cost` over `value` and every list item and object field inside it, walked
/// without recursion.
fn sum_over(value: &Value, cost: impl Fn(&Value) -> usize) -> usize {
    let mut sum = 0usize;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        sum = sum.saturating_add(cost(value));
        match value {
            Value::List(items) => pending.extend(items.iter()),
            Value::Object(fields) => pending.extend(fields.values()),
            _ => {}
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

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
