//! The catalogue's relations: a spec's tags and endpoints, a tag's endpoints, an endpoint's
//! tags, parameters and body, and a spec's whole [`SpecCatalogue`] for the read cache.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{Json, dataloader::Loader};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, RelationTrait, Select,
    sea_query::{Alias, Expr},
};

use super::{DbLoader, LoadResult, MAX_BATCH, TagsOfSpec, db_error, grouped, tuples};
use crate::{
    db::{
        entities::{endpoint, endpoint_parameter, request_body, tag, tag_endpoint},
        repo::history::Cells,
    },
    domain::{HttpMethod, ParameterLocation},
    graphql::types::catalogue::{Parameter, RequestBody},
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
    db: &DatabaseConnection,
    select: Select<endpoint::Entity>,
) -> Result<Vec<EndpointByIndex<TAGGED>>, async_graphql::Error> {
    select
        .filter(endpoint::Column::RemovedAt.is_null())
        .order_by_asc(endpoint::Column::Id)
        .into_model()
        .all(db)
        .await
        .map_err(db_error)
}

/// A spec's current endpoints (not those a re-import removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointsOfSpec(pub i64);

impl Loader<EndpointsOfSpec> for DbLoader {
    type Value = Vec<Arc<EndpointRow>>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EndpointsOfSpec]) -> LoadResult<EndpointsOfSpec, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let select =
            EndpointRow::select(endpoint::Entity::find()).filter(endpoint::Column::SpecId.is_in(ids));
        let rows: Vec<EndpointByIndex<false>> = current_endpoints(&self.db, select).await?;
        Ok(grouped(
            keys,
            rows.into_iter().map(|EndpointByIndex(row, _)| (EndpointsOfSpec(row.spec_id), Arc::new(row))),
        ))
    }
}

/// An endpoint's parameters, in document order; shared, since one endpoint can appear under
/// several tags of the same answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParametersOfEndpoint(pub i64);

/// endpoint_id, name, location, required, schema_type, description, example.
type ParameterTuple =
    (i64, String, ParameterLocation, bool, Option<String>, Option<String>, Option<serde_json::Value>);

impl Loader<ParametersOfEndpoint> for DbLoader {
    type Value = Arc<[Parameter]>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ParametersOfEndpoint]) -> LoadResult<ParametersOfEndpoint, Self::Value> {
        use endpoint_parameter::Column as C;
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
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
            .filter(C::EndpointId.is_in(ids))
            .order_by_asc(C::EndpointId)
            .order_by_asc(C::Position);
        let rows: Vec<ParameterTuple> = tuples(&self.db, select).await?;
        let rows = rows.into_iter().map(
            |(endpoint_id, name, location, required, schema_type, description, example)| {
                let parameter = Parameter {
                    name,
                    location,
                    required,
                    schema_type,
                    description,
                    example: example.map(Json),
                };
                (ParametersOfEndpoint(endpoint_id), parameter)
            },
        );
        Ok(grouped(keys, rows).into_iter().map(|(key, parameters)| (key, parameters.into())).collect())
    }
}

/// An endpoint's request body, if it takes one; its schema (a JSON text that can be large)
/// is read only when `with_schema` says the query asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BodyOfEndpoint {
    pub endpoint_id: i64,
    pub with_schema: bool,
}

/// endpoint_id, content_type, required, example, schema.
type BodyTuple = (i64, String, bool, Option<serde_json::Value>, Option<String>);

