//! Relation loaders, created per request: every relation is fetched in one statement per
//! nesting level, however many parents ask for it (see [`super::batch`]).
//!
//! One `DbLoader` serves every key type; each newtype key says which relation to load.

use std::{collections::HashMap, hash::Hash, sync::Arc};

use async_graphql::{
    Json,
    dataloader::Loader,
    parser::types::{Field, Selection, SelectionSet},
};

use super::batch::Batcher;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult, JoinType,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, RelationTrait, Select,
    sea_query::{Alias, Asterisk, Expr, ExprTrait, Query, SelectStatement},
};

use crate::{
    db::entities::{
        endpoint, endpoint_parameter, openapi_spec, project, request_body, scenario_history, stage_history,
        tag, tag_endpoint, test_history,
    },
    db::repo::{
        Page,
        history::{Cells, summary_table_by_index},
    },
    domain::{HttpMethod, ParameterLocation},
    error::AppError,
    graphql::types::catalogue::{Parameter, RequestBody},
};

/// The request-scoped loader: batching plus a per-request cache.
pub type AppLoader = Batcher<DbLoader>;

/// Big enough that the catalogue of a large project loads in one batch; below SQLite's
/// 32,766 bound parameters.
const MAX_BATCH: usize = 20_000;

/// Builds the loader for one request (or one websocket connection).
pub fn request_loader(db: DatabaseConnection) -> AppLoader {
    Batcher::new(DbLoader { db }, MAX_BATCH)
}

/// Loads rows by key from the metadata database.
pub struct DbLoader {
    db: DatabaseConnection,
}

type LoadResult<K, V> = Result<HashMap<K, V>, async_graphql::Error>;

fn db_error(err: sea_orm::DbErr) -> async_graphql::Error {
    AppError::from(err).into()
}

/// Rows of `select` whose `parent` column is in `keys`, grouped by that column under `wrap(key)`.
async fn children<E, K>(
    db: &DatabaseConnection,
    select: Select<E>,
    parent: E::Column,
    keys: &[K],
    key_id: impl Fn(&K) -> i64,
    parent_of: impl Fn(&E::Model) -> i64,
) -> LoadResult<K, Vec<E::Model>>
where
    E: EntityTrait,
    K: Hash + Eq + Clone,
{
    let ids: Vec<i64> = keys.iter().map(&key_id).collect();
    let rows = select.filter(parent.is_in(ids)).all(db).await.map_err(db_error)?;
    let mut grouped: HashMap<i64, Vec<E::Model>> = HashMap::new();
    for row in rows {
        grouped.entry(parent_of(&row)).or_default().push(row);
    }
    // Every key gets an entry, so a parent without children reads as an empty list, not a miss.
    Ok(keys.iter().map(|key| (key.clone(), grouped.remove(&key_id(key)).unwrap_or_default())).collect())
}

/// Rows by primary key.
async fn by_id<E>(
    db: &DatabaseConnection,
    id_column: E::Column,
    keys: &[i64],
    id_of: impl Fn(&E::Model) -> i64,
) -> LoadResult<i64, E::Model>
where
    E: EntityTrait,
{
    let rows = E::find().filter(id_column.is_in(keys.iter().copied())).all(db).await.map_err(db_error)?;
    Ok(rows.into_iter().map(|row| (id_of(&row), row)).collect())
}

/// Wraps `inner` so that only the first `limit` rows per `partition` (in `order`) remain.
/// One statement for any number of parents, on SQLite and PostgreSQL alike.
fn top_n_per_parent(inner: SelectStatement, partition: &str, order: &str, limit: u64) -> SelectStatement {
    let mut ranked = inner;
    ranked.expr_as(
        Expr::cust(format!("ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {order})")),
        Alias::new("rank_in_parent"),
    );
    Query::select()
        .column(Asterisk)
        .from_subquery(ranked, Alias::new("ranked"))
        .and_where(Expr::col(Alias::new("rank_in_parent")).lte(limit))
        .to_owned()
}

async fn ranked_rows<M: FromQueryResult>(
    db: &DatabaseConnection,
    statement: SelectStatement,
) -> Result<Vec<M>, async_graphql::Error> {
    let statement = db.get_database_backend().build(&statement);
    M::find_by_statement(statement).all(db).await.map_err(db_error)
}

