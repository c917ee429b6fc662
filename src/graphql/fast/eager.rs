//! Eager resolution of objects whose selected fields are already in memory.
//!
//! async-graphql resolves every selected field of every object through its own boxed future
//! (and, with an extension installed, an extension call per field and per list item). For a
//! large catalogue answer that is tens of thousands of futures for values that need no waiting.
//! An [`EagerObject`] can instead answer a field straight from memory; [`EagerList`] and
//! [`resolve_now`] walk the selection set (aliases, fragment spreads, inline fragments with
//! their type conditions, `__typename`) and build the answer without a future per field.
//!
//! Anything the eager walk does not handle falls back to async-graphql's own resolution of
//! the whole object or list, so the answer stays the same: a field the object cannot give from
//! memory (a relation that was not prefetched) and a field or fragment carrying a directive.
//! `@skip` and `@include` never get here: async-graphql removes skipped selections and those
//! two directives before execution starts. The schema registers no other directive today; one
//! added later takes the fallback.
//!
//! What the eager path does not do is call extensions' `resolve` hook per field: the schema's
//! only extension ([`crate::graphql::schema`]) hooks parsing and validation, not resolution.
//!
//! A list can also answer with JSON text the database wrote ([`ListAnswer::Json`]), when the
//! HTTP handler writes the answer ([`RawJsonWriter`], [`write_response`]): the text is then
//! copied into the body as it is, with no value built per field at all.

use std::{
    borrow::Cow,
    sync::{Arc, OnceLock},
};

use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value,
    indexmap::IndexMap,
    parser::types::{Field, Selection, SelectionSet},
    registry::Registry,
    resolver_utils::{EnumType, resolve_list},
};