impl Loader<BodyOfEndpoint> for DbLoader {
    type Value = RequestBody;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[BodyOfEndpoint]) -> LoadResult<BodyOfEndpoint, Self::Value> {
        use request_body::Column as C;
        let mut bodies = HashMap::with_capacity(keys.len());
        // One statement per shape; a query asks all its bodies with the same shape.
        for with_schema in [false, true] {
            let ids: Vec<i64> =
                keys.iter().filter(|k| k.with_schema == with_schema).map(|k| k.endpoint_id).collect();
            if ids.is_empty() {
                continue;
            }
            let mut select = request_body::Entity::find().select_only().columns([
                C::EndpointId,
                C::ContentType,
                C::Required,
                C::Example,
            ]);
            select = if with_schema {
                select.column(C::Schema)
            } else {
                select.column_as(Expr::cust("NULL"), "schema")
            };
            let rows: Vec<BodyTuple> = tuples(&self.db, select.filter(C::EndpointId.is_in(ids))).await?;
            bodies.extend(rows.into_iter().map(|(endpoint_id, content_type, required, example, schema)| {
                let key = BodyOfEndpoint { endpoint_id, with_schema };
                let body = RequestBody {
                    content_type,
                    required,
                    schema,
                    schema_loaded: with_schema,
                    example: example.map(Json),
                };
                (key, body)
            }));
        }
        Ok(bodies)
    }
}

/// The endpoints carrying a tag (many-to-many through `tag_endpoint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointsOfTag(pub i64);

impl Loader<EndpointsOfTag> for DbLoader {
    type Value = Vec<Arc<EndpointRow>>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EndpointsOfTag]) -> LoadResult<EndpointsOfTag, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let select = EndpointRow::select(endpoint::Entity::find())
            .column(tag_endpoint::Column::TagId)
            .join_rev(JoinType::InnerJoin, tag_endpoint::Relation::Endpoint.def())
            .filter(tag_endpoint::Column::TagId.is_in(ids));
        let rows: Vec<EndpointByIndex<true>> = current_endpoints(&self.db, select).await?;
        let rows = rows
            .into_iter()
            .filter_map(|EndpointByIndex(row, tag_id)| Some((EndpointsOfTag(tag_id?), Arc::new(row))));
        Ok(grouped(keys, rows))
    }
}

/// Everything below one spec that the catalogue shows (tags, current endpoints, which
/// endpoints carry which tag, parameters, bodies without their schemas), read together so
/// it can be kept in the read cache under the spec's revision (see [`crate::db::cache`]).
pub struct SpecCatalogue {
    pub tags: Vec<tag::Model>,
    /// Current endpoints (not those a re-import removed), by id.
    pub endpoints: Vec<Arc<EndpointRow>>,
    /// Each tag's current endpoints, by id.
    pub endpoints_of_tag: HashMap<i64, Vec<Arc<EndpointRow>>>,
    /// Every current endpoint has an entry, empty when it takes no parameter.
    pub parameters: HashMap<i64, Arc<[Parameter]>>,
    /// Bodies, with `schema_loaded: false`.
    pub bodies: HashMap<i64, RequestBody>,
}

impl SpecCatalogue {
    /// How many rows it was read from: its weight in the read cache's budget.
    pub fn rows(&self) -> usize {
        let links: usize = self.endpoints_of_tag.values().map(Vec::len).sum();
        let parameters: usize = self.parameters.values().map(|p| p.len()).sum();
        self.tags.len() + self.endpoints.len() + links + parameters + self.bodies.len()
    }
}

/// A spec's [`SpecCatalogue`]: five statements for any number of specs (tags, endpoints,
/// tag links, parameters, bodies), where the per-level loaders take four per level asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CatalogueOfSpec(pub i64);