macro_rules! by_id_loader {
    ($key:ident, $entity:ident) => {
        #[doc = concat!("A `", stringify!($entity), "` row by id.")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl Loader<$key> for DbLoader {
            type Value = $entity::Model;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[$key]) -> LoadResult<$key, Self::Value> {
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                let rows = by_id::<$entity::Entity>(&self.db, $entity::Column::Id, &ids, |m| m.id).await?;
                Ok(rows.into_iter().map(|(id, row)| ($key(id), row)).collect())
            }
        }
    };
}

by_id_loader!(ProjectById, project);
by_id_loader!(SpecById, openapi_spec);
by_id_loader!(EndpointById, endpoint);
by_id_loader!(TestHistoryById, test_history);

macro_rules! children_loader {
    ($(#[$doc:meta])* $key:ident => $entity:ident by $column:ident ($field:ident), $select:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl Loader<$key> for DbLoader {
            type Value = Vec<$entity::Model>;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[$key]) -> LoadResult<$key, Self::Value> {
                children(&self.db, $select, $entity::Column::$column, keys, |k| k.0, |m| m.$field).await
            }
        }
    };
}

children_loader!(
    /// A project's specs, in import order.
    SpecsOfProject => openapi_spec by ProjectId(project_id),
    openapi_spec::Entity::find().order_by_asc(openapi_spec::Column::Id)
);
children_loader!(
    /// A spec's tags, in document order.
    TagsOfSpec => tag by SpecId(spec_id),
    tag::Entity::find().order_by_asc(tag::Column::Position).order_by_asc(tag::Column::Id)
);
children_loader!(
    /// A run's scenarios, in launch order.
    ScenariosOfTest => scenario_history by TestHistoryId(test_history_id),
    scenario_history::Entity::find().order_by_asc(scenario_history::Column::Position)
);
children_loader!(
    /// A scenario's stages, in order.
    StagesOfScenario => stage_history by ScenarioHistoryId(scenario_history_id),
    stage_history::Entity::find().order_by_asc(stage_history::Column::Position)
);

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

impl From<endpoint::Model> for EndpointRow {
    fn from(row: endpoint::Model) -> Self {
        Self {
            id: row.id,
            spec_id: row.spec_id,
            method: row.method,
            path: row.path,
            operation_id: row.operation_id,
            summary: row.summary,
            description: row.description,
            deprecated: row.deprecated,
        }
    }
}

/// The columns of [`endpoint_columns`], in order. Rows decode as tuples, by column index:
/// SeaORM's by-name decoding formats and hashes the column name for every cell.
type EndpointTuple = (i64, i64, HttpMethod, String, Option<String>, Option<String>, Option<String>, bool);

impl From<EndpointTuple> for EndpointRow {
    fn from(
        (id, spec_id, method, path, operation_id, summary, description, deprecated): EndpointTuple,
    ) -> Self {
        Self { id, spec_id, method, path, operation_id, summary, description, deprecated }
    }
}

/// `select` narrowed to the columns of [`EndpointRow`].
fn endpoint_columns<E: EntityTrait>(select: Select<E>) -> Select<E> {
    use endpoint::Column as C;
    select.select_only().columns([
        C::Id,
        C::SpecId,
        C::Method,
        C::Path,
        C::OperationId,
        C::Summary,
        C::Description,
        C::Deprecated,
    ])
}

/// A spec's current endpoints (not those a re-import removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointsOfSpec(pub i64);

