//! The catalogue's relations, read for many parents in one statement: a spec's or tag's
//! current endpoints, an endpoint's tags, parameters and body, the tag links of specs.

use std::{collections::HashMap, sync::Arc};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, RelationTrait, Select,
    sea_query::{Alias, Expr},
};

use super::{history::Cells, relations::group};
use crate::{
    db::entities::{endpoint, endpoint_parameter, request_body, tag, tag_endpoint},
    domain::{HttpMethod, ParameterLocation},
};

/// A row struct of `endpoint`'s columns with what it takes to read it alone: the select of
/// those columns and their decoding in that order, by index, and its copy from a whole row.
/// All from the struct's one field list, so they cannot drift apart.
macro_rules! endpoint_columns_row {
    ($(#[$meta:meta])* pub struct $row:ident { $(pub $field:ident: $type:ty),* $(,)? }) => {
        $(#[$meta])*
        pub struct $row {
            $(pub $field: $type),*
        }

        impl $row {
            /// `select` narrowed to this row's columns, in the order [`Self::decode`] reads them.
            pub(super) fn select<E: EntityTrait>(select: Select<E>) -> Select<E> {
                select.select_only()$(.expr(Expr::col((endpoint::Entity, Alias::new(stringify!($field))))))*
            }

            /// Reads the next cells, selected by [`Self::select`]. By index: SeaORM's by-name
            /// decoding formats and hashes the column name for every cell.
            pub(super) fn decode(cells: &mut Cells<'_>) -> Result<Self, DbErr> {
                // A struct expression evaluates its fields in source order: the columns' order.
                Ok(Self { $($field: cells.next()?),* })
            }
        }

        impl From<endpoint::Model> for $row {
            fn from(row: endpoint::Model) -> Self {
                Self { $($field: row.$field),* }
            }
        }
    };
}

endpoint_columns_row! {
    /// The columns of `endpoint` the API shows, decoded without the rest of the row.
    #[derive(Clone, Debug)]
    pub struct EndpointRow {
        pub id: i64,
        pub spec_id: i64,
        pub method: HttpMethod,
        pub path: String,
        pub operation_id: Option<String>,
        pub summary: Option<String>,
        pub description: Option<String>,
        pub deprecated: bool,
    }
}

/// An [`EndpointRow`] selected by [`EndpointRow::select`], then the id of the tag (when
/// `TAGGED`) whose endpoints were asked for.
struct EndpointByIndex<const TAGGED: bool>(EndpointRow, Option<i64>);

impl<const TAGGED: bool> FromQueryResult for EndpointByIndex<TAGGED> {
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        let mut cells = Cells::from(row, 0);
        let endpoint = EndpointRow::decode(&mut cells)?;
        Ok(Self(endpoint, if TAGGED { Some(cells.next()?) } else { None }))
    }
}

/// The current endpoints (not those a re-import removed) that `select` finds, in id order.
async fn current_endpoints<const TAGGED: bool>(
    db: &impl ConnectionTrait,
    select: Select<endpoint::Entity>,
) -> Result<Vec<EndpointByIndex<TAGGED>>, DbErr> {
    select
        .filter(endpoint::Column::RemovedAt.is_null())
        .order_by_asc(endpoint::Column::Id)
        .into_model()
        .all(db)
        .await
}

/// The specs' current endpoints (not those a re-import removed), in id order.
pub async fn endpoints_of_specs(
    db: &impl ConnectionTrait,
    spec_ids: &[i64],
) -> Result<HashMap<i64, Vec<Arc<EndpointRow>>>, DbErr> {
    let select = EndpointRow::select(endpoint::Entity::find())
        .filter(endpoint::Column::SpecId.is_in(spec_ids.iter().copied()));
    let rows: Vec<EndpointByIndex<false>> = current_endpoints(db, select).await?;
    Ok(group(rows.into_iter().map(|EndpointByIndex(row, _)| (row.spec_id, Arc::new(row)))))
}

/// The current endpoints carrying each tag (many-to-many through `tag_endpoint`), in id order.
pub async fn endpoints_of_tags(
    db: &impl ConnectionTrait,
    tag_ids: &[i64],
) -> Result<HashMap<i64, Vec<Arc<EndpointRow>>>, DbErr> {
    let select = EndpointRow::select(endpoint::Entity::find())
        .column(tag_endpoint::Column::TagId)
        .join_rev(JoinType::InnerJoin, tag_endpoint::Relation::Endpoint.def())
        .filter(tag_endpoint::Column::TagId.is_in(tag_ids.iter().copied()));
    let rows: Vec<EndpointByIndex<true>> = current_endpoints(db, select).await?;
    Ok(group(rows.into_iter().filter_map(|EndpointByIndex(row, tag_id)| Some((tag_id?, Arc::new(row))))))
}

/// The columns of an `endpoint_parameter` the API shows.
pub struct ParameterRow {
    pub name: String,
    pub location: ParameterLocation,
    pub required: bool,
    pub schema_type: Option<String>,
    pub description: Option<String>,
    pub example: Option<serde_json::Value>,
}

/// endpoint_id, name, location, required, schema_type, description, example.
type ParameterTuple =
    (i64, String, ParameterLocation, bool, Option<String>, Option<String>, Option<serde_json::Value>);

/// The endpoints' parameters, in document order, each made into a `P` by `make` as it is read.
pub async fn parameters_of_endpoints<P>(
    db: &impl ConnectionTrait,
    endpoint_ids: &[i64],
    make: impl Fn(ParameterRow) -> P,
) -> Result<HashMap<i64, Vec<P>>, DbErr> {
    use endpoint_parameter::Column as C;
    let select = endpoint_parameter::Entity::find()
        .select_only()
        .columns([
            C::EndpointId,
            C::Name,
            C::Location,
            C::Required,
            C::SchemaType,
            C::Description,
            C::Example,
        ])
        .filter(C::EndpointId.is_in(endpoint_ids.iter().copied()))
        .order_by_asc(C::EndpointId)
        .order_by_asc(C::Position);
    let rows: Vec<ParameterTuple> = select.into_tuple().all(db).await?;
    Ok(group(rows.into_iter().map(
        |(endpoint_id, name, location, required, schema_type, description, example)| {
            let row = ParameterRow { name, location, required, schema_type, description, example };
            (endpoint_id, make(row))
        },
    )))
}

/// The columns of a `request_body` the API shows; `schema` only when asked for.
pub struct BodyRow {
    pub content_type: String,
    pub required: bool,
    pub example: Option<serde_json::Value>,
    pub schema: Option<String>,
}

/// endpoint_id, content_type, required, example, schema.
type BodyTuple = (i64, String, bool, Option<serde_json::Value>, Option<String>);

/// The endpoints' request bodies (an endpoint that takes none has no entry); their schemas (a
/// JSON text that can be large) only `with_schema`.
pub async fn bodies_of_endpoints(
    db: &impl ConnectionTrait,
    endpoint_ids: &[i64],
    with_schema: bool,
) -> Result<Vec<(i64, BodyRow)>, DbErr> {
    use request_body::Column as C;
    let mut select = request_body::Entity::find().select_only().columns([
        C::EndpointId,
        C::ContentType,
        C::Required,
        C::Example,
    ]);
    select =
        if with_schema { select.column(C::Schema) } else { select.column_as(Expr::cust("NULL"), "schema") };
    let rows: Vec<BodyTuple> =
        select.filter(C::EndpointId.is_in(endpoint_ids.iter().copied())).into_tuple().all(db).await?;
    Ok(rows
        .into_iter()
        .map(|(endpoint_id, content_type, required, example, schema)| {
            (endpoint_id, BodyRow { content_type, required, example, schema })
        })
        .collect())
}

/// Which endpoints carry which tag among the specs' tags: (tag id, endpoint id), by endpoint id.
pub async fn tag_links_of_specs(
    db: &impl ConnectionTrait,
    spec_ids: &[i64],
) -> Result<Vec<(i64, i64)>, DbErr> {
    tag_endpoint::Entity::find()
        .select_only()
        .column(tag_endpoint::Column::TagId)
        .column(tag_endpoint::Column::EndpointId)
        .join(JoinType::InnerJoin, tag_endpoint::Relation::Tag.def())
        .filter(tag::Column::SpecId.is_in(spec_ids.iter().copied()))
        .order_by_asc(tag_endpoint::Column::EndpointId)
        .into_tuple::<(i64, i64)>()
        .all(db)
        .await
}

/// The tags each endpoint carries, in document order.
pub async fn tags_of_endpoints(
    db: &impl ConnectionTrait,
    endpoint_ids: &[i64],
) -> Result<HashMap<i64, Vec<tag::Model>>, DbErr> {
    let rows = tag::Entity::find()
        .join_rev(JoinType::InnerJoin, tag_endpoint::Relation::Tag.def())
        .select_also(tag_endpoint::Entity)
        .filter(tag_endpoint::Column::EndpointId.is_in(endpoint_ids.iter().copied()))
        .order_by_asc(tag::Column::Position)
        .order_by_asc(tag::Column::Id)
        .all(db)
        .await?;
    Ok(group(rows.into_iter().filter_map(|(tag, link)| Some((link?.endpoint_id, tag)))))
}