/// An object that can give (some of) its fields from memory.
pub trait EagerObject: OutputType {
    /// The value of `field` (never `__typename`) selected on this object, or `None` when it
    /// must be resolved the usual way. `ctx` is this object's selection-set context; nested
    /// selections use [`field_context`] / [`resolve_now`].
    fn field_now(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value>;
}

/// The selection-set context of a field's sub-selection, as async-graphql builds it.
pub fn with_sub_selection<'a, R>(
    ctx: &'a ContextSelectionSet<'a>,
    field: &'a Positioned<Field>,
    resolve: impl FnOnce(&ContextSelectionSet<'_>) -> R,
) -> R {
    let field_ctx = ctx.with_field(field);
    resolve(&field_ctx.with_selection_set(&field.node.selection_set))
}

/// The value of an enum item, as async-graphql's `enum_value` gives it but without allocating
/// the name each time: `names` keeps one per variant (a `static` per enum type).
pub fn enum_value<T: EnumType>(item: T, names: &'static OnceLock<Vec<Name>>) -> Value {
    let names = names.get_or_init(|| T::items().iter().map(|item| Name::new(item.name)).collect());
    match T::items().iter().position(|candidate| candidate.value == item) {
        Some(index) => Value::Enum(names[index].clone()),
        None => async_graphql::resolver_utils::enum_value(item),
    }
}

/// `object`'s answer to the selection set of `ctx`, or `None` when some selected field
/// cannot be given from memory (the caller then resolves the object the usual way).
pub fn resolve_now<T: EagerObject>(object: &T, ctx: &ContextSelectionSet<'_>) -> Option<Value> {
    let mut fields = IndexMap::with_capacity(ctx.item.node.items.len());
    collect(object, ctx, &ctx.item.node, &mut fields)?;
    // As async-graphql: an object without a selected field answers null.
    Some(if fields.is_empty() { Value::Null } else { Value::Object(fields) })
}

fn collect<T: EagerObject>(
    object: &T,
    ctx: &ContextSelectionSet<'_>,
    selection_set: &SelectionSet,
    fields: &mut IndexMap<Name, Value>,
) -> Option<()> {
    for selection in &selection_set.items {
        if !selection.node.directives().is_empty() {
            return None;
        }
        match &selection.node {
            Selection::Field(field) => {
                let value = if field.node.name.node == "__typename" {
                    Value::String(object.introspection_type_name().into_owned())
                } else {
                    object.field_now(ctx, field)?
                };
                insert_value(fields, field.node.response_key().node.clone(), value);
            }
            Selection::FragmentSpread(spread) => {
                let fragment = ctx.query_env.fragments.get(&spread.node.fragment_name.node)?;
                if applies(object, ctx, Some(fragment.node.type_condition.node.on.node.as_str())) {
                    let ctx = ctx.with_selection_set(&fragment.node.selection_set);
                    collect(object, &ctx, &fragment.node.selection_set.node, fields)?;
                }
            }
            Selection::InlineFragment(fragment) => {
                let condition = fragment.node.type_condition.as_ref().map(|c| c.node.on.node.as_str());
                if applies(object, ctx, condition) {
                    let ctx = ctx.with_selection_set(&fragment.node.selection_set);
                    collect(object, &ctx, &fragment.node.selection_set.node, fields)?;
                }
            }
        }
    }
    Some(())
}

/// Whether a fragment with `condition` applies to `object` (the rule of async-graphql's
/// `Fields::add_set`).
fn applies<T: EagerObject>(object: &T, ctx: &ContextSelectionSet<'_>, condition: Option<&str>) -> bool {
    let Some(condition) = condition else {
        return true;
    };
    let name = object.introspection_type_name();
    name == condition
        || ctx.schema_env.registry.implements.get(name.as_ref()).is_some_and(|set| set.contains(condition))
        || T::type_name() == condition
}

/// Adds a field's value; a response key selected twice merges its sub-objects, as
/// async-graphql's own container resolution does.
fn insert_value(target: &mut IndexMap<Name, Value>, name: Name, value: Value) {
    let Some(previous) = target.get_mut(&name) else {
        target.insert(name, value);
        return;
    };
    match (previous, value) {
        (Value::Object(previous), Value::Object(more)) => {
            for (key, value) in more {
                insert_value(previous, key, value);
            }
        }
        (Value::List(previous), Value::List(more)) => {
            for (item, more) in previous.iter_mut().zip(more) {
                if let (Value::Object(item), Value::Object(more)) = (item, more) {
                    for (key, value) in more {
                        insert_value(item, key, value);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The answer of a list of eager objects, when every item answers from memory.
pub fn resolve_list_now<T: EagerObject>(items: &[T], ctx: &ContextSelectionSet<'_>) -> Option<Value> {
    let mut values = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        values.push(resolve_now(item, &ctx.with_index(index))?);
    }
    Some(Value::List(values))
}

/// `value`, built from memory for `field`, once the request's budget has paid for what it holds
/// (as the general path pays for each value it resolves, text by its length): refused once the
/// budget is spent, so one request builds at most one object or list past its limit.
fn spent(ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>, value: Value) -> ServerResult<Value> {
    if let Some(budget) = crate::graphql::limits::budget(ctx) {
        let cost = crate::graphql::limits::value_cost(&value);
        budget.spend(cost).map_err(|err| ctx.set_error_path(err.into_server_error(field.pos)))?;
    }
    Ok(value)
}

/// Refuses to build anything more for an answer already past its limit (as the general path
/// refuses each field past it): a request that asks for one huge value many times over
/// builds it once, not every time.
fn not_spent_out(ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<()> {
    match crate::graphql::limits::budget(ctx).and_then(|budget| budget.spent_out()) {
        Some(error) => Err(ctx.set_error_path(error.into_server_error(field.pos))),
        None => Ok(()),
    }
}

/// A list field of eager objects: answered from memory when every item can, otherwise
/// resolved item by item as async-graphql resolves a `Vec<T>`. The schema sees `[T!]!`.
pub struct EagerList<T>(pub Arc<[T]>);

impl<T> Clone for EagerList<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> From<Vec<T>> for EagerList<T> {
    fn from(items: Vec<T>) -> Self {
        Self(items.into())
    }
}

impl<T> EagerList<T> {
    pub fn items(&self) -> &[T] {
        &self.0
    }
}

impl<T: EagerObject> OutputType for EagerList<T> {
    fn type_name() -> Cow<'static, str> {
        <Vec<T> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<T> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<T> as OutputType>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        not_spent_out(ctx, field)?;
        match super::on(ctx).then(|| resolve_list_now(&self.0, ctx)).flatten() {
            Some(value) => spent(ctx, field, value),
            None => {
                // Spent before async-graphql makes a future per item: that future is what an item
                // costs here (~1.5 KB each in flight), on top of the item counted again as it
                // resolves. Checking without spending let the N⁵ query hold 640 MiB, not 180.
                if let Some(budget) = crate::graphql::limits::budget(ctx) {
                    budget
                        .spend(self.0.len())
                        .map_err(|err| ctx.set_error_path(err.into_server_error(field.pos)))?;
                }
                resolve_list(ctx, field, self.0.iter(), Some(self.0.len())).await
            }
        }
    }
}

/// One eager object as a field's value: answered from memory when it can, otherwise resolved
/// as async-graphql resolves `T`. The schema sees `T!`.
pub struct Eager<T>(pub T);

impl<T: EagerObject> OutputType for Eager<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        not_spent_out(ctx, field)?;
        match super::on(ctx).then(|| resolve_now(&self.0, ctx)).flatten() {
            Some(value) => spent(ctx, field, value),
            None => self.0.resolve(ctx, field).await,
        }
    }
}

/// What an object can answer from memory with the relations loaded beside it (see
/// [`WithLoaded`]).
pub trait LoadedFields<T>: Send + Sync {
    /// The value of `field` (never `__typename`) selected on `object`, or `None` when it must
    /// be resolved the usual way; as [`EagerObject::field_now`].
    fn field_now(
        &self,
        object: &T,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> Option<Value>;
}

/// An object with relations a list resolver loaded for the whole list: answered from memory
/// (the object's own fields and `loaded`) when it can, otherwise resolved as async-graphql
/// resolves `T`, which loads its relations again. The schema sees `T!`; `T` is an object type
/// (its name is every value's `__typename`).
pub struct WithLoaded<T, D> {
    pub object: T,
    pub loaded: D,
}

impl<T: OutputType, D: LoadedFields<T>> EagerObject for WithLoaded<T, D> {
    fn field_now(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> Option<Value> {
        self.loaded.field_now(&self.object, ctx, field)
    }
}

impl<T: OutputType, D: LoadedFields<T>> OutputType for WithLoaded<T, D> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        not_spent_out(ctx, field)?;
        match super::on(ctx).then(|| resolve_now(self, ctx)).flatten() {
            Some(value) => spent(ctx, field, value),
            None => self.object.resolve(ctx, field).await,
        }
    }
}

/// The key of the one-entry object that stands for a piece of JSON text in an answer (see
/// [`raw_json`]). No GraphQL name starts with `$`, so no selected field can collide with it.
const RAW_JSON_KEY: &str = "$metric-vault:raw-json";

/// Request data saying that the answer is written by [`write_response`], so that list
/// fields may answer with JSON text the database produced ([`raw_json`]). Other transports
/// (websockets, direct `Schema::execute`) do not insert it and always get plain values.
#[derive(Clone, Copy, Debug)]
pub struct RawJsonWriter;

/// Whether this request's answer is written by [`write_response`].
pub fn raw_json_allowed(ctx: &async_graphql::Context<'_>) -> bool {
    ctx.data_opt::<RawJsonWriter>().is_some()
}

/// A value that [`write_response`] writes as `json`, verbatim. `json` must be one JSON value
/// written exactly as serde_json writes the value it stands for (compact, same escapes, same
/// key order), so that the answer reads byte for byte as if it had been resolved field by field.
pub fn raw_json(json: String) -> Value {
    let mut object = IndexMap::with_capacity(1);
    object.insert(Name::new(RAW_JSON_KEY), Value::String(json));
    Value::Object(object)
}

/// A list field of eager objects whose answer may come as JSON text from the database.
pub enum ListAnswer<T> {
    Items(EagerList<T>),
    /// A JSON array, see [`raw_json`].
    Json(String),
}

impl<T: EagerObject> OutputType for ListAnswer<T> {
    fn type_name() -> Cow<'static, str> {
        EagerList::<T>::type_name()
    }

    fn qualified_type_name() -> String {
        EagerList::<T>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        EagerList::<T>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        match self {
            Self::Items(items) => items.resolve(ctx, field).await,
            Self::Json(json) => {
                if let Some(budget) = crate::graphql::limits::budget(ctx) {
                    budget
                        .spend_raw_json(json)
                        .map_err(|err| ctx.set_error_path(err.into_server_error(field.pos)))?;
                }
                Ok(raw_json(json.clone()))
            }
        }
    }
}

/// The HTTP body of `response`: what serde_json writes for it (`data`, then `extensions`
/// and `errors` when not empty, as async-graphql's `Serialize` does), with the values made by
/// [`raw_json`] written as their JSON text.
pub fn write_response(response: &async_graphql::Response) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"data\":");
    write_value(&mut out, &response.data)?;
    if !response.extensions.is_empty() {
        out.extend_from_slice(b",\"extensions\":");
        serde_json::to_writer(&mut out, &response.extensions)?;
    }
    if !response.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        serde_json::to_writer(&mut out, &response.errors)?;
    }
    out.push(b'}');
    Ok(out)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> serde_json::Result<()> {
    match value {
        Value::List(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            if fields.len() == 1
                && let Some(Value::String(json)) = fields.get(RAW_JSON_KEY)
            {
                out.extend_from_slice(json.as_bytes());
                return Ok(());
            }
            out.push(b'{');
            for (index, (name, value)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, name.as_str())?;
                out.push(b':');
                write_value(out, value)?;
            }
            out.push(b'}');
        }
        Value::String(text) => serde_json::to_writer(&mut *out, text.as_str())?,
        other => serde_json::to_writer(&mut *out, other)?,
    }
    Ok(())
}