impl Loader<EndpointsOfSpec> for DbLoader {
    type Value = Vec<Arc<EndpointRow>>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EndpointsOfSpec]) -> LoadResult<EndpointsOfSpec, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows: Vec<EndpointTuple> = endpoint_columns(endpoint::Entity::find())
            .filter(endpoint::Column::SpecId.is_in(ids))
            .filter(endpoint::Column::RemovedAt.is_null())
            .order_by_asc(endpoint::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let mut grouped: HashMap<EndpointsOfSpec, Vec<Arc<EndpointRow>>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for row in rows {
            let row = EndpointRow::from(row);
            grouped.entry(EndpointsOfSpec(row.spec_id)).or_default().push(Arc::new(row));
        }
        Ok(grouped)
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
        let rows: Vec<ParameterTuple> = endpoint_parameter::Entity::find()
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
            .order_by_asc(C::Position)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let mut grouped: HashMap<i64, Vec<Parameter>> = HashMap::with_capacity(keys.len());
        for (endpoint_id, name, location, required, schema_type, description, example) in rows {
            grouped.entry(endpoint_id).or_default().push(Parameter {
                name,
                location,
                required,
                schema_type,
                description,
                example: example.map(Json),
            });
        }
        // Every key gets an entry, so an endpoint without parameters reads as an empty list.
        Ok(keys.iter().map(|key| (*key, grouped.remove(&key.0).unwrap_or_default().into())).collect())
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
            let rows: Vec<BodyTuple> =
                select.filter(C::EndpointId.is_in(ids)).into_tuple().all(&self.db).await.map_err(db_error)?;
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

/// The columns of [`EndpointTuple`], then tag_id.
type TaggedEndpointTuple =
    (i64, i64, HttpMethod, String, Option<String>, Option<String>, Option<String>, bool, i64);

impl Loader<EndpointsOfTag> for DbLoader {
    type Value = Vec<Arc<EndpointRow>>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EndpointsOfTag]) -> LoadResult<EndpointsOfTag, Self::Value> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows: Vec<TaggedEndpointTuple> = endpoint_columns(endpoint::Entity::find())
            .column(tag_endpoint::Column::TagId)
            .join_rev(JoinType::InnerJoin, tag_endpoint::Relation::Endpoint.def())
            .filter(tag_endpoint::Column::TagId.is_in(ids))
            .filter(endpoint::Column::RemovedAt.is_null())
            .order_by_asc(endpoint::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let mut grouped: HashMap<EndpointsOfTag, Vec<Arc<EndpointRow>>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for (id, spec_id, method, path, operation_id, summary, description, deprecated, tag_id) in rows {
            let row = (id, spec_id, method, path, operation_id, summary, description, deprecated);
            grouped.entry(EndpointsOfTag(tag_id)).or_default().push(Arc::new(EndpointRow::from(row)));
        }
        Ok(grouped)
    }
}

/// The tags an endpoint carries, in document order.
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
        let mut grouped: HashMap<TagsOfEndpoint, Vec<tag::Model>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for (tag, link) in rows {
            if let Some(link) = link {
                grouped.entry(TagsOfEndpoint(link.endpoint_id)).or_default().push(tag);
            }
        }
        Ok(grouped)
    }
}

/// How many current endpoints a project has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointCountOfProject(pub i64);

impl Loader<EndpointCountOfProject> for DbLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EndpointCountOfProject]) -> LoadResult<EndpointCountOfProject, i64> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let counts: Vec<(i64, i64)> = endpoint::Entity::find()
            .select_only()
            .column(endpoint::Column::ProjectId)
            .column_as(endpoint::Column::Id.count(), "endpoints")
            .filter(endpoint::Column::ProjectId.is_in(ids))
            .filter(endpoint::Column::RemovedAt.is_null())
            .group_by(endpoint::Column::ProjectId)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let counts: HashMap<i64, i64> = counts.into_iter().collect();
        Ok(keys.iter().map(|k| (*k, counts.get(&k.0).copied().unwrap_or(0))).collect())
    }
}

/// How many runs a project has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunCountOfProject(pub i64);

impl Loader<RunCountOfProject> for DbLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RunCountOfProject]) -> LoadResult<RunCountOfProject, i64> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let counts: Vec<(i64, i64)> = test_history::Entity::find()
            .select_only()
            .column(test_history::Column::ProjectId)
            .column_as(test_history::Column::Id.count(), "runs")
            .filter(test_history::Column::ProjectId.is_in(ids))
            .group_by(test_history::Column::ProjectId)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let counts: HashMap<i64, i64> = counts.into_iter().collect();
        Ok(keys.iter().map(|k| (*k, counts.get(&k.0).copied().unwrap_or(0))).collect())
    }
}

/// One page of a project's runs, newest first: `first` rows after the run `before`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunsOfProject {
    pub project_id: i64,
    pub first: u64,
    pub before: Option<i64>,
}

