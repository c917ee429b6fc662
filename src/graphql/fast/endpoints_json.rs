//! A spec's or tag's endpoints as one JSON array that SQLite writes, for answers the HTTP
//! handler copies as they are (see [`super::eager::raw_json`]).

use std::{collections::HashMap, sync::Arc};

use async_graphql::{
    dataloader::Loader,
    parser::types::{Field, Selection, SelectionSet},
};
use sea_orm::{ConnectionTrait, DbBackend};

use crate::graphql::{
    loaders::{DbLoader, LoadResult, db_error},
    types::catalogue::Endpoint,
};

/// Whose endpoints a [`EndpointsJson`] list holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointParent {
    Spec(i64),
    Tag(i64),
}

/// A spec's or tag's current endpoints, in id order, as one JSON array that SQLite writes:
/// `object` is the SQL of one endpoint's JSON object (from [`endpoint_json_object`]).
/// Parents asking with the same `object` share one statement, whatever their number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EndpointsJson {
    pub parent: EndpointParent,
    pub object: Arc<str>,
}

impl Loader<EndpointsJson> for DbLoader {
    type Value = String;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EndpointsJson]) -> LoadResult<EndpointsJson, String> {
        let mut shapes: HashMap<(bool, &Arc<str>), Vec<i64>> = HashMap::new();
        for key in keys {
            let (by_tag, id) = match key.parent {
                EndpointParent::Spec(id) => (false, id),
                EndpointParent::Tag(id) => (true, id),
            };
            shapes.entry((by_tag, &key.object)).or_default().push(id);
        }
        let mut lists = HashMap::with_capacity(keys.len());
        for ((by_tag, object), ids) in shapes {
            let placeholders = vec!["?"; ids.len()].join(",");
            let sql = if by_tag {
                format!(
                    "SELECT te.tag_id, json_group_array({object} ORDER BY e.id) FROM endpoint e \
                     JOIN tag_endpoint te ON te.endpoint_id = e.id \
                     WHERE te.tag_id IN ({placeholders}) AND e.removed_at IS NULL GROUP BY te.tag_id"
                )
            } else {
                format!(
                    "SELECT e.spec_id, json_group_array({object} ORDER BY e.id) FROM endpoint e \
                     WHERE e.spec_id IN ({placeholders}) AND e.removed_at IS NULL GROUP BY e.spec_id"
                )
            };
            let values = ids.iter().map(|id| sea_orm::Value::from(*id));
            let statement = sea_orm::Statement::from_sql_and_values(DbBackend::Sqlite, sql, values);
            let rows = self.db.query_all_raw(statement).await.map_err(db_error)?;
            let mut found = HashMap::with_capacity(rows.len());
            for row in rows {
                let id: i64 = row.try_get_by_index(0).map_err(db_error)?;
                let json: String = row.try_get_by_index(1).map_err(db_error)?;
                found.insert(id, json);
            }
            for id in ids {
                let parent = if by_tag { EndpointParent::Tag(id) } else { EndpointParent::Spec(id) };
                // A parent without endpoints has no group: an empty list.
                let json = found.remove(&id).unwrap_or_else(|| "[]".to_owned());
                lists.insert(EndpointsJson { parent, object: object.clone() }, json);
            }
        }
        Ok(lists)
    }
}

/// The SQL (SQLite) of the JSON object that answers `selection` on an endpoint `e`, or `None`
/// when the selection asks for something this does not write exactly as async-graphql would:
/// a fragment, a directive, an argument, a response key given twice, a relation other than
/// `parameters` and `requestBody`, a request body's `schema` (its text is not normalised).
///
/// What it writes reads byte for byte as serde_json writes the resolved answer: SQLite's JSON
/// strings use the same escapes, booleans and nulls are written as such, and the `example`
/// columns hold JSON that serde_json wrote (sorted keys, its number format), which `json()`
/// keeps as it is.
pub fn endpoint_json_object(selection: &SelectionSet) -> Option<String> {
    json_object(selection, "Endpoint", |name, field| {
        if let Some(sql) = Endpoint::plain_field_sql(name) {
            return Some(sql.to_owned());
        }
        Some(match name {
            "parameters" => {
                let object = json_object(&field.selection_set.node, "Parameter", |name, _| {
                    Some(match name {
                        "name" => "p.name".to_owned(),
                        "location" => "p.location".to_owned(),
                        "required" => json_bool("p.required"),
                        "schemaType" => "p.schema_type".to_owned(),
                        "description" => "p.description".to_owned(),
                        "example" => "json(p.example)".to_owned(),
                        _ => return None,
                    })
                })?;
                // The subquery's result keeps its JSON subtype, so it is embedded, not quoted.
                // SQLite does not document that; wrapping it in json() would re-parse every
                // array, a quarter of the statement's time. The bundled SQLite is pinned by
                // Cargo.lock, and the byte-for-byte test in tests/api/catalogue.rs fails when
                // an upgrade quotes it.
                format!(
                    "(SELECT json_group_array({object} ORDER BY p.position, p.id) \
                     FROM endpoint_parameter p WHERE p.endpoint_id = e.id)"
                )
            }
            "requestBody" => {
                let object = json_object(&field.selection_set.node, "RequestBody", |name, _| {
                    Some(match name {
                        "contentType" => "b.content_type".to_owned(),
                        "required" => json_bool("b.required"),
                        "example" => "json(b.example)".to_owned(),
                        _ => return None,
                    })
                })?;
                format!("(SELECT {object} FROM request_body b WHERE b.endpoint_id = e.id)")
            }
            _ => return None,
        })
    })
}

/// A boolean column (SQLite stores 0 / 1) as a JSON `true` / `false`: the two constants are
/// parsed once per statement, and CASE passes their JSON subtype on (as the subqueries above).
fn json_bool(column: &str) -> String {
    format!("CASE WHEN {column} THEN json('true') ELSE json('false') END")
}

/// `json_object('key', expression, …)` for the plain fields of `selection`; `column` gives a
/// field's expression (`None`: not supported).
fn json_object(
    selection: &SelectionSet,
    type_name: &str,
    column: impl Fn(&str, &Field) -> Option<String>,
) -> Option<String> {
    let mut keys = Vec::with_capacity(selection.items.len());
    let mut sql = String::from("json_object(");
    for item in &selection.items {
        let Selection::Field(field) = &item.node else {
            return None;
        };
        let field = &field.node;
        if !field.directives.is_empty() || !field.arguments.is_empty() {
            return None;
        }
        let key = field.response_key().node.as_str();
        if keys.contains(&key) {
            return None;
        }
        keys.push(key);
        let name = field.name.node.as_str();
        let expression = if name == "__typename" { format!("'{type_name}'") } else { column(name, field)? };
        if keys.len() > 1 {
            sql.push_str(", ");
        }
        // GraphQL names are letters, digits and underscores: nothing to escape in a literal.
        sql.push_str(&format!("'{key}', {expression}"));
    }
    sql.push(')');
    (!keys.is_empty()).then_some(sql)
}
