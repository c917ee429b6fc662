//! A spec's or tag's endpoints as one JSON array that SQLite writes: the caller describes one
//! endpoint's JSON object ([`JsonObject`]: keys in order, each with the column or relation it
//! holds), this writes the statement and runs it.
//!
//! What it writes reads byte for byte as serde_json writes the same values: SQLite's JSON
//! strings use the same escapes, booleans and nulls are written as such, and the `example`
//! columns hold JSON that serde_json wrote (sorted keys, its number format), which `json()`
//! keeps as it is.

use std::{collections::HashMap, fmt::Write};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// One JSON object: its keys in order, each with what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JsonObject<C>(pub Vec<(String, JsonEntry<C>)>);

/// What a key of a [`JsonObject`] holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JsonEntry<C> {
    /// A constant string (a type's name).
    Text(String),
    /// A column of the row (or a relation, for an endpoint).
    Column(C),
}

/// What a key of an endpoint's object holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointColumn {
    /// An SQL expression over the endpoint `e`, as the API's plain fields declare them.
    Expression(SqlColumn),
    /// The endpoint's parameters, in document order, as an array of objects.
    Parameters(JsonObject<ParameterColumn>),
    /// The endpoint's request body as an object, `null` when it takes none.
    RequestBody(JsonObject<BodyColumn>),
}

/// An SQL expression over a row, and whether it is a boolean (SQLite's 0 / 1, written as JSON
/// `false` / `true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SqlColumn {
    pub sql: &'static str,
    pub boolean: bool,
}

/// A column of `endpoint_parameter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParameterColumn {
    Name,
    Location,
    Required,
    SchemaType,
    Description,
    Example,
}

/// A column of `request_body` (not its schema: its text is not normalised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyColumn {
    ContentType,
    Required,
    Example,
}

/// Whose endpoints a list holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointsOf {
    Spec,
    Tag,
}

/// The current endpoints (not those a re-import removed) of each parent of `ids` (specs' or
/// tags'), in id order, each written as `object`: one JSON array per parent, in one statement
/// (SQLite only). A parent without endpoints has no entry.
pub async fn endpoints_json(
    db: &impl ConnectionTrait,
    of: EndpointsOf,
    object: &JsonObject<EndpointColumn>,
    ids: &[i64],
) -> Result<HashMap<i64, String>, DbErr> {
    let object = endpoint_object(object);
    let placeholders = vec!["?"; ids.len()].join(",");
    let sql = match of {
        EndpointsOf::Tag => format!(
            "SELECT te.tag_id, json_group_array({object} ORDER BY e.id) FROM endpoint e \
             JOIN tag_endpoint te ON te.endpoint_id = e.id \
             WHERE te.tag_id IN ({placeholders}) AND e.removed_at IS NULL GROUP BY te.tag_id"
        ),
        EndpointsOf::Spec => format!(
            "SELECT e.spec_id, json_group_array({object} ORDER BY e.id) FROM endpoint e \
             WHERE e.spec_id IN ({placeholders}) AND e.removed_at IS NULL GROUP BY e.spec_id"
        ),
    };
    let values = ids.iter().map(|id| Value::from(*id));
    let statement = Statement::from_sql_and_values(DbBackend::Sqlite, sql, values);
    let rows = db.query_all_raw(statement).await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get_by_index(0)?;
        let json: String = row.try_get_by_index(1)?;
        found.insert(id, json);
    }
    Ok(found)
}

/// The SQL of one endpoint `e`'s JSON object.
fn endpoint_object(object: &JsonObject<EndpointColumn>) -> String {
    json_object(object, |column| match column {
        EndpointColumn::Expression(column) if column.boolean => json_bool(column.sql),
        EndpointColumn::Expression(column) => column.sql.to_owned(),
        EndpointColumn::Parameters(parameter) => {
            let object = json_object(parameter, |column| {
                match column {
                    ParameterColumn::Name => "p.name",
                    ParameterColumn::Location => "p.location",
                    ParameterColumn::Required => return json_bool("p.required"),
                    ParameterColumn::SchemaType => "p.schema_type",
                    ParameterColumn::Description => "p.description",
                    ParameterColumn::Example => "json(p.example)",
                }
                .to_owned()
            });
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
        EndpointColumn::RequestBody(body) => {
            let object = json_object(body, |column| {
                match column {
                    BodyColumn::ContentType => "b.content_type",
                    BodyColumn::Required => return json_bool("b.required"),
                    BodyColumn::Example => "json(b.example)",
                }
                .to_owned()
            });
            format!("(SELECT {object} FROM request_body b WHERE b.endpoint_id = e.id)")
        }
    })
}

/// A boolean column (SQLite stores 0 / 1) as a JSON `true` / `false`: the two constants are
/// parsed once per statement, and CASE passes their JSON subtype on (as the subqueries above).
fn json_bool(column: &str) -> String {
    format!("CASE WHEN {column} THEN json('true') ELSE json('false') END")
}

/// `json_object('key', expression, …)`; `column` gives a column's expression.
fn json_object<C>(object: &JsonObject<C>, column: impl Fn(&C) -> String) -> String {
    let mut sql = String::from("json_object(");
    for (index, (key, entry)) in object.0.iter().enumerate() {
        if index > 0 {
            sql.push_str(", ");
        }
        let expression = match entry {
            JsonEntry::Text(text) => literal(text),
            JsonEntry::Column(c) => column(c),
        };
        let _ = write!(sql, "{}, {expression}", literal(key));
    }
    sql.push(')');
    sql
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_written_key_by_key_with_its_relations_as_subqueries() {
        let column = |key: &str, column| (key.to_owned(), JsonEntry::Column(column));
        let object = JsonObject(vec![
            column("id", EndpointColumn::Expression(SqlColumn { sql: "CAST(e.id AS TEXT)", boolean: false })),
            column(
                "deprecated",
                EndpointColumn::Expression(SqlColumn { sql: "e.deprecated", boolean: true }),
            ),
            ("__typename".to_owned(), JsonEntry::Text("Endpoint".to_owned())),
            column(
                "parameters",
                EndpointColumn::Parameters(JsonObject(vec![
                    ("name".to_owned(), JsonEntry::Column(ParameterColumn::Name)),
                    ("required".to_owned(), JsonEntry::Column(ParameterColumn::Required)),
                ])),
            ),
            column(
                "body",
                EndpointColumn::RequestBody(JsonObject(vec![(
                    "example".to_owned(),
                    JsonEntry::Column(BodyColumn::Example),
                )])),
            ),
        ]);
        assert_eq!(
            endpoint_object(&object),
            "json_object('id', CAST(e.id AS TEXT), 'deprecated', \
             CASE WHEN e.deprecated THEN json('true') ELSE json('false') END, '__typename', 'Endpoint', 'parameters', \
             (SELECT json_group_array(json_object('name', p.name, 'required', \
             CASE WHEN p.required THEN json('true') ELSE json('false') END) ORDER BY p.position, p.id) \
             FROM endpoint_parameter p WHERE p.endpoint_id = e.id), 'body', \
             (SELECT json_object('example', json(b.example)) FROM request_body b WHERE b.endpoint_id = e.id))"
        );
    }
}