impl Loader<CatalogueOfSpec> for DbLoader {
    type Value = Arc<SpecCatalogue>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[CatalogueOfSpec]) -> LoadResult<CatalogueOfSpec, Self::Value> {
        let spec_ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let tag_keys: Vec<TagsOfSpec> = spec_ids.iter().map(|&id| TagsOfSpec(id)).collect();
        let endpoint_keys: Vec<EndpointsOfSpec> = spec_ids.iter().map(|&id| EndpointsOfSpec(id)).collect();
        let links = tag_endpoint::Entity::find()
            .select_only()
            .column(tag_endpoint::Column::TagId)
            .column(tag_endpoint::Column::EndpointId)
            .join(JoinType::InnerJoin, tag_endpoint::Relation::Tag.def())
            .filter(tag::Column::SpecId.is_in(spec_ids.iter().copied()))
            .order_by_asc(tag_endpoint::Column::EndpointId)
            .into_tuple::<(i64, i64)>()
            .all(&self.db);
        let (mut tags, mut endpoints, links) = futures_util::future::try_join3(
            Loader::<TagsOfSpec>::load(self, &tag_keys),
            Loader::<EndpointsOfSpec>::load(self, &endpoint_keys),
            async { links.await.map_err(db_error) },
        )
        .await?;

        let all: Vec<i64> = endpoints.values().flatten().map(|row| row.id).collect();
        let mut parameters = HashMap::with_capacity(all.len());
        let mut bodies = HashMap::new();
        for ids in all.chunks(MAX_BATCH) {
            let parameter_keys: Vec<ParametersOfEndpoint> =
                ids.iter().map(|&id| ParametersOfEndpoint(id)).collect();
            let body_keys: Vec<BodyOfEndpoint> =
                ids.iter().map(|&endpoint_id| BodyOfEndpoint { endpoint_id, with_schema: false }).collect();
            let (some_parameters, some_bodies) = futures_util::future::try_join(
                Loader::<ParametersOfEndpoint>::load(self, &parameter_keys),
                Loader::<BodyOfEndpoint>::load(self, &body_keys),
            )
            .await?;
            parameters.extend(some_parameters.into_iter().map(|(key, value)| (key.0, value)));
            bodies.extend(some_bodies.into_iter().map(|(key, value)| (key.endpoint_id, value)));
        }

        let by_id: HashMap<i64, (i64, Arc<EndpointRow>)> = endpoints
            .iter()
            .flat_map(|(spec, rows)| rows.iter().map(move |row| (row.id, (spec.0, row.clone()))))
            .collect();
        let mut catalogues: HashMap<i64, SpecCatalogue> = spec_ids
            .iter()
            .map(|&spec_id| {
                let endpoints = endpoints.remove(&EndpointsOfSpec(spec_id)).unwrap_or_default();
                let catalogue = SpecCatalogue {
                    tags: tags.remove(&TagsOfSpec(spec_id)).unwrap_or_default(),
                    endpoints_of_tag: HashMap::new(),
                    parameters: endpoints
                        .iter()
                        .map(|row| (row.id, parameters.remove(&row.id).unwrap_or_else(|| Arc::new([]))))
                        .collect(),
                    bodies: endpoints
                        .iter()
                        .filter_map(|row| Some((row.id, bodies.remove(&row.id)?)))
                        .collect(),
                    endpoints,
                };
                (spec_id, catalogue)
            })
            .collect();
        // Links to removed endpoints are dropped by the import; `by_id` skips any left over.
        for (tag_id, endpoint_id) in links {
            if let Some((spec_id, row)) = by_id.get(&endpoint_id)
                && let Some(catalogue) = catalogues.get_mut(spec_id)
            {
                catalogue.endpoints_of_tag.entry(tag_id).or_default().push(row.clone());
            }
        }
        Ok(catalogues
            .into_iter()
            .map(|(spec_id, catalogue)| (CatalogueOfSpec(spec_id), Arc::new(catalogue)))
            .collect())
    }
}

/// The tags an endpoint carries, in document order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TagsOfEndpoint(pub i64);

impl Loader<TagsOfEndpoint> for DbLoader {
    type Value = Vec<tag::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[TagsOfEndpoint]) -> LoadResult<TagsOfEndpoint, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = tag::Entity::find()
            .join_rev(JoinType::InnerJoin, tag_endpoint::Relation::Tag.def())
            .select_also(tag_endpoint::Entity)
            .filter(tag_endpoint::Column::EndpointId.is_in(ids))
            .order_by_asc(tag::Column::Position)
            .order_by_asc(tag::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let rows = rows.into_iter().filter_map(|(tag, link)| Some((TagsOfEndpoint(link?.endpoint_id), tag)));
        Ok(grouped(keys, rows))
    }
}