impl Loader<RunsOfProject> for DbLoader {
    type Value = Page<test_history::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RunsOfProject]) -> LoadResult<RunsOfProject, Self::Value> {
        // Parents asking for the same page shape share one statement.
        let mut shapes: HashMap<(u64, Option<i64>), Vec<i64>> = HashMap::new();
        for key in keys {
            shapes.entry((key.first, key.before)).or_default().push(key.project_id);
        }
        let mut pages = HashMap::new();
        for ((first, before), project_ids) in shapes {
            let mut inner = test_history::Entity::find()
                .filter(test_history::Column::ProjectId.is_in(project_ids.iter().copied()));
            if let Some(before) = before {
                inner = inner.filter(test_history::Column::Id.lt(before));
            }
            let statement =
                top_n_per_parent(QueryTrait::into_query(inner), "project_id", "id DESC", first + 1);
            let rows: Vec<test_history::Model> = ranked_rows(&self.db, statement).await?;
            let mut grouped: HashMap<i64, Vec<test_history::Model>> = HashMap::new();
            for row in rows {
                grouped.entry(row.project_id).or_default().push(row);
            }
            for project_id in project_ids {
                let mut rows = grouped.remove(&project_id).unwrap_or_default();
                rows.sort_by_key(|row| std::cmp::Reverse(row.id));
                pages.insert(RunsOfProject { project_id, first, before }, Page::from_probe(rows, first));
            }
        }
        Ok(pages)
    }
}

/// The latest `last` scenario results (with a summary) against an endpoint, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecentScenariosOfEndpoint {
    pub endpoint_id: i64,
    pub last: u64,
}

impl Loader<RecentScenariosOfEndpoint> for DbLoader {
    type Value = Vec<scenario_history::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[RecentScenariosOfEndpoint],
    ) -> LoadResult<RecentScenariosOfEndpoint, Self::Value> {
        let mut by_last: HashMap<u64, Vec<i64>> = HashMap::new();
        for key in keys {
            by_last.entry(key.last).or_default().push(key.endpoint_id);
        }
        let mut results = HashMap::new();
        for (last, endpoint_ids) in by_last {
            let inner = scenario_history::Entity::find()
                .filter(scenario_history::Column::EndpointId.is_in(endpoint_ids.iter().copied()))
                .filter(scenario_history::Column::TotalRequests.is_not_null());
            let statement = top_n_per_parent(
                QueryTrait::into_query(inner),
                "endpoint_id",
                "test_history_id DESC, id DESC",
                last,
            );
            let rows: Vec<scenario_history::Model> = ranked_rows(&self.db, statement).await?;
            let mut grouped: HashMap<i64, Vec<scenario_history::Model>> = HashMap::new();
            for row in rows {
                grouped.entry(row.endpoint_id).or_default().push(row);
            }
            for endpoint_id in endpoint_ids {
                let mut rows = grouped.remove(&endpoint_id).unwrap_or_default();
                rows.sort_by_key(|row| std::cmp::Reverse((row.test_history_id, row.id)));
                results.insert(RecentScenariosOfEndpoint { endpoint_id, last }, rows);
            }
        }
        Ok(results)
    }
}

/// A run's scenarios for a page of runs, in launch order; with the columns of each scenario's
/// endpoint (joined in the same statement) when `with_endpoint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScenariosOfRun {
    pub run_id: i64,
    pub with_endpoint: bool,
}

/// A scenario row with its endpoint's, when joined.
pub type ScenarioWithEndpoint = (scenario_history::Model, Option<EndpointRow>);

summary_table_by_index!(SCENARIO_COLUMNS, decode_scenario, scenario_history:
    Id id, TestHistoryId test_history_id, EndpointId endpoint_id, Position position, Name name,
    ScenarioTag scenario_tag, Executor executor, ThinkTime think_time, MaxVusLimit max_vus_limit,
    ResponseTimeTarget response_time_target, ErrorRateTarget error_rate_target, Request request);

/// A `scenario_history` row selected as [`SCENARIO_COLUMNS`], after the endpoint's columns
/// when the statement joins them (`WITH_ENDPOINT`).
struct ScenarioByIndex<const WITH_ENDPOINT: bool>(ScenarioWithEndpoint);

impl<const WITH_ENDPOINT: bool> FromQueryResult for ScenarioByIndex<WITH_ENDPOINT> {
    fn from_query_result(row: &sea_orm::QueryResult, _prefix: &str) -> Result<Self, sea_orm::DbErr> {
        let endpoint = if WITH_ENDPOINT {
            let tuple = <EndpointTuple as sea_orm::TryGetableMany>::try_get_many_by_index(row)?;
            Some(EndpointRow::from(tuple))
        } else {
            None
        };
        let scenario =
            decode_scenario(&mut Cells::from(row, if WITH_ENDPOINT { ENDPOINT_COLUMNS } else { 0 }))?;
        Ok(Self((scenario, endpoint)))
    }
}

