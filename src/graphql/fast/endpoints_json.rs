//! A spec's or tag's endpoints as one JSON array that SQLite writes, for answers the HTTP
//! handler copies as they are (see [`super::eager::raw_json`]): the selection made into the
//! description of one endpoint's JSON object, which `db::repo::endpoints_json` writes.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{
    dataloader::Loader,
    parser::types::{Field, Selection, SelectionSet},
};

use crate::{
    db::repo::endpoints_json::{
        BodyColumn, EndpointColumn, EndpointsOf, JsonEntry, JsonObject, ParameterColumn, endpoints_json,
    },
    graphql::{
        loaders::{DbLoader, LoadResult, db_error},
        types::catalogue::Endpoint,
    },
};

/// Whose endpoints a [`EndpointsJson`] list holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointParent {
    Spec(i64),
    Tag(i64),
}

/// A spec's or tag's current endpoints, in id order, as one JSON array that SQLite writes:
/// `object` describes one endpoint's JSON object (from [`endpoint_json_object`]).
/// Parents asking with the same `object` share one statement, whatever their number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EndpointsJson {
    pub parent: EndpointParent,
    pub object: Arc<JsonObject<EndpointColumn>>,
}

impl Loader<EndpointsJson> for DbLoader {
    type Value = String;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EndpointsJson]) -> LoadResult<EndpointsJson, String> {
        let mut shapes: HashMap<(bool, &Arc<JsonObject<EndpointColumn>>), Vec<i64>> = HashMap::new();
        for key in keys {
            let (by_tag, id) = match key.parent {
                EndpointParent::Spec(id) => (false, id),
                EndpointParent::Tag(id) => (true, id),
            };
            shapes.entry((by_tag, &key.object)).or_default().push(id);
        }
        let mut lists = HashMap::with_capacity(keys.len());
        for ((by_tag, object), ids) in shapes {
            let of = if by_tag { EndpointsOf::Tag } else { EndpointsOf::Spec };
            let mut found = endpoints_json(&self.db, of, object, &ids).await.map_err(db_error)?;
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

/// The JSON object that answers `selection` on an endpoint, or `None` when the selection asks
/// for something SQLite does not write exactly as async-graphql would: a fragment, a
/// directive, an argument, a response key given twice, a relation other than `parameters`
/// and `requestBody`, a request body's `schema` (its text is not normalised).
pub fn endpoint_json_object(selection: &SelectionSet) -> Option<JsonObject<EndpointColumn>> {
    json_object(selection, "Endpoint", |name, field| {
        if let Some(sql) = Endpoint::plain_field_sql(name) {
            return Some(EndpointColumn::Expression(sql));
        }
        Some(match name {
            "parameters" => {
                EndpointColumn::Parameters(json_object(&field.selection_set.node, "Parameter", |name, _| {
                    Some(match name {
                        "name" => ParameterColumn::Name,
                        "location" => ParameterColumn::Location,
                        "required" => ParameterColumn::Required,
                        "schemaType" => ParameterColumn::SchemaType,
                        "description" => ParameterColumn::Description,
                        "example" => ParameterColumn::Example,
                        _ => return None,
                    })
                })?)
            }
            "requestBody" => EndpointColumn::RequestBody(json_object(
                &field.selection_set.node,
                "RequestBody",
                |name, _| {
                    Some(match name {
                        "contentType" => BodyColumn::ContentType,
                        "required" => BodyColumn::Required,
                        "example" => BodyColumn::Example,
                        _ => return None,
                    })
                },
            )?),
            _ => return None,
        })
    })
}

/// The object of the plain fields of `selection`, under their response keys; `column` gives
/// a field's column (`None`: not supported).
fn json_object<C>(
    selection: &SelectionSet,
    type_name: &str,
    column: impl Fn(&str, &Field) -> Option<C>,
) -> Option<JsonObject<C>> {
    let mut entries: Vec<(String, JsonEntry<C>)> = Vec::with_capacity(selection.items.len());
    for item in &selection.items {
        let Selection::Field(field) = &item.node else {
            return None;
        };
        let field = &field.node;
        if !field.directives.is_empty() || !field.arguments.is_empty() {
            return None;
        }
        let key = field.response_key().node.as_str();
        if entries.iter().any(|(known, _)| known == key) {
            return None;
        }
        let name = field.name.node.as_str();
        let entry = if name == "__typename" {
            JsonEntry::Text(type_name.to_owned())
        } else {
            JsonEntry::Column(column(name, field)?)
        };
        entries.push((key.to_owned(), entry));
    }
    (!entries.is_empty()).then_some(JsonObject(entries))
}