/// How many columns [`endpoint_columns`] selects.
const ENDPOINT_COLUMNS: usize = 8;

/// The scenarios of the runs `ids`, with their endpoints' columns when `WITH_ENDPOINT`.
async fn scenarios_of_runs<const WITH_ENDPOINT: bool>(
    db: &DatabaseConnection,
    ids: Vec<i64>,
) -> Result<Vec<ScenarioByIndex<WITH_ENDPOINT>>, async_graphql::Error> {
    use scenario_history::Column as C;
    let mut select = scenario_history::Entity::find().select_only();
    if WITH_ENDPOINT {
        let to_endpoint = scenario_history::Entity::belongs_to(endpoint::Entity)
            .from(C::EndpointId)
            .to(endpoint::Column::Id);
        select = endpoint_columns(select).join(JoinType::InnerJoin, to_endpoint.into());
    }
    select
        .columns(SCENARIO_COLUMNS.iter().copied())
        .filter(C::TestHistoryId.is_in(ids))
        .order_by_asc(C::TestHistoryId)
        .order_by_asc(C::Position)
        .into_model()
        .all(db)
        .await
        .map_err(db_error)
}

impl Loader<ScenariosOfRun> for DbLoader {
    type Value = Vec<ScenarioWithEndpoint>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ScenariosOfRun]) -> LoadResult<ScenariosOfRun, Self::Value> {
        let mut scenarios: HashMap<ScenariosOfRun, Self::Value> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        // One statement per shape; a query asks all its runs' scenarios with the same shape.
        for with_endpoint in [false, true] {
            let ids: Vec<i64> =
                keys.iter().filter(|k| k.with_endpoint == with_endpoint).map(|k| k.run_id).collect();
            if ids.is_empty() {
                continue;
            }
            let rows: Vec<ScenarioWithEndpoint> = if with_endpoint {
                scenarios_of_runs::<true>(&self.db, ids).await?.into_iter().map(|row| row.0).collect()
            } else {
                scenarios_of_runs::<false>(&self.db, ids).await?.into_iter().map(|row| row.0).collect()
            };
            for row in rows {
                let key = ScenariosOfRun { run_id: row.0.test_history_id, with_endpoint };
                scenarios.entry(key).or_default().push(row);
            }
        }
        Ok(scenarios)
    }
}

/// The stages of a run's scenarios, by scenario and in order (joined through the scenarios,
/// so they load beside them rather than after).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StagesOfRun(pub i64);

/// test_history_id, then the stage's columns.
type RunStageTuple = (i64, i64, i64, i32, String, i32);

impl Loader<StagesOfRun> for DbLoader {
    type Value = Vec<stage_history::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[StagesOfRun]) -> LoadResult<StagesOfRun, Self::Value> {
        use stage_history::Column as C;
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let to_scenario = stage_history::Entity::belongs_to(scenario_history::Entity)
            .from(C::ScenarioHistoryId)
            .to(scenario_history::Column::Id);
        let rows: Vec<RunStageTuple> = stage_history::Entity::find()
            .select_only()
            .column(scenario_history::Column::TestHistoryId)
            .columns([C::Id, C::ScenarioHistoryId, C::Position, C::Duration, C::Target])
            .join(JoinType::InnerJoin, to_scenario.into())
            .filter(scenario_history::Column::TestHistoryId.is_in(ids))
            .order_by_asc(C::ScenarioHistoryId)
            .order_by_asc(C::Position)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        let mut stages: HashMap<StagesOfRun, Self::Value> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for (run_id, id, scenario_history_id, position, duration, target) in rows {
            let stage = stage_history::Model { id, scenario_history_id, position, duration, target };
            stages.entry(StagesOfRun(run_id)).or_default().push(stage);
        }
        Ok(stages)
    }
}

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
        Some(match name {
            "id" => "CAST(e.id AS TEXT)".to_owned(),
            "method" => "e.method".to_owned(),
            "path" => "e.path".to_owned(),
            "operationId" => "e.operation_id".to_owned(),
            "summary" => "e.summary".to_owned(),
            "description" => "e.description".to_owned(),
            "deprecated" => json_bool("e.deprecated"),
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
